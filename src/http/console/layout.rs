//! The console's page shell (head, navigation, notices, the sign-out form) and the small pieces
//! every page uses: times, problems beside their forms, hidden CSRF fields.

use super::Problem;
use crate::http::account::SignedIn;
use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};
use mcp_events::Timestamp;

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Integrations,
    Tokens,
    Leases,
    Organizations,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Dashboard, "/", "Dashboard"),
    (Section::Integrations, "/integrations", "Integrations"),
    (Section::Tokens, "/tokens", "Tokens"),
    (Section::Leases, "/leases", "Leases"),
    (Section::Organizations, "/organizations", "Organizations"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · MCP Manager" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page for a signed-in person: navigation, their name, sign-out, an optional notice.
pub fn shell(
    title: &str,
    who: &SignedIn,
    current: Section,
    notice: Option<&str>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "MCP Manager" }
                    nav aria-label="Main" {
                        ul {
                            @for (section, href, label) in SECTIONS {
                                li {
                                    @if section == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/sign-out" {
                        (csrf(who))
                        span.who { (who.user.name) }
                        button.link type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(text) = notice {
                        p.notice role="status" { (text) }
                    }
                    (content)
                }
            }
        }
    }
}

/// A page for someone not signed in (the sign-in page).
pub fn bare_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "MCP Manager" }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The page of a request that cannot show what it asked for.
pub fn message_page(status: StatusCode, messages: &[String]) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    bare_page(
        title,
        html! {
            (problems(messages))
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// The hidden field that carries the session's CSRF token.
pub fn csrf(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="_token" value=(who.csrf_token()); }
}

/// Messages of a refusal, announced to screen readers.
pub fn problems(messages: &[String]) -> Markup {
    html! {
        div.problem role="alert" {
            @for message in messages {
                p { (message) }
            }
        }
    }
}

/// The problem of the form `form`, if there is one.
pub fn problem_at(problem: Option<&Problem>, form: &str) -> Markup {
    match Problem::at(problem, form) {
        Some(messages) => problems(&messages),
        None => html! {},
    }
}

/// A JSON value as text: a string as it is, anything else as JSON.
pub fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as people read it (UTC, to the second), in a `<time>` element.
pub fn time(text: Option<&str>) -> Markup {
    match text {
        Some(text) => {
            let shown = text.get(..19).unwrap_or(text).replace('T', " ");
            html! { time datetime=(text) { (shown) " UTC" } }
        }
        None => html! { "—" },
    }
}

/// How long until `expires_at` (an API timestamp), from `now`: "12 min", "1 h 5 min", "expired".
pub fn time_left(expires_at: Option<&str>, now: Timestamp) -> String {
    let Some(expires) = expires_at.and_then(Timestamp::parse) else {
        return "—".into();
    };
    let seconds = (expires.as_micros() - now.as_micros()) / 1_000_000;
    match seconds {
        s if s <= 0 => "expired".into(),
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A `<button>` that asks before it does something that cannot be undone (with JavaScript).
pub fn confirm_button(label: &str, question: &str) -> Markup {
    html! {
        button.danger type="submit" data-confirm=(question) { (label) }
    }
}

/// A value a reader can copy with one click (with JavaScript; selectable without).
pub fn copyable(id: &str, value: &str) -> Markup {
    html! {
        div.copy {
            input #(id) type="text" readonly value=(value) aria-label="New token";
            button type="button" data-copy=(id) { "Copy" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_as_people_say_it() {
        let now = Timestamp::parse("2026-11-27T10:00:00.000000Z").unwrap();
        let left = |at: &str| time_left(Some(at), now);
        assert_eq!(left("2026-11-27T10:00:42.000000Z"), "42 s");
        assert_eq!(left("2026-11-27T10:12:59.000000Z"), "12 min");
        assert_eq!(left("2026-11-27T11:05:00.000000Z"), "1 h 5 min");
        assert_eq!(left("2026-11-29T13:00:00.000000Z"), "2 d 3 h");
        assert_eq!(left("2026-11-27T09:59:59.000000Z"), "expired");
        assert_eq!(time_left(None, now), "—");
        assert_eq!(time_left(Some("not a time"), now), "—");
    }

    #[test]
    fn markup_escapes_what_people_typed() {
        let page = problems(&["<script>alert(1)</script>".to_owned()]).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }
}

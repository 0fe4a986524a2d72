//! The tokens page: the person's MCP tokens with their usage, a form to create one (shown once,
//! with a copy button, on the answer to the form only), and revocation.

use super::layout::{confirm_button, copyable, csrf, problem_at, shell, time, Section};
use super::{answer, notice, see_other, ConsoleError, Problem, Submission, Visitor};
use crate::http::account::sign_in::no_store;
use crate::http::account::{tokens, SignedIn};
use crate::http::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;

/// The expiry choices of the form, in seconds ("" for never).
const EXPIRIES: [(&str, &str); 5] = [
    ("", "Never"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
    ("7776000", "90 days"),
];

/// What the page shows besides the list: a notice, a problem, or a token just created.
#[derive(Default)]
struct Extras<'a> {
    done: Option<&'a str>,
    problem: Option<&'a Problem>,
    created: Option<&'a Value>,
}

async fn render(
    state: &AppState,
    who: SignedIn,
    status: StatusCode,
    extras: Extras<'_>,
) -> Result<Response, ConsoleError> {
    let list = answer(tokens::list(State(state.clone()), who.clone()).await).await?;
    let content = html! {
        @if let Some(token) = extras.created {
            section.created aria-labelledby="created" {
                h2 #created { "Your new token" }
                p { "Copy it now: it is shown only this once. Give it to your MCP server as its bearer token." }
                (copyable("new-token", token["token"].as_str().unwrap_or_default()))
            }
        }
        (token_table(&list, &who))
        (create_form(&who, extras.problem))
    };
    let done = notice(extras.done);
    let response = (
        status,
        shell("Tokens", &who, Section::Tokens, done, content),
    )
        .into_response();
    Ok(no_store(response))
}

fn token_table(list: &Value, who: &SignedIn) -> Markup {
    let tokens = list.as_array().map(Vec::as_slice).unwrap_or_default();
    html! {
        @if tokens.is_empty() {
            p.empty { "No tokens yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Scope" }
                        th scope="col" { "Status" }
                        th scope="col" { "Uses" }
                        th scope="col" { "Last used" }
                        th scope="col" { "Expires" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for token in tokens {
                            @let status = token["status"].as_str().unwrap_or_default();
                            tr {
                                td { (token["name"].as_str().unwrap_or_default()) }
                                td { (token["scope"].as_str().unwrap_or_default()) }
                                td { span class={"status " (status)} { (status) } }
                                td {
                                    (token["usage_count"].as_i64().unwrap_or_default())
                                    @if let Some(max) = token["max_uses"].as_i64() { " of " (max) }
                                }
                                td { (time(token["last_used_at"].as_str())) }
                                td { (time(token["expires_at"].as_str())) }
                                td {
                                    @if status == "active" {
                                        form.inline method="post" action={"/tokens/" (token["id"]) "/revoke"} {
                                            (csrf(who))
                                            (confirm_button("Revoke", "Revoke this token? MCP servers using it stop working."))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn create_form(who: &SignedIn, problem: Option<&Problem>) -> Markup {
    html! {
        section aria-labelledby="create" {
            h2 #create { "Create a token" }
            form.card #create-token method="post" action="/tokens" {
                (csrf(who))
                (problem_at(problem, "create-token"))
                label for="token-name" { "Name" }
                input #token-name type="text" name="name" required maxlength="255"
                    placeholder="claude-desktop";
                label for="token-scope" { "Scope" }
                select #token-scope name="scope" aria-describedby="scope-help" {
                    option value="leases" selected { "leases" }
                    option value="audit" { "audit" }
                }
                p.help #scope-help { "leases: for MCP servers (credential leases). audit: read-only access to the ledger, for auditors." }
                label for="token-expiry" { "Expires after" }
                select #token-expiry name="expires_in" {
                    @for (value, label) in EXPIRIES { option value=(value) { (label) } }
                }
                label for="token-uses" { "Maximum uses (optional)" }
                input #token-uses type="number" name="max_uses" min="1" inputmode="numeric";
                button type="submit" { "Create token" }
            }
        }
    }
}

/// `GET /tokens`.
pub async fn page(
    State(state): State<AppState>,
    Visitor(who): Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let extras = Extras {
        done: query.get("done").map(String::as_str),
        ..Extras::default()
    };
    render(&state, who, StatusCode::OK, extras).await
}

/// `POST /tokens` (`name`, `scope`, `expires_in`, `max_uses`): the page with the new token.
pub async fn create(
    State(state): State<AppState>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = form.body(
        &["name", "scope", "expires_in", "max_uses"],
        &["expires_in", "max_uses"],
    );
    match answer(tokens::create(State(state.clone()), who.clone(), body).await).await {
        Ok(token) => {
            let extras = Extras {
                created: Some(&token),
                ..Extras::default()
            };
            render(&state, who, StatusCode::CREATED, extras).await
        }
        Err(error) => {
            let problem = Problem::new("create-token", &error);
            let extras = Extras {
                problem: Some(&problem),
                ..Extras::default()
            };
            render(&state, who, error.status(), extras).await
        }
    }
}

/// `POST /tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Submission { who, .. }: Submission,
) -> Result<Response, ConsoleError> {
    tokens::revoke(State(state), who, Path(id)).await?;
    Ok(see_other("/tokens?done=token-revoked"))
}

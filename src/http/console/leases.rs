//! The leases page: the person's leases, filtered by status, each active one revocable.

use super::dashboard::lease_table;
use super::layout::{problem_at, shell, Section};
use super::{answer, notice, see_other, ConsoleError, Problem, Submission, Visitor};
use crate::http::account::{leases, SignedIn};
use crate::http::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use std::collections::HashMap;

const FILTERS: [(&str, &str); 4] = [
    ("", "All"),
    ("active", "Active"),
    ("expired", "Expired"),
    ("revoked", "Revoked"),
];

/// The page: the person's leases of `status` (empty for all), with a notice or a problem.
async fn render(
    state: &AppState,
    who: SignedIn,
    status: &str,
    done: Option<&str>,
    problem: Option<&Problem>,
) -> Result<Response, ConsoleError> {
    let query = HashMap::from([("status".to_owned(), status.to_owned())]);
    let list = answer(leases::list(State(state.clone()), who.clone(), Query(query)).await).await?;
    let now = state.ledger.now();
    let back = if status.is_empty() {
        "/leases".to_owned()
    } else {
        format!("/leases?status={status}")
    };
    let content = html! {
        form.filters method="get" action="/leases" {
            label for="status" { "Status" }
            select #status name="status" {
                @for (value, label) in FILTERS {
                    option value=(value) selected[value == status] { (label) }
                }
            }
            button type="submit" { "Filter" }
        }
        (problem_at(problem, "leases"))
        (lease_table(&list, &who, now, &back))
    };
    Ok(shell("Leases", &who, Section::Leases, notice(done), content).into_response())
}

/// `GET /leases`.
pub async fn page(
    State(state): State<AppState>,
    Visitor(who): Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let status = query.get("status").map(String::as_str).unwrap_or_default();
    let status = if FILTERS.iter().any(|(value, _)| *value == status) {
        status
    } else {
        ""
    };
    let done = query.get("done").map(String::as_str);
    render(&state, who, status, done, None).await
}

/// Where a form may send its person back to: the dashboard or the leases page, nowhere else.
fn back_to(requested: Option<&str>) -> &str {
    match requested {
        Some(path) if path == "/" || path.starts_with("/leases") => path,
        _ => "/leases",
    }
}

/// `POST /leases/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    match leases::revoke(State(state.clone()), who.clone(), Path(id)).await {
        Ok(_) => {
            let back = back_to(form.get("back"));
            let separator = if back.contains('?') { '&' } else { '?' };
            Ok(see_other(&format!("{back}{separator}done=lease-revoked")))
        }
        Err(error) => {
            let problem = Problem::new("leases", &error);
            let status = error.status();
            let response = render(&state, who, "", None, Some(&problem)).await?;
            Ok((status, response).into_response())
        }
    }
}

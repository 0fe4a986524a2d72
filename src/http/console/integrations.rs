//! The integrations page: the person's own integrations and those of their organizations, listed
//! without their secrets (a version and a fingerprint instead); owners and admins manage the
//! organization's. Credentials are typed into password fields, sent once, never shown again.

use super::layout::{confirm_button, csrf, problem_at, shell, time, Section};
use super::CREDENTIAL_ROWS;
use super::{answer, notice, see_other, ConsoleError, Form, Problem, Submission, Visitor};
use crate::http::account::{integrations, organizations, sign_in, Body, SignedIn};
use crate::http::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;

/// Services people often connect, offered as suggestions (any valid name is accepted).
const SUGGESTED: [&str; 8] = [
    "todoist", "jira", "notion", "openai", "sentry", "gmail", "github", "slack",
];
const STATUSES: [&str; 4] = ["active", "inactive", "expired", "error"];

async fn render(
    state: &AppState,
    who: SignedIn,
    status: StatusCode,
    done: Option<&str>,
    problem: Option<&Problem>,
) -> Result<Response, ConsoleError> {
    let own = answer(integrations::list(State(state.clone()), who.clone()).await).await?;
    let profile = answer(sign_in::me(State(state.clone()), who.clone()).await).await?;
    let mut shared = Vec::new();
    for organization in profile["organizations"].as_array().into_iter().flatten() {
        let id = organization["id"].as_i64().unwrap_or_default();
        let list = organizations::integrations(State(state.clone()), who.clone(), Path(id));
        shared.push((organization.clone(), answer(list.await).await?));
    }
    let content = html! {
        section aria-labelledby="own" {
            h2 #own { "Your integrations" }
            (table(&own, &who, problem, Owner::Personal))
            (add_form(&who, problem, None))
        }
        @for (organization, list) in &shared {
            @let id = organization["id"].as_i64().unwrap_or_default();
            @let role = organization["role"].as_str().unwrap_or_default();
            @let manages = matches!(role, "owner" | "admin");
            section aria-labelledby={"org-" (id)} {
                h2 id={"org-" (id)} {
                    (organization["name"].as_str().unwrap_or_default())
                    span.muted { " · you are " (role) }
                }
                (table(list, &who, problem, Owner::Organization { id, manages }))
                @if manages {
                    (add_form(&who, problem, Some(id)))
                }
            }
        }
    };
    let body = shell(
        "Integrations",
        &who,
        Section::Integrations,
        notice(done),
        content,
    );
    Ok((status, body).into_response())
}

/// Where an integration's forms post: its own address, or its organization's.
fn action(organization: Option<i64>, integration: i64, what: &str) -> String {
    match organization {
        Some(org) => format!("/organizations/{org}/integrations/{integration}/{what}"),
        None => format!("/integrations/{integration}/{what}"),
    }
}

/// Whose integrations a table lists, and whether the person manages them.
#[derive(Clone, Copy)]
enum Owner {
    Personal,
    Organization { id: i64, manages: bool },
}

/// Integrations as a table, with forms to manage each where the person may.
fn table(list: &Value, who: &SignedIn, problem: Option<&Problem>, owner: Owner) -> Markup {
    let rows = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let (personal, manages, manage) = match owner {
        Owner::Personal => (true, true, None),
        Owner::Organization { id, manages } => (false, manages, Some(id)),
    };
    html! {
        @if rows.is_empty() {
            p.empty { "No integrations." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Service" }
                        th scope="col" { "Status" }
                        th scope="col" { "Version" }
                        th scope="col" { "Fingerprint" }
                        @if !personal { th scope="col" { "Shared with" } }
                        th scope="col" { "Added" }
                        @if manages { th scope="col" { span.visually-hidden { "Actions" } } }
                    } }
                    tbody {
                        @for row in rows {
                            @let id = row["id"].as_i64().unwrap_or_default();
                            @let status = row["status"].as_str().unwrap_or_default();
                            @let form_id = format!("integration-{id}");
                            tr {
                                td { (row["service"].as_str().unwrap_or_default()) }
                                td { span class={"status " (status)} { (status) } }
                                td { (row["secret_version"]) }
                                td { code { (row["fingerprint"].as_str().unwrap_or("—")) } }
                                @if !personal { td { (shared_with(&row["shared_with"])) } }
                                td { (time(row["created_at"].as_str())) }
                                @if manages {
                                    td {
                                        details.manage open[Problem::at(problem, &form_id).is_some()] {
                                            summary { "Manage" span.visually-hidden { " " (row["service"].as_str().unwrap_or_default()) } }
                                            (problem_at(problem, &form_id))
                                            form method="post" action=(action(manage, id, "rotate")) {
                                                (csrf(who))
                                                (credential_rows(&form_id))
                                                button type="submit" { "Rotate credentials" }
                                            }
                                            form.row method="post" action=(action(manage, id, "status")) {
                                                (csrf(who))
                                                label for={(form_id) "-status"} { "Status" }
                                                select id={(form_id) "-status"} name="status" {
                                                    @for choice in STATUSES {
                                                        option value=(choice) selected[choice == status] { (choice) }
                                                    }
                                                }
                                                button type="submit" { "Change status" }
                                            }
                                            @if personal {
                                                form method="post" action=(action(None, id, "remove")) {
                                                    (csrf(who))
                                                        (confirm_button("Remove", "Remove this integration? Its credentials can no longer be leased."))
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
    }
}

fn shared_with(value: &Value) -> String {
    match value {
        Value::String(text) => text.replace('_', " "),
        Value::Array(ids) => format!("{} chosen members", ids.len()),
        _ => "—".into(),
    }
}

/// The rows where credentials are typed: a field's name and its secret (a password field).
fn credential_rows(form_id: &str) -> Markup {
    html! {
        fieldset.credentials {
            legend { "Credentials" }
            @for row in 1..=CREDENTIAL_ROWS {
                div.pair {
                    div {
                        label for={(form_id) "-field-" (row)} { "Field " (row) }
                        input id={(form_id) "-field-" (row)} type="text" name={"field_" (row)}
                            value=[(row == 1).then_some("access_token")]
                            autocomplete="off" spellcheck="false";
                    }
                    div {
                        label for={(form_id) "-secret-" (row)} { "Value " (row) }
                        input id={(form_id) "-secret-" (row)} type="password" name={"secret_" (row)}
                            autocomplete="new-password";
                    }
                }
            }
            p.help { "Each credential is a field name (access_token, api_key, email…) and its value. Values are stored encrypted and never shown again." }
        }
    }
}

fn add_form(who: &SignedIn, problem: Option<&Problem>, organization: Option<i64>) -> Markup {
    let form_id = match organization {
        Some(org) => format!("org-{org}-add"),
        None => "add-integration".to_owned(),
    };
    let target = match organization {
        Some(org) => format!("/organizations/{org}/integrations"),
        None => "/integrations".to_owned(),
    };
    html! {
        details.add open[Problem::at(problem, &form_id).is_some()] {
            summary { "Add an integration" }
            form.card id=(form_id) method="post" action=(target) {
                (csrf(who))
                (problem_at(problem, &form_id))
                label for={(form_id) "-service"} { "Service" }
                input id={(form_id) "-service"} type="text" name="service" required
                    list="services" autocomplete="off" spellcheck="false";
                datalist #services { @for name in SUGGESTED { option value=(name); } }
                @if organization.is_some() {
                    label for={(form_id) "-shared"} { "Shared with" }
                    select id={(form_id) "-shared"} name="shared_with" {
                        option value="all_members" { "all members" }
                        option value="admins_only" { "admins only" }
                    }
                }
                (credential_rows(&form_id))
                button type="submit" { "Add integration" }
            }
        }
    }
}

/// `GET /integrations`.
pub async fn page(
    State(state): State<AppState>,
    Visitor(who): Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let done = query.get("done").map(String::as_str);
    render(&state, who, StatusCode::OK, done, None).await
}

/// A change's answer: back to the page with its notice, or the page with the refusal beside
/// the form that was sent.
async fn finish(
    state: &AppState,
    who: SignedIn,
    form_id: &str,
    result: Result<Response, crate::http::account::AccountError>,
    done: &str,
) -> Result<Response, ConsoleError> {
    match result {
        Ok(_) => Ok(see_other(&format!("/integrations?done={done}"))),
        Err(error) => {
            let problem = Problem::new(form_id, &error);
            render(state, who, error.status(), None, Some(&problem)).await
        }
    }
}

fn with_credentials(form: &Form, fields: &[&str]) -> Body {
    let mut body = form.body(fields, &[]);
    body.0
        .insert("credentials".into(), Value::Object(form.credentials()));
    body
}

/// `POST /integrations`.
pub async fn add(
    State(state): State<AppState>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = with_credentials(&form, &["service"]);
    let result = integrations::add(State(state.clone()), who.clone(), body).await;
    finish(&state, who, "add-integration", result, "integration-added").await
}

/// `POST /integrations/{id}/rotate`.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = with_credentials(&form, &[]);
    let result = integrations::rotate(State(state.clone()), who.clone(), Path(id), body).await;
    finish(
        &state,
        who,
        &format!("integration-{id}"),
        result,
        "integration-rotated",
    )
    .await
}

/// `POST /integrations/{id}/status`.
pub async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = form.body(&["status"], &[]);
    let result = integrations::set_status(State(state.clone()), who.clone(), Path(id), body).await;
    finish(
        &state,
        who,
        &format!("integration-{id}"),
        result,
        "integration-status",
    )
    .await
}

/// `POST /integrations/{id}/remove`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Submission { who, .. }: Submission,
) -> Result<Response, ConsoleError> {
    let result = integrations::remove(State(state.clone()), who.clone(), Path(id)).await;
    finish(
        &state,
        who,
        &format!("integration-{id}"),
        result,
        "integration-removed",
    )
    .await
}

/// `POST /organizations/{id}/integrations`.
pub async fn add_shared(
    State(state): State<AppState>,
    Path(organization_id): Path<i64>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = with_credentials(&form, &["service", "shared_with"]);
    let result = organizations::add_integration(
        State(state.clone()),
        who.clone(),
        Path(organization_id),
        body,
    )
    .await;
    let form_id = format!("org-{organization_id}-add");
    finish(&state, who, &form_id, result, "integration-added").await
}

/// `POST /organizations/{id}/integrations/{iid}/rotate`.
pub async fn rotate_shared(
    State(state): State<AppState>,
    Path(ids): Path<(i64, i64)>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = with_credentials(&form, &[]);
    let result =
        organizations::rotate_integration(State(state.clone()), who.clone(), Path(ids), body).await;
    finish(
        &state,
        who,
        &format!("integration-{}", ids.1),
        result,
        "integration-rotated",
    )
    .await
}

/// `POST /organizations/{id}/integrations/{iid}/status`.
pub async fn set_shared_status(
    State(state): State<AppState>,
    Path(ids): Path<(i64, i64)>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = form.body(&["status"], &[]);
    let result =
        organizations::set_integration_status(State(state.clone()), who.clone(), Path(ids), body)
            .await;
    finish(
        &state,
        who,
        &format!("integration-{}", ids.1),
        result,
        "integration-status",
    )
    .await
}

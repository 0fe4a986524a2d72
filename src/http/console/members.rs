//! Organizations: the ones the person belongs to, and each one's members. Owners and admins
//! add and remove members; owners change roles (the account API decides, under the ledger lock).

use super::layout::{confirm_button, csrf, problem_at, shell, time, Section};
use super::{answer, notice, see_other, ConsoleError, Problem, Submission, Visitor};
use crate::http::account::{organizations, sign_in, AccountError, SignedIn};
use crate::http::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use std::collections::HashMap;

const ROLES: [&str; 3] = ["owner", "admin", "member"];

/// `GET /organizations`: the person's organizations and their role in each.
pub async fn organizations(
    State(state): State<AppState>,
    Visitor(who): Visitor,
) -> Result<Response, ConsoleError> {
    let profile = answer(sign_in::me(State(state.clone()), who.clone()).await).await?;
    let list = profile["organizations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let content = html! {
        @if list.is_empty() {
            p.empty { "You are not in any organization." }
        } @else {
            ul.cards {
                @for organization in &list {
                    li {
                        a href={"/organizations/" (organization["id"]) "/members"} {
                            (organization["name"].as_str().unwrap_or_default())
                        }
                        span.muted { " · " (organization["role"].as_str().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    Ok(shell("Organizations", &who, Section::Organizations, None, content).into_response())
}

async fn render(
    state: &AppState,
    who: SignedIn,
    organization_id: i64,
    status: StatusCode,
    done: Option<&str>,
    problem: Option<&Problem>,
) -> Result<Response, ConsoleError> {
    let members = organizations::members(State(state.clone()), who.clone(), Path(organization_id));
    let members = answer(members.await).await?;
    let profile = answer(sign_in::me(State(state.clone()), who.clone()).await).await?;
    let organization = profile["organizations"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|o| o["id"].as_i64() == Some(organization_id))
        })
        .cloned()
        .ok_or(AccountError::NotFound)?;
    let role = organization["role"].as_str().unwrap_or_default();
    let (manages, owns) = (matches!(role, "owner" | "admin"), role == "owner");
    let base = format!("/organizations/{organization_id}/members");
    let rows = members.as_array().cloned().unwrap_or_default();
    let content = html! {
        p { "You are " strong { (role) } " here." }
        (problem_at(problem, "members"))
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Name" }
                    th scope="col" { "E-mail" }
                    th scope="col" { "Role" }
                    th scope="col" { "Joined" }
                    @if manages { th scope="col" { span.visually-hidden { "Actions" } } }
                } }
                tbody {
                    @for member in &rows {
                        @let user_id = member["user_id"].as_i64().unwrap_or_default();
                        @let member_role = member["role"].as_str().unwrap_or_default();
                        tr {
                            td { (member["name"].as_str().unwrap_or_default()) }
                            td { (member["email"].as_str().unwrap_or_default()) }
                            td {
                                @if owns {
                                    form.row method="post" action={(base) "/" (user_id) "/role"} {
                                        (csrf(&who))
                                        label.visually-hidden for={"role-" (user_id)} { "Role of " (member["name"].as_str().unwrap_or_default()) }
                                        select id={"role-" (user_id)} name="role" {
                                            @for choice in ROLES {
                                                option value=(choice) selected[choice == member_role] { (choice) }
                                            }
                                        }
                                        button type="submit" { "Change" }
                                    }
                                } @else {
                                    (member_role)
                                }
                            }
                            td { (time(member["joined_at"].as_str())) }
                            @if manages {
                                td {
                                    form.inline method="post" action={(base) "/" (user_id) "/remove"} {
                                        (csrf(&who))
                                        (confirm_button("Remove", "Remove this member from the organization?"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manages {
            section aria-labelledby="add-member-title" {
                h2 #add-member-title { "Add a member" }
                form.card #add-member method="post" action=(base) {
                    (csrf(&who))
                    (problem_at(problem, "add-member"))
                    label for="member-email" { "E-mail of an existing user" }
                    input #member-email type="email" name="email" required;
                    label for="member-role" { "Role" }
                    select #member-role name="role" {
                        @for choice in ROLES {
                            @if owns || choice != "owner" {
                                option value=(choice) selected[choice == "member"] { (choice) }
                            }
                        }
                    }
                    button type="submit" { "Add member" }
                }
            }
        }
    };
    let title = format!(
        "{} · members",
        organization["name"].as_str().unwrap_or_default()
    );
    let body = shell(&title, &who, Section::Organizations, notice(done), content);
    Ok((status, body).into_response())
}

/// `GET /organizations/{id}/members`.
pub async fn page(
    State(state): State<AppState>,
    Visitor(who): Visitor,
    Path(organization_id): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let done = query.get("done").map(String::as_str);
    render(&state, who, organization_id, StatusCode::OK, done, None).await
}

async fn finish(
    state: &AppState,
    who: SignedIn,
    organization_id: i64,
    form_id: &str,
    result: Result<Response, AccountError>,
    done: &str,
) -> Result<Response, ConsoleError> {
    match result {
        Ok(_) => Ok(see_other(&format!(
            "/organizations/{organization_id}/members?done={done}"
        ))),
        Err(error) => {
            let problem = Problem::new(form_id, &error);
            render(
                state,
                who,
                organization_id,
                error.status(),
                None,
                Some(&problem),
            )
            .await
        }
    }
}

/// `POST /organizations/{id}/members` (`email`, `role`).
pub async fn add(
    State(state): State<AppState>,
    Path(organization_id): Path<i64>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = form.body(&["email", "role"], &[]);
    let result = organizations::add_member(
        State(state.clone()),
        who.clone(),
        Path(organization_id),
        body,
    )
    .await;
    finish(
        &state,
        who,
        organization_id,
        "add-member",
        result,
        "member-added",
    )
    .await
}

/// `POST /organizations/{id}/members/{user_id}/role` (`role`).
pub async fn set_role(
    State(state): State<AppState>,
    Path(ids): Path<(i64, i64)>,
    Submission { who, form }: Submission,
) -> Result<Response, ConsoleError> {
    let body = form.body(&["role"], &[]);
    let result = organizations::set_role(State(state.clone()), who.clone(), Path(ids), body).await;
    finish(&state, who, ids.0, "members", result, "member-role").await
}

/// `POST /organizations/{id}/members/{user_id}/remove`.
pub async fn remove(
    State(state): State<AppState>,
    Path(ids): Path<(i64, i64)>,
    Submission { who, .. }: Submission,
) -> Result<Response, ConsoleError> {
    let result = organizations::remove_member(State(state.clone()), who.clone(), Path(ids)).await;
    if result.is_ok() && ids.1 == who.user_id() {
        // Someone who left sees the organizations they are still in.
        return Ok(see_other("/organizations"));
    }
    finish(&state, who, ids.0, "members", result, "member-removed").await
}

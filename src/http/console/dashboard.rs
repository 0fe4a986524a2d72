//! The dashboard: the services the person can lease now (as `GET /api/mcp/me` lists them), their
//! active leases with the time left, and their recent activity.

use super::layout::{confirm_button, csrf, plain, shell, time, time_left, Section};
use super::{answer, notice, ConsoleError, Visitor};
use crate::domain::resolve;
use crate::http::account::{activity, leases, AccountError};
use crate::http::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use mcp_events::Role;
use mcp_projections::queries;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How many activity records the dashboard shows.
const RECENT: &str = "10";

/// `GET /`.
pub async fn page(
    State(state): State<AppState>,
    Visitor(who): Visitor,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let services = available_services(&state, who.user_id()).await?;
    let active = HashMap::from([("status".to_owned(), "active".to_owned())]);
    let leases =
        answer(leases::list(State(state.clone()), who.clone(), Query(active)).await).await?;
    let recent = HashMap::from([("limit".to_owned(), RECENT.to_owned())]);
    let activity =
        answer(activity::list(State(state.clone()), who.clone(), Query(recent)).await).await?;
    let now = state.ledger.now();
    let content = html! {
        section aria-labelledby="services" {
            h2 #services { "Services you can lease" }
            @if services.is_empty() {
                p.empty { "None yet. " a href="/integrations" { "Add an integration" } " to lease its credentials." }
            } @else {
                ul.chips { @for service in &services { li { (service) } } }
            }
        }
        section aria-labelledby="active" {
            h2 #active { "Active leases" }
            (lease_table(&leases, &who, now, "/"))
        }
        section aria-labelledby="activity" {
            h2 #activity { "Recent activity" }
            (activity_list(&activity))
        }
    };
    let done = notice(query.get("done").map(String::as_str));
    Ok(shell("Dashboard", &who, Section::Dashboard, done, content).into_response())
}

/// The services a user can lease now: personal first, then their organizations', no duplicates.
async fn available_services(state: &AppState, user_id: i64) -> Result<Vec<String>, AccountError> {
    let mut conn = state.ledger.store().database().pool().acquire().await?;
    let memberships = queries::memberships_of_user(&mut conn, user_id).await?;
    let roles: BTreeMap<i64, Role> = memberships
        .iter()
        .filter_map(|m| Role::parse(&m.role).map(|role| (m.organization_id, role)))
        .collect();
    let mut candidates = queries::integrations_of_user(&mut conn, user_id).await?;
    for organization_id in roles.keys() {
        candidates
            .extend(queries::integrations_of_organization(&mut conn, *organization_id).await?);
    }
    Ok(resolve::available_services(user_id, &roles, &candidates))
}

/// Leases as a table, each active one with a revoke button that returns to `back`.
pub fn lease_table(
    leases: &Value,
    who: &crate::http::account::SignedIn,
    now: mcp_events::Timestamp,
    back: &str,
) -> Markup {
    let leases = leases.as_array().map(Vec::as_slice).unwrap_or_default();
    html! {
        @if leases.is_empty() {
            p.empty { "No leases." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Lease" }
                        th scope="col" { "Server" }
                        th scope="col" { "Services" }
                        th scope="col" { "Status" }
                        th scope="col" { "Time left" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for lease in leases {
                            @let id = lease["lease_id"].as_str().unwrap_or_default();
                            @let status = lease["status"].as_str().unwrap_or_default();
                            tr {
                                td { code { (id) } }
                                td { (lease["server_id"].as_str().unwrap_or_default()) }
                                td { (services_text(&lease["services"])) }
                                td { span class={"status " (status)} { (status) } }
                                td {
                                    @if status == "active" {
                                        (time_left(lease["expires_at"].as_str(), now))
                                    } @else {
                                        (time(lease["revoked_at"].as_str().or(lease["expires_at"].as_str())))
                                    }
                                }
                                td {
                                    @if status == "active" {
                                        form.inline method="post" action={"/leases/" (id) "/revoke"} {
                                            (csrf(who))
                                            input type="hidden" name="back" value=(back);
                                            (confirm_button("Revoke", "Revoke this lease? The MCP server loses its credentials."))
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

fn services_text(services: &Value) -> String {
    services
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Audit records, newest first.
pub fn activity_list(records: &Value) -> Markup {
    let records = records.as_array().map(Vec::as_slice).unwrap_or_default();
    html! {
        @if records.is_empty() {
            p.empty { "Nothing yet." }
        } @else {
            ol.activity {
                @for record in records {
                    li {
                        span.action { (record["action"].as_str().unwrap_or_default()) }
                        @if !record["entity_id"].is_null() {
                            " " code { (plain(&record["entity_id"])) }
                        }
                        " " (time(record["created_at"].as_str()))
                        @if let Some(ip) = record["ip"].as_str() {
                            span.muted { " from " (ip) }
                        }
                    }
                }
            }
        }
    }
}

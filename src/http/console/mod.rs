//! The web console: server-rendered pages at `/` for people with only a browser. They sign in,
//! see their dashboard, manage their integrations, tokens and leases, and (as owners or admins)
//! their organizations' members.
//!
//! The console is a client of the account API in the same process: every form is turned into the
//! account handler's body and the handler's answer decides what the page shows, so the console
//! has exactly the API's rules (validation, ownership, roles, CSRF) and never a second copy of
//! them. Forms post `application/x-www-form-urlencoded` with the session's CSRF token in
//! `_token` (Laravel's name); a change answers `303 See Other` back to its page (post, redirect,
//! get), a refusal renders the page again with the messages beside the form. Pages work without
//! JavaScript; `console.js` only adds copy buttons and confirmations.
//!
//! Never: show a secret after the request that entered it (credentials are typed into password
//! fields and sent once; a new token is shown on the answer to its creation only, `no-store`),
//! or show a stack trace.

mod assets;
mod dashboard;
mod integrations;
mod layout;
mod leases;
mod members;
mod sign_in;
mod tokens;

use super::account::{AccountError, Body, SignedIn};
use super::AppState;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};

/// The console's pages and forms.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route(
            "/integrations",
            get(integrations::page).post(integrations::add),
        )
        .route("/integrations/{id}/rotate", post(integrations::rotate))
        .route("/integrations/{id}/status", post(integrations::set_status))
        .route("/integrations/{id}/remove", post(integrations::remove))
        .route(
            "/organizations/{id}/integrations",
            post(integrations::add_shared),
        )
        .route(
            "/organizations/{id}/integrations/{iid}/rotate",
            post(integrations::rotate_shared),
        )
        .route(
            "/organizations/{id}/integrations/{iid}/status",
            post(integrations::set_shared_status),
        )
        .route("/tokens", get(tokens::page).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/leases", get(leases::page))
        .route("/leases/{lease_id}/revoke", post(leases::revoke))
        .route("/organizations", get(members::organizations))
        .route(
            "/organizations/{id}/members",
            get(members::page).post(members::add),
        )
        .route(
            "/organizations/{id}/members/{user_id}/role",
            post(members::set_role),
        )
        .route(
            "/organizations/{id}/members/{user_id}/remove",
            post(members::remove),
        )
        .route("/assets/console.css", get(assets::stylesheet))
        .route("/assets/console.js", get(assets::script))
        .route_layer(axum::middleware::from_fn(ids_are_ids))
}

/// A route layer: a path whose id cannot be an id names nothing (404, as the account API).
async fn ids_are_ids(
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    if !super::account::ids::ids_are_ids(params) {
        return ConsoleError::page(StatusCode::NOT_FOUND, "Not found").into_response();
    }
    next.run(request).await
}

/// A page's visitor: signed in, or sent to the sign-in page.
pub struct Visitor(pub SignedIn);

impl FromRequestParts<AppState> for Visitor {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        Ok(Self(SignedIn::resolve(parts, state, None).await?))
    }
}

/// A submitted form, and who submitted it: the session's CSRF token must be the form's
/// `_token`.
pub struct Submission {
    pub who: SignedIn,
    pub form: Form,
}

/// The fields of a submitted form, in order.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// A field's value, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The account API's body for these fields: each named field that was filled in, as a
    /// string, or as an integer for `integers`.
    pub fn body(&self, fields: &[&str], integers: &[&str]) -> Body {
        let mut object = Map::new();
        for field in fields {
            if let Some(value) = self.get(field) {
                let json = match value.parse::<i64>() {
                    Ok(number) if integers.contains(field) => Value::from(number),
                    _ => Value::from(value),
                };
                object.insert((*field).to_owned(), json);
            }
        }
        Body(object)
    }

    /// The credentials typed into the form's rows of `field_N` (a name) and `secret_N` (its
    /// value, from a password field), as a JSON object; rows left empty are skipped.
    pub fn credentials(&self) -> Map<String, Value> {
        (1..=CREDENTIAL_ROWS)
            .filter_map(|row| {
                let name = self.get(&format!("field_{row}"))?;
                let value = self.get(&format!("secret_{row}"))?;
                Some((name.to_owned(), Value::from(value)))
            })
            .collect()
    }
}

/// How many name and value rows a credentials form offers.
pub const CREDENTIAL_ROWS: usize = 4;

/// The most a form may send: credentials and names are small.
const FORM_LIMIT: usize = 64 * 1024;

impl FromRequest<AppState> for Submission {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (parts, body) = request.into_parts();
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ConsoleError::page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This address takes a form.",
            ));
        }
        let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
            ConsoleError::page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
        })?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| ConsoleError::page(StatusCode::BAD_REQUEST, "The form is malformed."))?;
        let form = Form(fields);
        let who = SignedIn::resolve(&parts, state, form.get("_token")).await?;
        Ok(Self { who, form })
    }
}

/// What a console request answers when it cannot show its page: the sign-in page for someone
/// not signed in, otherwise a short page with the status and what went wrong.
#[derive(Debug)]
pub enum ConsoleError {
    SignIn,
    Page {
        status: StatusCode,
        messages: Vec<String>,
    },
}

impl ConsoleError {
    fn page(status: StatusCode, message: &str) -> Self {
        Self::Page {
            status,
            messages: vec![message.to_owned()],
        }
    }
}

impl From<AccountError> for ConsoleError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Unauthenticated => Self::SignIn,
            AccountError::Csrf => Self::page(
                error.status(),
                "This form has expired. Go back, reload the page and try again.",
            ),
            other => Self::Page {
                status: other.status(),
                messages: other.messages(),
            },
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => see_other("/sign-in"),
            Self::Page { status, messages } => {
                (status, layout::message_page(status, &messages)).into_response()
            }
        }
    }
}

/// `303 See Other` to `location`: the answer to a form that did what it asked.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The JSON an account handler answered, or its refusal.
pub async fn answer(result: Result<Response, AccountError>) -> Result<Value, AccountError> {
    let response = result?;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|error| {
            AccountError::Failed(crate::ledger::CommandError::Internal(error.to_string()))
        })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        AccountError::Failed(crate::ledger::CommandError::Internal(error.to_string()))
    })
}

/// A refusal shown beside the form that caused it (the form's id), or at the top of the page.
#[derive(Debug, Default)]
pub struct Problem {
    pub form: String,
    pub messages: Vec<String>,
}

impl Problem {
    pub fn new(form: impl Into<String>, error: &AccountError) -> Self {
        Self {
            form: form.into(),
            messages: error.messages(),
        }
    }

    /// The messages for the form `form`, if the problem is there.
    pub fn at(problem: Option<&Problem>, form: &str) -> Option<Vec<String>> {
        problem
            .filter(|p| p.form == form)
            .map(|p| p.messages.clone())
    }
}

/// The notice of a finished change, from the `done` parameter of the page it returned to: only
/// these fixed texts, so a link cannot make the page say anything else.
pub fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "integration-added" => "Integration added.",
        "integration-rotated" => "Credentials rotated.",
        "integration-status" => "Integration status changed.",
        "integration-removed" => "Integration removed.",
        "token-revoked" => "Token revoked.",
        "lease-revoked" => "Lease revoked.",
        "member-added" => "Member added.",
        "member-role" => "Role changed.",
        "member-removed" => "Member removed.",
        _ => return None,
    })
}

//! The customer API's handlers: list (paged, filtered) and look up
//! customers; invite, disable and enable them through the same use cases as
//! the command line, recorded under the channel `api`.
//!
//! Addresses travel in the query string or the JSON body, never in the
//! path, since request spans record paths (and never queries or bodies).

use crate::domain::{CustomerName, EmailAddress};
use crate::registration::{
    Actor, Customer, CustomerCursor, CustomerStatus, InviteOutcome, RegistrationError, StatusChange,
};
use crate::web::AppState;
use crate::web::api::problem::Problem;
use crate::webhooks::payload::rfc3339;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Customers a page holds unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// A customer as the API shows it.
#[derive(Debug, Serialize)]
struct CustomerView<'a> {
    email: &'a str,
    name: Option<&'a str>,
    company: Option<&'a str>,
    service: &'a str,
    status: &'a str,
    /// How the customer came in (mail, portal, invitation, google,
    /// directory).
    channel: &'a str,
    created_at: String,
    activated_at: Option<String>,
    updated_at: String,
}

impl<'a> From<&'a Customer> for CustomerView<'a> {
    fn from(customer: &'a Customer) -> Self {
        Self {
            email: &customer.email,
            name: customer.name.as_deref(),
            company: customer.company.as_deref(),
            service: &customer.service,
            status: customer.status.as_str(),
            channel: &customer.source,
            created_at: rfc3339(customer.created_at),
            activated_at: customer.activated_at.map(rfc3339),
            updated_at: rfc3339(customer.updated_at),
        }
    }
}

#[derive(Serialize)]
struct Page<'a> {
    customers: Vec<CustomerView<'a>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/customers?status=&service=&updated_since=&limit=&cursor=`:
/// customers in the order they last changed, oldest change first, so a
/// client that keeps the last cursor (or the newest `updated_at`) syncs
/// incrementally.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let mut status = None;
    let mut service = None;
    let mut updated_since = None;
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "status" => {
                status = Some(CustomerStatus::parse(&value).ok_or_else(|| {
                    Problem::bad_request(
                        "invalid_status",
                        "status is one of pending, active, disabled",
                    )
                })?);
            }
            "service" => {
                if state.registrar.settings().service(&value).is_none() {
                    return Err(Problem::invalid(
                        "unknown_service",
                        format!("no service has the id {value:?}"),
                    ));
                }
                service = Some(value.into_owned());
            }
            "updated_since" => updated_since = Some(parse_time(&value)?),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        Problem::bad_request(
                            "invalid_limit",
                            format!("limit is a number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => after = Some(parse_cursor(&value)?),
            other => {
                return Err(Problem::bad_request(
                    "unknown_parameter",
                    format!(
                        "unknown parameter {other:?}; use status, service, updated_since, limit, cursor"
                    ),
                ));
            }
        }
    }
    let customers = state
        .registrar
        .customers(status, service, updated_since, after, limit)
        .await
        .map_err(failed)?;
    let next_cursor = (customers.len() == limit)
        .then(|| customers.last().map(cursor))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &Page {
            customers: customers.iter().map(CustomerView::from).collect(),
            next_cursor,
        },
    ))
}

/// `GET /api/v1/customers/lookup?email=`: one customer.
pub async fn lookup(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let mut email = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "email" => email = Some(value.into_owned()),
            other => {
                return Err(Problem::bad_request(
                    "unknown_parameter",
                    format!("unknown parameter {other:?}; use email"),
                ));
            }
        }
    }
    let email =
        email.ok_or_else(|| Problem::bad_request("missing_email", "give ?email=ADDRESS"))?;
    let address = parse_address(&email)?;
    found(&state, &address, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    email: String,
    /// The service's id.
    service: String,
    name: Option<String>,
}

/// `POST /api/v1/customers/invite` with `{"email", "service", "name"}`:
/// creates the pending customer (or reuses a pending one) and queues the
/// invitation mail with a new link; `201` when created, `200` when invited
/// again, `409` for an active or disabled customer or an address whose owner
/// asked never to be mailed.
pub async fn invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let request: InviteRequest = json_body(&headers, body)?;
    let settings = state.registrar.settings();
    let service = settings.service(&request.service).ok_or_else(|| {
        Problem::invalid(
            "unknown_service",
            format!("no service has the id {:?}", request.service),
        )
    })?;
    let address = parse_address(&request.email)?;
    let name = match request.name.as_deref() {
        Some(text) => Some(
            CustomerName::parse(text)
                .ok_or_else(|| Problem::invalid("invalid_name", "the name is not usable"))?,
        ),
        None => None,
    };
    let outcome = state
        .registrar
        .invite(Actor::Api, service, address.clone(), name)
        .await
        .map_err(failed)?;
    match outcome {
        InviteOutcome::Invited { created: true } => {
            found(&state, &address, StatusCode::CREATED).await
        }
        InviteOutcome::Invited { created: false } => found(&state, &address, StatusCode::OK).await,
        InviteOutcome::AlreadyActive => Err(Problem::new(
            StatusCode::CONFLICT,
            "already_active",
            "the customer is already active; nothing was sent",
        )),
        InviteOutcome::Disabled => Err(Problem::new(
            StatusCode::CONFLICT,
            "disabled",
            "the customer is disabled; enable them first",
        )),
        InviteOutcome::Suppressed => Err(Problem::new(
            StatusCode::CONFLICT,
            "suppressed",
            "the address's owner asked never to be mailed; an operator can lift that with `registrar customers unsuppress`",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressRequest {
    email: String,
}

/// `POST /api/v1/customers/disable` with `{"email"}`: disables the account
/// and ends its sessions.
pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    set_enabled(state, &headers, body, false).await
}

/// `POST /api/v1/customers/enable` with `{"email"}`: active again if it was
/// ever activated, else pending.
pub async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    set_enabled(state, &headers, body, true).await
}

async fn set_enabled(
    state: AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    enabled: bool,
) -> Result<Response, Problem> {
    let request: AddressRequest = json_body(headers, body)?;
    let address = parse_address(&request.email)?;
    match state
        .registrar
        .set_enabled(Actor::Api, &address, enabled)
        .await
        .map_err(failed)?
    {
        StatusChange::Unknown => Err(Problem::unknown_customer()),
        StatusChange::Changed { .. } => found(&state, &address, StatusCode::OK).await,
    }
}

/// The customer with `address` as JSON with `status`, or `404`.
async fn found(
    state: &AppState,
    address: &EmailAddress,
    status: StatusCode,
) -> Result<Response, Problem> {
    let customer = state
        .registrar
        .customer(address)
        .await
        .map_err(failed)?
        .ok_or_else(Problem::unknown_customer)?;
    Ok(json(status, &CustomerView::from(&customer)))
}

/// A JSON body of type `T`, from a request that says it is JSON.
fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "send Content-Type: application/json",
        ));
    }
    let body = body.map_err(|rejection| {
        Problem::new(rejection.status(), "unreadable_body", rejection.body_text())
    })?;
    serde_json::from_slice(&body)
        .map_err(|error| Problem::bad_request("invalid_json", format!("invalid JSON: {error}")))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(error) => {
            tracing::error!(error.message = %error, "an API answer did not serialize");
            Problem::unavailable().into_response()
        }
    }
}

fn parse_address(email: &str) -> Result<EmailAddress, Problem> {
    EmailAddress::parse(email).map_err(|error| {
        Problem::invalid("invalid_email", format!("not a usable address: {error}"))
    })
}

/// RFC 3339 (`2025-03-01T12:00:00Z`) or Unix seconds.
fn parse_time(text: &str) -> Result<i64, Problem> {
    if let Ok(unix) = text.parse::<i64>() {
        return Ok(unix);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            Problem::bad_request(
                "invalid_time",
                "updated_since is RFC 3339 (2025-03-01T12:00:00Z) or Unix seconds",
            )
        })
}

/// The cursor after `customer`: where the next page starts.
fn cursor(customer: &Customer) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", customer.updated_at, customer.id))
}

fn parse_cursor(text: &str) -> Result<CustomerCursor, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (time, id) = text.split_once('.')?;
            Some(CustomerCursor {
                updated_at: time.parse().ok()?,
                id: id.parse().ok()?,
            })
        })
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid_cursor",
                "cursor is a next_cursor from an earlier page",
            )
        })
}

/// A use case failed; the store's error is logged, not shown.
fn failed(error: RegistrationError) -> Problem {
    tracing::error!(error.message = %error, error.cause_chain = ?error, "an API request failed");
    Problem::unavailable()
}

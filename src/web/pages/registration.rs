//! "Create an account" and "send me a new link": the same answer whatever
//! the address's state, and the same rate limits.

use crate::domain::{CustomerName, EmailAddress};
use crate::policy::Decision;
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::{TOO_MANY_NEW, TOO_MANY_REQUESTS, brand, require_csrf, too_many, ways};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ServiceQuery {
    service: Option<String>,
}

/// GET /register: "Create an account", where a service offers it.
pub async fn register_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<ServiceQuery>,
) -> Result<Response, WebError> {
    let Some(service) = portal_service(&state, query.service.as_deref()) else {
        return Err(WebError::NotFound);
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Register {
        brand: &brand(&state),
        csrf: &csrf,
        service: &service.id,
        name: "",
        email: "",
        error: None,
        ways: ways(&state),
    };
    Ok((jar, render(&page)).into_response())
}

/// The service whose portal registration is asked for (by id, or the first
/// that offers it), as the current settings have it.
fn portal_service(state: &AppState, id: Option<&str>) -> Option<crate::settings::Service> {
    let settings = state.registrar.settings();
    let found = match id {
        Some(id) => settings.service(id),
        None => settings.services.iter().find(|s| s.policy.portal),
    };
    found.filter(|s| s.policy.portal).cloned()
}

#[derive(Debug, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

/// The answer to every accepted "Create an account" or "send me a new link":
/// the same bytes whether or not the address has an account.
pub(super) fn check_your_inbox(state: &AppState) -> Response {
    let page = views::Notice {
        brand: &brand(state),
        heading: "Check your inbox",
        text: "If this address can use the portal, a mail is on its way to it: a link to finish, or a note on how to sign in. Links expire, so use yours soon.",
        link: Some(("/login", "Back to sign in")),
    };
    render(&page).into_response()
}

/// Applies the limits shared by `/register`, `/resend`, `/forgot` and
/// `/login/email`: per client network and per address, counted whatever the
/// address's state. `true` when over.
pub(super) fn registration_limited(
    state: &AppState,
    client: &Client,
    address: &EmailAddress,
) -> bool {
    let keys = [
        (Kind::RegistrationClient, LimitKey::client(client.network)),
        (
            Kind::RegistrationAddress,
            LimitKey::text(&address.rate_key()),
        ),
    ];
    state.limits.reserve(&keys).is_none()
}

/// POST /register: answers the same whatever the address's state, so the
/// page reveals nothing about which addresses have accounts.
pub async fn register(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let Some(service) = portal_service(&state, Some(&form.service)) else {
        return Err(WebError::NotFound);
    };
    if state
        .limits
        .exhausted(Kind::RegistrationClient, LimitKey::client(client.network))
    {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let name = CustomerName::parse(&form.name);
    let address = EmailAddress::parse(&form.email);
    let error = match (&name, &address) {
        (None, _) => Some("Enter your name."),
        (_, Err(_)) => Some("Enter a valid email address, like name@example.com."),
        _ => None,
    };
    let (Some(name), Ok(address), None) = (name, address, error) else {
        let page = views::Register {
            brand: &brand(&state),
            csrf: &form.csrf,
            service: &service.id,
            name: &form.name,
            email: &form.email,
            error,
            ways: ways(&state),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(&state, &client, &address) {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let decision = state
        .registrar
        .from_portal(&service, address, Some(name), client.network)
        .await?;
    tracing::info!(
        event = "portal_registration",
        outcome = decision.name(),
        reason = decision.reason()
    );
    if let Decision::Defer(_) = decision {
        // The circuit breaker: every request is put off alike, whatever the
        // address's state, so this answer reveals nothing about it.
        return Ok(too_many(&state, TOO_MANY_NEW));
    }
    Ok(check_your_inbox(&state))
}

/// GET /resend: "send me a new link".
pub async fn resend_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Resend {
        brand: &brand(&state),
        csrf: &csrf,
        email: "",
        error: None,
    };
    (jar, render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// POST /resend: a new link for a pending customer, the sign-in note for an
/// active one, nothing for anyone else; the same answer for all, and the
/// same limits as `/register`.
pub async fn resend(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ResendForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    if state
        .limits
        .exhausted(Kind::RegistrationClient, LimitKey::client(client.network))
    {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let Ok(address) = EmailAddress::parse(&form.email) else {
        let page = views::Resend {
            brand: &brand(&state),
            csrf: &form.csrf,
            email: &form.email,
            error: Some("Enter a valid email address, like name@example.com."),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(&state, &client, &address) {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let decision = state.registrar.resend(address, client.network).await?;
    tracing::info!(
        event = "resend",
        outcome = decision.as_ref().map_or("ignore", |d| d.name()),
        reason = decision.as_ref().map_or("unknown_address", |d| d.reason())
    );
    Ok(check_your_inbox(&state))
}

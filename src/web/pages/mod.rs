//! Request handlers, one per page and verb.
//!
//! Every POST checks CSRF first, then the rate limits that apply, then its
//! input, and only then does work (an argon2 hash, a store write). Pages that
//! must not reveal whether an address has an account (`/register`, `/resend`)
//! answer the same bytes whatever the store holds.

mod account;
mod activation;
mod ops;
mod registration;

pub use account::{login, login_form, logout, portal};
pub use activation::{activate, activate_form};
pub use ops::{not_found, routes as ops_routes, stylesheet};
pub use registration::{register, register_form, resend, resend_form};

use crate::web::error::WebError;
use crate::web::views::{self, render};
use crate::web::{AppState, csrf, session};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use std::net::SocketAddr;

/// The client's IP address as the TCP connection shows it (the key for
/// per-IP limits). Behind a reverse proxy every client shares the proxy's.
pub struct ClientIp(String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
        Ok(Self(ip))
    }
}

/// The "try again later" page: 429 with `Retry-After`.
fn too_many(state: &AppState, text: &'static str) -> Response {
    let window = state.limits.window().as_secs();
    let page = views::Notice {
        brand: &brand(state),
        heading: "Please try again later",
        text,
        link: Some(("/login", "Back to sign in")),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, render(&page)).into_response();
    if let Ok(value) = HeaderValue::from_str(&window.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

const TOO_MANY_LINKS: &str = "Too many requests with links that do not work came from your network. Wait a few minutes, then open the newest link you received.";

const TOO_MANY_ACTIVATIONS: &str =
    "Too many accounts were activated from your network. Wait a few minutes and try again.";

const TOO_MANY_REQUESTS: &str = "Too many requests for new accounts or links came from your network or for this address. Wait a few minutes and try again.";

const TOO_MANY_LOGINS: &str = "Too many failed sign-ins. Wait a few minutes, then try again.";

/// Refuses a POST whose CSRF value or origin does not check out.
fn require_csrf(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    submitted: &str,
) -> Result<(), WebError> {
    if csrf::verify(
        jar,
        headers,
        submitted,
        &state.settings.http.public_url,
        state.secure_cookies,
    ) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}

/// The name shown in the page header. Services and their policies come
/// from the registrar's current settings, which a reload may change.
fn brand(state: &AppState) -> String {
    state.registrar.settings().services.first().map_or_else(
        || "Customer portal".to_owned(),
        |service| service.name.clone(),
    )
}

/// Whether any service offers "Create an account" on the portal.
fn portal_registration(state: &AppState) -> bool {
    state
        .registrar
        .settings()
        .services
        .iter()
        .any(|service| service.policy.portal)
}

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let signed_in = session::current_customer(&jar, &state).await?.is_some();
    Ok(Redirect::to(if signed_in { "/portal" } else { "/login" }).into_response())
}

//! Request handlers, one per page and verb.
//!
//! Every POST checks CSRF first, then the rate limits that apply, then its
//! input, and only then does work (an argon2 hash, a store write). Pages that
//! must not reveal whether an address has an account (`/register`, `/resend`)
//! answer the same bytes whatever the store holds. `ops` holds what the admin
//! listener serves.

mod account;
mod activation;
mod directory;
mod google;
mod ops;
mod opt_out;
mod recovery;
mod registration;
mod sign_in_answers;

pub use account::{login, login_form, logout, portal};
pub use activation::{activate, activate_form};
pub use directory::{directory_form, directory_login};
pub use google::{google_callback, google_start};
pub use ops::{not_found, routes as ops_routes, stylesheet};
pub use opt_out::{opt_out, opt_out_form};
pub use recovery::{
    email_link_form, email_link_request, forgot, forgot_form, link_sign_in, link_sign_in_form,
    reset, reset_form,
};
pub use registration::{register, register_form, resend, resend_form};

use crate::web::error::WebError;
use crate::web::views::{self, render, tr};
use crate::web::{AppState, csrf, session};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

/// The "try again later" page: 429 with `Retry-After`.
fn too_many(state: &AppState, text: &'static str) -> Response {
    let window = state.limits.window().as_secs();
    let page = views::Notice {
        brand: &brand(state),
        heading: tr("msg.try_later"),
        text: tr(text),
        link: Some(("/login", tr("web.back_to_sign_in"))),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, render(&page)).into_response();
    if let Ok(value) = HeaderValue::from_str(&window.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

// The "try again later" texts, by their key in the string catalogs.
const TOO_MANY_LINKS: &str = "msg.too_many_links";

const TOO_MANY_ACTIVATIONS: &str = "msg.too_many_activations";

const TOO_MANY_REQUESTS: &str = "msg.too_many_requests";

const TOO_MANY_LOGINS: &str = "msg.too_many_logins";

const TOO_MANY_NEW: &str = "msg.too_many_new";

/// What is wrong with a new password, in the request's language.
fn password_problem(problem: &crate::password::PasswordProblem) -> String {
    use crate::password::PasswordProblem;
    match problem {
        PasswordProblem::Mismatch => tr("msg.password_mismatch"),
        PasswordProblem::TooShort(min) => {
            views::tr_with("msg.password_too_short", &[("min", &min.to_string())])
        }
        PasswordProblem::TooLong(max) => {
            views::tr_with("msg.password_too_long", &[("max", &max.to_string())])
        }
        PasswordProblem::Common => tr("msg.password_common"),
        PasswordProblem::ContainsAddress => tr("msg.password_contains_address"),
    }
}

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
    state
        .registrar
        .settings()
        .services
        .first()
        .map_or_else(|| tr("web.default_brand"), |service| service.name.clone())
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

/// The ways in the sign-in and register pages offer besides a password.
fn ways(state: &AppState) -> views::Ways {
    views::Ways {
        google: state.registrar.google_configured(),
        directory: state.registrar.directory_configured(),
        email_link: state
            .registrar
            .settings()
            .services
            .iter()
            .any(|service| service.policy.email_link),
    }
}

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let signed_in = session::current_customer(&jar, &state).await?.is_some();
    Ok(Redirect::to(if signed_in { "/portal" } else { "/login" }).into_response())
}

//! Signing in and out, and the portal page a signed-in customer sees. The
//! proof is checked and the session opened by `registration::sign_in`; this
//! file holds the forms, the rate limits on failures and the cookie.

use crate::domain::EmailAddress;
use crate::registration::{Proof, SignIn};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::{TOO_MANY_LOGINS, brand, portal_registration, require_csrf, ways};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf, session};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

/// GET /login.
pub async fn login_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Login {
        brand: &brand(&state),
        csrf: &csrf,
        email: "",
        error: None,
        portal: portal_registration(&state),
        ways: ways(&state),
    };
    (jar, render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// POST /login: verifies the password (or a dummy, for unknown addresses)
/// and opens a new session, ending the one the browser held. Failed attempts
/// count per account from this client (known or not, so the limit reveals
/// nothing) and per client; past either limit the answer is "try again
/// later". One client locks out nobody but itself.
///
/// The attempt is counted before the verify and given back on success, so
/// concurrent guesses each take a place: a burst gets no more guesses than
/// the limit.
pub async fn login(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let address = EmailAddress::parse(&form.email).ok();
    // What was typed is only ever kept as a digest (`LimitKey`).
    let account = address.as_ref().map_or_else(
        || form.email.trim().to_ascii_lowercase(),
        EmailAddress::identity_key,
    );
    let login_page = |status: StatusCode, error: &'static str| {
        let page = views::Login {
            brand: &brand(&state),
            csrf: &form.csrf,
            email: &form.email,
            error: Some(error),
            portal: portal_registration(&state),
            ways: ways(&state),
        };
        (status, render(&page)).into_response()
    };
    let keys = [
        (
            Kind::FailedLoginClientAccount,
            LimitKey::client_account(client.network, &account),
        ),
        (Kind::FailedLoginClient, LimitKey::client(client.network)),
    ];
    let Some(attempt) = state.limits.reserve(&keys) else {
        let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_LOGINS);
        if let Ok(value) = HeaderValue::from_str(&state.limits.window().as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    };
    let proof = Proof::Password {
        address,
        password: SecretString::from(form.password.clone()),
    };
    let previous = session::presented(&jar, &state);
    match state
        .registrar
        .sign_in(&state.hasher, proof, previous)
        .await?
    {
        SignIn::SignedIn {
            customer_id,
            session: session_id,
        } => {
            attempt.refund();
            tracing::info!(event = "signed_in", customer.id = customer_id);
            let jar = jar.add(session::new_cookie(&session_id, &state));
            Ok((jar, Redirect::to("/portal")).into_response())
        }
        SignIn::Disabled { customer_id } => {
            // Only someone who knows the password learns the account is disabled.
            tracing::info!(event = "sign_in_disabled", customer.id = customer_id);
            Ok(login_page(
                StatusCode::FORBIDDEN,
                "This account is disabled. Contact support if you think this is a mistake.",
            ))
        }
        // Declined comes only from the other methods; treated as a refusal.
        // The reserved attempt is kept: it counts as a failure.
        SignIn::Refused | SignIn::Declined(_) => Ok(login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The email or password is not right.",
        )),
        SignIn::Busy => {
            // Nothing was checked: the attempt does not count.
            attempt.refund();
            Err(WebError::Busy)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// POST /logout: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    if let Some(hash) = session::presented(&jar, &state) {
        state.registrar.sign_out(hash).await?;
    }
    Ok((session::clear(jar, &state), Redirect::to("/login")).into_response())
}

/// GET /portal: greets the signed-in customer.
pub async fn portal(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let Some(customer) = session::current_customer(&jar, &state).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let settings = state.registrar.settings();
    let service = settings
        .service(&customer.service)
        .map_or(customer.service.as_str(), |s| s.name.as_str());
    let page = views::Portal {
        brand: &brand(&state),
        csrf: &csrf,
        name: customer.name.as_deref().unwrap_or(&customer.email),
        email: &customer.email,
        company: customer.company.as_deref(),
        service,
        has_password: customer.has_password,
    };
    Ok((jar, render(&page)).into_response())
}

//! "Sign in with your company account": the form, and its POST, which asks
//! the directory through `registration::sign_in`. Failures count against the
//! same limits as password sign-ins.

use crate::registration::{Declined, Proof, SignIn};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::sign_in_answers::{Method, answer};
use crate::web::pages::{TOO_MANY_LOGINS, brand, require_csrf};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf, session};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

/// GET /login/directory.
pub async fn directory_form(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    if !state.registrar.directory_configured() {
        return Err(WebError::NotFound);
    }
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Directory {
        brand: &brand(&state),
        csrf: &csrf,
        login: "",
        error: None,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DirectoryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// POST /login/directory: binds to the directory as the user; the first
/// success creates an active customer, later ones sign in.
pub async fn directory_login(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<DirectoryForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    if !state.registrar.directory_configured() {
        return Err(WebError::NotFound);
    }
    let account = format!("directory:{}", form.login.trim().to_lowercase());
    let form_page = |status: StatusCode, error: &'static str| {
        let page = views::Directory {
            brand: &brand(&state),
            csrf: &form.csrf,
            login: &form.login,
            error: Some(error),
        };
        (status, render(&page)).into_response()
    };
    // As for passwords: an attempt is reserved per account from this
    // client and per client before the bind, and given back on success.
    let keys = [
        (
            Kind::FailedLoginClientAccount,
            LimitKey::client_account(client.network, &account),
        ),
        (Kind::FailedLoginClient, LimitKey::client(client.network)),
    ];
    let Some(attempt) = state.limits.reserve(&keys) else {
        let mut response = form_page(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_LOGINS);
        if let Ok(value) = HeaderValue::from_str(&state.limits.window().as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    };
    let proof = Proof::Directory {
        login: form.login.clone(),
        password: SecretString::from(form.password.clone()),
    };
    let previous = session::presented(&jar, &state);
    let outcome = state
        .registrar
        .sign_in(&state.hasher, proof, previous)
        .await?;
    match outcome {
        // The reserved attempt is kept: it counts as a failure.
        SignIn::Refused => Ok(form_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The user name or password is not right.",
        )),
        SignIn::Declined(Declined::Unavailable) => {
            // Nothing was checked: the attempt does not count.
            attempt.refund();
            Ok(form_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "We cannot reach your company directory right now. Nothing was changed; please try again later.",
            ))
        }
        other => {
            // The password held (or nothing was checked): no failure.
            attempt.refund();
            Ok(answer(&state, jar, Method::Directory, other))
        }
    }
}

//! "Forgot your password?" and "Email me a sign-in link": the forms that
//! take an address (the same answer whatever its state; the limits of
//! `/register` and `/resend`), and the pages the links open. GET shows a
//! form and changes nothing; the POST with the CSRF value uses the link.

use crate::domain::{EmailAddress, Token};
use crate::password::{self, HashError};
use crate::registration::{Declined, Proof, SignIn};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::registration::registration_limited;
use crate::web::pages::sign_in_answers::{Method, answer, declined_page};
use crate::web::pages::{
    TOO_MANY_ACTIVATIONS, TOO_MANY_LINKS, TOO_MANY_REQUESTS, brand, require_csrf, too_many,
};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf, session};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

/// Which address form this is.
#[derive(Clone, Copy)]
enum Request {
    Reset,
    SignInLink,
}

impl Request {
    fn page<'a>(
        self,
        brand: &'a str,
        csrf: &'a str,
        email: &'a str,
        error: Option<&'a str>,
    ) -> views::EmailRequest<'a> {
        let (heading, intro, action, button) = match self {
            Request::Reset => (
                "Forgot your password?",
                "Enter the email address of your account. We will mail you a link to choose a new password.",
                "/forgot",
                "Send me a link",
            ),
            Request::SignInLink => (
                "Email me a sign-in link",
                "Enter the email address of your account. We will mail you a link that signs you in once, with no password.",
                "/login/email",
                "Email me a link",
            ),
        };
        views::EmailRequest {
            brand,
            csrf,
            heading,
            intro,
            action,
            button,
            email,
            error,
        }
    }
}

fn request_form(state: &AppState, jar: CookieJar, request: Request) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let brand = brand(state);
    (jar, render(&request.page(&brand, &csrf, "", None))).into_response()
}

/// GET /forgot.
pub async fn forgot_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    request_form(&state, jar, Request::Reset)
}

/// GET /login/email.
pub async fn email_link_form(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let offered = state
        .registrar
        .settings()
        .services
        .iter()
        .any(|service| service.policy.email_link);
    if !offered {
        return Err(WebError::NotFound);
    }
    Ok(request_form(&state, jar, Request::SignInLink))
}

#[derive(Debug, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// POST /forgot: a reset link for an active customer, nothing for anyone
/// else; the same answer for all.
pub async fn forgot(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    handle_request(&state, &client, &jar, &headers, form, Request::Reset).await
}

/// POST /login/email: a sign-in link for an active customer whose service
/// offers it; the same answer for all.
pub async fn email_link_request(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    handle_request(&state, &client, &jar, &headers, form, Request::SignInLink).await
}

async fn handle_request(
    state: &AppState,
    client: &Client,
    jar: &CookieJar,
    headers: &HeaderMap,
    form: EmailForm,
    request: Request,
) -> Result<Response, WebError> {
    require_csrf(state, jar, headers, &form.csrf)?;
    if state
        .limits
        .exhausted(Kind::RegistrationClient, LimitKey::client(client.network))
    {
        return Ok(too_many(state, TOO_MANY_REQUESTS));
    }
    let Ok(address) = EmailAddress::parse(&form.email) else {
        let brand = brand(state);
        let page = request.page(
            &brand,
            &form.csrf,
            &form.email,
            Some("Enter a valid email address, like name@example.com."),
        );
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(state, client, &address) {
        return Ok(too_many(state, TOO_MANY_REQUESTS));
    }
    let outcome = match request {
        Request::Reset => state.registrar.request_password_reset(address).await?,
        Request::SignInLink => state.registrar.request_sign_in_link(address).await?,
    };
    tracing::info!(event = "link_request", outcome);
    let text = match request {
        Request::Reset => {
            "If an account uses this address, a mail with a link to choose a new password is on its way. The link works once and expires soon."
        }
        Request::SignInLink => {
            "If an account that may sign in by link uses this address, a mail with a sign-in link is on its way. The link works once and expires soon."
        }
    };
    let page = views::Notice {
        brand: &brand(state),
        heading: "Check your inbox",
        text,
        link: Some(("/login", "Back to sign in")),
    };
    Ok(render(&page).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// A dead reset or sign-in link: counted against the client's limit.
fn dead_link(state: &AppState, ip: LimitKey, method: Method) -> Response {
    state.limits.record(Kind::InvalidTokenClient, ip);
    declined_page(state, method, Declined::DeadLink)
}

/// GET /reset: the new-password form for a live link; changes nothing.
pub async fn reset_form(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let holder = match Token::parse(&query.token) {
        Some(token) => state.registrar.link_holder(&token, true).await?,
        None => None,
    };
    let Some(holder) = holder else {
        return Ok(dead_link(&state, ip, Method::ResetLink));
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Reset {
        brand: &brand(&state),
        csrf: &csrf,
        token: &query.token,
        email: &holder.email,
        error: None,
        min_length: state.settings.password.min_length,
        max_length: state.settings.password.max_length,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /reset: checks the new password, then in one transaction uses the
/// link, sets the password, ends every session of the customer and signs
/// this browser in.
pub async fn reset(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let token = Token::parse(&form.token);
    let holder = match &token {
        Some(token) => state.registrar.link_holder(token, true).await?,
        None => None,
    };
    let (Some(token), Some(holder)) = (token, holder) else {
        return Ok(dead_link(&state, ip, Method::ResetLink));
    };
    let rules = &state.settings.password;
    if let Err(problem) = password::check_new(&form.password, &form.confirm, &holder.email, rules) {
        let page = views::Reset {
            brand: &brand(&state),
            csrf: &form.csrf,
            token: &form.token,
            email: &holder.email,
            error: Some(problem.to_string()),
            min_length: rules.min_length,
            max_length: rules.max_length,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    }
    // A place under the client's activation limit, taken before the hash
    // and given back when no hash is computed.
    let Some(place) = state.limits.reserve(&[(Kind::ActivationClient, ip)]) else {
        return Ok(too_many(&state, TOO_MANY_ACTIVATIONS));
    };
    let password_hash = match state.hasher.hash(SecretString::from(form.password)).await {
        Ok(hash) => hash,
        Err(HashError::Busy) => {
            place.refund();
            return Err(WebError::Busy);
        }
        Err(error) => return Err(error.into()),
    };
    let previous = session::presented(&jar, &state);
    let outcome = state
        .registrar
        .sign_in(
            &state.hasher,
            Proof::ResetLink {
                token,
                password_hash,
            },
            previous,
        )
        .await?;
    Ok(answer(&state, jar, Method::ResetLink, outcome))
}

/// GET /login/link: the page an emailed sign-in link opens, with one
/// button; changes nothing.
pub async fn link_sign_in_form(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let holder = match Token::parse(&query.token) {
        Some(token) => state.registrar.link_holder(&token, false).await?,
        None => None,
    };
    let Some(holder) = holder else {
        return Ok(dead_link(&state, ip, Method::EmailLink));
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::LinkSignIn {
        brand: &brand(&state),
        csrf: &csrf,
        token: &query.token,
        email: &holder.email,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// POST /login/link: uses the link and signs the customer in.
pub async fn link_sign_in(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let Some(token) = Token::parse(&form.token) else {
        return Ok(dead_link(&state, ip, Method::EmailLink));
    };
    let previous = session::presented(&jar, &state);
    let outcome = state
        .registrar
        .sign_in(&state.hasher, Proof::EmailLink { token }, previous)
        .await?;
    if matches!(outcome, SignIn::Declined(Declined::DeadLink)) {
        return Ok(dead_link(&state, ip, Method::EmailLink));
    }
    Ok(answer(&state, jar, Method::EmailLink, outcome))
}

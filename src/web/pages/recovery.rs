//! tr("msg.forgot_heading") and tr("msg.email_link_heading"): the forms that
//! take an address (the same answer whatever its state; the limits of
//! `/register` and `/resend`), and the pages the links open. GET shows a
//! form and changes nothing; the POST with the CSRF value uses the link.

use crate::domain::{EmailAddress, Token};
use crate::password::{self, HashError};
use crate::registration::{Declined, LinkHolder, Proof, SignIn};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::registration::registration_limited;
use crate::web::pages::sign_in_answers::{Method, answer, declined_page};
use crate::web::pages::{
    TOO_MANY_ACTIVATIONS, TOO_MANY_LINKS, TOO_MANY_REQUESTS, brand, password_problem, require_csrf,
    too_many,
};
use crate::web::views::{self, render, tr};
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
        error: Option<String>,
    ) -> views::EmailRequest<'a> {
        let (heading, intro, action, button) = match self {
            Request::Reset => (
                tr("msg.forgot_heading"),
                tr("msg.forgot_intro"),
                "/forgot",
                tr("msg.forgot_button"),
            ),
            Request::SignInLink => (
                tr("msg.email_link_heading"),
                tr("msg.email_link_intro"),
                "/login/email",
                tr("msg.email_link_button"),
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
        let page = request.page(&brand, &form.csrf, &form.email, Some(tr("msg.enter_email")));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(state, client, &address) {
        return Ok(too_many(state, TOO_MANY_REQUESTS));
    }
    let outcome = match request {
        Request::Reset => {
            state
                .registrar
                .request_password_reset(address, Some(views::language()))
                .await?
        }
        Request::SignInLink => {
            state
                .registrar
                .request_sign_in_link(address, Some(views::language()))
                .await?
        }
    };
    tracing::info!(event = "link_request", outcome);
    let text = match request {
        Request::Reset => tr("msg.reset_sent"),
        Request::SignInLink => tr("msg.sign_in_link_sent"),
    };
    let page = views::Notice {
        brand: &brand(state),
        heading: tr("msg.check_inbox"),
        text,
        link: Some(("/login", tr("web.back_to_sign_in"))),
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

/// What a link a client presents turns out to be.
enum Link {
    /// A live link and whom it belongs to.
    Live(Token, LinkHolder),
    /// The answer already decided: the client's dead-link limit is spent, or
    /// the link is dead (and counted).
    Answered(Response),
}

/// Looks up the reset or sign-in link `text`, within the client's dead-link
/// limit; reads only.
async fn live_link(
    state: &AppState,
    ip: LimitKey,
    text: &str,
    method: Method,
) -> Result<Link, WebError> {
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(Link::Answered(too_many(state, TOO_MANY_LINKS)));
    }
    let Some(token) = Token::parse(text) else {
        return Ok(Link::Answered(dead_link(state, ip, method)));
    };
    let reset = matches!(method, Method::ResetLink);
    Ok(match state.registrar.link_holder(&token, reset).await? {
        Some(holder) => Link::Live(token, holder),
        None => Link::Answered(dead_link(state, ip, method)),
    })
}

/// GET /reset: the new-password form for a live link; changes nothing.
pub async fn reset_form(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    let holder = match live_link(&state, ip, &query.token, Method::ResetLink).await? {
        Link::Live(_, holder) => holder,
        Link::Answered(response) => return Ok(response),
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
    let (token, holder) = match live_link(&state, ip, &form.token, Method::ResetLink).await? {
        Link::Live(token, holder) => (token, holder),
        Link::Answered(response) => return Ok(response),
    };
    let rules = &state.settings.password;
    if let Err(problem) = password::check_new(&form.password, &form.confirm, &holder.email, rules) {
        let page = views::Reset {
            brand: &brand(&state),
            csrf: &form.csrf,
            token: &form.token,
            email: &holder.email,
            error: Some(password_problem(&problem)),
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
    let holder = match live_link(&state, ip, &query.token, Method::EmailLink).await? {
        Link::Live(_, holder) => holder,
        Link::Answered(response) => return Ok(response),
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

//! Request handlers, one per page and verb.
//!
//! Every POST checks CSRF first, then the rate limits that apply, then its
//! input, and only then does work (an argon2 hash, a store write). Pages that
//! must not reveal whether an address has an account (`/register`, `/resend`)
//! answer the same bytes whatever the store holds.

use super::error::WebError;
use super::limits::Kind;
use super::views::{self, render};
use super::{AppState, csrf, session};
use crate::domain::{CustomerName, EmailAddress, Token, TokenHash};
use crate::password;
use crate::store::{customers, outbox, sessions};
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

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
        brand: brand(state),
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

/// Claims a token for one activation at a time; released on drop.
struct ActivationClaim<'a> {
    state: &'a AppState,
    hash: TokenHash,
}

impl<'a> ActivationClaim<'a> {
    fn take(state: &'a AppState, hash: TokenHash) -> Option<Self> {
        let claimed = state
            .activating
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(hash);
        // Built only when claimed: dropping an unclaimed one would release
        // another request's claim.
        claimed.then(|| Self { state, hash })
    }
}

impl Drop for ActivationClaim<'_> {
    fn drop(&mut self) {
        self.state
            .activating
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&self.hash);
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

/// The name shown in the page header.
fn brand(state: &AppState) -> &str {
    state
        .settings
        .services
        .first()
        .map_or("Customer portal", |service| service.name.as_str())
}

/// Whether any service offers "Create an account" on the portal.
fn portal_registration(state: &AppState) -> bool {
    state
        .settings
        .services
        .iter()
        .any(|service| service.policy.portal)
}

pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let signed_in = session::current_customer(&jar, &state).await?.is_some();
    Ok(Redirect::to(if signed_in { "/portal" } else { "/login" }).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// GET /activate: the form for a live token; changes nothing. A dead token
/// gets the same page whether it is unknown, expired or used, and counts
/// against the client's invalid-token limit.
pub async fn activate_form(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    if state.limits.exhausted(Kind::InvalidTokenIp, &ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let pending = match Token::parse(&query.token) {
        Some(token) => state.registrar.pending_for_token(&token).await?,
        None => None,
    };
    let Some(pending) = pending else {
        state.limits.record(Kind::InvalidTokenIp, &ip);
        return Ok(link_invalid(&state, jar));
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Activate {
        brand: brand(&state),
        csrf: &csrf,
        token: &query.token,
        email: &pending.email,
        name: pending.name.as_deref().unwrap_or_default(),
        error: None,
        min_length: state.settings.password.min_length,
        max_length: state.settings.password.max_length,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ActivateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /activate: checks everything, then consumes the token, activates the
/// customer, signs them in with a new session id and queues the "account
/// activated" notice, in one transaction. A scanner's empty POST fails the
/// checks and consumes nothing.
pub async fn activate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ActivateForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    if state.limits.exhausted(Kind::InvalidTokenIp, &ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let token = Token::parse(&form.token);
    let pending = match &token {
        Some(token) => state.registrar.pending_for_token(token).await?,
        None => None,
    };
    let (Some(token), Some(pending)) = (token, pending) else {
        state.limits.record(Kind::InvalidTokenIp, &ip);
        return Ok(link_invalid(&state, jar));
    };
    let rules = &state.settings.password;
    let name = CustomerName::parse(&form.name);
    let problem = match &name {
        None => Some("Enter your name.".to_owned()),
        Some(_) => password::check_new(&form.password, &form.confirm, &pending.email, rules)
            .err()
            .map(|p| p.to_string()),
    };
    let (None, Some(name)) = (problem.as_ref(), name) else {
        let page = views::Activate {
            brand: brand(&state),
            csrf: &form.csrf,
            token: &form.token,
            email: &pending.email,
            name: &form.name,
            error: problem,
            min_length: rules.min_length,
            max_length: rules.max_length,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if state.limits.exhausted(Kind::ActivationIp, &ip) {
        return Ok(too_many(&state, TOO_MANY_ACTIVATIONS));
    }
    // One activation per token at a time, and a fresh look after claiming
    // it: concurrent submissions of one link compute one hash, not fifty.
    let Some(_claim) = ActivationClaim::take(&state, token.hash()) else {
        return Ok(link_invalid(&state, jar));
    };
    if state.registrar.pending_for_token(&token).await?.is_none() {
        return Ok(link_invalid(&state, jar));
    }
    state.limits.record(Kind::ActivationIp, &ip);
    let hash = state.hasher.hash(SecretString::from(form.password)).await?;
    let session_id = Token::generate();
    let previous = session::presented(&jar, &state);
    match state
        .registrar
        .activate_with_notice(&token, name, hash, session_id.hash(), previous)
        .await?
    {
        Some(customer_id) => {
            tracing::info!(event = "activated", customer.id = customer_id);
            let jar = jar.add(session::new_cookie(&session_id, &state));
            Ok((jar, Redirect::to("/portal")).into_response())
        }
        None => Ok(link_invalid(&state, jar)),
    }
}

/// The page for every dead link, with a form to get a new one.
fn link_invalid(state: &AppState, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::LinkInvalid {
        brand: brand(state),
        csrf: &csrf,
        portal: portal_registration(state),
    };
    (StatusCode::NOT_FOUND, jar, render(&page)).into_response()
}

/// GET /login.
pub async fn login_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Login {
        brand: brand(&state),
        csrf: &csrf,
        email: "",
        error: None,
        portal: portal_registration(&state),
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
/// count per address (known or not, so the limit reveals nothing) and per
/// client IP; past either limit the answer is "try again later".
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let address = EmailAddress::parse(&form.email).ok();
    let account = address.as_ref().map_or_else(
        || form.email.trim().to_ascii_lowercase(),
        EmailAddress::identity_key,
    );
    let login_page = |status: StatusCode, error: &'static str| {
        let page = views::Login {
            brand: brand(&state),
            csrf: &form.csrf,
            email: &form.email,
            error: Some(error),
            portal: portal_registration(&state),
        };
        (status, render(&page)).into_response()
    };
    if state.limits.exhausted(Kind::FailedLoginAccount, &account)
        || state.limits.exhausted(Kind::FailedLoginIp, &ip)
    {
        let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_LOGINS);
        if let Ok(value) = HeaderValue::from_str(&state.limits.window().as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let customer = match address {
        Some(address) => {
            let identity = address.identity_key();
            state
                .registrar
                .store()
                .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
                .await?
        }
        None => None,
    };
    // Pending customers have no password; they and unknown addresses are
    // verified against the dummy hash so every failure takes as long.
    let stored = customer.as_ref().and_then(|c| c.password_hash.clone());
    let verified = state
        .hasher
        .verify(SecretString::from(form.password.clone()), stored)
        .await;
    match customer {
        Some(customer) if verified && customer.status == customers::Status::Active => {
            let session_id = Token::generate();
            let previous = session::presented(&jar, &state);
            state
                .registrar
                .rotate_session(customer.id, session_id.hash(), previous)
                .await?;
            tracing::info!(event = "signed_in", customer.id = customer.id);
            let jar = jar.add(session::new_cookie(&session_id, &state));
            Ok((jar, Redirect::to("/portal")).into_response())
        }
        Some(customer) if verified && customer.status == customers::Status::Disabled => {
            // Only someone who knows the password learns the account is disabled.
            tracing::info!(event = "sign_in_disabled", customer.id = customer.id);
            state.limits.record(Kind::FailedLoginAccount, &account);
            state.limits.record(Kind::FailedLoginIp, &ip);
            Ok(login_page(
                StatusCode::FORBIDDEN,
                "This account is disabled. Contact support if you think this is a mistake.",
            ))
        }
        _ => {
            state.limits.record(Kind::FailedLoginAccount, &account);
            state.limits.record(Kind::FailedLoginIp, &ip);
            Ok(login_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The email or password is not right.",
            ))
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
        state
            .registrar
            .store()
            .write(move |conn| Ok(sessions::delete(conn, &hash)?))
            .await?;
    }
    Ok((session::clear(jar, &state), Redirect::to("/login")).into_response())
}

/// GET /portal: greets the signed-in customer.
pub async fn portal(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let Some(customer) = session::current_customer(&jar, &state).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let service = state
        .settings
        .service(&customer.service)
        .map_or(customer.service.as_str(), |s| s.name.as_str());
    let page = views::Portal {
        brand: brand(&state),
        csrf: &csrf,
        name: customer.name.as_deref().unwrap_or(&customer.email),
        email: &customer.email,
        company: customer.company.as_deref(),
        service,
    };
    Ok((jar, render(&page)).into_response())
}

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
        brand: brand(&state),
        csrf: &csrf,
        service: &service.id,
        name: "",
        email: "",
        error: None,
    };
    Ok((jar, render(&page)).into_response())
}

fn portal_service<'a>(
    state: &'a AppState,
    id: Option<&str>,
) -> Option<&'a crate::settings::Service> {
    match id {
        Some(id) => state.settings.service(id).filter(|s| s.policy.portal),
        None => state.settings.services.iter().find(|s| s.policy.portal),
    }
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
fn check_your_inbox(state: &AppState) -> Response {
    let page = views::Notice {
        brand: brand(state),
        heading: "Check your inbox",
        text: "If this address can use the portal, a mail is on its way to it: a link to finish, or a note on how to sign in. Links expire, so use yours soon.",
        link: Some(("/login", "Back to sign in")),
    };
    render(&page).into_response()
}

/// Applies the limits shared by `/register` and `/resend`: per client IP and
/// per address, counted whatever the address's state. `true` when over.
fn registration_limited(state: &AppState, ip: &str, address: &EmailAddress) -> bool {
    let key = address.rate_key();
    if state.limits.exhausted(Kind::RegistrationIp, ip)
        || state.limits.exhausted(Kind::RegistrationAddress, &key)
    {
        return true;
    }
    state.limits.record(Kind::RegistrationIp, ip);
    state.limits.record(Kind::RegistrationAddress, &key);
    false
}

/// POST /register: answers the same whatever the address's state, so the
/// page reveals nothing about which addresses have accounts.
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let Some(service) = portal_service(&state, Some(&form.service)) else {
        return Err(WebError::NotFound);
    };
    if state.limits.exhausted(Kind::RegistrationIp, &ip) {
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
            brand: brand(&state),
            csrf: &form.csrf,
            service: &service.id,
            name: &form.name,
            email: &form.email,
            error,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(&state, &ip, &address) {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let decision = state
        .registrar
        .from_portal(service, address, Some(name))
        .await?;
    tracing::info!(
        event = "portal_registration",
        outcome = decision.name(),
        reason = decision.reason()
    );
    Ok(check_your_inbox(&state))
}

/// GET /resend: "send me a new link".
pub async fn resend_form(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Resend {
        brand: brand(&state),
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
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ResendForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    if state.limits.exhausted(Kind::RegistrationIp, &ip) {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let Ok(address) = EmailAddress::parse(&form.email) else {
        let page = views::Resend {
            brand: brand(&state),
            csrf: &form.csrf,
            email: &form.email,
            error: Some("Enter a valid email address, like name@example.com."),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    if registration_limited(&state, &ip, &address) {
        return Ok(too_many(&state, TOO_MANY_REQUESTS));
    }
    let decision = state.registrar.resend(address).await?;
    tracing::info!(
        event = "resend",
        outcome = decision.as_ref().map_or("ignore", |d| d.name()),
        reason = decision.as_ref().map_or("unknown_address", |d| d.reason())
    );
    Ok(check_your_inbox(&state))
}

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state
        .registrar
        .store()
        .read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response(),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, WebError> {
    let (queued, sent, dead) = state
        .registrar
        .store()
        .read(|conn| Ok(outbox::counts(conn)?))
        .await?;
    let stats = state.registrar.store().stats();
    let body = format!(
        "# HELP registrar_store_commits_total Group commits by the store writer.\n\
         # TYPE registrar_store_commits_total counter\n\
         registrar_store_commits_total {}\n\
         # HELP registrar_store_jobs_total Write jobs committed by the store writer.\n\
         # TYPE registrar_store_jobs_total counter\n\
         registrar_store_jobs_total {}\n\
         # HELP registrar_store_largest_batch Most jobs committed in one transaction.\n\
         # TYPE registrar_store_largest_batch gauge\n\
         registrar_store_largest_batch {}\n\
         # HELP registrar_outbox_replies Replies in the outbox by status.\n\
         # TYPE registrar_outbox_replies gauge\n\
         registrar_outbox_replies{{status=\"queued\"}} {queued}\n\
         registrar_outbox_replies{{status=\"sent\"}} {sent}\n\
         registrar_outbox_replies{{status=\"dead\"}} {dead}\n\
         # HELP registrar_password_hashes_total Argon2id password hashes computed.\n\
         # TYPE registrar_password_hashes_total counter\n\
         registrar_password_hashes_total {}\n",
        stats.commits.load(Ordering::Relaxed),
        stats.jobs.load(Ordering::Relaxed),
        stats.largest_batch.load(Ordering::Relaxed),
        state.hasher.hashes_computed(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../templates/web/style.css"),
    )
        .into_response()
}

pub async fn not_found() -> WebError {
    WebError::NotFound
}

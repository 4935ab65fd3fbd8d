//! Request handlers, one per page and verb.

use super::error::WebError;
use super::views::{self, render};
use super::{AppState, csrf, session};
use crate::domain::{CustomerName, EmailAddress, Token};
use crate::password;
use crate::store::{customers, outbox, sessions};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::atomic::Ordering;

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

/// GET /activate: the form for a live token; changes nothing.
pub async fn activate_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let Some(token) = Token::parse(&query.token) else {
        return Ok(link_invalid(&state));
    };
    let Some(pending) = state.registrar.pending_for_token(&token).await? else {
        return Ok(link_invalid(&state));
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
/// customer and signs them in, in one transaction.
pub async fn activate(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ActivateForm>,
) -> Result<Response, WebError> {
    if !csrf::verify(
        &jar,
        &headers,
        &form.csrf,
        &state.settings.http.public_url,
        state.secure_cookies,
    ) {
        return Err(WebError::Csrf);
    }
    let Some(token) = Token::parse(&form.token) else {
        return Ok(link_invalid(&state));
    };
    let Some(pending) = state.registrar.pending_for_token(&token).await? else {
        return Ok(link_invalid(&state));
    };
    let rules = &state.settings.password;
    let problem = match CustomerName::parse(&form.name) {
        None => Some("Enter your name.".to_owned()),
        Some(_) => password::check_new(&form.password, &form.confirm, &pending.email, rules)
            .err()
            .map(|p| p.to_string()),
    };
    let name = match (problem, CustomerName::parse(&form.name)) {
        (None, Some(name)) => name,
        (problem, _) => {
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
        }
    };
    let hash = state.hasher.hash(SecretString::from(form.password)).await?;
    let session_id = Token::generate();
    match state
        .registrar
        .activate(&token, name, hash, session_id.hash())
        .await?
    {
        Some(customer_id) => {
            tracing::info!(event = "activated", customer.id = customer_id);
            let jar = jar.add(session::new_cookie(&session_id, &state));
            Ok((jar, Redirect::to("/portal")).into_response())
        }
        None => Ok(link_invalid(&state)),
    }
}

fn link_invalid(state: &AppState) -> Response {
    let page = views::LinkInvalid {
        brand: brand(state),
        portal: portal_registration(state),
    };
    (StatusCode::NOT_FOUND, render(&page)).into_response()
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
/// and opens a new session.
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    if !csrf::verify(
        &jar,
        &headers,
        &form.csrf,
        &state.settings.http.public_url,
        state.secure_cookies,
    ) {
        return Err(WebError::Csrf);
    }
    let customer = match EmailAddress::parse(&form.email) {
        Ok(address) => {
            let identity = address.identity_key();
            state
                .registrar
                .store()
                .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
                .await?
        }
        Err(_) => None,
    };
    let active = customer.filter(|c| c.status == customers::Status::Active);
    let stored = active.as_ref().and_then(|c| c.password_hash.clone());
    let verified = state
        .hasher
        .verify(SecretString::from(form.password), stored)
        .await;
    match active {
        Some(customer) if verified => {
            let session_id = Token::generate();
            state
                .registrar
                .open_session(customer.id, session_id.hash())
                .await?;
            tracing::info!(event = "signed_in", customer.id = customer.id);
            let jar = jar.add(session::new_cookie(&session_id, &state));
            Ok((jar, Redirect::to("/portal")).into_response())
        }
        _ => {
            let page = views::Login {
                brand: brand(&state),
                csrf: &form.csrf,
                email: &form.email,
                error: Some("The email or password is not right."),
                portal: portal_registration(&state),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
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
    if !csrf::verify(
        &jar,
        &headers,
        &form.csrf,
        &state.settings.http.public_url,
        state.secure_cookies,
    ) {
        return Err(WebError::Csrf);
    }
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

/// POST /register: answers the same whatever the address's state, so the
/// page reveals nothing about which addresses have accounts.
pub async fn register(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, WebError> {
    if !csrf::verify(
        &jar,
        &headers,
        &form.csrf,
        &state.settings.http.public_url,
        state.secure_cookies,
    ) {
        return Err(WebError::Csrf);
    }
    let Some(service) = portal_service(&state, Some(&form.service)) else {
        return Err(WebError::NotFound);
    };
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
    let decision = state
        .registrar
        .from_portal(service, address, Some(name))
        .await?;
    tracing::info!(
        event = "portal_registration",
        outcome = decision.name(),
        reason = decision.reason()
    );
    let page = views::Notice {
        brand: brand(&state),
        heading: "Check your inbox",
        text: "If this address can register, a mail with a link to finish is on its way. The link expires, so use it soon.",
        link: Some(("/login", "Back to sign in")),
    };
    Ok(render(&page).into_response())
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
         registrar_outbox_replies{{status=\"dead\"}} {dead}\n",
        stats.commits.load(Ordering::Relaxed),
        stats.jobs.load(Ordering::Relaxed),
        stats.largest_batch.load(Ordering::Relaxed),
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

//! The activation page: GET shows the form and changes nothing; POST checks
//! everything, then activates and signs the customer in, in one transaction.

use crate::domain::{CustomerName, Token, TokenHash};
use crate::password::{self, HashError};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::{
    TOO_MANY_ACTIVATIONS, TOO_MANY_LINKS, brand, portal_registration, require_csrf, too_many,
};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf, session};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use secrecy::SecretString;
use serde::Deserialize;

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
    client: Client,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let pending = match Token::parse(&query.token) {
        Some(token) => state.registrar.pending_for_token(&token).await?,
        None => None,
    };
    let Some(pending) = pending else {
        state.limits.record(Kind::InvalidTokenClient, ip);
        return Ok(link_invalid(&state, jar));
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::Activate {
        brand: &brand(&state),
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
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<ActivateForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let token = Token::parse(&form.token);
    let pending = match &token {
        Some(token) => state.registrar.pending_for_token(token).await?,
        None => None,
    };
    let (Some(token), Some(pending)) = (token, pending) else {
        state.limits.record(Kind::InvalidTokenClient, ip);
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
            brand: &brand(&state),
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
    // A place under the client's activation limit, taken before the hash
    // and given back when no hash is computed.
    let Some(place) = state.limits.reserve(&[(Kind::ActivationClient, ip)]) else {
        return Ok(too_many(&state, TOO_MANY_ACTIVATIONS));
    };
    // One activation per token at a time, and a fresh look after claiming
    // it: concurrent submissions of one link compute one hash, not fifty.
    let Some(_claim) = ActivationClaim::take(&state, token.hash()) else {
        place.refund();
        return Ok(link_invalid(&state, jar));
    };
    if state.registrar.pending_for_token(&token).await?.is_none() {
        place.refund();
        return Ok(link_invalid(&state, jar));
    }
    let hash = match state.hasher.hash(SecretString::from(form.password)).await {
        Ok(hash) => hash,
        Err(HashError::Busy) => {
            place.refund();
            return Err(WebError::Busy);
        }
        Err(error) => return Err(error.into()),
    };
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
        brand: &brand(state),
        csrf: &csrf,
        portal: portal_registration(state),
    };
    (StatusCode::NOT_FOUND, jar, render(&page)).into_response()
}

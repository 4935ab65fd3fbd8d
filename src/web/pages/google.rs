//! "Sign in with Google" (any OpenID Connect issuer): the start, which sends
//! the browser to the provider with a flow cookie, and the callback.
//!
//! The callback is a GET that may create a customer and opens a session: the
//! protocol returns the browser that way. It acts only with the flow cookie
//! set at the start (HttpOnly, `SameSite=Lax` so the top-level return from
//! the provider carries it), the matching `state`, and a code the provider
//! issued for that flow, none of which a mail scanner holds; the flow is
//! single-use. It always ends at our own `/portal` or a page of ours, never
//! at an address taken from the request.

use crate::domain::Token;
use crate::registration::{Declined, Proof, SignIn};
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::sign_in_answers::{Method, answer, declined_page};
use crate::web::pages::{TOO_MANY_LINKS, too_many};
use crate::web::session::cookie_name;
use crate::web::{AppState, session};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

const FLOW_COOKIE: &str = "oidc_flow";

/// GET /login/google: starts the flow and redirects to the provider.
pub async fn google_start(State(state): State<AppState>, jar: CookieJar) -> Response {
    match state.registrar.start_google().await {
        Ok(started) => {
            let cookie = Cookie::build((
                cookie_name(FLOW_COOKIE, state.secure_cookies),
                started.flow.expose(),
            ))
            .path("/")
            .http_only(true)
            .secure(state.secure_cookies)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::minutes(10))
            .build();
            (jar.add(cookie), Redirect::to(started.url.as_str())).into_response()
        }
        Err(declined) => declined_page(&state, Method::Google, declined),
    }
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    /// Set by the provider when the visitor cancelled or it refused.
    error: Option<String>,
}

/// GET /login/google/callback: finishes the flow (state, code exchange with
/// PKCE, ID token verified) and signs the customer in, or says why not. A
/// callback that does not verify counts against the client's limit on dead
/// links (in memory, like every web limit), so one client cannot keep the
/// provider busy with forged codes.
pub async fn google_callback(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Query(callback): Query<Callback>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let name = cookie_name(FLOW_COOKIE, state.secure_cookies);
    let flow = jar.get(&name).map(Cookie::value).and_then(Token::parse);
    let jar = jar.remove(Cookie::build(name).path("/"));
    let (Some(flow), None) = (flow, callback.error.as_ref()) else {
        state.limits.record(Kind::InvalidTokenClient, ip);
        return Ok(answer(
            &state,
            jar,
            Method::Google,
            SignIn::Declined(Declined::Invalid),
        ));
    };
    let proof = Proof::Google {
        flow,
        state: callback.state,
        code: callback.code,
    };
    let previous = session::presented(&jar, &state);
    let outcome = state
        .registrar
        .sign_in(&state.hasher, proof, previous)
        .await?;
    if matches!(outcome, SignIn::Declined(Declined::Invalid)) {
        state.limits.record(Kind::InvalidTokenClient, ip);
    }
    Ok(answer(&state, jar, Method::Google, outcome))
}

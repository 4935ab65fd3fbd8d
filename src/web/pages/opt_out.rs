//! "I did not ask for this": the page behind the link every activation
//! mail carries. GET shows what confirming does and changes nothing (mail
//! scanners fetch links); a POST with its CSRF value confirms, and the
//! address is never mailed again. Dead links count against the client's
//! invalid-link limit, like dead activation links.

use crate::domain::Token;
use crate::registration::OptOut;
use crate::web::client::Client;
use crate::web::error::WebError;
use crate::web::limits::{Kind, LimitKey};
use crate::web::pages::{TOO_MANY_LINKS, brand, require_csrf, too_many};
use crate::web::views::{self, render};
use crate::web::{AppState, csrf};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// GET /not-me: asks for confirmation; changes nothing.
pub async fn opt_out_form(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    Query(query): Query<TokenQuery>,
) -> Result<Response, WebError> {
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let email = match Token::parse(&query.token) {
        Some(token) => state.registrar.opt_out_address(&token).await?,
        None => None,
    };
    let Some(email) = email else {
        state.limits.record(Kind::InvalidTokenClient, ip);
        return Ok(link_dead(&state));
    };
    let (jar, csrf) = csrf::token_for_form(jar, state.secure_cookies);
    let page = views::OptOut {
        brand: &brand(&state),
        csrf: &csrf,
        token: &query.token,
        email: &email,
    };
    Ok((jar, render(&page)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct OptOutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// POST /not-me: the address is never mailed again; a pending account made
/// with it is removed and mail still queued to it is cancelled.
pub async fn opt_out(
    State(state): State<AppState>,
    client: Client,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<OptOutForm>,
) -> Result<Response, WebError> {
    require_csrf(&state, &jar, &headers, &form.csrf)?;
    let ip = LimitKey::client(client.network);
    if state.limits.exhausted(Kind::InvalidTokenClient, ip) {
        return Ok(too_many(&state, TOO_MANY_LINKS));
    }
    let outcome = match Token::parse(&form.token) {
        Some(token) => state.registrar.opt_out(token).await?,
        None => OptOut::Unknown,
    };
    match outcome {
        OptOut::Done { email } => {
            let text = format!(
                "We will never mail {email} again. If someone asked for an account with it, that request is deleted. If you change your mind, contact the help desk."
            );
            let page = views::Notice {
                brand: &brand(&state),
                heading: "Done: no more mail",
                text: &text,
                link: None,
            };
            Ok(render(&page).into_response())
        }
        OptOut::Unknown => {
            state.limits.record(Kind::InvalidTokenClient, ip);
            Ok(link_dead(&state))
        }
    }
}

/// The answer to an unknown or old opt-out link.
fn link_dead(state: &AppState) -> Response {
    let page = views::Notice {
        brand: &brand(state),
        heading: "This link does not work",
        text: "The link is unknown or too old. If you keep getting mail you did not ask for, contact the help desk.",
        link: None,
    };
    (StatusCode::NOT_FOUND, render(&page)).into_response()
}

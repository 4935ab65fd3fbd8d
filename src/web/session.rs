//! Portal sessions in cookies: a 256-bit random id, stored only as a hash,
//! `HttpOnly`, `SameSite=Lax`, and `Secure` with the `__Host-` prefix when
//! served over https. A new id is issued at every sign-in and activation
//! (`registration::sign_in` opens, finds and ends sessions; this file only
//! handles the cookie).

use crate::domain::{Token, TokenHash};
use crate::registration::{Account, RegistrationError};
use crate::web::AppState;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

const SESSION_COOKIE: &str = "session";

/// The cookie name: `__Host-` prefixed when cookies are Secure (browsers
/// refuse the prefix otherwise).
pub fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A new session cookie for a freshly generated id.
pub fn new_cookie(token: &Token, state: &AppState) -> Cookie<'static> {
    Cookie::build((
        cookie_name(SESSION_COOKIE, state.secure_cookies),
        token.expose(),
    ))
    .path("/")
    .http_only(true)
    .secure(state.secure_cookies)
    .same_site(SameSite::Lax)
    .max_age(time::Duration::seconds(
        i64::try_from(state.settings.session.absolute_timeout.as_secs()).unwrap_or(i64::MAX),
    ))
    .build()
}

/// Removes the session cookie.
pub fn clear(jar: CookieJar, state: &AppState) -> CookieJar {
    jar.remove(Cookie::build(cookie_name(SESSION_COOKIE, state.secure_cookies)).path("/"))
}

/// The hash of the session id the browser presented, if well-formed.
pub fn presented(jar: &CookieJar, state: &AppState) -> Option<TokenHash> {
    jar.get(&cookie_name(SESSION_COOKIE, state.secure_cookies))
        .and_then(|cookie| Token::parse(cookie.value()))
        .map(|token| token.hash())
}

/// The signed-in customer for this request, if the session is live.
///
/// # Errors
/// A storage failure.
pub async fn current_customer(
    jar: &CookieJar,
    state: &AppState,
) -> Result<Option<Account>, RegistrationError> {
    let Some(hash) = presented(jar, state) else {
        return Ok(None);
    };
    state.registrar.signed_in(hash).await
}

//! Portal sessions in cookies: a 256-bit random id, stored only as a hash,
//! `HttpOnly`, `SameSite=Lax`, and `Secure` with the `__Host-` prefix when
//! served over https. A new id is issued at every sign-in and activation.

use super::AppState;
use crate::domain::{Token, TokenHash};
use crate::store::{self, customers, customers::Customer, sessions};
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
) -> Result<Option<Customer>, store::StoreError> {
    let Some(hash) = presented(jar, state) else {
        return Ok(None);
    };
    let idle = i64::try_from(state.settings.session.idle_timeout.as_secs()).unwrap_or(i64::MAX);
    let found = state
        .registrar
        .store()
        .read(move |conn| {
            let Some(id) = sessions::customer(conn, &hash, store::now(), idle)? else {
                return Ok(None);
            };
            Ok(customers::by_id(conn, id)?)
        })
        .await?;
    if found.is_some() {
        // Extends the idle timeout. This write is session bookkeeping on a
        // request that already carried our cookie, never a business change.
        state
            .registrar
            .store()
            .write(move |conn| Ok(sessions::touch(conn, &hash, store::now())?))
            .await?;
    }
    Ok(found)
}

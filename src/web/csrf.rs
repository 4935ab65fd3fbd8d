//! CSRF protection: a double-submit token (a random value in a cookie that
//! the form must repeat) plus an origin check on every POST.
//!
//! The cookie is `SameSite=Strict`, `HttpOnly` and, over https, `__Host-`
//! prefixed, so another site can neither read it nor plant its own.

use crate::domain::Token;
use crate::web::session::cookie_name;
use axum::http::HeaderMap;
use axum::http::header;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use subtle::ConstantTimeEq as _;
use url::Url;

const CSRF_COOKIE: &str = "csrf";

/// Returns the CSRF value for a form, reusing the visitor's cookie when it
/// holds a well-formed one, and the jar to send back.
pub fn token_for_form(jar: CookieJar, secure: bool) -> (CookieJar, String) {
    let name = cookie_name(CSRF_COOKIE, secure);
    if let Some(existing) = jar.get(&name).map(Cookie::value).and_then(Token::parse) {
        return (jar, existing.expose());
    }
    let value = Token::generate().expose();
    let cookie = Cookie::build((name, value.clone()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .build();
    (jar.add(cookie), value)
}

/// True when a POST may proceed: the form repeats the cookie's value, and
/// the browser (when it says) sent it from our own origin.
pub fn verify(
    jar: &CookieJar,
    headers: &HeaderMap,
    submitted: &str,
    public_url: &Url,
    secure: bool,
) -> bool {
    let Some(cookie) = jar.get(&cookie_name(CSRF_COOKIE, secure)) else {
        return false;
    };
    let expected = cookie.value().as_bytes();
    let same_value = !expected.is_empty() && bool::from(expected.ct_eq(submitted.as_bytes()));
    same_value && same_origin(headers, public_url)
}

/// `Sec-Fetch-Site` and `Origin`, when the browser sends them, must say the
/// request came from our own pages.
///
/// `Origin: null` says nothing either way: our own `Referrer-Policy:
/// no-referrer` makes browsers send exactly that on our own forms. Such a
/// request still needs the CSRF cookie's value (which another site can
/// neither read nor set), and over https browsers add `Sec-Fetch-Site`,
/// which tells a cross-site `null` origin apart.
fn same_origin(headers: &HeaderMap, public_url: &Url) -> bool {
    let fetch_site_ok = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_none_or(|site| matches!(site, "same-origin" | "none"));
    let origin_ok = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|origin| {
            origin == "null" || origin == public_url.origin().ascii_serialization()
        });
    fetch_site_ok && origin_ok
}

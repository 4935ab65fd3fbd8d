//! The customer API's door: `Authorization: Bearer <token>`, checked
//! against the configured digests in constant time (`ApiTokens::accepts`).
//! A missing or wrong token is answered `401` with a `WWW-Authenticate`
//! challenge (RFC 6750) before any handler runs.

use crate::domain::ApiTokens;
use crate::web::api::problem::Problem;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn require_token(
    State(tokens): State<Arc<ApiTokens>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(token) if tokens.accepts(token) => next.run(request).await,
        Some(_) => Problem {
            challenge: Some("Bearer realm=\"registrar\", error=\"invalid_token\""),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not one of the configured API tokens",
            )
        }
        .into_response(),
        None => Problem {
            challenge: Some("Bearer realm=\"registrar\""),
            ..Problem::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send Authorization: Bearer <token>",
            )
        }
        .into_response(),
    }
}

/// The token of a `Bearer` credential (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_a_bearer_credential_has_a_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}

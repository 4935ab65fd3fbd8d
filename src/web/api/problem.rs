//! Errors of the customer API as RFC 9457 problem details
//! (`application/problem+json`): `type` is `about:blank`, so `title` is the
//! status's phrase; `detail` says what went wrong for a person, and `code`
//! names it for a program.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error, ready to answer.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A stable name (`unknown_customer`, `invalid_json`, …).
    pub code: &'static str,
    pub detail: String,
    /// `WWW-Authenticate` for a `401`.
    pub challenge: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            challenge: None,
        }
    }

    /// `400`: the request itself is malformed (JSON, a query parameter).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// `422`: well-formed, but a value is not acceptable.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// `404`: no customer has the address.
    pub fn unknown_customer() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            "no customer has this address",
        )
    }

    /// `503`: the store failed; nothing was changed.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the request could not be completed; nothing was changed, try again",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Body {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json,
        )
            .into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

//! `WebError`: every failure a page can show, mapped to a status and a
//! friendly, escaped page in one place. Internals are logged, never shown.

use crate::password::HashError;
use crate::registration::RegistrationError;
use crate::web::views::{Notice, render, tr};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Seconds a busy page asks the browser to wait.
pub const BUSY_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the form expired or came from another site")]
    Csrf,
    #[error("page not found")]
    NotFound,
    /// Too many password checks wait already: `503` with `Retry-After`.
    #[error("too busy to check a password now")]
    Busy,
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, text) = match &self {
            WebError::Csrf => (StatusCode::FORBIDDEN, tr("msg.csrf"), tr("msg.csrf_text")),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                tr("msg.not_found"),
                tr("msg.not_found_text"),
            ),
            WebError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                tr("msg.busy"),
                tr("msg.busy_text"),
            ),
            WebError::Registration(_) | WebError::Unexpected(_) => {
                tracing::error!(error.message = %self, error.cause_chain = ?self, "request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    tr("msg.failed"),
                    tr("msg.failed_text"),
                )
            }
        };
        let page = Notice {
            brand: &tr("web.default_brand"),
            heading,
            text,
            link: None,
        };
        let mut response = (status, render(&page)).into_response();
        if matches!(self, WebError::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_SECS));
        }
        response
    }
}

impl From<HashError> for WebError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => WebError::Busy,
            HashError::Failed(error) => WebError::Unexpected(error),
        }
    }
}

//! `WebError`: every failure a page can show, mapped to a status and a
//! friendly, escaped page in one place. Internals are logged, never shown.

use crate::password::HashError;
use crate::registration::RegistrationError;
use crate::web::views::{Notice, render};
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
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Please try again",
                "This form expired or was sent from another site. Go back, reload the page and send it again.",
            ),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no page at this address.",
            ),
            WebError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment",
                "We are very busy right now. Nothing was changed; please send the form again in a few seconds.",
            ),
            WebError::Registration(_) | WebError::Unexpected(_) => {
                tracing::error!(error.message = %self, error.cause_chain = ?self, "request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Something went wrong",
                    "We could not complete this request. Nothing was changed; please try again in a minute.",
                )
            }
        };
        let page = Notice {
            brand: "Customer portal",
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

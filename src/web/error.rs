//! `WebError`: every failure a page can show, mapped to a status and a
//! friendly, escaped page in one place. Internals are logged, never shown.

use crate::registration::RegistrationError;
use crate::web::views::{Notice, render};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the form expired or came from another site")]
    Csrf,
    #[error("page not found")]
    NotFound,
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
        (status, render(&page)).into_response()
    }
}

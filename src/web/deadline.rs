//! The whole-request timeout: a request (its body and the handler's work
//! together) that is not answered within `http.request_timeout` gets `408`,
//! and the connection closes. A client trickling a form body byte by byte
//! holds a connection no longer than that.

use crate::web::views::{Notice, render};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

pub async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::info!(event = "request_timeout");
            let page = Notice {
                brand: "Customer portal",
                heading: "This took too long",
                text: "The request did not arrive in time. Please try again.",
                link: None,
            };
            let mut response = (StatusCode::REQUEST_TIMEOUT, render(&page)).into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

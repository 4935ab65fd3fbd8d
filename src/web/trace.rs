//! One tracing span per HTTP request, with the method and the path only:
//! the query string (which carries activation tokens) and cookies are never
//! recorded.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

pub async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "http",
        http.method = %request.method(),
        http.path = %request.uri().path(),
        http.status = tracing::field::Empty,
    );
    async move {
        let response = next.run(request).await;
        tracing::Span::current().record("http.status", response.status().as_u16());
        tracing::debug!(event = "answered", http.status = response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

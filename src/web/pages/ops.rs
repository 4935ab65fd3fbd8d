//! What operators and machines fetch, on the admin listener only:
//! `/healthz`, `/readyz` and `/metrics` (all three in `routes`; nothing
//! operational or customer-specific is on the public side), plus the
//! stylesheet and the not-found answer both routers use.
//!
//! None of them changes business state. `/healthz` writes one bookkeeping
//! row through the store writer to prove the database takes writes, at most
//! once a second however often it is asked.

use crate::metrics::CONTENT_TYPE;
use crate::registration::Health;
use crate::web::AppState;
use crate::web::error::WebError;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write as _;

/// The operators' routes: `/healthz`, `/readyz`, `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `200` when every listener accepts connections, the database takes a
/// write and no reply has waited in the outbox longer than
/// `outbound.max_queue_age_secs`; `503` otherwise. The body names each
/// check's finding.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let health = state.registrar.health().await;
    let status = if health.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        health_report(&health),
    )
        .into_response()
}

fn health_report(health: &Health) -> String {
    let mut out = String::from(if health.healthy() {
        "ok\n"
    } else {
        "unhealthy\n"
    });
    for listener in &health.listeners {
        let state = if health.listeners_down.contains(listener) {
            "down"
        } else {
            "up"
        };
        let _ = writeln!(out, "listener {listener}: {state}");
    }
    let database = if health.database_writable {
        "writable"
    } else {
        "not writable"
    };
    let _ = writeln!(out, "database: {database}");
    let limit = health.max_queue_age.as_secs();
    match health.oldest_queued_age {
        Some(age) => {
            let _ = writeln!(
                out,
                "outbox: oldest queued reply waited {} s (limit {limit} s)",
                age.as_secs()
            );
        }
        None => out.push_str("outbox: unreadable\n"),
    }
    out
}

/// `200` while the daemon takes traffic (every listener accepts connections
/// and the database answers a read); `503` before, during shutdown, or when
/// the database does not answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.registrar.ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Every metric, in the OpenMetrics text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, WebError> {
    let text = state.registrar.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../templates/web/style.css"),
    )
        .into_response()
}

pub async fn not_found() -> WebError {
    WebError::NotFound
}

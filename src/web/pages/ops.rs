//! What operators and machines fetch, on the admin listener only:
//! `/healthz` and `/metrics` (nothing customer-specific is on the public
//! side); plus the stylesheet and the not-found answer both routers use.

use crate::web::AppState;
use crate::web::error::WebError;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.registrar.health().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response(),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, WebError> {
    let counters = state.registrar.counters().await?;
    let body = format!(
        "# HELP registrar_store_commits_total Group commits by the store writer.\n\
         # TYPE registrar_store_commits_total counter\n\
         registrar_store_commits_total {}\n\
         # HELP registrar_store_jobs_total Write jobs committed by the store writer.\n\
         # TYPE registrar_store_jobs_total counter\n\
         registrar_store_jobs_total {}\n\
         # HELP registrar_store_largest_batch Most jobs committed in one transaction.\n\
         # TYPE registrar_store_largest_batch gauge\n\
         registrar_store_largest_batch {}\n\
         # HELP registrar_outbox_replies Replies in the outbox by status.\n\
         # TYPE registrar_outbox_replies gauge\n\
         registrar_outbox_replies{{status=\"queued\"}} {}\n\
         registrar_outbox_replies{{status=\"sent\"}} {}\n\
         registrar_outbox_replies{{status=\"dead\"}} {}\n\
         # HELP registrar_password_hashes_total Argon2id password hashes computed.\n\
         # TYPE registrar_password_hashes_total counter\n\
         registrar_password_hashes_total {}\n\
         # HELP registrar_password_verifies_total Argon2id password verifications run.\n\
         # TYPE registrar_password_verifies_total counter\n\
         registrar_password_verifies_total {}\n\
         # HELP registrar_limit_reached_total Times a limit that protects everybody was reached.\n\
         # TYPE registrar_limit_reached_total counter\n",
        counters.store_commits,
        counters.store_jobs,
        counters.store_largest_batch,
        counters.outbox_queued,
        counters.outbox_sent,
        counters.outbox_dead,
        state.hasher.hashes_computed(),
        state.hasher.verifies_run(),
    );
    let mut body = body;
    for (alarm, count) in &counters.alarms {
        let _ = writeln!(
            body,
            "registrar_limit_reached_total{{limit=\"{}\"}} {count}",
            alarm.as_str()
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
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

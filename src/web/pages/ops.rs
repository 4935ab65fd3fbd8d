//! What operators and machines fetch: `/healthz`, `/metrics`, the stylesheet
//! and the not-found answer.

use super::*;

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state
        .registrar
        .store()
        .read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response(),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, WebError> {
    let (queued, sent, dead) = state
        .registrar
        .store()
        .read(|conn| Ok(outbox::counts(conn)?))
        .await?;
    let stats = state.registrar.store().stats();
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
         registrar_outbox_replies{{status=\"queued\"}} {queued}\n\
         registrar_outbox_replies{{status=\"sent\"}} {sent}\n\
         registrar_outbox_replies{{status=\"dead\"}} {dead}\n\
         # HELP registrar_password_hashes_total Argon2id password hashes computed.\n\
         # TYPE registrar_password_hashes_total counter\n\
         registrar_password_hashes_total {}\n",
        stats.commits.load(Ordering::Relaxed),
        stats.jobs.load(Ordering::Relaxed),
        stats.largest_batch.load(Ordering::Relaxed),
        state.hasher.hashes_computed(),
    );
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

//! The customer API, on the admin listener (never the public one): list and
//! look up customers, invite, disable and enable them; JSON in and out,
//! errors as RFC 9457 problem details, every route behind a bearer token
//! (`[admin] api_tokens`).
//!
//! `routes` is mounted on the router it is given (the admin router); the
//! use cases are `registration`'s, the same as the command line's, recorded
//! under the channel `api`.

mod auth;
mod customers;
mod problem;

use crate::domain::ApiTokens;
use crate::web::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// Largest request body (an invitation is well under 1 KiB).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The API's routes, each behind `tokens`. Merge into the admin router; with
/// no token configured, do not mount them.
pub fn routes(tokens: ApiTokens) -> Router<AppState> {
    Router::new()
        .route("/api/v1/customers", get(customers::list))
        .route("/api/v1/customers/lookup", get(customers::lookup))
        .route("/api/v1/customers/invite", post(customers::invite))
        .route("/api/v1/customers/disable", post(customers::disable))
        .route("/api/v1/customers/enable", post(customers::enable))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(tokens),
            auth::require_token,
        ))
}

//! The HTTP side: activation page, sign-in, portal, "Create an account",
//! "send me a new link", and what operators and machines fetch (`/healthz`,
//! `/readyz`, `/metrics`). The only module that knows axum.
//!
//! GET and HEAD never change state: mail scanners fetch links and even run
//! their JavaScript. Every POST carries a CSRF token and passes an origin
//! check; every response carries the security headers in `headers`; rate
//! limits per client IP and per address live in `limits`.

mod csrf;
mod error;
mod headers;
mod limits;
mod pages;
mod session;
mod trace;
mod views;

use crate::domain::TokenHash;
use crate::password::PasswordHasher;
use crate::registration::Registrar;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registrar: Registrar,
    pub hasher: PasswordHasher,
    pub settings: Arc<Settings>,
    /// Cookies get `Secure` and the `__Host-` prefix when served over https.
    pub secure_cookies: bool,
    /// Rate limits per client IP and per address.
    pub limits: Arc<limits::WebLimits>,
    /// Activation tokens being activated right now: a second request for the
    /// same token waits for nothing and hashes nothing.
    pub activating: Arc<Mutex<HashSet<TokenHash>>>,
}

impl AppState {
    /// The state for `settings`: a password hasher at the configured cost and
    /// fresh rate-limit counters.
    ///
    /// # Errors
    /// When the argon2 parameters are refused.
    pub fn new(registrar: Registrar, settings: Arc<Settings>) -> anyhow::Result<Self> {
        Ok(Self {
            hasher: PasswordHasher::new(&settings.password, registrar.metrics().clone())?,
            secure_cookies: settings.http.public_url.scheme() == "https",
            limits: Arc::new(limits::WebLimits::new(
                settings.rate_limits.clone(),
                registrar.metrics().clone(),
            )),
            registrar,
            activating: Arc::new(Mutex::new(HashSet::new())),
            settings,
        })
    }
}

/// Builds the router with every route and the security headers.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.max_body_bytes;
    Router::new()
        .route("/", get(pages::home))
        .route("/activate", get(pages::activate_form).post(pages::activate))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/portal", get(pages::portal))
        .route("/register", get(pages::register_form).post(pages::register))
        .route("/resend", get(pages::resend_form).post(pages::resend))
        .merge(pages::ops_routes())
        .route("/static/style.css", get(pages::stylesheet))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(headers::security_headers))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(state)
}

/// Serves HTTP on `listener` until `shutdown`, then drains open requests.
///
/// # Errors
/// Fails when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let metrics = state.registrar.metrics().clone();
    metrics.listener_up("http", true);
    let stopping = metrics.clone();
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.wait().await;
        stopping.listener_up("http", false);
    })
    .await;
    metrics.listener_up("http", false);
    served
}

//! The HTTP side: activation page, sign-in, portal, "Create an account",
//! "send me a new link", "I did not ask for this"; and, on the separate
//! admin listener, what operators and machines fetch (`/healthz`,
//! `/readyz`, `/metrics`). The only module that knows axum.
//!
//! GET and HEAD never change state: mail scanners fetch links and even run
//! their JavaScript. Every POST carries a CSRF token and passes an origin
//! check; every response carries the security headers in `headers`; rate
//! limits per client network, per account and per address live in `limits`,
//! and who the client is (the peer, or what a trusted proxy says) in
//! `client`. `serve` runs a listener with a connection cap and header and
//! idle timeouts; `deadline` is the whole-request timeout.

mod api;
mod client;
mod csrf;
mod deadline;
mod error;
mod headers;
mod limits;
mod pages;
mod serve;
mod session;
mod trace;
mod views;

pub use serve::ServeLimits;

use crate::domain::TokenHash;
use crate::metrics::Metrics;
use crate::password::PasswordHasher;
use crate::registration::Registrar;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registrar: Registrar,
    pub hasher: PasswordHasher,
    pub settings: Arc<Settings>,
    /// Cookies get `Secure` and the `__Host-` prefix when served over https.
    pub secure_cookies: bool,
    /// Rate limits per client network, per account and per address.
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

/// Builds the public router: every customer page, the security headers and
/// the whole-request timeout. Nothing operational: `/metrics` and
/// `/healthz` are on the admin listener.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.max_body_bytes;
    let request_timeout = state.settings.http.request_timeout;
    Router::new()
        .route("/", get(pages::home))
        .route("/activate", get(pages::activate_form).post(pages::activate))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/login/google", get(pages::google_start))
        .route("/login/google/callback", get(pages::google_callback))
        .route(
            "/login/directory",
            get(pages::directory_form).post(pages::directory_login),
        )
        .route(
            "/login/email",
            get(pages::email_link_form).post(pages::email_link_request),
        )
        .route(
            "/login/link",
            get(pages::link_sign_in_form).post(pages::link_sign_in),
        )
        .route("/forgot", get(pages::forgot_form).post(pages::forgot))
        .route("/reset", get(pages::reset_form).post(pages::reset))
        .route("/logout", post(pages::logout))
        .route("/portal", get(pages::portal))
        .route("/register", get(pages::register_form).post(pages::register))
        .route("/resend", get(pages::resend_form).post(pages::resend))
        .route("/not-me", get(pages::opt_out_form).post(pages::opt_out))
        .route("/static/style.css", get(pages::stylesheet))
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        // Innermost: every handler, and every error page it returns, runs
        // in the language chosen for the request.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            views::page_language,
        ))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            deadline::request_timeout,
        ))
        .layer(axum::middleware::map_response(headers::security_headers))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(state)
}

/// Builds the admin router: `/healthz`, `/readyz` and `/metrics`
/// (`pages::ops_routes`), for the admin listener only (loopback by default).
pub fn admin_router(state: AppState) -> Router {
    let tokens = &state.settings.admin.api_tokens;
    let api = if tokens.is_empty() {
        Router::new()
    } else {
        api::routes(tokens.clone())
    };
    Router::new()
        .merge(pages::ops_routes())
        .merge(api)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            ADMIN_REQUEST_TIMEOUT,
            deadline::request_timeout,
        ))
        .layer(axum::middleware::from_fn(trace::request_span))
        .with_state(state)
}

/// The admin listener's caps: few connections, short timeouts.
const ADMIN_LIMITS: ServeLimits = ServeLimits {
    max_connections: 16,
    header_read_timeout: Duration::from_secs(10),
    keep_alive: Duration::from_secs(5),
    write_timeout: Duration::from_secs(10),
};

const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the public pages on `listener` until `shutdown`, with the caps of
/// `[http]`, then lets open connections finish.
///
/// # Errors
/// Fails when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let http = &state.settings.http;
    let limits = ServeLimits {
        max_connections: http.max_connections,
        header_read_timeout: http.header_read_timeout,
        keep_alive: http.keep_alive,
        // A client that stops reading our answer is as slow as one that
        // stops sending its request.
        write_timeout: http.request_timeout,
    };
    let metrics = state.registrar.metrics().clone();
    serve_counted("http", metrics, listener, router(state), limits, shutdown).await
}

/// Serves the admin endpoints on `listener` until `shutdown`.
///
/// # Errors
/// Fails when the server fails.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let metrics = state.registrar.metrics().clone();
    serve_counted(
        "admin",
        metrics,
        listener,
        admin_router(state),
        ADMIN_LIMITS,
        shutdown,
    )
    .await
}

/// Serves `router`, with the listener counted up (`registrar_listener_up`)
/// from now until shutdown begins: from then on it takes no new work, so
/// `/healthz` and `/readyz` say so while open connections drain.
async fn serve_counted(
    name: &'static str,
    metrics: Metrics,
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    metrics.listener_up(name, true);
    let stopping = metrics.clone();
    let stopped = shutdown.clone();
    tokio::spawn(async move {
        stopped.wait().await;
        stopping.listener_up(name, false);
    });
    let served = serve::serve(listener, router, limits, shutdown).await;
    metrics.listener_up(name, false);
    served
}

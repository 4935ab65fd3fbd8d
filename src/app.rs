//! `Application`: binds both listeners, opens the store and starts every
//! component; `run_until_stopped` serves until shutdown.
//!
//! Listeners may be bound to port 0 (tests); the bound addresses are read back
//! with `smtp_addr` and `http_addr`. A `public_url` whose port is 0 follows the
//! HTTP port actually bound, so links in mail work in tests too.

use crate::mailer::Mailer;
use crate::outbox::OutboxWorker;
use crate::registration::{PurgeState, Registrar};
use crate::settings::{LiveSettings, Settings};
use crate::shutdown::Shutdown;
use crate::smtp::{RegistrarIntake, SmtpServer};
use crate::store::Store;
use crate::web::{self, AppState};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// A built daemon, listening but not yet serving HTTP or sending mail.
pub struct Application {
    smtp: SmtpServer,
    smtp_addr: SocketAddr,
    http_addr: SocketAddr,
    http_listener: tokio::net::TcpListener,
    state: AppState,
    outbox: OutboxWorker,
    shutdown: Shutdown,
}

impl Application {
    /// Binds the listeners, opens (and migrates) the store and loads the
    /// SMTP TLS certificate, if any. Nothing is served before
    /// `run_until_stopped`; connections wait in the listen queue.
    ///
    /// # Errors
    /// Fails when a listener cannot be bound, or the store or the mail
    /// transport cannot be set up.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        let smtp_listener = std::net::TcpListener::bind(settings.smtp.listen)
            .with_context(|| format!("failed to bind SMTP to {}", settings.smtp.listen))?;
        let http_listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("failed to bind HTTP to {}", settings.http.listen))?;
        let http_addr = http_listener.local_addr()?;
        if settings.http.public_url.port() == Some(0) {
            // Only reachable through a configuration that asks for it.
            let _ = settings.http.public_url.set_port(Some(http_addr.port()));
        }
        let settings = Arc::new(settings);

        let store = Store::open(&settings.store.path, settings.store.max_batch)?;
        let mailer = Mailer::new(&settings.outbound, &settings.smtp.hostname)?;
        let wake = Arc::new(Notify::new());
        let registrar = Registrar::new(Arc::clone(&settings), store.clone(), Arc::clone(&wake));
        let shutdown = Shutdown::new();

        let smtp = SmtpServer::new(
            smtp_listener,
            registrar.live_settings().clone(),
            RegistrarIntake::new(registrar.clone()),
            shutdown.clone(),
        )?;
        let smtp_addr = smtp.local_addr()?;

        let outbox = OutboxWorker::new(store, mailer, settings.outbound.clone(), wake);
        let state = AppState::new(registrar, Arc::clone(&settings))?;
        tracing::info!(smtp.addr = %smtp_addr, http.addr = %http_addr, "listening");
        Ok(Self {
            smtp,
            smtp_addr,
            http_addr,
            http_listener,
            state,
            outbox,
            shutdown,
        })
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The settings in effect (with `public_url` resolved).
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.state.settings)
    }

    /// The store this application writes to, for reading outcomes back
    /// (`replay`).
    pub fn store(&self) -> Store {
        self.state.registrar.store().clone()
    }

    /// The reloadable settings (services and policies), for SIGHUP.
    pub fn live_settings(&self) -> LiveSettings {
        self.state.registrar.live_settings().clone()
    }

    /// The handle that stops this application.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves SMTP and HTTP and sends mail until shutdown is triggered, then
    /// lets HTTP drain, SMTP sessions in DATA finish (at most
    /// `smtp.shutdown_grace`) and the outbox finish its current step.
    ///
    /// Invariant: every `250` was answered after its commit, so an SMTP
    /// session cut at the end of the grace period loses nothing it was
    /// promised.
    ///
    /// # Errors
    /// Fails when the HTTP server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            smtp,
            http_listener,
            state,
            outbox,
            shutdown,
            ..
        } = self;
        let smtp = tokio::spawn(smtp.run());
        let worker = tokio::spawn(outbox.run(shutdown.clone()));
        let purge = tokio::spawn(purge_expired(state.registrar.clone(), shutdown.clone()));
        let served = web::serve(http_listener, state, shutdown.clone()).await;
        shutdown.trigger();
        if let Err(error) = smtp.await {
            tracing::error!(error.message = %error, "the SMTP listener failed");
        }
        if let Err(error) = worker.await {
            tracing::error!(error.message = %error, "the outbox worker failed");
        }
        if let Err(error) = purge.await {
            tracing::error!(error.message = %error, "the purge job failed");
        }
        served.context("the HTTP server failed")
    }
}

/// Every `activation.purge_interval`, runs the purge (expired pending
/// customers, each recorded; expired sessions; records past their retention,
/// in small batches), until shutdown.
async fn purge_expired(registrar: Registrar, shutdown: Shutdown) {
    let interval = registrar.settings().activation.purge_interval;
    let mut state = PurgeState::default();
    loop {
        match registrar.purge(&mut state, &shutdown).await {
            Ok(purged) if purged.is_empty() => {}
            Ok(purged) => {
                tracing::info!(
                    customers = purged.customers,
                    raw_messages = purged.raw_messages,
                    inbound = purged.inbound,
                    replies = purged.replies,
                    decisions = purged.decisions,
                    "purged expired pending customers and records past their retention"
                );
            }
            Err(error) => tracing::error!(error.message = %error, "the purge failed"),
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

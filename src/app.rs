//! `Application`: binds the listeners (SMTP, public HTTP and, when
//! configured, the admin listener), takes the database's lock, opens the
//! store and starts every component, all reporting to one metrics registry;
//! `run_until_stopped` serves until shutdown.
//!
//! Listeners may be bound to port 0 (tests); the bound addresses are read back
//! with `smtp_addr`, `http_addr` and `admin_addr`. A `public_url` whose port
//! is 0 follows the HTTP port actually bound, so links in mail work in tests
//! too.

use crate::mailer::{self, Mailer};
use crate::metrics::Metrics;
use crate::outbox::OutboxWorker;
use crate::registration::Registrar;
use crate::settings::{LiveSettings, Settings};
use crate::shutdown::Shutdown;
use crate::smtp::{RegistrarIntake, SmtpServer};
use crate::store::Store;
use crate::store::lock::DatabaseLock;
use crate::web::{self, AppState};
use crate::webhooks::{self, worker::EndpointWorker};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A built daemon, listening but not yet serving HTTP or sending mail.
pub struct Application {
    smtp: SmtpServer,
    smtp_addr: SocketAddr,
    http_addr: SocketAddr,
    http_listener: TcpListener,
    /// The admin listener and its address, when one is configured.
    admin: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    outbox: OutboxWorker,
    /// One worker per `[[webhooks]]` endpoint.
    webhooks: Vec<EndpointWorker>,
    shutdown: Shutdown,
    /// Held until the daemon stops: no second daemon, and no restore, on
    /// this database meanwhile.
    lock: DatabaseLock,
}

impl Application {
    /// Binds the listeners, opens (and migrates) the store and loads the
    /// SMTP TLS certificate, if any. Nothing is served before
    /// `run_until_stopped`; connections wait in the listen queue.
    ///
    /// # Errors
    /// Fails when a listener cannot be bound, another process holds the
    /// database, or the store or the mail transport cannot be set up.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        // One TLS provider per process: whatever uses rustls without naming
        // a provider gets aws-lc-rs too. Already installed is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let smtp_listener = std::net::TcpListener::bind(settings.smtp.listen)
            .with_context(|| format!("failed to bind SMTP to {}", settings.smtp.listen))?;
        let http_listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("failed to bind HTTP to {}", settings.http.listen))?;
        let http_addr = http_listener.local_addr()?;
        let admin = match settings.admin.listen {
            Some(listen) => {
                let listener = TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("failed to bind the admin listener to {listen}"))?;
                let addr = listener.local_addr()?;
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        admin.addr = %addr,
                        "the admin listener (metrics, health) is not on loopback; make sure only operators reach it"
                    );
                }
                Some((listener, addr))
            }
            None => None,
        };
        if settings.http.public_url.port() == Some(0) {
            // Only reachable through a configuration that asks for it.
            let _ = settings.http.public_url.set_port(Some(http_addr.port()));
        }
        let settings = Arc::new(settings);

        let lock = DatabaseLock::acquire(&settings.store.path)?;
        let metrics = Metrics::new();
        let store = Store::open_capped(
            &settings.store.path,
            settings.store.max_batch,
            settings.store.max_size_bytes,
            metrics.clone(),
        )?;
        let mailer = Mailer::new(&settings)?;
        let wake = Arc::new(Notify::new());
        let webhook_wake = webhooks::Wake::new(settings.webhooks.len());
        let registrar = Registrar::new(
            Arc::clone(&settings),
            store.clone(),
            Arc::clone(&wake),
            metrics.clone(),
        )
        .with_identity_providers()?
        .with_webhook_wake(webhook_wake.clone());
        let webhooks = webhook_workers(&settings, &store, &webhook_wake, &metrics)?;
        let shutdown = Shutdown::new();

        let smtp = SmtpServer::new(
            smtp_listener,
            registrar.live_settings().clone(),
            RegistrarIntake::new(registrar.clone()),
            shutdown.clone(),
            metrics.clone(),
        )?;
        let smtp_addr = smtp.local_addr()?;

        let outbox = OutboxWorker::new(store, mailer, settings.outbound.clone(), wake, metrics);
        let state = AppState::new(registrar, Arc::clone(&settings))?;
        match &admin {
            Some((_, admin_addr)) => tracing::info!(
                smtp.addr = %smtp_addr, http.addr = %http_addr, admin.addr = %admin_addr, "listening"
            ),
            None => tracing::info!(smtp.addr = %smtp_addr, http.addr = %http_addr, "listening"),
        }
        Ok(Self {
            smtp,
            smtp_addr,
            http_addr,
            http_listener,
            admin,
            state,
            outbox,
            webhooks,
            shutdown,
            lock,
        })
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where `/metrics` and `/healthz` are served; `None` when nowhere.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr)| *addr)
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
            admin,
            state,
            outbox,
            webhooks,
            shutdown,
            lock,
            ..
        } = self;
        let smtp = tokio::spawn(smtp.run());
        let worker = tokio::spawn(outbox.run(shutdown.clone()));
        let webhooks: Vec<_> = webhooks
            .into_iter()
            .map(|worker| tokio::spawn(worker.run(shutdown.clone())))
            .collect();
        let purge = tokio::spawn(purge_expired(state.registrar.clone(), shutdown.clone()));
        let admin = admin.map(|(listener, _)| {
            tokio::spawn(web::serve_admin(listener, state.clone(), shutdown.clone()))
        });
        let served = web::serve(http_listener, state, shutdown.clone()).await;
        shutdown.trigger();
        if let Some(admin) = admin
            && let Err(error) = admin.await
        {
            tracing::error!(error.message = %error, "the admin listener failed");
        }
        if let Err(error) = smtp.await {
            tracing::error!(error.message = %error, "the SMTP listener failed");
        }
        if let Err(error) = worker.await {
            tracing::error!(error.message = %error, "the outbox worker failed");
        }
        for webhook in webhooks {
            if let Err(error) = webhook.await {
                tracing::error!(error.message = %error, "a webhook worker failed");
            }
        }
        if let Err(error) = purge.await {
            tracing::error!(error.message = %error, "the purge job failed");
        }
        // Every task has stopped: the database is free for a restore.
        drop(lock);
        served.context("the HTTP server failed")
    }
}

/// A worker per `[[webhooks]]` endpoint, sharing one HTTP client, each
/// woken by its own notifier in `wake`.
fn webhook_workers(
    settings: &Settings,
    store: &Store,
    wake: &webhooks::Wake,
    metrics: &Metrics,
) -> anyhow::Result<Vec<EndpointWorker>> {
    if settings.webhooks.is_empty() {
        return Ok(Vec::new());
    }
    let client = crate::http_client::build(settings.webhook_delivery.timeout)?;
    settings
        .webhooks
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let notify = wake
                .endpoint(index)
                .context("a webhook endpoint without its notifier")?;
            Ok(EndpointWorker::new(
                store.clone(),
                endpoint.clone(),
                settings.webhook_delivery.clone(),
                client.clone(),
                notify,
                metrics.clone(),
            ))
        })
        .collect()
}

/// Every `activation.purge_interval`, runs the purge (`Registrar::purge`:
/// expired pending customers, and every record past its retention, in small
/// paced steps) and removes delivered `.eml` files older than
/// `outbound.folder_retention`, until shutdown.
async fn purge_expired(registrar: Registrar, shutdown: Shutdown) {
    let interval = registrar.settings().activation.purge_interval;
    loop {
        remove_old_mail_files(&registrar).await;
        match registrar.purge(&shutdown).await {
            Ok(purged) if purged.is_empty() => {}
            Ok(purged) => tracing::info!(
                ?purged,
                "purged expired pending customers and records past their retention"
            ),
            Err(error) => tracing::error!(error.message = %error, "the purge failed"),
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Removes delivered `.eml` files past their retention, when mail goes to a
/// folder.
async fn remove_old_mail_files(registrar: &Registrar) {
    let outbound = &registrar.settings().outbound;
    if outbound.relay.is_some() {
        return;
    }
    let folder = outbound.folder.clone();
    let retention = outbound.folder_retention;
    let removed =
        tokio::task::spawn_blocking(move || mailer::remove_old_files(&folder, retention)).await;
    match removed {
        Ok(Ok(0)) => {}
        Ok(Ok(files)) => tracing::info!(files, "removed delivered mail files past their retention"),
        Ok(Err(error)) => {
            tracing::warn!(error.message = %error, "could not clean the outbound folder");
        }
        Err(error) => tracing::warn!(error.message = %error, "the folder cleanup failed"),
    }
}

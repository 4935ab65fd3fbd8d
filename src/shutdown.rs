//! One shutdown signal fanned out to every component.
//!
//! `Shutdown` is a cloneable handle: the signal task (or a test) triggers it,
//! and the HTTP server, the outbox worker and the SMTP handler watch it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// A cloneable shutdown flag that can also be awaited.
#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    /// Mirror of the flag for code on plain threads (SMTP sessions).
    flag: Arc<AtomicBool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, _) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts shutdown everywhere; calling it again does nothing.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Completes once shutdown has been triggered.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means the sender is gone, which only happens when every
        // handle is dropped: nothing is left to shut down.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

/// SIGTERM and SIGINT, caught from the moment `install` returns (before
/// systemd hears READY=1), so an early stop still drains.
pub struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers; call inside the runtime.
    ///
    /// # Errors
    /// Fails when the signal handlers cannot be installed.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes on the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = self.interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
        }
    }
}

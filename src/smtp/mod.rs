//! The SMTP listener: mailin-embedded on its own thread, serving a listener
//! bound by `app` (port 0 in tests), with `IntakeHandler` deciding each
//! message. This is the only module that knows mailin.
//!
//! mailin's accept loop is blocking and never returns, so it runs on a named
//! std thread. It has no stop handle: at shutdown the handler refuses new
//! transactions with `421`, and because every `250` was answered only after
//! its commit, the process may exit without joining this thread.

pub mod handler;
pub mod reply;

use anyhow::Context as _;
use handler::IntakeHandler;
use mailin_embedded::{Server, SslConfig};
use std::net::TcpListener;

/// Starts serving SMTP on `listener` with `max_sessions` session threads.
///
/// # Errors
/// Fails when the listener cannot be configured or the thread cannot start.
pub fn spawn(
    listener: TcpListener,
    handler: IntakeHandler,
    hostname: &str,
    max_sessions: u32,
) -> anyhow::Result<()> {
    // mailin's accept loop spins on a non-blocking listener.
    listener
        .set_nonblocking(false)
        .context("failed to configure the SMTP listener")?;
    let mut server = Server::new(handler);
    server
        .with_name(hostname)
        .with_num_threads(max_sessions)
        .with_tcp_listener(listener)
        .with_ssl(SslConfig::None)
        .map_err(|e| anyhow::anyhow!("failed to configure SMTP: {e}"))?;
    std::thread::Builder::new()
        .name("smtp-accept".into())
        .spawn(move || {
            if let Err(error) = server.serve() {
                tracing::error!(error.message = %error, "the SMTP listener stopped");
            }
        })
        .context("failed to start the SMTP thread")?;
    Ok(())
}

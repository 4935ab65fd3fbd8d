//! The SMTP listener: our own tokio accept loop and session loop around
//! mailin's sans-IO engine. This is the only module that knows mailin.
//!
//! mailin-embedded's server (a thread per session, fixed five-minute
//! timeouts, no line or session caps, no stop handle) is not used; its
//! re-exported `Handler`, `Response` and `Action` are the types our handler
//! speaks, and `mailin` itself supplies the `Session` engine. The loop
//! here admits or refuses each connection (`limits`), runs one task per
//! session (`session`) that reads and caps every line itself
//! (`connection`, `command`, `data`), drives mailin's `Session` with
//! `IntakeHandler`, and awaits the end-of-DATA commit (`intake`) without
//! blocking a tokio worker.
//!
//! Shutdown: the listener closes, sessions waiting for a command get
//! `421 4.3.2`, sessions in DATA finish within `shutdown_grace`, and what is
//! left after that is cut. Every `250` was answered after its commit, so a
//! cut session lost nothing it had been promised.

pub mod answer;
pub mod command;
pub mod connection;
pub mod data;
pub mod handler;
pub mod intake;
pub mod limits;
pub mod listener;
pub mod reply;
pub mod session;
pub mod tls;

pub use intake::{Intake, RegistrarIntake};
pub use listener::SmtpServer;

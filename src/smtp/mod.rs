//! The SMTP listener: our own tokio accept loop and session loop around
//! mailin's sans-IO engine. This is the only module that knows mailin.
//!
//! mailin-embedded's server (a thread per session, fixed five-minute
//! timeouts, no line or session caps, no stop handle) is not used; its
//! re-exported `Handler`, `Response` and `Action` are the types the engine
//! speaks, and `mailin` itself supplies the `Session` engine.
//!
//! The rooms, in the order a connection meets them: `listener` admits or
//! refuses each connection (`limits`) and runs one `session` task each;
//! `connection` reads and caps every line; `command` says which verb a line
//! is; each verb has a file with its parsing, checks and replies (`ehlo`,
//! `xforward`, `mail`, `rcpt`, `data`, and STARTTLS in `tls`); `engine` is
//! the mailin glue that keeps the command sequence; `intake` is the
//! end-of-DATA decision, awaited without blocking a tokio worker. Every reply is a
//! named function in `answer`; `reply` picks the one for a message's fate.
//!
//! Shutdown: the listener closes, sessions waiting for a command get
//! `421 4.3.2`, sessions in DATA finish within `shutdown_grace`, and what is
//! left after that is cut. Every `250` was answered after its commit, so a
//! cut session lost nothing it had been promised.

pub mod answer;
pub mod command;
pub mod connection;
pub mod data;
pub mod ehlo;
pub mod engine;
pub mod intake;
pub mod limits;
pub mod listener;
pub mod mail;
pub mod rcpt;
pub mod reply;
pub mod session;
pub mod tls;
pub mod xforward;

pub use intake::{Intake, RegistrarIntake};
pub use listener::SmtpServer;

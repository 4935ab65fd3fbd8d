//! Logging: a tracing subscriber with an injectable writer (tests pass a
//! sink), plus the `log` bridge, because mailin logs through `log`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
/// Returns quietly if a subscriber is already installed (tests).
pub fn init<W>(default_filter: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        // Colors only on a terminal; journald and files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
    if installed.is_ok() {
        // mailin logs every command line at TRACE; the filter above keeps
        // that out unless asked for.
        let _ = tracing_log::LogTracer::init();
    }
}

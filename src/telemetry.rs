//! Logging: a tracing subscriber writing text or JSON lines to an injectable
//! writer (tests pass a sink), plus the `log` bridge, because mailin logs
//! through `log`.
//!
//! What is logged is the callers' business; the rule they keep is that no
//! token, password, cookie or message body is ever a field.

use std::str::FromStr;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How each event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, colored on a terminal.
    Text,
    /// One JSON object per line: the event's fields at the top level, beside
    /// `timestamp`, `level`, `target`, and the spans it happened in.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{text:?} is not one of text, json")),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
/// Returns quietly if a subscriber is already installed (tests).
pub fn init<W>(default_filter: &str, format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            // Colors only on a terminal; journald and files get plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    if installed.is_ok() {
        // mailin logs every command line at TRACE; the filter above keeps
        // that out unless asked for.
        let _ = tracing_log::LogTracer::init();
    }
}

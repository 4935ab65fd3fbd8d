//! The `registrar` command line: `serve` (the default) runs the daemon,
//! `check-config` prints the effective settings with secrets redacted,
//! `explain` shows the decision for one message rule by rule.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use registrar::app::Application;
use registrar::{settings, shutdown, telemetry};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Self-registration by email for a help desk's customer portal"
)]
struct Cli {
    /// TOML settings layered over the embedded defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Print the effective settings (secrets redacted) and check them.
    CheckConfig,
    /// Show the decision for one message, with every rule checked.
    Explain {
        /// The message, as an .eml file.
        file: PathBuf,
        /// Service id (default: the one the message is addressed to).
        #[arg(long)]
        service: Option<String>,
        /// MAIL FROM (default: Return-Path, else the From address).
        #[arg(long, value_name = "ADDRESS")]
        envelope_from: Option<String>,
        /// SMTP client address (default 127.0.0.1).
        #[arg(long, value_name = "IP")]
        client_ip: Option<std::net::IpAddr>,
        /// HELO name (default localhost).
        #[arg(long)]
        helo: Option<String>,
        /// Database to read the sender's state from (default: store.path).
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Explain {
            file,
            service,
            envelope_from,
            client_ip,
            helo,
            db,
        } => {
            let request = registrar::explain::ExplainRequest {
                file,
                service,
                envelope_from,
                client_ip,
                helo,
                db,
            };
            explain(cli.config, &request)
        }
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    telemetry::init("info", std::io::stdout);
    let settings = settings::load(config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registrar")
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(settings).await?;
        let stop = app.shutdown_handle();
        tokio::spawn(async move {
            if let Err(error) = shutdown::signal().await {
                tracing::error!(error.message = %error, "cannot listen for signals; stopping");
            }
            stop.trigger();
        });
        // Tell systemd (Type=notify) that both listeners are bound. Without
        // NOTIFY_SOCKET this does nothing.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        app.run_until_stopped().await
    })?;
    // Sessions still open on the SMTP threads hold nothing uncommitted:
    // see `Application::run_until_stopped`.
    tracing::info!("stopped");
    Ok(())
}

fn explain(
    config: Option<PathBuf>,
    request: &registrar::explain::ExplainRequest,
) -> anyhow::Result<()> {
    telemetry::init("warn", std::io::stderr);
    let settings = settings::load(config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(registrar::explain::explain(
        &settings,
        request,
        &mut std::io::stdout().lock(),
    ))?;
    Ok(())
}

fn check_config(config: Option<PathBuf>) -> anyhow::Result<()> {
    let raw = settings::load_raw(config.as_deref())?;
    let text = toml::to_string_pretty(&raw.redacted()).context("failed to print the settings")?;
    println!("{text}");
    raw.validate()?;
    eprintln!("settings are valid");
    Ok(())
}

//! The `registrar` command line: `serve` (the default) runs the daemon
//! (SIGTERM drains and stops it; SIGHUP reloads services and policies),
//! `check-config` prints the effective settings with secrets redacted (and
//! warns about what would hurt in production), `dkim-record` the DKIM key's
//! DNS record, `invite`, `link`, `customers`, `backup` and `restore` are the
//! operator's commands (`operator`), `webhooks` looks after the webhook
//! queues (`webhooks::operate`), `api-token` makes a customer API token,
//! `replay` runs fixtures through the real pipeline, and `explain` shows the
//! decision for one message rule by rule.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use registrar::app::Application;
use registrar::store::Store;
use registrar::telemetry::LogFormat;
use registrar::webhooks::operate as webhooks;
use registrar::{operator, settings, shutdown, telemetry};
use std::path::PathBuf;

/// mimalloc instead of the system allocator: many small allocations per
/// message (parsing, rendering, MIME) are freed on other threads than the
/// ones that made them, which glibc's malloc serves slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Invite a customer: creates the pending account (or reuses a pending
    /// one) and queues the invitation mail with an activation link.
    Invite {
        email: String,
        /// The service the customer is invited to (its id).
        #[arg(long)]
        service: String,
        /// The customer's name, shown in the mail and on the activation page.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the DNS TXT record that publishes the DKIM key (the global one,
    /// or the one signing a service's mail).
    DkimRecord {
        /// The service whose key to print (its id).
        #[arg(long)]
        service: Option<String>,
    },
    /// Print a fresh activation link for a pending customer, to hand over;
    /// the previous link stops working.
    Link { email: String },
    /// List, show, disable, enable, export or erase customers.
    Customers {
        #[command(subcommand)]
        command: CustomersCommand,
    },
    /// Copy the database to FILE while the daemon runs, and check the copy.
    Backup { file: PathBuf },
    /// Replace the database with the backup FILE (checked first); refuses
    /// while the daemon runs.
    Restore { file: PathBuf },
    /// Print a new customer API token and the digest to put in
    /// `[admin] api_tokens`.
    ApiToken,
    /// List, retry or test the webhook endpoints' queues.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Run .eml files through the real pipeline and print each decision.
    Replay(registrar::replay::Args),
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
        /// SMTP client address (default 127.0.0.1); with --relay, the
        /// original client the relay named.
        #[arg(long, value_name = "IP")]
        client_ip: Option<std::net::IpAddr>,
        /// HELO name (default localhost).
        #[arg(long)]
        helo: Option<String>,
        /// The relay that handed the message over and named the client with
        /// XFORWARD (the inbound record's relay_ip).
        #[arg(long, value_name = "IP")]
        relay: Option<std::net::IpAddr>,
        /// Database to read the sender's state from (default: store.path).
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CustomersCommand {
    /// One customer a line, newest first.
    List {
        #[arg(long, value_parser = ["pending", "active", "disabled"])]
        status: Option<String>,
        /// Only customers of this service (its id).
        #[arg(long)]
        service: Option<String>,
    },
    /// A customer and every decision recorded for the address.
    Show { email: String },
    /// Disable an account and end its sessions.
    Disable { email: String },
    /// Enable an account again.
    Enable { email: String },
    /// Print everything kept about an address as JSON (a data-protection
    /// request).
    Export { email: String },
    /// Erase an address: account, tokens, sessions, stored mail and replies;
    /// its decisions stay, anonymised.
    Erase { email: String },
    /// Allow mail to an address again after its owner followed "I did not
    /// ask for this" (only an operator can).
    Unsuppress { email: String },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// Each endpoint's queue, then the newest events (at most 100).
    List {
        #[arg(long, value_parser = ["queued", "delivered", "dead"])]
        status: Option<String>,
        /// Only events of this endpoint (its name).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Queue dead events again: these event ids, or every dead event (of
    /// one endpoint, with --endpoint).
    Retry {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(value_name = "EVENT_ID")]
        events: Vec<String>,
    },
    /// Send a signed `webhook.test` event to every endpoint (or one) now.
    Test {
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Print a new signing secret (whsec_…) for an endpoint.
    Secret,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Everything the daemon and its commands write (the database, its WAL,
    // mail files) is private to their user; the code also creates each with
    // a private mode, this covers what a library creates for us.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Invite {
            email,
            service,
            name,
        } => operate(cli.config, |op| {
            op.invite(&email, &service, name.as_deref())
        }),
        Command::Link { email } => operate(cli.config, |op| op.link(&email)),
        Command::DkimRecord { service } => {
            let settings = settings::load(cli.config.as_deref())?;
            print!("{}", operator::dkim_record(&settings, service.as_deref())?);
            Ok(())
        }
        Command::Customers { command } => operate(cli.config, |op| match command {
            CustomersCommand::List { status, service } => {
                op.list(status.as_deref(), service.as_deref())
            }
            CustomersCommand::Show { email } => op.show(&email),
            CustomersCommand::Disable { email } => op.set_enabled(&email, false),
            CustomersCommand::Enable { email } => op.set_enabled(&email, true),
            CustomersCommand::Export { email } => op.export(&email),
            CustomersCommand::Erase { email } => op.erase(&email),
            CustomersCommand::Unsuppress { email } => op.unsuppress(&email),
        }),
        Command::Backup { file } => {
            let settings = settings::load(cli.config.as_deref())?;
            print!("{}", operator::backup(&settings, &file)?);
            Ok(())
        }
        Command::Restore { file } => {
            let settings = settings::load(cli.config.as_deref())?;
            print!("{}", operator::restore(&settings, &file)?);
            Ok(())
        }
        Command::ApiToken => {
            let (token, digest) = registrar::domain::ApiTokens::generate();
            println!("token:  {token}\ndigest: {digest}");
            Ok(())
        }
        Command::Webhooks { command } => webhooks_command(cli.config, command),
        Command::Replay(args) => {
            telemetry::init("warn", LogFormat::Text, std::io::stderr);
            registrar::replay::command(cli.config.as_deref(), args)
        }
        Command::Explain {
            file,
            service,
            envelope_from,
            client_ip,
            helo,
            relay,
            db,
        } => {
            let request = registrar::explain::ExplainRequest {
                file,
                service,
                envelope_from,
                client_ip,
                helo,
                relay,
                db,
            };
            explain(cli.config, &request)
        }
    }
}

/// Runs one operator command against the configured database and prints
/// what it reports.
fn operate(
    config: Option<PathBuf>,
    command: impl FnOnce(&operator::Operator) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let settings = settings::load(config.as_deref())?;
    let op = operator::Operator::open(settings)?;
    print!("{}", command(&op)?);
    Ok(())
}

/// Runs one `registrar webhooks` command and prints what it reports.
fn webhooks_command(config: Option<PathBuf>, command: WebhooksCommand) -> anyhow::Result<()> {
    if let WebhooksCommand::Secret = command {
        print!("{}", webhooks::secret());
        return Ok(());
    }
    let settings = settings::load(config.as_deref())?;
    let out = match command {
        WebhooksCommand::List { status, endpoint } => {
            let store = open_store(&settings)?;
            webhooks::list(&store, &settings, status.as_deref(), endpoint.as_deref())?
        }
        WebhooksCommand::Retry { endpoint, events } => {
            let store = open_store(&settings)?;
            webhooks::retry(&store, endpoint.as_deref(), &events)?
        }
        WebhooksCommand::Test { endpoint } => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?
                .block_on(webhooks::test(&settings, endpoint.as_deref()))?
        }
        WebhooksCommand::Secret => String::new(),
    };
    print!("{out}");
    Ok(())
}

/// The daemon's database, for a tool beside it (with a metrics registry
/// nobody scrapes).
fn open_store(settings: &settings::Settings) -> anyhow::Result<Store> {
    Store::open(
        &settings.store.path,
        settings.store.max_batch,
        registrar::metrics::Metrics::new(),
    )
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = settings::load(config.as_deref())?;
    telemetry::init("info", settings.log.format, std::io::stdout);
    raise_descriptor_limit(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registrar")
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(settings).await?;
        let stop = app.shutdown_handle();
        // Both handlers are in place before systemd hears READY=1.
        let stop_signals = shutdown::StopSignals::install().context("failed to catch SIGTERM")?;
        tokio::spawn(async move {
            stop_signals.recv().await;
            stop.trigger();
        });
        tokio::spawn(
            registrar::reload::on_hangup(config.clone(), app.live_settings())
                .context("failed to catch SIGHUP")?,
        );
        // Tell systemd (Type=notify) that both listeners are bound. Without
        // NOTIFY_SOCKET this does nothing.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        app.run_until_stopped().await
    })?;
    // Every session was drained or cut by `run_until_stopped`; none that
    // was cut had heard a 250.
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one (systemd's
/// default soft limit is 1024, its hard limit far higher), and warns when
/// the listeners' caps together could still reach it: then a flood on one
/// listener would stop the others from accepting.
fn raise_descriptor_limit(settings: &settings::Settings) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error.message = %error, "could not raise the open-file limit");
        }
    }
    let current = getrlimit(Resource::Nofile).current;
    // Two descriptors per SMTP session at most (socket, a file now and
    // then), one per HTTP connection, and room for the store and the rest.
    let needed =
        settings.http.max_connections as u64 + 2 * u64::from(settings.smtp.max_sessions) + 16 + 64;
    if let Some(current) = current
        && current < needed
    {
        tracing::warn!(
            open_files = current,
            needed,
            "the open-file limit is below what http.max_connections and smtp.max_sessions can use; \
             raise LimitNOFILE or lower the caps"
        );
    }
}

fn explain(
    config: Option<PathBuf>,
    request: &registrar::explain::ExplainRequest,
) -> anyhow::Result<()> {
    telemetry::init("warn", LogFormat::Text, std::io::stderr);
    let settings = settings::load(config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(registrar::explain::explain(
        &settings,
        request,
        registrar::smtp::intake::MAIL_ANSWERS,
        &mut std::io::stdout().lock(),
    ))?;
    Ok(())
}

fn check_config(config: Option<PathBuf>) -> anyhow::Result<()> {
    let raw = settings::load_raw(config.as_deref())?;
    let text = toml::to_string_pretty(&raw.redacted()).context("failed to print the settings")?;
    println!("{text}");
    let settings = raw.validate()?;
    for warning in settings::warnings(&settings) {
        eprintln!("warning: {warning}");
    }
    eprintln!("settings are valid");
    Ok(())
}

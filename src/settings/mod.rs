//! Settings: embedded defaults, then an optional TOML file, then
//! `REGISTRAR__SECTION__KEY` environment variables; validated once at start-up
//! into typed settings that hold domain types.
//!
//! Validation reports every bad key at once, so an operator fixes a
//! configuration in one pass.
//!
//! `raw` holds the settings as written (serde), `validate` turns them into
//! the typed settings below, one file per section.

mod live;
mod raw;
mod validate;

pub use live::LiveSettings;
pub use raw::{
    RawActivation, RawCompany, RawHttp, RawOutbound, RawPassword, RawPolicy, RawRateLimits,
    RawSenderAuth, RawService, RawSession, RawSettings, RawSmtp, RawStore,
};

use crate::domain::{EmailAddress, one_of};
use crate::policy::ServicePolicy;
use crate::sender_auth::DnsSource;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The embedded defaults (config/default.toml).
pub const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Validated settings for the whole daemon.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smtp: SmtpSettings,
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub outbound: OutboundSettings,
    pub activation: ActivationSettings,
    pub password: PasswordSettings,
    pub session: SessionSettings,
    pub rate_limits: RateLimitSettings,
    pub sender_auth: SenderAuthSettings,
    pub services: Vec<Service>,
}

/// How the `dmarc` sender-authentication mode reaches DNS.
#[derive(Debug, Clone)]
pub struct SenderAuthSettings {
    pub dns: DnsSource,
}

/// The SMTP listener: where it listens and every limit it enforces.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub listen: SocketAddr,
    pub hostname: String,
    /// Advertised as `SIZE`; a bigger message is answered `552 5.3.4`.
    pub max_message_bytes: usize,
    /// Header section cap (bytes before the first empty line).
    pub max_header_bytes: usize,
    /// Longest command line, CRLF included (`500 5.5.2` beyond it).
    pub max_command_line_bytes: usize,
    /// Accepted recipients per message (`452 4.5.3` beyond it).
    pub max_recipients: u32,
    /// Concurrent sessions in all (`421 4.7.0` beyond it).
    pub max_sessions: u32,
    /// Concurrent sessions per client address (IPv6: per /64).
    pub max_sessions_per_ip: u32,
    /// New connections per client address in any 60 seconds.
    pub max_connections_per_ip_per_minute: u32,
    /// Messages (ends of DATA) per session.
    pub max_messages_per_session: u32,
    /// Refused commands per session before `421 4.7.0 too many errors`.
    pub max_errors_per_session: u32,
    /// Longest wait for the next command.
    pub idle_timeout: Duration,
    /// Longest time one command line may take once it has started; also the
    /// grace period before the minimum data rate applies to a message body.
    pub command_timeout: Duration,
    /// Longest a whole session may last.
    pub session_timeout: Duration,
    /// Slowest acceptable message body, in bytes per second.
    pub min_data_rate: u32,
    /// Pause before the greeting; a client talking in it is an early talker.
    pub greeting_delay: Duration,
    /// At shutdown, how long sessions in DATA may take to finish.
    pub shutdown_grace: Duration,
    /// Stress mode, as Postfix has it: at this many open sessions or more,
    /// the idle and command timeouts below replace the normal ones.
    pub stress_sessions: u32,
    pub stress_idle_timeout: Duration,
    pub stress_command_timeout: Duration,
    pub null_sender: NullSender,
    /// Certificate and key for STARTTLS; `None` turns STARTTLS off.
    pub tls: Option<TlsFiles>,
}

/// What the listener does with `MAIL FROM:<>` (bounces and other notices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullSender {
    /// Accept and record it; policy suppresses it, so nobody is registered
    /// and nothing is answered.
    Accept,
    /// Refuse at MAIL with `550 5.7.1`.
    Refuse,
}

impl std::str::FromStr for NullSender {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(text, &[("accept", Self::Accept), ("refuse", Self::Refuse)])
    }
}

/// PEM files for STARTTLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub max_batch: usize,
    /// How long the raw bytes of an accepted message are kept.
    pub raw_retention: Duration,
    /// How far back a retried message is recognised as a copy.
    pub idempotency_window: Duration,
    /// How long inbound metadata (and delivered replies) are kept.
    pub inbound_retention: Duration,
    /// How long decision records are kept, unless they are about an
    /// existing customer.
    pub decision_retention: Duration,
    /// Rows one purge step deletes (one writer job).
    pub purge_batch_rows: usize,
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Relay URL; `None` writes `.eml` files to `folder`.
    pub relay: Option<Url>,
    pub username: String,
    pub password: SecretString,
    pub folder: PathBuf,
    pub from_address: EmailAddress,
    /// `None` is the null sender.
    pub envelope_from: Option<EmailAddress>,
    pub send_timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub poll_interval: Duration,
    /// Replies delivered at once, over as many pooled relay connections.
    pub parallel_deliveries: usize,
}

#[derive(Debug, Clone)]
pub struct ActivationSettings {
    pub token_ttl: Duration,
    /// Pending customers older than this are purged with their tokens.
    pub pending_expiry: Duration,
    /// How often the purge job runs.
    pub purge_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub max_length: usize,
    pub max_concurrent_hashes: usize,
    /// Argon2id cost: memory in KiB, iterations, lanes. Validated to be at
    /// least m=19456, t=2, p=1.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

/// The least argon2id cost accepted (OWASP's first recommendation).
pub const ARGON2_MIN_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_MIN_ITERATIONS: u32 = 2;

/// Limits on what one client or one address may do on the web side within
/// `window`. They are kept in memory, so a restart forgets them.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub window: Duration,
    /// "Create an account" and "send me a new link" requests per client IP.
    pub registrations_per_ip: u32,
    /// ... and per address (plus-tag ignored).
    pub registrations_per_address: u32,
    /// Failed sign-ins per account (by address, known or not).
    pub failed_logins_per_account: u32,
    /// Failed sign-ins per client IP.
    pub failed_logins_per_ip: u32,
    /// Requests with an unknown, expired or used activation token per IP.
    pub invalid_tokens_per_ip: u32,
    /// Activations (password set, argon2 run) per client IP.
    pub activations_per_ip: u32,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
}

/// A help-desk service that customers register for.
#[derive(Debug, Clone)]
pub struct Service {
    /// Short id used in URLs, the CLI and records.
    pub id: String,
    /// Display name used in mail and on pages.
    pub name: String,
    pub support_addresses: Vec<EmailAddress>,
    pub policy: ServicePolicy,
}

impl Settings {
    /// The service that owns a support address, if any.
    pub fn service_for_address(&self, address: &EmailAddress) -> Option<&Service> {
        let key = address.identity_key();
        self.services.iter().find(|service| {
            service
                .support_addresses
                .iter()
                .any(|a| a.identity_key() == key)
        })
    }

    /// The service with this id, if any.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.id == id)
    }
}

/// Settings could not be loaded or are invalid.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("failed to read settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid settings:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Loads the layered settings and validates them.
///
/// # Errors
/// `SettingsError::Load` when a layer cannot be read or has the wrong shape;
/// `SettingsError::Invalid` listing every key whose value is not acceptable.
pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
    load_raw(file)?.validate()
}

/// Loads the layered settings without validating them (for `check-config`).
///
/// # Errors
/// As `load`, for reading only.
pub fn load_raw(file: Option<&Path>) -> Result<RawSettings, SettingsError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    builder = builder.add_source(
        Environment::with_prefix("REGISTRAR")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("policy.denylist")
            .with_list_parse_key("policy.trusted_relays")
            .with_list_parse_key("sender_auth.nameservers"),
    );
    Ok(builder.build()?.try_deserialize()?)
}

#[cfg(test)]
mod tests;

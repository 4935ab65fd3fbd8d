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
mod relay;
mod validate;

pub use live::LiveSettings;
pub use raw::{
    RawActivation, RawAdmin, RawCircuitBreaker, RawCompany, RawDkim, RawHttp, RawLdap, RawLog,
    RawOidc, RawOidcProviders, RawOutbound, RawPassword, RawPolicy, RawRateLimits, RawSenderAuth,
    RawService, RawSession, RawSettings, RawSmtp, RawStore, RawTemplates, RawWebhook,
    RawWebhookDelivery,
};
pub use relay::{REDACTED, RelayUrl, redact_url};

use crate::domain::{ApiTokens, EmailAddress, EventKind, IpRange, Language, WebhookSecret, one_of};
use crate::policy::ServicePolicy;
use crate::sender_auth::DnsSource;
use crate::telemetry::LogFormat;
use crate::wording::Wording;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The embedded defaults (config/default.toml).
pub const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Validated settings for the whole daemon.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smtp: SmtpSettings,
    pub http: HttpSettings,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub outbound: OutboundSettings,
    pub activation: ActivationSettings,
    pub password: PasswordSettings,
    pub session: SessionSettings,
    pub rate_limits: RateLimitSettings,
    pub circuit_breaker: CircuitBreakerSettings,
    pub sender_auth: SenderAuthSettings,
    /// The DKIM key for `outbound.from_address`'s domain, when configured.
    pub dkim: Option<DkimSettings>,
    /// The templates and strings of every mail and page: the embedded ones,
    /// with the operator's `[templates] dir` laid over them.
    pub wording: Arc<Wording>,
    pub log: LogSettings,
    /// "Sign in with Google" (any OpenID Connect issuer), when configured.
    pub oidc: Option<OidcSettings>,
    /// "Sign in with your company account", when configured.
    pub ldap: Option<LdapSettings>,
    /// The endpoints customer events are sent to (`[[webhooks]]`).
    pub webhooks: Vec<WebhookEndpoint>,
    pub webhook_delivery: WebhookDelivery,
    pub services: Vec<Service>,
}

/// A `[[webhooks]]` endpoint.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    /// Unique among the endpoints; what the database keys its queue by.
    pub name: String,
    /// https, or http on loopback.
    pub url: Url,
    pub secret: WebhookSecret,
    /// The event kinds it gets.
    pub events: Vec<EventKind>,
}

impl WebhookEndpoint {
    /// Whether this endpoint gets events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }
}

/// How webhooks are delivered (`[webhook_delivery]`).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// Limit on each request, connecting included.
    pub timeout: Duration,
    /// The first retry's delay; each later one doubles, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// An event not delivered this long after it was queued is dead.
    pub max_age: Duration,
    /// How often an idle endpoint looks for due events (queued by another
    /// process, or due for a retry) when nothing wakes it.
    pub poll_interval: Duration,
    /// Most due events an endpoint's worker takes from the queue at once.
    pub batch: usize,
}

/// An OpenID Connect provider (`[oidc.google]`).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The issuer; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    /// The service whose policy admits new customers, and which they join.
    pub service: String,
    /// Limit on each request to the provider.
    pub timeout: Duration,
}

/// How a directory connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapSecurity {
    /// `ldap://` without TLS (loopback tests; never on a network).
    Plain,
    /// `ldap://` upgraded with StartTLS before any bind.
    StartTls,
    /// `ldaps://`.
    Ldaps,
}

/// The directory (`[ldap]`).
#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub url: Url,
    pub security: LdapSecurity,
    /// PEM file of the CA that signed the directory's certificate; `None`
    /// trusts the public web roots.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: SecretString,
    pub base_dn: String,
    /// A filter with `{login}` where the escaped login goes.
    pub user_filter: String,
    /// DN of a group the user must be a member of (`memberOf`).
    pub required_group: Option<String>,
    pub mail_attribute: String,
    pub name_attribute: String,
    /// Limit on each directory operation.
    pub timeout: Duration,
    /// The service whose policy admits new customers, and which they join.
    pub service: String,
}

/// A DKIM key: `d=` is the domain of the From address it signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSettings {
    pub selector: String,
    /// PEM private key (RSA of 2048 bits or more, or Ed25519); checked when
    /// the settings are validated, loaded when the mailer starts.
    pub key_file: PathBuf,
}

/// How the daemon writes its log (`serve` only; the tools log text to
/// stderr).
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    pub format: LogFormat,
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
    /// Stress mode, as Postfix has it: with at least this percentage of
    /// `max_sessions` open (`stress_sessions`), the stress timeouts below
    /// replace the normal ones in every session, until a tenth of
    /// `max_sessions` fewer are open.
    pub stress_sessions_percent: u32,
    /// The idle timeout under stress.
    pub stress_idle_timeout: Duration,
    /// The command timeout (and a body's grace period) under stress.
    pub stress_command_timeout: Duration,
    pub null_sender: NullSender,
    /// The MTAs in front of us: exempt from the per-client limits (global
    /// caps still apply), and the only clients that may name the original
    /// client with `XFORWARD`.
    pub relays: Vec<IpRange>,
    /// Certificate and key for STARTTLS; `None` turns STARTTLS off.
    pub tls: Option<TlsFiles>,
}

impl SmtpSettings {
    /// Whether `ip` is one of the MTAs in front of us.
    pub fn is_relay(&self, ip: IpAddr) -> bool {
        self.relays.iter().any(|range| range.contains(ip))
    }

    /// Open sessions at which stress mode begins: `stress_sessions_percent`
    /// of `max_sessions`, rounded up, at least one.
    pub fn stress_sessions(&self) -> u32 {
        let sessions =
            u64::from(self.max_sessions) * u64::from(self.stress_sessions_percent.min(100));
        u32::try_from(sessions.div_ceil(100))
            .unwrap_or(self.max_sessions)
            .max(1)
    }
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

/// The public HTTP listener: where it listens, the URL customers reach it
/// at, and the caps every connection and request is held to.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub max_body_bytes: usize,
    /// Open connections at once; further ones are answered `503` and closed.
    pub max_connections: usize,
    /// Longest a request head may take to arrive, from the connection's
    /// start or from the end of the previous response.
    pub header_read_timeout: Duration,
    /// Longest a whole request (body and handler) may take; then `408`.
    pub request_timeout: Duration,
    /// An idle kept-alive connection is closed after this (at most
    /// `header_read_timeout`).
    pub keep_alive: Duration,
    /// Peers whose forwarded-client header is believed.
    pub trusted_proxies: Vec<IpRange>,
    /// Which header a trusted proxy names the client in.
    pub forwarded_header: ForwardedHeader,
}

/// The header a trusted reverse proxy names the client in; the other one is
/// never read, so a client cannot slip an address past the proxy in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, most others).
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[
                ("x-forwarded-for", Self::XForwardedFor),
                ("forwarded", Self::Forwarded),
            ],
        )
    }
}

/// The admin listener (`/metrics`, `/healthz`); `None` serves them nowhere.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: Option<SocketAddr>,
    /// The customer API's tokens; none turns the API off.
    pub api_tokens: ApiTokens,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub max_batch: usize,
    /// How long the raw bytes of an accepted message are kept.
    pub raw_retention: Duration,
    /// The largest the database may grow, in bytes; `None` is the disk's
    /// size. Past it, writes fail as on a full disk (`452 4.3.1`).
    pub max_size_bytes: Option<u64>,
    /// Raw message bytes kept per client network and in all, per hour.
    pub raw_quota: RawQuota,
    /// How long a retried message is recognised as a copy of one already
    /// decided (by Message-ID and sender, or by content).
    pub idempotency_window: Duration,
    /// How long the record of an accepted message (envelope, Message-ID,
    /// content hash) is kept.
    pub inbound_retention: Duration,
    /// How long a decision record is kept, unless it is about a customer
    /// who still exists.
    pub decision_retention: Duration,
    /// The most rows one step of the purge deletes.
    pub purge_batch_rows: usize,
}

/// How many raw message bytes are kept per hour; past a quota a message is
/// still decided and answered, but its raw bytes are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawQuota {
    pub per_client_per_hour: u64,
    pub per_hour: u64,
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Relay URL; `None` writes `.eml` files to `folder`.
    pub relay: Option<RelayUrl>,
    pub username: String,
    pub password: SecretString,
    pub folder: PathBuf,
    /// How long delivered `.eml` files stay in `folder`.
    pub folder_retention: Duration,
    pub from_address: EmailAddress,
    /// `None` is the null sender.
    pub envelope_from: Option<EmailAddress>,
    /// Each reply's envelope sender is `envelope_from` with a random token
    /// (`local+TOKEN@domain`), so a delivery report names the reply.
    pub verp: Option<crate::domain::Verp>,
    pub send_timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub poll_interval: Duration,
    /// `/healthz` answers `503` once the oldest queued reply has waited
    /// longer than this.
    pub max_queue_age: Duration,
    /// Replies the outbox delivers at once, each over its own relay
    /// connection (kept open between rounds); their results are recorded in
    /// one store write per round.
    pub parallel_deliveries: usize,
}

#[derive(Debug, Clone)]
pub struct ActivationSettings {
    pub token_ttl: Duration,
    /// Pending customers older than this are purged with their tokens.
    pub pending_expiry: Duration,
    /// How often the purge job runs.
    pub purge_interval: Duration,
    /// How long a password-reset link stays valid.
    pub reset_ttl: Duration,
    /// How long an emailed sign-in link stays valid.
    pub sign_in_link_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub max_length: usize,
    pub max_concurrent_hashes: usize,
    /// Hashes and verifications waiting for a turn; beyond it the answer
    /// is `503` with `Retry-After`.
    pub max_queued_hashes: usize,
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
    /// Failed sign-ins for one account (by address, known or not) from one
    /// client: a client locks out nobody but itself.
    pub failed_logins_per_account: u32,
    /// Failed sign-ins per client IP.
    pub failed_logins_per_ip: u32,
    /// Requests with an unknown, expired or used activation token per IP.
    pub invalid_tokens_per_ip: u32,
    /// Activations (password set, argon2 run) per client IP.
    pub activations_per_ip: u32,
}

/// The global brake on new senders: past `new_senders_per_minute`
/// registrations of addresses we never saw (all services together), further
/// new senders are told to try later (`451 4.7.1`) and are not answered, so
/// a flood of forged senders never becomes a flood of outbound mail.
#[derive(Debug, Clone, Copy)]
pub struct CircuitBreakerSettings {
    pub new_senders_per_minute: u32,
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
    /// The language of its mail and pages; `None`: the customer's.
    pub language: Option<Language>,
    /// The From address of its mail; `None`: `outbound.from_address`.
    pub from_address: Option<EmailAddress>,
    /// Its own DKIM key, for its own From domain.
    pub dkim: Option<DkimSettings>,
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

    /// The From address of a service's mail.
    pub fn from_address<'a>(&'a self, service: &'a Service) -> &'a EmailAddress {
        service
            .from_address
            .as_ref()
            .unwrap_or(&self.outbound.from_address)
    }

    /// Whether this looks like a production set-up: customers reach a
    /// public URL that is not loopback, or mail goes to a relay.
    pub fn production_shaped(&self) -> bool {
        let loopback = match self.http.public_url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => {
                name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost")
            }
            None => true,
        };
        !loopback || self.outbound.relay.is_some()
    }

    /// The services whose mail would go out unsigned: neither their own key
    /// nor the global one (whose `d=` is `outbound.from_address`'s domain)
    /// signs for their From domain.
    pub fn unsigned_services(&self) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|service| {
                service.dkim.is_none()
                    && (self.dkim.is_none()
                        || self.from_address(service).domain()
                            != self.outbound.from_address.domain())
            })
            .collect()
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

/// What valid settings would still get wrong in production, for
/// `registrar check-config`: mail that goes out unsigned from a
/// production-shaped set-up (a relay, or a public URL that is not loopback).
pub fn warnings(settings: &Settings) -> Vec<String> {
    if !settings.production_shaped() {
        return Vec::new();
    }
    settings
        .unsigned_services()
        .into_iter()
        .map(|service| {
            format!(
                "service {} sends mail from {} without a DKIM signature: receivers are likely to \
                 file it as spam; set [dkim] selector and key_file (or the service's own dkim \
                 table) and publish the record `registrar dkim-record` prints",
                service.id,
                settings.from_address(service)
            )
        })
        .collect()
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
            .with_list_parse_key("http.trusted_proxies")
            .with_list_parse_key("policy.denylist")
            .with_list_parse_key("policy.trusted_relays")
            .with_list_parse_key("smtp.relays")
            .with_list_parse_key("sender_auth.nameservers")
            .with_list_parse_key("admin.api_tokens"),
    );
    Ok(builder.build()?.try_deserialize()?)
}

#[cfg(test)]
mod tests;

//! The settings as written: serde structs that mirror config/default.toml
//! key for key, before any validation.

use crate::settings::relay::{REDACTED, redact_url_text};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Settings as written, before validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub smtp: RawSmtp,
    pub http: RawHttp,
    pub admin: RawAdmin,
    pub store: RawStore,
    pub outbound: RawOutbound,
    pub activation: RawActivation,
    pub password: RawPassword,
    pub session: RawSession,
    pub rate_limits: RawRateLimits,
    pub policy: RawPolicy,
    pub circuit_breaker: RawCircuitBreaker,
    #[serde(default)]
    pub sender_auth: RawSenderAuth,
    /// DKIM signing of the mail we send.
    #[serde(default)]
    pub dkim: RawDkim,
    /// The operator's own templates and strings.
    #[serde(default)]
    pub templates: RawTemplates,
    pub log: RawLog,
    /// OpenID Connect providers; only `google` is known (any issuer).
    #[serde(default, skip_serializing_if = "RawOidcProviders::is_empty")]
    pub oidc: RawOidcProviders,
    /// The directory for "Sign in with your company account".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<RawLdap>,
    /// How webhooks are delivered (every endpoint alike).
    pub webhook_delivery: RawWebhookDelivery,
    /// `[[webhooks]]`: the endpoints customer events are sent to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<RawWebhook>,
    pub services: Vec<RawService>,
}

/// One `[[webhooks]]` endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// How the endpoint is named in the database, the CLI and metrics;
    /// default: the URL's host and path.
    #[serde(default)]
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub secret_file: PathBuf,
    /// Event types; empty: every lifecycle event (not `customer.signed_in`).
    #[serde(default)]
    pub events: Vec<String>,
}

/// `[webhook_delivery]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookDelivery {
    pub timeout_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    pub max_age_hours: u64,
    pub poll_secs: u64,
    pub batch: usize,
}

/// `[oidc.*]` tables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidcProviders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<RawOidc>,
}

impl RawOidcProviders {
    fn is_empty(&self) -> bool {
        self.google.is_none()
    }
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(default)]
    pub client_secret_file: PathBuf,
    #[serde(default = "google_issuer")]
    pub issuer: String,
    #[serde(default)]
    pub service: String,
    #[serde(default = "oidc_timeout")]
    pub timeout_secs: u64,
}

fn google_issuer() -> String {
    "https://accounts.google.com".into()
}

fn oidc_timeout() -> u64 {
    10
}

/// `[ldap]`: the directory and how customers are found in it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub ca_file: PathBuf,
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password: String,
    #[serde(default)]
    pub bind_password_file: PathBuf,
    pub base_dn: String,
    #[serde(default = "ldap_user_filter")]
    pub user_filter: String,
    #[serde(default)]
    pub required_group: String,
    #[serde(default = "ldap_mail")]
    pub mail_attribute: String,
    #[serde(default = "ldap_name")]
    pub name_attribute: String,
    #[serde(default = "ldap_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub service: String,
}

fn ldap_user_filter() -> String {
    "(&(objectClass=person)(|(userPrincipalName={login})(mail={login})))".into()
}

fn ldap_mail() -> String {
    "mail".into()
}

fn ldap_name() -> String {
    "displayName".into()
}

fn ldap_timeout() -> u64 {
    5
}

/// `[templates]`: a folder whose files override the embedded templates and
/// strings (`NAME`, `lang/CODE.toml`; `SERVICE/…` for one service). Empty:
/// the embedded ones alone.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplates {
    #[serde(default)]
    pub dir: PathBuf,
}

/// `[dkim]` (and a service's `dkim` table): the key that signs our mail.
/// Both empty: unsigned.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    #[serde(default)]
    pub selector: String,
    /// PEM private key: RSA (2048 bits or more) or Ed25519.
    #[serde(default)]
    pub key_file: PathBuf,
}

/// How the daemon writes its log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: String,
}

/// DNS for the `dmarc` sender-authentication mode.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSenderAuth {
    /// Name servers to ask; empty uses the system's (resolv.conf).
    pub nameservers: Vec<String>,
    pub dns_timeout_secs: u64,
}

impl Default for RawSenderAuth {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            dns_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub listen: String,
    pub hostname: String,
    pub max_message_bytes: usize,
    pub max_header_bytes: usize,
    pub max_command_line_bytes: usize,
    pub max_recipients: u32,
    pub max_sessions: u32,
    pub max_sessions_per_ip: u32,
    pub max_connections_per_ip_per_minute: u32,
    pub max_messages_per_session: u32,
    pub max_errors_per_session: u32,
    pub idle_timeout_secs: u64,
    pub command_timeout_secs: u64,
    pub session_timeout_secs: u64,
    pub min_data_rate_bytes_per_sec: u32,
    pub greeting_delay_ms: u64,
    pub shutdown_grace_secs: u64,
    pub stress_sessions_percent: u32,
    pub stress_idle_timeout_secs: u64,
    pub stress_command_timeout_secs: u64,
    pub null_sender: String,
    /// The MTAs in front of us (addresses or CIDR blocks).
    pub relays: Vec<String>,
    pub tls_certificate: PathBuf,
    pub tls_key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub public_url: String,
    pub allow_insecure_http: bool,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub header_read_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub keep_alive_secs: u64,
    pub trusted_proxies: Vec<String>,
    pub forwarded_header: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: String,
    /// SHA-256 digests (`sha256:<hex>`) of the customer API's bearer tokens.
    #[serde(default)]
    pub api_tokens: Vec<String>,
    /// A secret file of tokens, one a line.
    #[serde(default)]
    pub api_tokens_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub new_senders_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: PathBuf,
    pub max_batch: usize,
    pub raw_retention_days: u64,
    pub max_size_mb: u64,
    pub raw_bytes_per_client_per_hour: u64,
    pub raw_bytes_per_hour: u64,
    pub idempotency_days: u64,
    pub inbound_retention_days: u64,
    pub decision_retention_days: u64,
    pub purge_batch_rows: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    pub relay: String,
    pub username: String,
    pub password: String,
    pub folder: PathBuf,
    pub folder_retention_hours: u64,
    pub from_address: String,
    pub envelope_from: String,
    /// Send each reply from `local+TOKEN@domain` of `envelope_from` (VERP).
    #[serde(default)]
    pub verp: bool,
    pub send_timeout_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    pub max_attempts: u32,
    pub poll_secs: u64,
    pub max_queue_age_secs: u64,
    pub parallel_deliveries: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawActivation {
    pub token_ttl_hours: u64,
    pub pending_expiry_days: u64,
    pub purge_interval_minutes: u64,
    pub reset_ttl_minutes: u64,
    pub sign_in_link_ttl_minutes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassword {
    pub min_length: usize,
    pub max_length: usize,
    pub max_concurrent_hashes: usize,
    pub max_queued_hashes: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub window_minutes: u64,
    pub registrations_per_ip: u32,
    pub registrations_per_address: u32,
    pub failed_logins_per_account: u32,
    pub failed_logins_per_ip: u32,
    pub invalid_tokens_per_ip: u32,
    pub activations_per_ip: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub idle_timeout_minutes: u64,
    pub absolute_timeout_hours: u64,
}

/// Policy keys; every one optional so a service can override any subset.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub self_registration: Option<String>,
    pub email: Option<bool>,
    pub portal: Option<bool>,
    pub google: Option<bool>,
    pub directory: Option<bool>,
    pub email_link: Option<bool>,
    pub denylist: Option<Vec<String>>,
    pub refusal: Option<String>,
    pub notify_active: Option<bool>,
    pub reply_interval_minutes: Option<i64>,
    pub max_replies_per_day: Option<u32>,
    pub companies: Option<Vec<RawCompany>>,
    pub auto_reply_subjects: Option<Vec<String>>,
    pub max_received: Option<usize>,
    pub service_replies_per_day: Option<u32>,
    pub domain_replies_per_day: Option<u32>,
    pub network_replies_per_day: Option<u32>,
    pub rate_limit_action: Option<String>,
    pub sender_auth: Option<String>,
    pub authserv_id: Option<String>,
    pub trusted_relays: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompany {
    pub name: String,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub id: String,
    pub name: String,
    pub support_addresses: Vec<String>,
    /// The language of this service's mail and pages (en, de, fr, es);
    /// empty: the customer's (Content-Language, Accept-Language), else en.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// The From address of this service's mail; empty: `outbound.from_address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_address: String,
    /// This service's own DKIM key (for its own From domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<RawDkim>,
    #[serde(default)]
    pub policy: RawPolicy,
}

impl RawSettings {
    /// The settings as `check-config` prints them: secrets redacted, the
    /// password and any credentials written into the relay URL.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        let redact = |secret: &mut String| {
            if !secret.is_empty() {
                *secret = REDACTED.into();
            }
        };
        redact(&mut copy.outbound.password);
        if let Some(google) = copy.oidc.google.as_mut() {
            redact(&mut google.client_secret);
        }
        if let Some(ldap) = copy.ldap.as_mut() {
            redact(&mut ldap.bind_password);
        }
        copy.outbound.relay = redact_url_text(&copy.outbound.relay);
        for webhook in &mut copy.webhooks {
            redact(&mut webhook.secret);
        }
        copy
    }
}

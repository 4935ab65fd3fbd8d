//! The settings as written: serde structs that mirror config/default.toml
//! key for key, before any validation.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Settings as written, before validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub smtp: RawSmtp,
    pub http: RawHttp,
    pub store: RawStore,
    pub outbound: RawOutbound,
    pub activation: RawActivation,
    pub password: RawPassword,
    pub session: RawSession,
    pub rate_limits: RawRateLimits,
    pub policy: RawPolicy,
    #[serde(default)]
    pub sender_auth: RawSenderAuth,
    pub services: Vec<RawService>,
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
    pub tls_certificate: PathBuf,
    pub tls_key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub public_url: String,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: PathBuf,
    pub max_batch: usize,
    pub raw_retention_days: u64,
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
    pub from_address: String,
    pub envelope_from: String,
    pub send_timeout_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    pub max_attempts: u32,
    pub poll_secs: u64,
    pub parallel_deliveries: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawActivation {
    pub token_ttl_hours: u64,
    pub pending_expiry_days: u64,
    pub purge_interval_minutes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassword {
    pub min_length: usize,
    pub max_length: usize,
    pub max_concurrent_hashes: usize,
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
    pub denylist: Option<Vec<String>>,
    pub refusal: Option<String>,
    pub notify_active: Option<bool>,
    pub reply_interval_minutes: Option<i64>,
    pub max_replies_per_day: Option<u32>,
    pub companies: Option<Vec<RawCompany>>,
    pub auto_reply_subjects: Option<Vec<String>>,
    pub max_received: Option<usize>,
    pub service_replies_per_day: Option<u32>,
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
    #[serde(default)]
    pub policy: RawPolicy,
}

impl RawSettings {
    /// The settings as `check-config` prints them: secrets redacted.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if !copy.outbound.password.is_empty() {
            copy.outbound.password = "[redacted]".into();
        }
        copy
    }
}

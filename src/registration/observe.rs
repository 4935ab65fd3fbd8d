//! What operators and machines read about the running registrar: the
//! metrics text (with the outbox figures and the webhook queues read at
//! scrape time), whether it is healthy (`/healthz`) and whether it is ready
//! for traffic (`/readyz`); and the one place a decided request is counted.

use crate::domain::Channel;
use crate::metrics::Metrics;
use crate::policy::{AuthVerdict, Decision, RefuseReason, SenderAuthMode, SuppressReason};
use crate::registration::error::RegistrationError;
use crate::registration::{MailOutcome, Registrar};
use crate::store::{self, outbox, webhook_events};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The listeners `/healthz` and `/readyz` look at, as the metrics name them.
/// `admin` counts only when `[admin] listen` configures one.
pub const LISTENERS: [&str; 3] = ["smtp", "http", "admin"];

/// How long one write probe's answer stands: `/healthz` may be fetched
/// often (every few seconds by each monitor), so it costs at most one
/// commit a second.
const PROBE_FRESH: Duration = Duration::from_secs(1);

/// The outcome of the last write probe, shared by concurrent callers.
#[derive(Default)]
pub(super) struct WriteProbe {
    last: Mutex<Option<(Instant, bool)>>,
}

/// What `/healthz` checks, each with its finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The listeners this daemon runs (by metrics name).
    pub listeners: Vec<&'static str>,
    /// Listeners not accepting connections (by metrics name).
    pub listeners_down: Vec<&'static str>,
    /// A row written through the store writer was committed.
    pub database_writable: bool,
    /// How long the oldest queued reply has waited, if the outbox could be
    /// read; `Some(0)` when nothing waits.
    pub oldest_queued_age: Option<Duration>,
    /// The longest a reply may wait before the daemon is unhealthy
    /// (`outbound.max_queue_age_secs`).
    pub max_queue_age: Duration,
}

impl Health {
    /// Every check passed.
    pub fn healthy(&self) -> bool {
        self.listeners_down.is_empty()
            && self.database_writable
            && self
                .oldest_queued_age
                .is_some_and(|age| age <= self.max_queue_age)
    }
}

impl Registrar {
    /// The metrics handle every component of this daemon reports through.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics text, with the outbox depth and the age of its oldest
    /// reply read now (two indexed queries).
    ///
    /// # Errors
    /// The outbox could not be read.
    pub async fn metrics_text(&self) -> Result<String, RegistrationError> {
        let depth = self.store.read(|conn| Ok(outbox::depth(conn)?)).await?;
        let age = depth
            .oldest_queued_at
            .map_or(0, |at| (store::now() - at).max(0));
        self.metrics.set_outbox(depth.queued, age);
        let endpoints = self.settings().webhooks.clone();
        if !endpoints.is_empty() {
            let depths = self
                .store
                .read(|conn| Ok(webhook_events::depths(conn)?))
                .await?;
            let now = store::now();
            for endpoint in &endpoints {
                let (queued, age) = depths
                    .iter()
                    .find(|d| d.endpoint == endpoint.name)
                    .map_or((0, 0), |d| (d.queued, (now - d.oldest_queued_at).max(0)));
                self.metrics.set_webhook_queue(&endpoint.name, queued, age);
            }
        }
        Ok(self.metrics.encode())
    }

    /// The listeners this daemon runs: `LISTENERS`, without `admin` when
    /// none is configured.
    pub fn listeners(&self) -> Vec<&'static str> {
        let admin = self.settings().admin.listen.is_some();
        LISTENERS
            .into_iter()
            .filter(|listener| admin || *listener != "admin")
            .collect()
    }

    /// Whether the daemon can serve: every listener accepts connections and
    /// the database answers a read.
    pub async fn ready(&self) -> bool {
        self.listeners()
            .iter()
            .all(|listener| self.metrics.listener_is_up(listener))
            && self.store.health().await.is_ok()
    }

    /// Whether the daemon is healthy: every listener accepts connections,
    /// the database takes a write, and no reply has waited in the outbox
    /// longer than `outbound.max_queue_age_secs`.
    pub async fn health(&self) -> Health {
        let listeners = self.listeners();
        let listeners_down = listeners
            .iter()
            .copied()
            .filter(|listener| !self.metrics.listener_is_up(listener))
            .collect();
        let database_writable = self.probe_write().await;
        let oldest_queued_age = self
            .store
            .read(|conn| Ok(outbox::depth(conn)?))
            .await
            .ok()
            .map(|depth| {
                let age = depth
                    .oldest_queued_at
                    .map_or(0, |at| (store::now() - at).max(0));
                Duration::from_secs(u64::try_from(age).unwrap_or(0))
            });
        Health {
            listeners,
            listeners_down,
            database_writable,
            oldest_queued_age,
            max_queue_age: self.settings().outbound.max_queue_age,
        }
    }

    /// Writes the health row unless a probe answered within `PROBE_FRESH`;
    /// callers that arrive while a probe runs wait for its answer.
    async fn probe_write(&self) -> bool {
        let mut last = self.write_probe.last.lock().await;
        if let Some((at, writable)) = *last
            && at.elapsed() < PROBE_FRESH
        {
            return writable;
        }
        let writable = match self.store.probe_write().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(error.message = %error, "the database did not take a write");
                false
            }
        };
        *last = Some((Instant::now(), writable));
        writable
    }

    /// Counts a decision that was committed: every new pending customer by
    /// channel, every reply limit that stopped a request.
    pub(super) fn observe_decision(&self, channel: Channel, decision: &Decision, dropped: bool) {
        if matches!(decision, Decision::Register { .. }) && !dropped {
            self.metrics.registration(channel.as_str());
        }
        let limit = match decision {
            Decision::Refuse(RefuseReason::RateLimited)
            | Decision::Suppress(SuppressReason::RateLimited) => "replies_per_address",
            Decision::Refuse(RefuseReason::ServiceBudget)
            | Decision::Suppress(SuppressReason::ServiceBudget) => "service_replies_per_day",
            Decision::Refuse(RefuseReason::DomainBudget)
            | Decision::Suppress(SuppressReason::DomainBudget) => "domain_replies_per_day",
            Decision::Refuse(RefuseReason::NetworkBudget)
            | Decision::Suppress(SuppressReason::NetworkBudget) => "network_replies_per_day",
            _ => return,
        };
        self.metrics.rate_limit_hit(limit);
    }
}

impl Registrar {
    /// Counts a message's outcome (a retried copy is `duplicate`).
    pub(super) fn observe_mail(&self, service: &str, outcome: &MailOutcome) {
        match outcome {
            MailOutcome::Decided { decision, dropped } => {
                self.metrics
                    .message_decided(decision.name(), decision.reason(), service);
                self.observe_decision(Channel::Mail, decision, *dropped);
            }
            MailOutcome::Duplicate => {
                self.metrics
                    .message_decided("duplicate", "duplicate", service);
            }
        }
    }

    /// Counts the verdict of a sender authentication that was run.
    pub(super) fn observe_sender_auth(&self, mode: &SenderAuthMode, verdict: &AuthVerdict) {
        let mode = match mode {
            SenderAuthMode::Off => "off",
            SenderAuthMode::AuthenticationResults(_) => "authentication-results",
            SenderAuthMode::Dmarc => "dmarc",
        };
        let verdict = match verdict {
            AuthVerdict::Off => "off",
            AuthVerdict::Pass(_) => "pass",
            AuthVerdict::Fail(_) => "fail",
            AuthVerdict::TemporaryError(_) => "temporary_error",
        };
        self.metrics.sender_auth_verdict(mode, verdict);
    }
}

/// A fresh probe state for a new registrar.
pub(super) fn write_probe() -> Arc<WriteProbe> {
    Arc::new(WriteProbe::default())
}

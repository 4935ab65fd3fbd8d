//! The metrics registry: every Prometheus metric the daemon exports is
//! declared here, and rendered here (OpenMetrics text, `/metrics`).
//!
//! Components get a `Metrics` handle (an `Arc`, cheap to clone) when they are
//! built, and report what happened through its methods, named for the event
//! (`smtp_reply`, `message_decided`, `group_commit`, …). No component sees a
//! prometheus type, and nothing is a global: a process that builds two
//! daemons (the tests) has two registries. The tools of the command line get
//! a registry nobody scrapes.
//!
//! This module is plumbing, like `shutdown` and `telemetry`: it imports
//! nothing of ours, so the store at the bottom and the listeners at the top
//! can all take it. Label values are the stable names the callers already
//! have (decision and reason names, channel names, reply codes).
//!
//! Some figures are not counted as they happen but set at scrape time by
//! whoever reads them (`registration::observe` reads the outbox through two
//! indexed queries, and the webhook queues through one): the outbox depth
//! and the age of its oldest reply, and each webhook endpoint's queue and
//! the age of its oldest event, since the operator's command-line tools
//! queue mail and events in other processes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The `Content-Type` of `encode`'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

// Label values known in advance. Their series are exported from the first
// scrape, at 0, so `rate()` and a dashboard see them before the first event
// (a series that appears only when it first moves hides that first move).
// A caller naming another value just adds a series.
const SESSION_LIMITS: [&str; 3] = ["sessions", "sessions_per_client", "connections_per_client"];
const SENDER_AUTH_VERDICTS: [(&str, &str); 5] = [
    ("dmarc", "pass"),
    ("dmarc", "fail"),
    ("dmarc", "temporary_error"),
    ("authentication-results", "pass"),
    ("authentication-results", "fail"),
];
const DELIVERY_RESULTS: [&str; 3] = ["delivered", "retry", "dead"];
const SIGN_IN_RESULTS: [(&str, &str); 7] = [
    ("password", "signed_in"),
    ("password", "disabled"),
    ("password", "refused"),
    ("google", "signed_in"),
    ("directory", "signed_in"),
    ("email_link", "signed_in"),
    ("reset_link", "signed_in"),
];
const REGISTRATION_CHANNELS: [&str; 5] = ["mail", "portal", "invitation", "google", "directory"];
const RATE_LIMITS: [&str; 10] = [
    "registrations_per_ip",
    "registrations_per_address",
    "failed_logins_per_account",
    "failed_logins_per_ip",
    "invalid_tokens_per_ip",
    "activations_per_ip",
    "replies_per_address",
    "service_replies_per_day",
    "domain_replies_per_day",
    "network_replies_per_day",
];
/// The limits that protect everybody (`registration::Alarm`'s names).
const LIMITS_REACHED: [&str; 5] = [
    "service_budget",
    "domain_budget",
    "network_budget",
    "new_sender_flood",
    "raw_quota",
];
const PASSWORD_OPERATIONS: [&str; 2] = ["hash", "verify"];
const LISTENERS: [&str; 3] = ["smtp", "http", "admin"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    decision: &'static str,
    reason: &'static str,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    mode: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointResultLabels {
    endpoint: String,
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The handle every component reports through; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    smtp_replies: Family<CodeLabels, Counter>,
    smtp_sessions_open: Gauge,
    smtp_sessions_refused: Family<LimitLabels, Counter>,
    smtp_stress: Gauge,
    smtp_stress_entered: Counter,
    sender_auth_verdicts: Family<VerdictLabels, Counter>,
    outbox_queued: Gauge,
    outbox_oldest_age: Gauge,
    outbox_deliveries: Family<ResultLabels, Counter>,
    activations: Counter,
    sign_ins: Family<SignInLabels, Counter>,
    registrations: Family<ChannelLabels, Counter>,
    rate_limit_hits: Family<LimitLabels, Counter>,
    limits_reached: Family<LimitLabels, Counter>,
    opt_outs: Counter,
    store_batch_jobs: Histogram,
    store_commit_seconds: Histogram,
    password_queue: Gauge,
    password_seconds: Histograms<OperationLabels>,
    listener_up: Family<ListenerLabels, Gauge>,
    webhook_queued: Family<EndpointLabels, Gauge>,
    webhook_oldest_age: Family<EndpointLabels, Gauge>,
    webhook_deliveries: Family<EndpointResultLabels, Counter>,
}

fn batch_buckets() -> Histogram {
    // 1, 2, 4, … 512: the default `store.max_batch` is 256.
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

fn commit_buckets() -> Histogram {
    // 0.5 ms … about 4 s: an fsync on a quiet SSD up to a struggling disk.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

fn hash_buckets() -> Histogram {
    // 5 ms … about 2.5 s: argon2id at the least cost takes tens of ms.
    Histogram::new(exponential_buckets(0.005, 2.0, 10))
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric declared.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("registrar");
        let inner = Inner {
            messages: Family::default(),
            smtp_replies: Family::default(),
            smtp_sessions_open: Gauge::default(),
            smtp_sessions_refused: Family::default(),
            smtp_stress: Gauge::default(),
            smtp_stress_entered: Counter::default(),
            sender_auth_verdicts: Family::default(),
            outbox_queued: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            outbox_deliveries: Family::default(),
            activations: Counter::default(),
            sign_ins: Family::default(),
            registrations: Family::default(),
            rate_limit_hits: Family::default(),
            limits_reached: Family::default(),
            opt_outs: Counter::default(),
            store_batch_jobs: batch_buckets(),
            store_commit_seconds: commit_buckets(),
            password_queue: Gauge::default(),
            password_seconds: Family::new_with_constructor(hash_buckets),
            listener_up: Family::default(),
            webhook_queued: Family::default(),
            webhook_oldest_age: Family::default(),
            webhook_deliveries: Family::default(),
            // Replaced below, once every family is registered in `registry`.
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "messages",
            "Messages to a support address decided, by decision, reason and service (decision \"duplicate\": a retried copy)",
            inner.messages.clone(),
        );
        registry.register(
            "smtp_replies",
            "SMTP replies sent, by code",
            inner.smtp_replies.clone(),
        );
        registry.register(
            "smtp_sessions_open",
            "SMTP sessions open now",
            inner.smtp_sessions_open.clone(),
        );
        registry.register(
            "smtp_sessions_refused",
            "SMTP connections refused with 421 (behind a relay: a forwarded client's transaction refused with 450), by the limit they hit",
            inner.smtp_sessions_refused.clone(),
        );
        registry.register(
            "smtp_stress",
            "1 while the SMTP listener is under stress (open sessions at smtp.stress_sessions_percent of max_sessions or more: short timeouts), else 0",
            inner.smtp_stress.clone(),
        );
        registry.register(
            "smtp_stress_entered",
            "Times the SMTP listener came under stress",
            inner.smtp_stress_entered.clone(),
        );
        registry.register(
            "sender_auth_verdicts",
            "Sender authentication verdicts, by mode and verdict",
            inner.sender_auth_verdicts.clone(),
        );
        registry.register(
            "outbox_queued",
            "Replies waiting in the outbox (read at scrape time)",
            inner.outbox_queued.clone(),
        );
        registry.register(
            "outbox_oldest_queued_age_seconds",
            "Age of the oldest reply waiting in the outbox, 0 when none waits (read at scrape time)",
            inner.outbox_oldest_age.clone(),
        );
        registry.register(
            "outbox_deliveries",
            "Delivery attempts by result: delivered, retry, dead",
            inner.outbox_deliveries.clone(),
        );
        registry.register(
            "activations",
            "Accounts activated (token consumed, password set, signed in)",
            inner.activations.clone(),
        );
        registry.register(
            "sign_ins",
            "Sign-ins by method and result: signed_in, disabled, refused",
            inner.sign_ins.clone(),
        );
        registry.register(
            "registrations",
            "Pending customers created, by the channel they came in by",
            inner.registrations.clone(),
        );
        registry.register(
            "rate_limit_hits",
            "Requests stopped by a rate limit, by limit",
            inner.rate_limit_hits.clone(),
        );
        registry.register(
            "limit_reached",
            "Times a limit that protects everybody was reached, by limit: a reply budget (service, sender domain, client network), the circuit breaker on new senders, the quota on raw mail kept",
            inner.limits_reached.clone(),
        );
        registry.register(
            "opt_outs",
            "Addresses put on the never-mail list by their owner (\"I did not ask for this\")",
            inner.opt_outs.clone(),
        );
        registry.register(
            "webhook_events_queued",
            "Webhook events waiting for delivery, by endpoint (read at scrape time)",
            inner.webhook_queued.clone(),
        );
        registry.register(
            "webhook_oldest_queued_age_seconds",
            "Age of the oldest webhook event waiting, by endpoint, 0 when none waits (read at scrape time)",
            inner.webhook_oldest_age.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by endpoint and result: delivered, retry (failed, tried again later), dead (given up)",
            inner.webhook_deliveries.clone(),
        );
        registry.register(
            "store_batch_jobs",
            "Write jobs per group commit",
            inner.store_batch_jobs.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time a group commit takes, from BEGIN to the end of COMMIT (its fsync)",
            inner.store_commit_seconds.clone(),
        );
        registry.register(
            "password_queue",
            "Argon2id hashes and verifications waiting for a slot",
            inner.password_queue.clone(),
        );
        registry.register(
            "password_hash_seconds",
            "Time one argon2id computation takes, by operation: hash, verify",
            inner.password_seconds.clone(),
        );
        registry.register(
            "listener_up",
            "1 while a listener accepts connections",
            inner.listener_up.clone(),
        );
        let metrics = Self {
            inner: Arc::new(Inner { registry, ..inner }),
        };
        metrics.start_known_series();
        metrics
    }

    /// Creates every series whose labels are known in advance, at 0.
    fn start_known_series(&self) {
        let m = &self.inner;
        for limit in SESSION_LIMITS {
            let _ = m
                .smtp_sessions_refused
                .get_or_create(&LimitLabels { limit });
        }
        for (mode, verdict) in SENDER_AUTH_VERDICTS {
            let _ = m
                .sender_auth_verdicts
                .get_or_create(&VerdictLabels { mode, verdict });
        }
        for result in DELIVERY_RESULTS {
            let _ = m.outbox_deliveries.get_or_create(&ResultLabels { result });
        }
        for (method, result) in SIGN_IN_RESULTS {
            let _ = m.sign_ins.get_or_create(&SignInLabels { method, result });
        }
        for channel in REGISTRATION_CHANNELS {
            let _ = m.registrations.get_or_create(&ChannelLabels { channel });
        }
        for limit in RATE_LIMITS {
            let _ = m.rate_limit_hits.get_or_create(&LimitLabels { limit });
        }
        for limit in LIMITS_REACHED {
            let _ = m.limits_reached.get_or_create(&LimitLabels { limit });
        }
        for operation in PASSWORD_OPERATIONS {
            let _ = m
                .password_seconds
                .get_or_create(&OperationLabels { operation });
        }
        for listener in LISTENERS {
            let _ = m.listener_up.get_or_create(&ListenerLabels { listener });
        }
    }

    /// Every metric, in the OpenMetrics text format (`CONTENT_TYPE`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.inner.registry);
        text
    }

    /// A message to a support address was decided (`decision` and
    /// `reason` are the stable names recorded with it).
    pub fn message_decided(&self, decision: &'static str, reason: &'static str, service: &str) {
        self.inner
            .messages
            .get_or_create(&MessageLabels {
                decision,
                reason,
                service: service.to_owned(),
            })
            .inc();
    }

    /// An SMTP reply went out.
    pub fn smtp_reply(&self, code: u16) {
        self.inner
            .smtp_replies
            .get_or_create(&CodeLabels { code })
            .inc();
    }

    /// An SMTP session was admitted; it counts as open until the guard is
    /// dropped.
    pub fn smtp_session(&self) -> OpenSession {
        self.inner.smtp_sessions_open.inc();
        OpenSession(self.inner.smtp_sessions_open.clone())
    }

    /// An SMTP connection was refused by `limit`.
    pub fn smtp_session_refused(&self, limit: &'static str) {
        self.inner
            .smtp_sessions_refused
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// The SMTP listener came under stress (`true`) or the stress passed.
    pub fn smtp_stress(&self, stressed: bool) {
        self.inner.smtp_stress.set(i64::from(stressed));
        if stressed {
            self.inner.smtp_stress_entered.inc();
        }
    }

    /// A sender was authenticated (or not) in `mode`.
    pub fn sender_auth_verdict(&self, mode: &'static str, verdict: &'static str) {
        self.inner
            .sender_auth_verdicts
            .get_or_create(&VerdictLabels { mode, verdict })
            .inc();
    }

    /// The outbox as read at scrape time.
    pub fn set_outbox(&self, queued: i64, oldest_age_secs: i64) {
        self.inner.outbox_queued.set(queued);
        self.inner.outbox_oldest_age.set(oldest_age_secs);
    }

    /// A webhook endpoint exists: its series start at 0.
    pub fn webhook_endpoint(&self, endpoint: &str) {
        let labels = EndpointLabels {
            endpoint: endpoint.to_owned(),
        };
        let _ = self.inner.webhook_queued.get_or_create(&labels);
        let _ = self.inner.webhook_oldest_age.get_or_create(&labels);
        for result in DELIVERY_RESULTS {
            let _ = self
                .inner
                .webhook_deliveries
                .get_or_create(&EndpointResultLabels {
                    endpoint: endpoint.to_owned(),
                    result,
                });
        }
    }

    /// An endpoint's webhook queue as read at scrape time.
    pub fn set_webhook_queue(&self, endpoint: &str, queued: i64, oldest_age_secs: i64) {
        let labels = EndpointLabels {
            endpoint: endpoint.to_owned(),
        };
        self.inner.webhook_queued.get_or_create(&labels).set(queued);
        self.inner
            .webhook_oldest_age
            .get_or_create(&labels)
            .set(oldest_age_secs);
    }

    /// A webhook delivery attempt to `endpoint` ended with `result`
    /// (`delivered`, `retry`, `dead`).
    pub fn webhook_delivery(&self, endpoint: &str, result: &'static str) {
        self.inner
            .webhook_deliveries
            .get_or_create(&EndpointResultLabels {
                endpoint: endpoint.to_owned(),
                result,
            })
            .inc();
    }

    /// A delivery attempt ended with `result`.
    pub fn delivery(&self, result: &'static str) {
        self.inner
            .outbox_deliveries
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// An account was activated.
    pub fn activation(&self) {
        self.inner.activations.inc();
    }

    /// A sign-in by `method` ended with `result`.
    pub fn sign_in(&self, method: &'static str, result: &'static str) {
        self.inner
            .sign_ins
            .get_or_create(&SignInLabels { method, result })
            .inc();
    }

    /// A pending customer was created by `channel`.
    pub fn registration(&self, channel: &'static str) {
        self.inner
            .registrations
            .get_or_create(&ChannelLabels { channel })
            .inc();
    }

    /// A request was stopped by `limit`.
    pub fn rate_limit_hit(&self, limit: &'static str) {
        self.inner
            .rate_limit_hits
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A limit that protects everybody was reached.
    pub fn limit_reached(&self, limit: &'static str) {
        self.inner
            .limits_reached
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// An address was put on the never-mail list by its owner.
    pub fn opt_out(&self) {
        self.inner.opt_outs.inc();
    }

    /// The store writer committed `jobs` jobs in one transaction that took
    /// `elapsed`.
    pub fn group_commit(&self, jobs: usize, elapsed: Duration) {
        // Batches are at most `store.max_batch`, far below 2^52.
        self.inner.store_batch_jobs.observe(jobs as f64);
        self.inner
            .store_commit_seconds
            .observe(elapsed.as_secs_f64());
    }

    /// A password operation is waiting for a slot until the guard is
    /// dropped (also when its request goes away while waiting).
    pub fn password_waiting(&self) -> Waiting {
        self.inner.password_queue.inc();
        Waiting(self.inner.password_queue.clone())
    }

    /// One argon2id `operation` (`hash`, `verify`) took `elapsed`.
    pub fn password_hashed(&self, operation: &'static str, elapsed: Duration) {
        self.inner
            .password_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// A listener started (`true`) or stopped accepting.
    pub fn listener_up(&self, listener: &'static str, up: bool) {
        self.inner
            .listener_up
            .get_or_create(&ListenerLabels { listener })
            .set(i64::from(up));
    }

    /// Whether a listener accepts connections now.
    pub fn listener_is_up(&self, listener: &'static str) -> bool {
        self.inner
            .listener_up
            .get_or_create(&ListenerLabels { listener })
            .get()
            == 1
    }
}

/// An open SMTP session, counted until dropped.
pub struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A password operation waiting for a slot, counted until dropped.
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_prefix_and_the_text_ends_in_eof() {
        let metrics = Metrics::new();
        metrics.message_decided("register", "new_customer", "demo");
        metrics.smtp_reply(250);
        let session = metrics.smtp_session();
        metrics.smtp_stress(true);
        metrics.group_commit(3, Duration::from_millis(2));

        let text = metrics.encode();

        assert!(
            text.contains(
                "registrar_messages_total{decision=\"register\",reason=\"new_customer\",service=\"demo\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("registrar_smtp_replies_total{code=\"250\"} 1"));
        assert!(text.contains("registrar_smtp_sessions_open 1"));
        assert!(text.contains("registrar_smtp_stress 1"));
        assert!(text.contains("registrar_smtp_stress_entered_total 1"));
        assert!(text.contains("registrar_store_batch_jobs_count 1"));
        assert!(text.contains("registrar_store_batch_jobs_sum 3.0"));
        assert!(text.ends_with("# EOF\n"));
        drop(session);
        metrics.smtp_stress(false);
        let text = metrics.encode();
        assert!(text.contains("registrar_smtp_sessions_open 0"));
        assert!(text.contains("registrar_smtp_stress 0"));
        assert!(text.contains("registrar_smtp_stress_entered_total 1"));
    }
}

//! The worker of one endpoint: sends the endpoint's queue first in, first
//! out, and records delivery or schedules a retry with exponential backoff
//! and jitter, until the event is delivered or older than the maximum age
//! (then it is dead and the queue moves on).
//!
//! Events reach an endpoint in the order they happened: a newer event is
//! sent only after the older ones were delivered (or given up on), so a
//! receiver hears `customer.registered` before `customer.activated`. While
//! the oldest event fails, its retries are the only requests the endpoint
//! gets: a receiver that is down sees one attempt per backoff step, not its
//! backlog.
//!
//! Every endpoint has its own worker, reading only its own queue, so a slow
//! or dead endpoint delays nothing but its own events; nothing here runs on
//! the SMTP or web side. Delivery is at-least-once: a crash between a `2xx`
//! and the commit of `delivered` sends the event again (same `webhook-id`)
//! after a restart.

use crate::metrics::Metrics;
use crate::settings::{WebhookDelivery, WebhookEndpoint};
use crate::shutdown::Shutdown;
use crate::store::webhook_events::{self, QueuedEvent};
use crate::store::{self, Store};
use crate::webhooks::sender::{self, Failure};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument as _;

/// What one round of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// At least one event was delivered or given up on; more may follow.
    Worked,
    /// The queue is empty, or its oldest event is not due before this Unix
    /// time in milliseconds.
    Waiting(Option<i64>),
    /// Shutdown came in the middle; the event being sent stays queued.
    Stopped,
}

/// What happened to one attempted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; tried again at this Unix time in milliseconds.
    RetryAt(i64),
    Dead,
}

impl Outcome {
    /// The result's stable name, as the metrics count it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::RetryAt(_) => "retry",
            Outcome::Dead => "dead",
        }
    }
}

/// Sends one endpoint's queued events.
pub struct EndpointWorker {
    store: Store,
    endpoint: WebhookEndpoint,
    delivery: WebhookDelivery,
    client: reqwest::Client,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl EndpointWorker {
    /// A worker for `endpoint`, woken by `wake` when an event is queued,
    /// counting each attempt's result in `metrics`.
    pub fn new(
        store: Store,
        endpoint: WebhookEndpoint,
        delivery: WebhookDelivery,
        client: reqwest::Client,
        wake: Arc<Notify>,
        metrics: Metrics,
    ) -> Self {
        metrics.webhook_endpoint(&endpoint.name);
        Self {
            store,
            endpoint,
            delivery,
            client,
            wake,
            metrics,
        }
    }

    /// Sends the head of the endpoint's queue (at most one batch, oldest
    /// first), stopping at the first event that is not due or fails.
    ///
    /// # Errors
    /// A storage failure; the events stay queued.
    pub async fn deliver_due(&self, shutdown: &Shutdown) -> anyhow::Result<Round> {
        let name = self.endpoint.name.clone();
        let limit = self.delivery.batch;
        let head = self
            .store
            .read(move |conn| Ok(webhook_events::head(conn, &name, limit)?))
            .await?;
        let mut worked = false;
        for event in head {
            if event.next_attempt_ms > store::now_millis() {
                return Ok(if worked {
                    Round::Worked
                } else {
                    Round::Waiting(Some(event.next_attempt_ms))
                });
            }
            let span = tracing::info_span!(
                "webhook",
                webhook.endpoint = %self.endpoint.name,
                webhook.id = %event.event_id,
                webhook.type = %event.kind,
                attempt = event.attempts + 1
            );
            let outcome = tokio::select! {
                outcome = self.attempt(&event).instrument(span) => outcome?,
                () = shutdown.wait() => return Ok(Round::Stopped),
            };
            self.metrics
                .webhook_delivery(&self.endpoint.name, outcome.as_str());
            match outcome {
                Outcome::Delivered | Outcome::Dead => worked = true,
                Outcome::RetryAt(at) => return Ok(Round::Waiting(Some(at))),
            }
        }
        Ok(if worked {
            Round::Worked
        } else {
            Round::Waiting(None)
        })
    }

    /// Sends events until shutdown; between rounds, sleeps until the oldest
    /// event falls due, a newly queued event wakes it, or the poll interval
    /// passes (events queued by another process).
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let pause = match self.deliver_due(&shutdown).await {
                Ok(Round::Worked) => continue,
                Ok(Round::Stopped) => break,
                Ok(Round::Waiting(Some(at))) => {
                    let wait = u64::try_from(at - store::now_millis()).unwrap_or(0);
                    Duration::from_millis(wait.max(1)).min(self.delivery.poll_interval)
                }
                Ok(Round::Waiting(None)) => self.delivery.poll_interval,
                Err(error) => {
                    tracing::error!(
                        webhook.endpoint = %self.endpoint.name,
                        error.message = %error,
                        error.cause_chain = ?error,
                        "webhook round failed"
                    );
                    self.delivery.poll_interval
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::debug!(webhook.endpoint = %self.endpoint.name, "webhook worker stopped");
    }

    /// One attempt at `event`, recorded (inside the caller's span).
    async fn attempt(&self, event: &QueuedEvent) -> anyhow::Result<Outcome> {
        let now = store::now();
        let expires = event.age_from.saturating_add(secs(self.delivery.max_age));
        let id = event.id;
        if now > expires {
            // Past its age before this attempt (the daemon was down, or an
            // older event held the queue): no attempt is owed any more.
            let text = "older than webhook_delivery.max_age_hours".to_owned();
            self.store
                .write(move |conn| Ok(webhook_events::mark_dead(conn, id, false, None, &text)?))
                .await?;
            tracing::warn!(event = "dead", "a webhook event expired undelivered");
            return Ok(Outcome::Dead);
        }
        let sent = sender::send(
            &self.client,
            &self.endpoint,
            &event.event_id,
            now,
            &event.body,
        )
        .await;
        match sent {
            Ok(status) => {
                self.store
                    .write(move |conn| {
                        Ok(webhook_events::mark_delivered(
                            conn,
                            id,
                            status,
                            store::now(),
                        )?)
                    })
                    .await?;
                tracing::info!(event = "delivered", http.status = status);
                Ok(Outcome::Delivered)
            }
            Err(failure) => self.failed(event, failure, expires).await,
        }
    }

    async fn failed(
        &self,
        event: &QueuedEvent,
        failure: Failure,
        expires: i64,
    ) -> anyhow::Result<Outcome> {
        let id = event.id;
        let Failure {
            status,
            message,
            retry_after,
            permanent,
        } = failure;
        let now_ms = store::now_millis();
        let delay = backoff(&self.delivery, event.attempts, retry_after, jitter());
        // The last attempt is made at the maximum age, not skipped.
        let last_chance = expires.saturating_mul(1000);
        if permanent || now_ms >= last_chance {
            let text = message.clone();
            self.store
                .write(move |conn| Ok(webhook_events::mark_dead(conn, id, true, status, &text)?))
                .await?;
            tracing::warn!(event = "dead", error.message = %message, "giving up on a webhook event");
            return Ok(Outcome::Dead);
        }
        let at = now_ms.saturating_add(millis(delay)).min(last_chance);
        let text = message.clone();
        self.store
            .write(move |conn| Ok(webhook_events::mark_retry(conn, id, at, status, &text)?))
            .await?;
        tracing::warn!(event = "retry_scheduled", error.message = %message, retry_at_ms = at);
        Ok(Outcome::RetryAt(at))
    }
}

/// Delay before the next attempt after `attempts_before` failed ones:
/// base, 2×base, 4×base, … capped at `retry_max`, stretched by `jitter`
/// (0.0 to 1.0 adds up to a fifth), and never shorter than a `Retry-After`
/// the endpoint asked for (itself capped at `retry_max`).
pub fn backoff(
    delivery: &WebhookDelivery,
    attempts_before: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let base = delivery.retry_base.max(Duration::from_millis(1));
    let max = delivery.retry_max.max(base);
    let doubled = base
        .checked_mul(1u32 << attempts_before.min(30))
        .unwrap_or(max)
        .min(max);
    let stretched = doubled.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0));
    let asked = retry_after.unwrap_or_default().min(max);
    stretched.max(asked)
}

/// A fraction in [0, 1) from the OS random source (0 without one).
fn jitter() -> f64 {
    let mut bytes = [0u8; 2];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u16::from_le_bytes(bytes)) / 65_536.0
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> WebhookDelivery {
        crate::settings::load(None)
            .expect("defaults")
            .webhook_delivery
    }

    #[test]
    fn the_default_schedule_doubles_from_5_seconds_to_6_hours() {
        let delivery = delivery();
        let delays: Vec<u64> = (0..14)
            .map(|n| backoff(&delivery, n, None, 0.0).as_secs())
            .collect();
        assert_eq!(
            delays,
            vec![
                5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 21600
            ]
        );
        // Jitter stretches by at most a fifth.
        assert_eq!(backoff(&delivery, 0, None, 1.0), Duration::from_secs(6));
    }

    #[test]
    fn retry_after_lengthens_the_wait_up_to_the_cap() {
        let delivery = delivery();
        let asked = Some(Duration::from_secs(120));
        assert_eq!(backoff(&delivery, 0, asked, 0.0), Duration::from_secs(120));
        let greedy = Some(Duration::from_secs(10 * 86_400));
        assert_eq!(
            backoff(&delivery, 0, greedy, 0.0),
            Duration::from_secs(21_600)
        );
    }
}

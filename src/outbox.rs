//! The outbox worker: takes the next due reply, sends it through the
//! `Mailer` (which signs it), and records delivery or schedules a retry with
//! exponential backoff, until the reply is delivered or its attempts are used
//! up. Every attempt records the relay's answer (code and text) on the row.
//!
//! Delivery is at-least-once: a crash between a successful send and the
//! commit of `sent` sends the same bytes (same Message-ID) again on restart.

use crate::mailer::{Mailer, Outgoing, SendError};
use crate::metrics::Metrics;
use crate::settings::OutboundSettings;
use crate::shutdown::Shutdown;
use crate::store::outbox::Attempt;
use crate::store::{self, Store, outbox};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A reply was delivered.
    Delivered,
    /// Nothing is due.
    Idle,
    /// A delivery failed and is scheduled again at this Unix time.
    RetryAt(i64),
    /// A delivery failed for good.
    Dead,
}

impl Step {
    /// The result's stable name, as the metrics count it; `None` when no
    /// delivery was attempted.
    pub fn result(self) -> Option<&'static str> {
        match self {
            Step::Delivered => Some("delivered"),
            Step::Idle => None,
            Step::RetryAt(_) => Some("retry"),
            Step::Dead => Some("dead"),
        }
    }
}

/// Sends queued replies.
pub struct OutboxWorker {
    store: Store,
    mailer: Mailer,
    settings: OutboundSettings,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        mailer: Mailer,
        settings: OutboundSettings,
        wake: Arc<Notify>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            mailer,
            settings,
            wake,
            metrics,
        }
    }

    /// Sends the next due reply, if any, and records the result.
    ///
    /// # Errors
    /// A storage failure; the reply stays queued.
    pub async fn send_next(&self) -> anyhow::Result<Step> {
        let Some(reply) = self
            .store
            .read(|conn| Ok(outbox::next_due(conn, store::now())?))
            .await?
        else {
            return Ok(Step::Idle);
        };
        let span = tracing::info_span!(
            "delivery",
            outbox.id = reply.id,
            attempt = reply.attempts + 1
        );
        let _entered = span.enter();
        let result = self
            .mailer
            .send(Outgoing {
                service: reply.service.as_deref(),
                envelope_from: &reply.envelope_from,
                recipient: &reply.recipient,
                body: &reply.body,
            })
            .await;
        let id = reply.id;
        let at = store::now();
        let step = match result {
            Ok(answer) => {
                self.store
                    .write(move |conn| {
                        let attempt = Attempt {
                            at,
                            code: answer.code,
                            reply: &answer.text,
                        };
                        Ok(outbox::mark_sent(conn, id, attempt)?)
                    })
                    .await?;
                tracing::info!(event = "delivered");
                Step::Delivered
            }
            Err(error)
                if matches!(error, SendError::Permanent(_))
                    || reply.attempts + 1 >= self.settings.max_attempts =>
            {
                let answer = error.answer().clone();
                self.store
                    .write(move |conn| {
                        let attempt = Attempt {
                            at,
                            code: answer.code,
                            reply: &answer.text,
                        };
                        Ok(outbox::mark_dead(conn, id, attempt)?)
                    })
                    .await?;
                tracing::error!(event = "dead", error.message = %error, "giving up on a reply");
                Step::Dead
            }
            Err(error) => {
                let retry_at = at + backoff_secs(&self.settings, reply.attempts);
                let answer = error.answer().clone();
                self.store
                    .write(move |conn| {
                        let attempt = Attempt {
                            at,
                            code: answer.code,
                            reply: &answer.text,
                        };
                        Ok(outbox::mark_retry(conn, id, retry_at, attempt)?)
                    })
                    .await?;
                tracing::warn!(event = "retry_scheduled", error.message = %error, retry_at);
                Step::RetryAt(retry_at)
            }
        };
        if let Some(result) = step.result() {
            self.metrics.delivery(result);
        }
        Ok(step)
    }

    /// Sends replies until shutdown; sleeps when nothing is due until woken
    /// by a newly queued reply, the next retry time or the poll interval.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let step = self.send_next().await;
            let pause = match step {
                Ok(Step::Delivered | Step::Dead | Step::RetryAt(_)) => continue,
                Ok(Step::Idle) => self.until_next_due().await,
                Err(error) => {
                    tracing::error!(error.message = %error, error.cause_chain = ?error, "outbox step failed");
                    self.settings.poll_interval
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::debug!("outbox worker stopped");
    }

    async fn until_next_due(&self) -> Duration {
        let next = self
            .store
            .read(|conn| Ok(outbox::next_due_at(conn)?))
            .await
            .ok()
            .flatten();
        let poll = self.settings.poll_interval;
        match next {
            Some(at) => {
                Duration::from_secs(u64::try_from(at - store::now()).unwrap_or(0).max(1)).min(poll)
            }
            None => poll,
        }
    }
}

/// Delay before the next attempt after `attempts_before` failed ones:
/// base, 2×base, 4×base, … capped at the maximum.
pub fn backoff_secs(settings: &OutboundSettings, attempts_before: u32) -> i64 {
    let base = settings.retry_base.as_secs().max(1);
    let delay = base
        .saturating_mul(1u64 << attempts_before.min(30))
        .min(settings.retry_max.as_secs().max(base));
    i64::try_from(delay).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut settings = crate::settings::load(None).expect("defaults").outbound;
        settings.retry_base = Duration::from_secs(30);
        settings.retry_max = Duration::from_secs(3600);
        let delays: Vec<i64> = (0..9).map(|n| backoff_secs(&settings, n)).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}

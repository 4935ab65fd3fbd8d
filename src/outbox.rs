//! The outbox worker: delivers due replies in rounds. A round takes up to
//! `outbound.parallel_deliveries` due replies in one read, sends them side by
//! side through the `Mailer` (which signs each), and records every result in
//! one store write: delivered, retried later with exponential backoff, or
//! dead once its attempts are used up or the relay refused it for good.
//! Every attempt records the relay's answer (code and text) on its row.
//!
//! One write per round, not per mail: intake and the outbox share the
//! store's single writer, and a round of eight replies takes one place in
//! its queue where eight mails took eight, so replies keep pace with a busy
//! intake.
//!
//! A reply is in one round at a time: the next round is claimed only once
//! the last one's results are committed, so no reply is ever sent twice at
//! once. When that write fails, its results are kept and written before
//! anything is claimed again. Delivery is at-least-once: a crash between a
//! send and the commit of its round sends the same bytes (same Message-ID)
//! again on restart.

use crate::mailer::{Mailer, Outgoing, RelayAnswer, SendError};
use crate::metrics::Metrics;
use crate::settings::OutboundSettings;
use crate::shutdown::Shutdown;
use crate::store::outbox::{DueReply, Outcome, Recorded};
use crate::store::{self, Store, outbox};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// What one round of deliveries did, once recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
}

impl Round {
    /// Delivery attempts made in the round (none: nothing was due).
    pub fn attempts(self) -> usize {
        self.delivered + self.retried + self.dead
    }
}

/// The outcome's stable name, as the metrics count it.
fn result_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Sent => "delivered",
        Outcome::Retry(_) => "retry",
        Outcome::Dead => "dead",
    }
}

/// Sends queued replies.
pub struct OutboxWorker {
    store: Store,
    mailer: Mailer,
    settings: OutboundSettings,
    wake: Arc<Notify>,
    metrics: Metrics,
    /// Results of a round whose write failed: written before the next claim,
    /// so those replies are not sent again meanwhile.
    unrecorded: Mutex<Vec<Recorded>>,
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
            unrecorded: Mutex::new(Vec::new()),
        }
    }

    /// One round: takes up to `parallel_deliveries` due replies, sends them
    /// side by side, and records all their results in one write.
    ///
    /// # Errors
    /// A storage failure. Replies not yet sent stay queued; results not yet
    /// written are kept for the next round, which writes them first.
    pub async fn deliver_round(&self) -> anyhow::Result<Round> {
        self.record_unrecorded().await?;
        let limit = self.settings.parallel_deliveries.max(1);
        let due = self
            .store
            .read(move |conn| Ok(outbox::next_due(conn, store::now(), limit)?))
            .await?;
        if due.is_empty() {
            return Ok(Round::default());
        }
        let results = self.send_all(due).await;
        self.record(results).await
    }

    /// Sends every reply of a round at once, each as its own task (signing
    /// is CPU work; the relay's connections are shared), and judges each
    /// result.
    async fn send_all(&self, due: Vec<DueReply>) -> Vec<Recorded> {
        let mut running = JoinSet::new();
        let mut started = HashMap::with_capacity(due.len());
        for reply in due {
            let (id, attempts_before) = (reply.id, reply.attempts);
            let mailer = self.mailer.clone();
            let task = running.spawn(async move {
                let result = mailer
                    .send(Outgoing {
                        service: reply.service.as_deref(),
                        envelope_from: &reply.envelope_from,
                        recipient: &reply.recipient,
                        body: &reply.body,
                    })
                    .await;
                (result, store::now())
            });
            started.insert(task.id(), (id, attempts_before));
        }
        let mut results = Vec::with_capacity(started.len());
        while let Some(joined) = running.join_next_with_id().await {
            let (task, result, at) = match joined {
                Ok((task, (result, at))) => (task, result, at),
                // A panic in a delivery is recorded as a failed attempt, so
                // the reply is neither lost nor sent again at once.
                Err(error) => {
                    let failure = SendError::Temporary(RelayAnswer {
                        code: None,
                        text: format!("the delivery task failed: {error}"),
                    });
                    (error.id(), Err(failure), store::now())
                }
            };
            if let Some((id, attempts_before)) = started.remove(&task) {
                results.push(self.judge(id, attempts_before, at, result));
            }
        }
        results
    }

    /// What one attempt's result means for its row.
    fn judge(
        &self,
        id: i64,
        attempts_before: u32,
        at: i64,
        result: Result<RelayAnswer, SendError>,
    ) -> Recorded {
        let span = tracing::info_span!("delivery", outbox.id = id, attempt = attempts_before + 1);
        let _entered = span.enter();
        let (outcome, answer) = match result {
            Ok(answer) => {
                tracing::info!(event = "delivered");
                (Outcome::Sent, answer)
            }
            Err(error)
                if matches!(error, SendError::Permanent(_))
                    || attempts_before + 1 >= self.settings.max_attempts =>
            {
                tracing::error!(event = "dead", error.message = %error, "giving up on a reply");
                (Outcome::Dead, error.answer().clone())
            }
            Err(error) => {
                let retry_at = at + backoff_secs(&self.settings, attempts_before);
                tracing::warn!(event = "retry_scheduled", error.message = %error, retry_at);
                (Outcome::Retry(retry_at), error.answer().clone())
            }
        };
        Recorded {
            id,
            at,
            code: answer.code,
            reply: answer.text,
            outcome,
        }
    }

    /// Writes a round's results in one store job and counts them once
    /// committed; on failure keeps them for the next round.
    async fn record(&self, results: Vec<Recorded>) -> anyhow::Result<Round> {
        let written = results.clone();
        let committed = self
            .store
            .write_repeatable(move |conn| Ok(outbox::record_round(conn, &written)?))
            .await;
        if let Err(error) = committed {
            self.lock_unrecorded().extend(results);
            return Err(error.into());
        }
        let mut round = Round::default();
        for recorded in &results {
            match recorded.outcome {
                Outcome::Sent => round.delivered += 1,
                Outcome::Retry(_) => round.retried += 1,
                Outcome::Dead => round.dead += 1,
            }
            self.metrics.delivery(result_name(recorded.outcome));
        }
        Ok(round)
    }

    /// Writes the results an earlier round could not write, if any.
    async fn record_unrecorded(&self) -> anyhow::Result<()> {
        let results = std::mem::take(&mut *self.lock_unrecorded());
        if !results.is_empty() {
            self.record(results).await?;
        }
        Ok(())
    }

    fn lock_unrecorded(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        // Never held across an await; a panic elsewhere leaves the list whole.
        self.unrecorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers rounds until shutdown; sleeps when nothing is due until
    /// woken by a newly queued reply, the next retry time or the poll
    /// interval. A round under way at shutdown finishes and is recorded.
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let pause = match self.deliver_round().await {
                Ok(round) if round.attempts() > 0 => continue,
                Ok(_) => self.until_next_due().await,
                Err(error) => {
                    tracing::error!(error.message = %error, error.cause_chain = ?error, "outbox round failed");
                    self.settings.poll_interval
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => break,
            }
        }
        if let Err(error) = self.record_unrecorded().await {
            tracing::error!(error.message = %error, "delivery results were not recorded; those replies will be sent again");
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

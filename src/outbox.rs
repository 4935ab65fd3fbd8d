//! The outbox worker: delivers due replies through the `Mailer`, up to
//! `outbound.parallel_deliveries` at once, and records the results: sent
//! replies in batches (one writer job for many), a failed attempt as a retry
//! with exponential backoff, or the reply as dead once its attempts are used
//! up or the relay refused it for good.
//!
//! Delivery is at-least-once: a crash between a successful send and the
//! commit of `sent` sends the same bytes (same Message-ID) again on restart.
//! Marks are flushed at least every `MARK_DELAY`, so that window stays short.

use crate::mailer::{Mailer, SendError};
use crate::settings::OutboundSettings;
use crate::shutdown::Shutdown;
use crate::store::outbox::DueReply;
use crate::store::{self, Store, outbox};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Delivered replies are marked sent at the latest this long after the
/// first of them was delivered ...
const MARK_DELAY: Duration = Duration::from_millis(100);
/// ... or as soon as this many are waiting.
const MARK_BATCH: usize = 256;

/// What became of one delivery attempt.
#[derive(Debug)]
struct Attempted {
    id: i64,
    attempts_before: u32,
    result: Result<(), SendError>,
}

/// Sends queued replies.
pub struct OutboxWorker {
    store: Store,
    mailer: Mailer,
    settings: OutboundSettings,
    wake: Arc<Notify>,
}

/// The worker's state between steps.
struct Deliveries {
    /// Due replies read from the store, not yet started.
    waiting: VecDeque<DueReply>,
    running: JoinSet<Attempted>,
    /// Delivered, not yet marked sent.
    delivered: Vec<i64>,
    /// When the oldest of `delivered` must be marked at the latest.
    mark_by: Option<Instant>,
    /// Ids read but not yet marked: never read (and sent) twice at once.
    busy: HashSet<i64>,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        mailer: Mailer,
        settings: OutboundSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            mailer,
            settings,
            wake,
        }
    }

    /// Delivers replies until shutdown; sleeps when nothing is due until
    /// woken by a newly queued reply, the next retry time or the poll
    /// interval. At shutdown, deliveries under way finish and are recorded.
    pub async fn run(self, shutdown: Shutdown) {
        let parallel = self.settings.parallel_deliveries.max(1);
        let mut state = Deliveries {
            waiting: VecDeque::new(),
            running: JoinSet::new(),
            delivered: Vec::new(),
            mark_by: None,
            busy: HashSet::new(),
        };
        while !shutdown.is_triggered() {
            if let Err(error) = self.fill(&mut state, parallel).await {
                tracing::error!(error.message = %error, error.cause_chain = ?error, "outbox step failed");
                self.pause(self.settings.poll_interval, &shutdown).await;
                continue;
            }
            if state.running.is_empty() {
                self.flush(&mut state).await;
                let pause = self.until_next_due().await;
                self.pause(pause, &shutdown).await;
                continue;
            }
            let deadline = state.mark_by;
            tokio::select! {
                Some(finished) = state.running.join_next() => self.record(&mut state, finished).await,
                () = sleep_until(deadline) => self.flush(&mut state).await,
                () = shutdown.wait() => break,
            }
            if state.delivered.len() >= MARK_BATCH {
                self.flush(&mut state).await;
            }
        }
        while let Some(finished) = state.running.join_next().await {
            self.record(&mut state, finished).await;
        }
        self.flush(&mut state).await;
        tracing::debug!("outbox worker stopped");
    }

    /// Starts deliveries until `parallel` are under way or nothing is due.
    async fn fill(&self, state: &mut Deliveries, parallel: usize) -> anyhow::Result<()> {
        while state.running.len() < parallel {
            if state.waiting.is_empty() {
                // Read ahead a few rounds' worth, so that the store is not
                // asked once per reply.
                let skip = state.busy.clone();
                let due = self
                    .store
                    .read(move |conn| {
                        Ok(outbox::next_due(conn, store::now(), parallel * 4, &skip)?)
                    })
                    .await?;
                if due.is_empty() {
                    return Ok(());
                }
                state.busy.extend(due.iter().map(|reply| reply.id));
                state.waiting.extend(due);
            }
            let Some(reply) = state.waiting.pop_front() else {
                return Ok(());
            };
            let mailer = self.mailer.clone();
            state.running.spawn(async move {
                let result = mailer
                    .send(&reply.envelope_from, &reply.recipient, &reply.body)
                    .await;
                Attempted {
                    id: reply.id,
                    attempts_before: reply.attempts,
                    result,
                }
            });
        }
        Ok(())
    }

    /// Records one finished attempt: a delivery waits for the next batch of
    /// marks; a failure is written at once.
    async fn record(
        &self,
        state: &mut Deliveries,
        finished: Result<Attempted, tokio::task::JoinError>,
    ) {
        let attempted = match finished {
            Ok(attempted) => attempted,
            Err(error) => {
                // The reply stays queued and busy until the next restart
                // would send it again; a panic in lettre is not ours to hide.
                tracing::error!(error.message = %error, "a delivery task failed");
                return;
            }
        };
        let Attempted {
            id,
            attempts_before,
            result,
        } = attempted;
        let span = tracing::info_span!("delivery", outbox.id = id, attempt = attempts_before + 1);
        let _entered = span.enter();
        let written = match result {
            Ok(()) => {
                tracing::info!(event = "delivered");
                state.delivered.push(id);
                state
                    .mark_by
                    .get_or_insert_with(|| Instant::now() + MARK_DELAY);
                return;
            }
            Err(error)
                if matches!(error, SendError::Permanent(_))
                    || attempts_before + 1 >= self.settings.max_attempts =>
            {
                tracing::error!(event = "dead", error.message = %error, "giving up on a reply");
                let text = error.to_string();
                self.store
                    .write(move |conn| Ok(outbox::mark_dead(conn, id, &text)?))
                    .await
            }
            Err(error) => {
                let at = store::now() + backoff_secs(&self.settings, attempts_before);
                tracing::warn!(event = "retry_scheduled", error.message = %error, retry_at = at);
                let text = error.to_string();
                self.store
                    .write(move |conn| Ok(outbox::mark_retry(conn, id, at, &text)?))
                    .await
            }
        };
        match written {
            Ok(()) => {
                state.busy.remove(&id);
            }
            // Left busy: not tried again before a restart rather than in a
            // tight loop against a failing store.
            Err(error) => {
                tracing::error!(error.message = %error, "failed to record a delivery attempt");
            }
        }
    }

    /// Marks every delivered reply sent, in one writer job.
    async fn flush(&self, state: &mut Deliveries) {
        state.mark_by = None;
        if state.delivered.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut state.delivered);
        let marked = ids.clone();
        match self
            .store
            .write(move |conn| Ok(outbox::mark_sent(conn, &marked, store::now())?))
            .await
        {
            Ok(()) => {
                for id in &ids {
                    state.busy.remove(id);
                }
            }
            Err(error) => {
                // Try again with the next batch; until then the replies stay
                // busy, so they are not sent twice by this process.
                tracing::error!(error.message = %error, "failed to mark replies sent");
                state.delivered = ids;
                state.mark_by = Some(Instant::now() + MARK_DELAY);
            }
        }
    }

    async fn pause(&self, pause: Duration, shutdown: &Shutdown) {
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => {}
        }
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

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

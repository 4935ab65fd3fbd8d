//! The periodic purge: never-activated customers (each removal recorded and
//! announced), expired portal sessions and account links, and every record
//! past its retention (raw bytes, inbound records, delivered replies, old
//! reply counts and opt-out links, delivered webhook events, decisions not
//! about an existing customer), so that no table grows for ever.
//!
//! Each step deletes at most `store.purge_batch_rows` rows in one short
//! writer job and pauses before the next, four times as long as the step
//! took (at least 20 ms): the purge takes at most a fifth of the writer's
//! time, less when intake keeps the writer busy (its steps then take longer),
//! so intake never waits long behind it.

use crate::domain::{Channel, EventKind};
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::registration::events::{self, emit};
use crate::registration::{Registrar, secs};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::store::{
    self, Walked, account_tokens, customers, inbound, outbox, reply_counts, sessions, suppressions,
    webhook_events,
};
use rusqlite::Connection;
use std::time::Duration;
use tokio::time::Instant;

/// The shortest pause between two steps of the purge.
const PAUSE: Duration = Duration::from_millis(20);
/// A step is followed by a pause this many times as long as it took.
const PAUSE_FACTOR: u32 = 4;

/// What one run of the purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Pending customers past `activation.pending_expiry_days`.
    pub customers: usize,
    /// Raw message bodies past `store.raw_retention_days`.
    pub raw_messages: usize,
    /// Inbound records past `store.inbound_retention_days`.
    pub inbound: usize,
    /// Delivered or given-up replies past `store.inbound_retention_days`.
    pub replies: usize,
    /// Decision records past `store.decision_retention_days`.
    pub decisions: usize,
}

impl Purged {
    /// Nothing was removed.
    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }
}

/// The times before which each kind of record goes, fixed at the start of a
/// run.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    now: i64,
    pending: i64,
    raw: i64,
    inbound: i64,
    decisions: i64,
    idle_session_secs: i64,
}

impl Cutoffs {
    fn at(settings: &Settings, now: i64) -> Self {
        let before = |retention: Duration| now.saturating_sub(secs(retention));
        Self {
            now,
            pending: before(settings.activation.pending_expiry),
            raw: before(settings.store.raw_retention),
            inbound: before(settings.store.inbound_retention),
            decisions: before(settings.store.decision_retention),
            idle_session_secs: secs(settings.session.idle_timeout),
        }
    }
}

impl Registrar {
    /// Runs the purge once, step by step, until nothing past its retention
    /// is left or shutdown begins; then truncates the write-ahead log when
    /// raw mail was erased, so that erased bytes leave no copy behind.
    ///
    /// # Errors
    /// A storage failure; what earlier steps removed stays removed.
    pub async fn purge(&self, shutdown: &Shutdown) -> Result<Purged, RegistrationError> {
        let settings = self.settings();
        let batch = settings.store.purge_batch_rows;
        let cut = Cutoffs::at(&settings, store::now());

        let customers = self
            .in_batches(shutdown, batch, move |conn| {
                purge_pending(conn, &settings, cut, batch)
            })
            .await?;
        self.store
            .write(move |conn| {
                sessions::purge_expired(conn, cut.now, cut.idle_session_secs)?;
                Ok(account_tokens::purge_dead(conn, cut.now)?)
            })
            .await?;
        self.in_batches(shutdown, batch, move |conn| {
            Ok(reply_counts::purge_before(conn, cut.now, batch)?)
        })
        .await?;
        // An opt-out link lives as long as the pending customer its mail
        // was about could.
        self.in_batches(shutdown, batch, move |conn| {
            Ok(suppressions::purge_opt_out_tokens_before(
                conn,
                cut.pending,
                batch,
            )?)
        })
        .await?;
        let raw_messages = self
            .walk(shutdown, move |conn| {
                Ok(inbound::erase_raw_before(conn, cut.raw, batch)?)
            })
            .await?;
        // Delivered and dead events leave with the raw mail: they are kept as
        // long, for an operator's questions. A step removes up to a batch of
        // each.
        self.in_batches(shutdown, 2 * batch, move |conn| {
            Ok(webhook_events::purge_before(conn, cut.raw, batch)?)
        })
        .await?;
        let inbound = self
            .walk(shutdown, move |conn| {
                Ok(inbound::delete_before(conn, cut.inbound, batch)?)
            })
            .await?;
        let replies = self
            .walk(shutdown, move |conn| {
                Ok(outbox::purge_finished(conn, cut.inbound, batch)?)
            })
            .await?;
        let decisions = self
            .walk(shutdown, move |conn| {
                Ok(inbound::purge_decisions(conn, cut.decisions, batch)?)
            })
            .await?;

        if customers > 0 {
            self.wake_webhooks();
        }
        if raw_messages > 0
            && let Err(error) = self.store.checkpoint().await
        {
            // The next purge tries again; until then the WAL may still hold
            // an old copy of what was erased.
            tracing::warn!(error.message = %error, "the WAL could not be truncated after erasing");
        }
        Ok(Purged {
            customers,
            raw_messages,
            inbound,
            replies,
            decisions,
        })
    }

    /// Runs the steps of a walk (`store::walk`: each looks at a batch of
    /// rows after the walk's cursor) as one writer job after another,
    /// pausing between them, until the walk is done or shutdown begins;
    /// returns how many rows were deleted or erased in all.
    async fn walk(
        &self,
        shutdown: &Shutdown,
        step: impl Fn(&Connection) -> anyhow::Result<Walked> + Clone + Send + 'static,
    ) -> Result<usize, RegistrationError> {
        let mut changed = 0;
        while !shutdown.is_triggered() {
            let step = step.clone();
            let started = Instant::now();
            let walked = self.store.write(move |conn| step(conn)).await?;
            changed += walked.changed;
            if walked.done {
                break;
            }
            pause_after(started).await;
        }
        Ok(changed)
    }

    /// `walk` for a step that removes at most `batch` rows by age, without
    /// a cursor: done once a step removes fewer than `batch`.
    async fn in_batches(
        &self,
        shutdown: &Shutdown,
        batch: usize,
        step: impl Fn(&Connection) -> anyhow::Result<usize> + Clone + Send + 'static,
    ) -> Result<usize, RegistrationError> {
        self.walk(shutdown, move |conn| {
            let removed = step(conn)?;
            Ok(Walked {
                changed: removed,
                done: removed < batch,
            })
        })
        .await
    }
}

/// Pauses after a step that began at `started`: `PAUSE_FACTOR` times as
/// long as the step took, at least `PAUSE`.
async fn pause_after(started: Instant) {
    tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(PAUSE)).await;
}

/// Deletes up to `batch` pending customers created before the expiry, with
/// their tokens; for each, forgets its earlier webhook events, announces the
/// erasure and records the removal.
fn purge_pending(
    conn: &Connection,
    settings: &Settings,
    cut: Cutoffs,
    batch: usize,
) -> anyhow::Result<usize> {
    let purged = customers::purge_pending_before(conn, cut.pending, batch)?;
    for customer in &purged {
        // Its earlier events (customer.registered) go; the erasure is what
        // is left to tell.
        webhook_events::forget(conn, &customer.identity)?;
        emit(
            conn,
            settings,
            EventKind::Erased,
            (
                &events::CustomerData {
                    email: &customer.email,
                    name: customer.name.as_deref(),
                    company: customer.company.as_deref(),
                    service: &customer.service,
                    status: "erased",
                    channel: &customer.source,
                },
                None,
            ),
            Channel::Purge,
            cut.now,
        )?;
        record(
            conn,
            Channel::Purge,
            &About {
                service: &customer.service,
                address: &customer.email,
                identity: Some(customer.identity.clone()),
            },
            Outcome::of("purged", "pending_expired"),
            Kept::default(),
            cut.now,
        )?;
    }
    Ok(purged.len())
}

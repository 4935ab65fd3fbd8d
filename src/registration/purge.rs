//! The periodic purge: never-activated customers (each removal recorded),
//! expired portal sessions, and every record past its retention (raw bytes,
//! inbound records, delivered replies, old reply counts, decisions not about
//! an existing customer), so no table grows for ever.
//!
//! Each step deletes at most `store.purge_batch_rows` rows in one short
//! writer job and pauses before the next, four times as long as the step
//! took (at least 20 ms): the purge takes at most a fifth of the writer's
//! time, less when intake keeps the writer busy (the steps then take
//! longer), so intake never waits long behind it.

use crate::domain::Channel;
use crate::registration::decide::{About, Kept, record};
use crate::registration::error::RegistrationError;
use crate::registration::{Registrar, secs};
use crate::shutdown::Shutdown;
use crate::store::inbound::DecisionCursor;
use crate::store::{self, counters, customers, inbound, outbox, sessions};
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
    /// Delivered or dead replies past `store.inbound_retention_days`.
    pub replies: usize,
    /// Decision records past `store.decision_retention_days`.
    pub decisions: usize,
}

impl Purged {
    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }
}

/// What the purge remembers between runs: how far the walk through the
/// decisions has got (decisions kept because their customer exists are not
/// read again).
#[derive(Debug, Default)]
pub struct PurgeState {
    decisions: DecisionCursor,
}

impl Registrar {
    /// Runs the purge once, step by step, until nothing past its retention
    /// is left or shutdown begins.
    ///
    /// # Errors
    /// A storage failure; what earlier steps removed stays removed.
    pub async fn purge(
        &self,
        state: &mut PurgeState,
        shutdown: &Shutdown,
    ) -> Result<Purged, RegistrationError> {
        let settings = self.settings();
        let now = store::now();
        let batch = settings.store.purge_batch_rows;
        let before = |retention: Duration| now.saturating_sub(secs(retention));
        let expiry = before(settings.activation.pending_expiry);
        let idle = secs(settings.session.idle_timeout);
        let raw_before = before(settings.store.raw_retention);
        let inbound_before = before(settings.store.inbound_retention);
        let decisions_before = before(settings.store.decision_retention);

        let mut purged = Purged {
            customers: self
                .in_batches(shutdown, batch, move |conn| {
                    purge_pending(conn, expiry, batch, now)
                })
                .await?,
            ..Purged::default()
        };
        self.store
            .write(move |conn| Ok(sessions::purge_expired(conn, now, idle)?))
            .await?;
        purged.raw_messages = self
            .in_batches(shutdown, batch, move |conn| {
                Ok(inbound::erase_raw_before(conn, raw_before, batch)?)
            })
            .await?;
        purged.inbound = self
            .in_batches(shutdown, batch, move |conn| {
                Ok(inbound::delete_before(conn, inbound_before, batch)?)
            })
            .await?;
        purged.replies = self
            .in_batches(shutdown, batch, move |conn| {
                Ok(outbox::purge_finished(conn, inbound_before, batch)?)
            })
            .await?;
        self.in_batches(shutdown, batch, move |conn| {
            Ok(counters::purge(conn, now, batch)?)
        })
        .await?;
        while !shutdown.is_triggered() {
            let cursor = state.decisions;
            let started = Instant::now();
            let step = self
                .store
                .write(move |conn| {
                    Ok(inbound::purge_decisions(
                        conn,
                        cursor,
                        decisions_before,
                        batch,
                    )?)
                })
                .await?;
            purged.decisions += step.deleted;
            state.decisions = step.cursor;
            if step.done {
                break;
            }
            pause_after(started).await;
        }
        Ok(purged)
    }

    /// Runs `step` (which removes at most `batch` rows) as one writer job
    /// after another, pausing between them, until a step removes fewer than
    /// `batch` or shutdown begins; returns how many were removed in all.
    async fn in_batches(
        &self,
        shutdown: &Shutdown,
        batch: usize,
        step: impl Fn(&Connection) -> anyhow::Result<usize> + Clone + Send + 'static,
    ) -> Result<usize, RegistrationError> {
        let mut removed = 0;
        while !shutdown.is_triggered() {
            let step = step.clone();
            let started = Instant::now();
            let count = self.store.write(move |conn| step(conn)).await?;
            removed += count;
            if count < batch {
                break;
            }
            pause_after(started).await;
        }
        Ok(removed)
    }
}

/// Pauses after a step that began at `started`: `PAUSE_FACTOR` times as
/// long as the step took, at least `PAUSE`.
async fn pause_after(started: Instant) {
    tokio::time::sleep((started.elapsed() * PAUSE_FACTOR).max(PAUSE)).await;
}

/// Deletes up to `batch` pending customers created before `expiry`, with
/// their tokens, and records each removal.
fn purge_pending(conn: &Connection, expiry: i64, batch: usize, now: i64) -> anyhow::Result<usize> {
    let purged = customers::purge_pending_before(conn, expiry, batch)?;
    for customer in &purged {
        record(
            conn,
            Channel::Purge,
            &About {
                service: &customer.service,
                address: &customer.email,
                identity: Some(customer.identity.clone()),
            },
            ("purged", "pending_expired"),
            Kept::default(),
            now,
        )?;
    }
    Ok(purged.len())
}

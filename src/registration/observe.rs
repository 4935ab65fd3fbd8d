//! What operators and machines read about the running registrar: whether
//! the store answers (`/healthz`) and the counters `/metrics` shows.

use crate::registration::Registrar;
use crate::registration::alarms::Alarm;
use crate::registration::error::RegistrationError;
use crate::store::outbox;
use std::sync::atomic::Ordering;

/// Counters for `/metrics`, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Group commits by the store writer since start.
    pub store_commits: u64,
    /// Write jobs committed since start.
    pub store_jobs: u64,
    /// Most jobs committed in one transaction.
    pub store_largest_batch: u64,
    /// Replies in the outbox by status.
    pub outbox_queued: i64,
    pub outbox_sent: i64,
    pub outbox_dead: i64,
    /// How often each limit that protects everybody was reached.
    pub alarms: Vec<(Alarm, u64)>,
}

impl Registrar {
    /// Whether the store answers a read.
    ///
    /// # Errors
    /// The store did not answer.
    pub async fn health(&self) -> Result<(), RegistrationError> {
        Ok(self.store.health().await?)
    }

    /// The counters now.
    ///
    /// # Errors
    /// The outbox could not be read.
    pub async fn counters(&self) -> Result<Counters, RegistrationError> {
        let (queued, sent, dead) = self.store.read(|conn| Ok(outbox::counts(conn)?)).await?;
        let stats = self.store.stats();
        Ok(Counters {
            store_commits: stats.commits.load(Ordering::Relaxed),
            store_jobs: stats.jobs.load(Ordering::Relaxed),
            store_largest_batch: stats.largest_batch.load(Ordering::Relaxed),
            outbox_queued: queued,
            outbox_sent: sent,
            outbox_dead: dead,
            alarms: self.guards.alarms.counts(),
        })
    }
}

//! The `[store]` section: the database file, the writer's batch, how large
//! it may grow, how much raw mail is kept and how long each kind of record
//! stays.

use crate::settings::raw::RawStore;
use crate::settings::validate::Problems;
use crate::settings::{RawQuota, StoreSettings};
use std::time::Duration;

pub(super) fn validate(raw: RawStore, problems: &mut Problems) -> StoreSettings {
    problems.check(raw.max_batch >= 1, "store.max_batch: must be at least 1");
    problems.check(
        raw.raw_retention_days >= 1,
        "store.raw_retention_days: must be at least 1",
    );
    problems.check(
        raw.max_size_mb == 0 || raw.max_size_mb >= 1,
        "store.max_size_mb: must be 0 (no cap) or at least 1",
    );
    problems.check(
        (1..=30).contains(&raw.idempotency_days),
        "store.idempotency_days: must be between 1 and 30",
    );
    problems.check(
        raw.inbound_retention_days >= raw.idempotency_days,
        "store.inbound_retention_days: must be at least store.idempotency_days \
         (copies are recognised by the inbound records)",
    );
    problems.check(
        raw.inbound_retention_days >= raw.raw_retention_days,
        "store.inbound_retention_days: must be at least store.raw_retention_days",
    );
    problems.check(
        raw.decision_retention_days >= raw.inbound_retention_days,
        "store.decision_retention_days: must be at least store.inbound_retention_days",
    );
    problems.check(
        (10..=100_000).contains(&raw.purge_batch_rows),
        "store.purge_batch_rows: must be between 10 and 100000",
    );
    StoreSettings {
        path: raw.path,
        max_batch: raw.max_batch,
        raw_retention: days(raw.raw_retention_days),
        max_size_bytes: (raw.max_size_mb > 0).then(|| raw.max_size_mb.saturating_mul(1024 * 1024)),
        raw_quota: RawQuota {
            per_client_per_hour: raw.raw_bytes_per_client_per_hour,
            per_hour: raw.raw_bytes_per_hour,
        },
        idempotency_window: days(raw.idempotency_days),
        inbound_retention: days(raw.inbound_retention_days),
        decision_retention: days(raw.decision_retention_days),
        purge_batch_rows: raw.purge_batch_rows,
    }
}

fn days(days: u64) -> Duration {
    Duration::from_secs(days.saturating_mul(24 * 3600))
}

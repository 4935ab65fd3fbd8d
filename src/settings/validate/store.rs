//! The `[store]` section: the database file, the writer's batch, the
//! idempotency window and how long each kind of record is kept.

use crate::settings::StoreSettings;
use crate::settings::raw::RawStore;
use crate::settings::validate::Problems;
use std::time::Duration;

const DAY: u64 = 24 * 3600;

pub(super) fn validate(raw: RawStore, problems: &mut Problems) -> StoreSettings {
    problems.check(raw.max_batch >= 1, "store.max_batch: must be at least 1");
    for (key, days) in [
        ("raw_retention_days", raw.raw_retention_days),
        ("idempotency_days", raw.idempotency_days),
        ("inbound_retention_days", raw.inbound_retention_days),
        ("decision_retention_days", raw.decision_retention_days),
    ] {
        problems.check(
            (1..=36_500).contains(&days),
            &format!("store.{key}: must be between 1 and 36500"),
        );
    }
    // A copy is recognised by its inbound record: the record must outlive
    // the window.
    problems.check(
        raw.inbound_retention_days >= raw.idempotency_days,
        "store.inbound_retention_days: must be at least store.idempotency_days",
    );
    problems.check(
        (1..=100_000).contains(&raw.purge_batch_rows),
        "store.purge_batch_rows: must be between 1 and 100000",
    );
    StoreSettings {
        path: raw.path,
        max_batch: raw.max_batch,
        raw_retention: Duration::from_secs(raw.raw_retention_days * DAY),
        idempotency_window: Duration::from_secs(raw.idempotency_days * DAY),
        inbound_retention: Duration::from_secs(raw.inbound_retention_days * DAY),
        decision_retention: Duration::from_secs(raw.decision_retention_days * DAY),
        purge_batch_rows: raw.purge_batch_rows,
    }
}

//! The `[store]` section: the database file, the writer's batch, how large
//! it may grow, and how much raw mail is kept and for how long.

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
    StoreSettings {
        path: raw.path,
        max_batch: raw.max_batch,
        raw_retention: Duration::from_secs(raw.raw_retention_days * 24 * 3600),
        max_size_bytes: (raw.max_size_mb > 0).then(|| raw.max_size_mb.saturating_mul(1024 * 1024)),
        raw_quota: RawQuota {
            per_client_per_hour: raw.raw_bytes_per_client_per_hour,
            per_hour: raw.raw_bytes_per_hour,
        },
    }
}

//! The `[store]` section: the database file, the writer's batch and how long
//! raw mail is kept.

use crate::settings::StoreSettings;
use crate::settings::raw::RawStore;
use crate::settings::validate::Problems;
use std::time::Duration;

pub(super) fn validate(raw: RawStore, problems: &mut Problems) -> StoreSettings {
    problems.check(raw.max_batch >= 1, "store.max_batch: must be at least 1");
    problems.check(
        raw.raw_retention_days >= 1,
        "store.raw_retention_days: must be at least 1",
    );
    StoreSettings {
        path: raw.path,
        max_batch: raw.max_batch,
        raw_retention: Duration::from_secs(raw.raw_retention_days * 24 * 3600),
    }
}

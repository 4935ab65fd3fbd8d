//! The `[log]` section: text or JSON lines.

use crate::settings::LogSettings;
use crate::settings::raw::RawLog;
use crate::settings::validate::Problems;
use crate::telemetry::LogFormat;

pub(super) fn validate(raw: &RawLog, problems: &mut Problems) -> LogSettings {
    LogSettings {
        format: problems
            .choice("log.format", &raw.format)
            .unwrap_or(LogFormat::Text),
    }
}

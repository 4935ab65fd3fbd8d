//! The `[admin]` section: where `/metrics` and `/healthz` are served, if
//! anywhere. Empty turns the admin listener off.

use crate::settings::AdminSettings;
use crate::settings::raw::RawAdmin;
use crate::settings::validate::Problems;
use std::net::SocketAddr;

pub(super) fn validate(raw: &RawAdmin, problems: &mut Problems) -> Option<AdminSettings> {
    let text = raw.listen.trim();
    if text.is_empty() {
        return Some(AdminSettings { listen: None });
    }
    let listen = problems.parse("admin.listen", text.parse::<SocketAddr>())?;
    Some(AdminSettings {
        listen: Some(listen),
    })
}

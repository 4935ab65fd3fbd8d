//! The `[admin]` section: where `/metrics`, `/healthz` and the customer API
//! are served, if anywhere (empty turns the admin listener off), and the
//! API's tokens (`api_tokens`).

use crate::settings::AdminSettings;
use crate::settings::raw::RawAdmin;
use crate::settings::validate::{Problems, api_tokens};
use std::net::SocketAddr;

pub(super) fn validate(raw: &RawAdmin, problems: &mut Problems) -> Option<AdminSettings> {
    let api_tokens = api_tokens::validate(&raw.api_tokens, &raw.api_tokens_file, problems);
    let text = raw.listen.trim();
    if text.is_empty() {
        return Some(AdminSettings {
            listen: None,
            api_tokens,
        });
    }
    let listen = problems.parse("admin.listen", text.parse::<SocketAddr>())?;
    Some(AdminSettings {
        listen: Some(listen),
        api_tokens,
    })
}

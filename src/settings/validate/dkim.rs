//! `[dkim]` and a service's `dkim` table: a selector and a PEM key file,
//! both set or both empty. The key is read here once, so a key that cannot
//! sign (unreadable, not RSA or Ed25519, RSA below 2048 bits) is refused
//! with the other settings, not at the first send.

use crate::dkim::{PrivateKey, valid_selector};
use crate::settings::DkimSettings;
use crate::settings::raw::RawDkim;
use crate::settings::validate::Problems;

/// The key `raw` names, or `None` when the table is empty (or bad, noted
/// under `key`).
pub(super) fn validate(raw: &RawDkim, key: &str, problems: &mut Problems) -> Option<DkimSettings> {
    let selector = raw.selector.trim();
    let file = &raw.key_file;
    match (selector.is_empty(), file.as_os_str().is_empty()) {
        (true, true) => return None,
        (true, false) => problems.push(format!("{key}.selector: needed with key_file")),
        (false, true) => problems.push(format!("{key}.key_file: needed with selector")),
        (false, false) => {}
    }
    if !selector.is_empty() && !valid_selector(selector) {
        problems.push(format!(
            "{key}.selector: {selector:?} is not a DNS label (letters, digits, '-', dots)"
        ));
    }
    if !file.as_os_str().is_empty()
        && let Err(error) = PrivateKey::load(file)
    {
        problems.push(format!("{key}.key_file: {error}"));
    }
    Some(DkimSettings {
        selector: selector.to_owned(),
        key_file: file.clone(),
    })
}

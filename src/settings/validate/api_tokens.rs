//! `[admin] api_tokens` and `api_tokens_file`: the bearer tokens of the
//! customer API. The configuration holds only each token's SHA-256
//! (`sha256:<hex>`); a secret file, if named, holds tokens themselves, one
//! a line (`#` comments and blank lines skipped), hashed when read.

use crate::domain::ApiTokens;
use crate::settings::validate::Problems;
use std::path::Path;

pub(super) fn validate(digests: &[String], file: &Path, problems: &mut Problems) -> ApiTokens {
    let mut tokens = ApiTokens::default();
    for (index, digest) in digests.iter().enumerate() {
        if let Err(error) = tokens.add_digest(digest) {
            problems.push(format!("admin.api_tokens[{index}]: {error}"));
        }
    }
    if file.as_os_str().is_empty() {
        return tokens;
    }
    match std::fs::read_to_string(file) {
        Ok(text) => {
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if line.len() < 16 {
                    problems.push(format!(
                        "admin.api_tokens_file: {} holds a token shorter than 16 characters",
                        file.display()
                    ));
                    continue;
                }
                tokens.add_token(line);
            }
        }
        Err(error) => problems.push(format!(
            "admin.api_tokens_file: cannot read {}: {error}",
            file.display()
        )),
    }
    tokens
}

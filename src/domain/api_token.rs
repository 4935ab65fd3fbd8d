//! Bearer tokens of the customer API: what the configuration holds (the
//! SHA-256 of each token, `sha256:<hex>`, never the token itself, unless an
//! operator keeps tokens in a file of their own) and the one check a request
//! passes, in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use std::fmt;
use subtle::ConstantTimeEq as _;

/// The tokens the API accepts, as SHA-256 digests.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiTokens(Vec<[u8; 32]>);

impl ApiTokens {
    /// Adds a digest as configured: `sha256:` and 64 hex digits.
    ///
    /// # Errors
    /// Anything else.
    pub fn add_digest(&mut self, text: &str) -> Result<(), String> {
        let hex = text.trim().strip_prefix("sha256:").ok_or(
            "must be sha256: and the token's SHA-256 in hex (`registrar api-token` prints both)",
        )?;
        if hex.len() != 64 || !hex.is_ascii() {
            return Err("must hold 64 hex digits after sha256:".into());
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "must hold 64 hex digits after sha256:".to_owned())?;
        }
        self.0.push(digest);
        Ok(())
    }

    /// Adds a token as kept in a secret file; only its digest is kept.
    pub fn add_token(&mut self, token: &str) {
        self.0.push(Sha256::digest(token.as_bytes()).into());
    }

    /// Whether any token is configured (the API is served only then).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every digest is compared in
    /// constant time, and all of them are, so the time taken tells nothing
    /// about which or how much matched.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.ct_eq(&digest)
            })
            .into()
    }

    /// A new token and the digest to configure for it.
    pub fn generate() -> (String, String) {
        let mut bytes = [0u8; 32];
        // Without a working OS random source no token can be safe.
        getrandom::fill(&mut bytes).expect("the OS random source must be available");
        let token = format!("rgt_{}", URL_SAFE_NO_PAD.encode(bytes));
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        (token, format!("sha256:{hex}"))
    }
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} configured)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_accepted_through_its_digest_only() {
        let (token, digest) = ApiTokens::generate();
        let mut tokens = ApiTokens::default();
        tokens.add_digest(&digest).expect("own digest");
        assert!(tokens.accepts(&token));
        assert!(!tokens.accepts(&digest));
        assert!(!tokens.accepts(""));
        assert!(!tokens.accepts(&format!("{token}x")));
    }

    #[test]
    fn tokens_from_a_file_and_digests_mix() {
        let mut tokens = ApiTokens::default();
        tokens.add_token("from-a-file");
        tokens
            .add_digest("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
            .expect("the digest of hello");
        assert!(tokens.accepts("from-a-file"));
        assert!(tokens.accepts("hello"));
        assert!(!tokens.accepts("Hello"));
    }

    #[test]
    fn malformed_digests_are_refused() {
        let mut tokens = ApiTokens::default();
        for bad in [
            "",
            "hello",
            "sha256:abc",
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:{}", "é".repeat(32)),
        ] {
            assert!(tokens.add_digest(bad).is_err(), "{bad:?}");
        }
        assert!(tokens.is_empty());
    }
}

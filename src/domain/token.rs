//! `Token` and `TokenHash`: random secrets handed to a customer (activation
//! links, session cookies, CSRF values) and the only form storage ever sees.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of entropy in every token: 256 bits, well above the 128 required.
const TOKEN_BYTES: usize = 32;

/// A random secret, shown to its owner once and stored only as a hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; TOKEN_BYTES]);

/// SHA-256 of a token: what the database keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl Token {
    /// Draws a fresh token from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        // Without a working OS random source no token can be safe; there is
        // nothing sensible to fall back to.
        getrandom::fill(&mut bytes).expect("the OS random source must be available");
        Self(bytes)
    }

    /// Parses a token as it appears in a link or cookie; `None` for anything
    /// that is not exactly a URL-safe base64 encoding of 32 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The form handed out: 43 URL-safe characters.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The hash stored in place of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        let parsed = Token::parse(&a.expose()).expect("own encoding parses");
        assert_eq!(parsed.hash(), a.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "short", &"A".repeat(44), &"*".repeat(43)] {
            assert!(Token::parse(bad).is_none(), "input {bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(&token.expose()));
    }
}

//! `Token` and `TokenHash`: random secrets handed to a customer (activation
//! links, session cookies, CSRF values) and the only form storage ever sees.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of entropy in every token: 256 bits, well above the 128 required.
const TOKEN_BYTES: usize = 32;

/// Bytes of a stamped token that are its stamp, not secret: the other 24
/// (192 bits) are random.
const STAMP_BYTES: usize = 8;

/// The last stamp this process gave a token.
static LAST_STAMP: AtomicU64 = AtomicU64::new(0);

/// A random secret, shown to its owner once and stored only as a hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; TOKEN_BYTES]);

/// SHA-256 of a token (of a stamped one, its stamp and 24 bytes of its
/// SHA-256): what the database keeps.
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

    /// Draws a fresh token for a link whose hash is stored per message (an
    /// activation or opt-out link). Its first 8 bytes are a stamp, the
    /// microseconds since 1970 or one more than the last stamp, so that
    /// `stamped_hash` keys follow time: a table keyed by them grows at its
    /// end, one page per commit, instead of on a random page per row. The
    /// stamp tells when the link was made, which its mail says anyway; the
    /// 24 other bytes are the secret.
    pub fn generate_stamped() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..STAMP_BYTES].copy_from_slice(&next_stamp().to_be_bytes());
        getrandom::fill(&mut bytes[STAMP_BYTES..]).expect("the OS random source must be available");
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

    /// The key a stamped token (`generate_stamped`) is stored under: its
    /// stamp, then the first 24 bytes of its SHA-256 (192 bits).
    pub fn stamped_hash(&self) -> TokenHash {
        let digest: [u8; 32] = Sha256::digest(self.0).into();
        let mut key = [0u8; 32];
        key[..STAMP_BYTES].copy_from_slice(&self.0[..STAMP_BYTES]);
        key[STAMP_BYTES..].copy_from_slice(&digest[..32 - STAMP_BYTES]);
        TokenHash(key)
    }

    /// The keys a presented link token may be stored under: stamped, as
    /// links are made now, or its plain SHA-256, as links made before
    /// were. Nobody can tell the two kinds apart from the token, so a
    /// lookup tries both; a stored key matches only its own kind.
    pub fn link_keys(&self) -> [TokenHash; 2] {
        [self.stamped_hash(), self.hash()]
    }
}

/// The next stamp: now in microseconds since 1970, or one more than the
/// last one when the clock has not moved on (or went back).
fn next_stamp() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        });
    let last = LAST_STAMP
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    now.max(last.saturating_add(1))
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
    fn stamped_keys_follow_the_order_tokens_were_made_in() {
        let tokens: Vec<Token> = (0..1000).map(|_| Token::generate_stamped()).collect();
        let keys: Vec<TokenHash> = tokens.iter().map(Token::stamped_hash).collect();
        assert!(
            keys.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "keys must grow"
        );
        // The secret part differs, and the key is not the token.
        assert_ne!(tokens[0].0[STAMP_BYTES..], tokens[1].0[STAMP_BYTES..]);
        assert_ne!(keys[0].0[STAMP_BYTES..], tokens[0].0[STAMP_BYTES..]);
    }

    #[test]
    fn a_link_token_is_looked_up_under_both_kinds_of_key() {
        let stamped = Token::generate_stamped();
        let parsed = Token::parse(&stamped.expose()).expect("own encoding parses");
        assert_eq!(parsed.link_keys(), [stamped.stamped_hash(), stamped.hash()]);
        // A token made before stamps, stored under its SHA-256, is still found.
        let older = Token::generate();
        assert!(older.link_keys().contains(&older.hash()));
        assert_ne!(older.stamped_hash(), older.hash());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(&token.expose()));
    }
}

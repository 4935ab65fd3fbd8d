//! Passwords: the rules a new password must meet, and argon2id hashing and
//! verification on the blocking pool, a bounded number at a time.
//!
//! Argon2id with m=19 MiB, t=2, p=1 (argon2's defaults) takes tens of
//! milliseconds of a core; run on a tokio worker it would stall every other
//! request, and run without a bound a burst of logins could exhaust memory.

use crate::domain::EmailAddress;
use crate::settings::PasswordSettings;
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::{Arc, LazyLock};
use tokio::sync::Semaphore;

/// Why a new password is not accepted; each variant is a message for the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("Enter the same password twice.")]
    Mismatch,
    #[error("Use at least {0} characters.")]
    TooShort(usize),
    #[error("Use at most {0} characters.")]
    TooLong(usize),
    #[error("This password is too easy to guess; it appears in lists of common passwords.")]
    Common,
    #[error("Do not use your email address in your password.")]
    ContainsAddress,
}

/// A small built-in list of the most common passwords of 8 or more
/// characters; the minimum length rules out the shorter ones.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789",
    "12345678",
    "1234567890",
    "password",
    "password1",
    "password123",
    "qwertyuiop",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "welcome1",
    "qwerty123",
    "passw0rd",
    "abc123456",
    "11111111",
    "00000000",
    "123123123",
    "987654321",
    "qwertyuiopasdfghjkl",
    "correcthorsebatterystaple",
    "passwordpassword",
    "123456789012345",
    "1234567890123456",
    "qwertyqwertyqwerty",
    "iloveyouiloveyou",
    "aaaaaaaaaaaaaaa",
    "letmeinletmein1",
    "changemechangeme",
];

/// Checks a new password against the rules: typed twice, length, not common,
/// not containing the address's local part. Length counts characters after
/// NFKC-like trimming is not applied: the password is used as typed.
///
/// # Errors
/// The first rule the password breaks.
pub fn check_new(
    password: &str,
    confirmation: &str,
    email: &str,
    rules: &PasswordSettings,
) -> Result<(), PasswordProblem> {
    if password != confirmation {
        return Err(PasswordProblem::Mismatch);
    }
    let length = password.chars().count();
    if length < rules.min_length {
        return Err(PasswordProblem::TooShort(rules.min_length));
    }
    if length > rules.max_length {
        return Err(PasswordProblem::TooLong(rules.max_length));
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(PasswordProblem::Common);
    }
    if let Ok(address) = EmailAddress::parse(email) {
        let local = address.local_part().to_lowercase();
        if local.len() >= 3 && lowered.contains(&local) {
            return Err(PasswordProblem::ContainsAddress);
        }
    }
    Ok(())
}

/// Hashes and verifies passwords with argon2id, at most `limit` at once.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

/// A hash of a random password, verified against when the account is unknown
/// so a failed login takes as long whether or not the account exists.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random = crate::domain::Token::generate().expose();
    Argon2::default()
        .hash_password(random.as_bytes())
        .map(|hash| hash.to_string())
        .unwrap_or_default()
});

impl PasswordHasher {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// Hashes a password to a PHC string (argon2id, random salt).
    ///
    /// # Errors
    /// Fails only if argon2 or the blocking pool fails.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("failed to hash a password: {e}"))
        })
        .await?
    }

    /// Verifies a password against a stored PHC string; with no stored hash,
    /// verifies against a dummy so the time taken gives nothing away.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        tokio::task::spawn_blocking(move || {
            let hash = stored.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                .is_ok();
            matches && known
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PasswordSettings {
        PasswordSettings {
            min_length: 15,
            max_length: 64,
            max_concurrent_hashes: 1,
        }
    }

    #[test]
    fn new_password_rules() {
        let email = "jane.doe@example.com";
        let cases = [
            (
                "a long enough passphrase",
                "a long enough passphrase",
                Ok(()),
            ),
            (
                "a long enough passphrase",
                "a long enough passphrasf",
                Err(PasswordProblem::Mismatch),
            ),
            ("short", "short", Err(PasswordProblem::TooShort(15))),
            (
                "123456789012345",
                "123456789012345",
                Err(PasswordProblem::Common),
            ),
            (
                "my jane.doe secret!",
                "my jane.doe secret!",
                Err(PasswordProblem::ContainsAddress),
            ),
            ("ünïcödé pässwörd ok", "ünïcödé pässwörd ok", Ok(())),
        ];
        for (password, confirmation, expected) in cases {
            assert_eq!(
                check_new(password, confirmation, email, &rules()),
                expected,
                "password {password:?}"
            );
        }
        let long = "x".repeat(65);
        assert_eq!(
            check_new(&long, &long, email, &rules()),
            Err(PasswordProblem::TooLong(64))
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher
            .hash(SecretString::from("correct horse battery"))
            .await
            .expect("hashes");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify(
                    SecretString::from("correct horse battery"),
                    Some(hash.clone())
                )
                .await
        );
        assert!(
            !hasher
                .verify(SecretString::from("wrong horse battery"), Some(hash))
                .await
        );
        assert!(!hasher.verify(SecretString::from("anything"), None).await);
    }
}

//! Passwords: the rules a new password must meet, and argon2id hashing and
//! verification on the blocking pool, a bounded number at a time.
//!
//! Passwords are compared and hashed in Unicode NFKC form, so the same
//! passphrase typed on two keyboards (composed or decomposed accents,
//! full-width digits) is the same password. There are no composition rules:
//! length, a list of common passwords (`common_passwords.txt`, from zxcvbn,
//! MIT) and the owner's own address are what count.
//!
//! Argon2id at the configured cost (never below m=19 MiB, t=2, p=1) takes
//! tens of milliseconds of a core; run on a tokio worker it would stall every
//! other request, and run without a bound a burst of logins could exhaust
//! memory. So a bounded number run at once, and a bounded number wait for
//! their turn: past that, the caller hears `Busy` at once (the page answers
//! `503` with `Retry-After`) instead of queueing behind a burst. Stored PHC
//! strings carry their own parameters, so raising the cost never locks
//! anyone out.

use crate::domain::EmailAddress;
use crate::metrics::Metrics;
use crate::settings::PasswordSettings;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit};
use unicode_normalization::UnicodeNormalization as _;

/// Why a new password is not accepted; each variant is a message for the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("The two passwords are not the same. Type the same password twice.")]
    Mismatch,
    #[error(
        "Use at least {0} characters. A few unrelated words make a long password that is easy to remember."
    )]
    TooShort(usize),
    #[error("Use at most {0} characters.")]
    TooLong(usize),
    #[error(
        "This password is too easy to guess: it is on a list of common passwords. Choose another one."
    )]
    Common,
    #[error("Do not use your email address (or its part before the @) in your password.")]
    ContainsAddress,
}

/// The bundled list of common passwords: one per line, lowercase, `#`
/// comments (source and licence) at the top.
const COMMON_PASSWORDS_FILE: &str = include_str!("common_passwords.txt");

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    COMMON_PASSWORDS_FILE
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// How many passwords the bundled list holds.
pub fn common_password_count() -> usize {
    COMMON_PASSWORDS.len()
}

/// A password in the form that is checked, hashed and verified: NFKC.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Checks a new password against the rules: typed twice, length, not common
/// (as typed, or with its spaces removed), not containing the address's
/// local part. Length counts Unicode scalar
/// values after NFKC normalization.
///
/// # Errors
/// The first rule the password breaks.
pub fn check_new(
    password: &str,
    confirmation: &str,
    email: &str,
    rules: &PasswordSettings,
) -> Result<(), PasswordProblem> {
    let password = normalize(password);
    if password != normalize(confirmation) {
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
    let squeezed: String = lowered.split_whitespace().collect();
    if COMMON_PASSWORDS.contains(lowered.as_str()) || COMMON_PASSWORDS.contains(squeezed.as_str()) {
        return Err(PasswordProblem::Common);
    }
    if let Ok(address) = EmailAddress::parse(email) {
        let local = address.local_part().to_lowercase();
        let base = local
            .split_once('+')
            .map_or(local.as_str(), |(base, _)| base);
        let contains = |part: &str| part.len() >= 3 && lowered.contains(part);
        if contains(&local) || contains(base) {
            return Err(PasswordProblem::ContainsAddress);
        }
    }
    Ok(())
}

/// Why a hash or a verification was not done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many are running and waiting already: try again shortly.
    #[error("too many password checks are waiting")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Hashes and verifies passwords with argon2id, at most
/// `max_concurrent_hashes` at once and `max_queued_hashes` waiting.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Callers waiting for a permit now.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    params: Params,
    /// Hash of a random password at the configured cost, verified against
    /// when the account is unknown so a failed login takes as long whether or
    /// not the account exists. Computed on first use, off the async workers.
    dummy: Arc<OnceLock<String>>,
    /// The queue for a permit and the time of each hash, for `/metrics`.
    metrics: Metrics,
}

/// Counts a caller waiting for a permit; the count drops with it, also when
/// the caller gives up (its request was cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// A hasher with the configured argon2id cost and concurrency,
    /// reporting its queue and hash times to `metrics`.
    ///
    /// # Errors
    /// When argon2 refuses the parameters (settings validation keeps them
    /// within argon2's range).
    pub fn new(settings: &PasswordSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(settings.max_concurrent_hashes.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: settings.max_queued_hashes,
            params,
            dummy: Arc::new(OnceLock::new()),
            metrics,
        })
    }

    /// A permit to run one hash: at once when one is free, after waiting
    /// when fewer than `max_queued_hashes` wait already, else `Busy`.
    async fn permit(&self) -> Result<SemaphorePermit<'_>, HashError> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let _waiting = Waiting(&self.waiting);
        // Counted in `/metrics` while it waits, too.
        let _queued = self.metrics.password_waiting();
        self.permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.into()))
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password (NFKC-normalized) to a PHC string (argon2id, random
    /// salt).
    ///
    /// # Errors
    /// `Busy` when too many wait already; `Failed` if argon2 or the blocking
    /// pool fails.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let _permit = self.permit().await?;
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || hasher.hash_blocking(password.expose_secret()))
            .await
            .map_err(|e| HashError::Failed(e.into()))?
            .map_err(HashError::Failed)
    }

    /// `hash` for threads outside the runtime (benchmarks, tools); not
    /// bounded by the permits.
    ///
    /// # Errors
    /// Fails only if argon2 fails.
    pub fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let started = Instant::now();
        let hashed = self
            .argon2()
            .hash_password(normalize(password).as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash a password: {e}"));
        self.metrics.password_hashed("hash", started.elapsed());
        hashed
    }

    /// Verifies a password against a stored PHC string (with the parameters
    /// it records); with no stored hash, verifies against a dummy at the
    /// configured cost so the time taken gives nothing away.
    ///
    /// # Errors
    /// `Busy` when too many wait already (nothing was verified).
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let _permit = self.permit().await?;
        let known = stored.is_some();
        let argon2 = self.argon2();
        let dummy = Arc::clone(&self.dummy);
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            let hash = stored.unwrap_or_else(|| {
                dummy
                    .get_or_init(|| {
                        let random = crate::domain::Token::generate().expose();
                        argon2
                            .hash_password(random.as_bytes())
                            .map(|hash| hash.to_string())
                            .unwrap_or_default()
                    })
                    .clone()
            });
            let started = Instant::now();
            let matches = argon2
                .verify_password(
                    normalize(password.expose_secret()).as_bytes(),
                    hash.as_str(),
                )
                .is_ok();
            metrics.password_hashed("verify", started.elapsed());
            matches && known
        })
        .await
        .map_err(|e| HashError::Failed(e.into()))
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
            max_queued_hashes: 4,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }

    #[test]
    fn new_password_rules() {
        let email = "jane.doe+help@example.com";
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
            ("", "", Err(PasswordProblem::TooShort(15))),
            (
                "1234567890qwerty",
                "1234567890qwerty",
                Err(PasswordProblem::Common),
            ),
            (
                "QwertyUIOP12345",
                "QwertyUIOP12345",
                Err(PasswordProblem::Common),
            ),
            (
                "1qaz 2wsx 3edc 4rfv",
                "1qaz 2wsx 3edc 4rfv",
                Err(PasswordProblem::Common),
            ),
            (
                "my jane.doe secret!",
                "my jane.doe secret!",
                Err(PasswordProblem::ContainsAddress),
            ),
            (
                "MY JANE.DOE+HELP SECRET",
                "MY JANE.DOE+HELP SECRET",
                Err(PasswordProblem::ContainsAddress),
            ),
            ("ünïcödé pässwörd ok", "ünïcödé pässwörd ok", Ok(())),
            (
                "no composition rules at all",
                "no composition rules at all",
                Ok(()),
            ),
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

    #[test]
    fn composed_and_decomposed_forms_are_the_same_password() {
        let composed = "caf\u{e9} au lait, s'il vous pla\u{ee}t";
        let decomposed = "cafe\u{301} au lait, s'il vous plai\u{302}t";
        assert_eq!(
            check_new(composed, decomposed, "x@example.com", &rules()),
            Ok(())
        );
        assert_eq!(normalize(composed), normalize(decomposed));
        // Full-width digits fold to ASCII, so a disguised common password is caught.
        let wide: String = "111222333444555"
            .chars()
            .map(|c| char::from_u32(u32::from(c) - u32::from('0') + 0xff10).unwrap_or(c))
            .collect();
        assert_ne!(wide, "111222333444555");
        let wide = wide.as_str();
        assert_eq!(
            check_new(wide, wide, "x@example.com", &rules()),
            Err(PasswordProblem::Common)
        );
    }

    #[test]
    fn the_bundled_list_holds_at_least_ten_thousand_passwords() {
        assert!(
            common_password_count() >= 10_000,
            "{}",
            common_password_count()
        );
        assert!(COMMON_PASSWORDS.contains("password"));
        assert!(!COMMON_PASSWORDS.iter().any(|p| p.starts_with('#')));
    }

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id_at_the_configured_cost() {
        let metrics = Metrics::new();
        let hasher = PasswordHasher::new(&rules(), metrics.clone()).expect("valid parameters");
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
                .expect("verifies")
        );
        assert!(
            !hasher
                .verify(SecretString::from("wrong horse battery"), Some(hash))
                .await
                .expect("verifies")
        );
        assert!(
            !hasher
                .verify(SecretString::from("anything"), None)
                .await
                .expect("verifies")
        );
        let text = metrics.encode();
        assert!(
            text.contains("registrar_password_hash_seconds_count{operation=\"hash\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("registrar_password_hash_seconds_count{operation=\"verify\"} 3"),
            "{text}"
        );
        assert!(text.contains("registrar_password_queue 0"), "{text}");

        let stronger = PasswordHasher::new(
            &PasswordSettings {
                argon2_iterations: 3,
                ..rules()
            },
            Metrics::new(),
        )
        .expect("valid parameters");
        let hash = stronger
            .hash(SecretString::from("caf\u{e9} correct horse"))
            .await
            .expect("hashes");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
            "{hash}"
        );
        // A hash made at another cost still verifies, and NFKC applies.
        assert!(
            hasher
                .verify(SecretString::from("cafe\u{301} correct horse"), Some(hash))
                .await
                .expect("verifies")
        );
    }

    #[tokio::test]
    async fn beyond_the_queue_a_caller_hears_busy_at_once() {
        let hasher = PasswordHasher::new(
            &PasswordSettings {
                max_queued_hashes: 1,
                ..rules()
            },
            Metrics::new(),
        )
        .expect("valid parameters");
        // Hold the only permit, and fill the one place in the queue.
        let held = hasher.permits.try_acquire().expect("a free permit");
        let queued = hasher.clone();
        let waiter =
            tokio::spawn(async move { queued.verify(SecretString::from("x"), None).await.is_ok() });
        until(|| hasher.waiting.load(Ordering::Acquire) == 1).await;
        assert!(matches!(
            hasher.verify(SecretString::from("y"), None).await,
            Err(HashError::Busy)
        ));
        assert!(matches!(
            hasher.hash(SecretString::from("y")).await,
            Err(HashError::Busy)
        ));
        drop(held);
        assert!(waiter.await.expect("the waiter"), "the queued one ran");
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
    }

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the condition never held");
    }
}

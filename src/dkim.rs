//! DKIM for the mail we send: a key read from a PEM file (RSA of at least
//! 2048 bits, or Ed25519), the signer mail-auth builds from it, and the DNS
//! TXT record an operator publishes for it.
//!
//! Signing happens when the outbox sends, not when a reply is queued: the
//! stored bytes stay unsigned (a retry signs again, with a fresh `t=`), and
//! the signature always covers exactly the bytes handed to the relay. This
//! module reads no settings; `settings` checks the key files with it and
//! `mailer` builds the signers from the settings.

use base64::Engine as _;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::Path;

/// The headers every signature covers. `From` is listed twice
/// (over-signed), so a second From added on the way breaks the signature;
/// headers we do not send (`In-Reply-To` on an unprompted mail) are signed
/// as absent, so nobody can add them either.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Loop",
];

/// The least RSA modulus accepted (RFC 8301 asks for 1024; 2048 is what
/// receivers expect today).
pub const MIN_RSA_BITS: usize = 2048;

/// Which algorithm a key signs with, as the `k=` tag names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    Ed25519,
}

impl KeyKind {
    /// The `k=` value of the DNS record.
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Rsa { .. } => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }
}

/// A private key read from its PEM file: what it is, its public half in the
/// form the DNS record publishes (`p=`), and the key itself.
pub struct PrivateKey {
    pub kind: KeyKind,
    /// RSA: DER SubjectPublicKeyInfo; Ed25519: the 32 raw bytes (RFC 8463).
    public: Vec<u8>,
    key: DkimKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0} holds no PEM private key (PKCS#8 or PKCS#1)")]
    NotPem(String),
    #[error("{0} holds a key that is neither RSA nor Ed25519")]
    Unsupported(String),
    #[error("{path} holds an RSA key of {bits} bits; DKIM keys need at least {MIN_RSA_BITS}")]
    TooShort { path: String, bits: usize },
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#8 (RSA or Ed25519, as `openssl genpkey`
    /// writes them) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// The file is unreadable, holds no such key, or an RSA key is shorter
    /// than `MIN_RSA_BITS`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|error| KeyError::Read {
            path: shown.clone(),
            error,
        })?;
        Self::from_pem(&pem, &shown)
    }

    /// As `load`, from the PEM text; `name` names it in errors.
    ///
    /// # Errors
    /// As `load`.
    pub fn from_pem(pem: &[u8], name: &str) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPem(name.into()))?;
        if let PrivateKeyDer::Pkcs8(pkcs8) = &der
            && let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
        {
            return Ok(Self {
                kind: KeyKind::Ed25519,
                public: key.public_key(),
                key: DkimKey::Ed25519(key),
            });
        }
        let key = RsaKey::<Sha256>::from_key_der(der.clone_key())
            .map_err(|_| KeyError::Unsupported(name.into()))?;
        let pkcs1 = key.public_key();
        let bits = rsa_modulus_bits(&pkcs1).unwrap_or(0);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort {
                path: name.into(),
                bits,
            });
        }
        Ok(Self {
            kind: KeyKind::Rsa { bits },
            public: rsa_subject_public_key_info(&pkcs1),
            key: DkimKey::Rsa(key),
        })
    }

    /// The `p=` value: the public key, base64.
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.public)
    }
}

/// Signs mail for one domain with one selector.
pub struct Signer {
    domain: String,
    selector: String,
    signer: DkimSigner<DkimKey, Done>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `d=domain`, `s=selector` (relaxed/relaxed, SHA-256).
    pub fn new(domain: &str, selector: &str, key: PrivateKey) -> Self {
        let signer = DkimSigner::from_key(key.key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            signer,
        }
    }

    /// The `d=` domain (A-label, lowercase).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// `message` with a `DKIM-Signature` header in front.
    ///
    /// # Errors
    /// The message has no headers to sign, or the key fails to sign.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, mail_auth::Error> {
        let signature = self.signer.sign(message)?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// The DNS record that publishes `key` for `selector` at `domain`, in zone
/// file form. The value is split into strings of at most 255 characters, as
/// a TXT record requires (an RSA-2048 key is longer than one).
pub fn txt_record(domain: &str, selector: &str, key: &PrivateKey) -> String {
    let value = format!(
        "v=DKIM1; k={}; p={}",
        key.kind.tag(),
        key.public_key_base64()
    );
    let strings: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
        .collect();
    let name = format!("{selector}._domainkey.{}.", domain.trim_end_matches('.'));
    if strings.len() == 1 {
        format!("{name} IN TXT {}", strings[0])
    } else {
        format!("{name} IN TXT ( {} )", strings.join("\n    "))
    }
}

/// The record's value alone (`v=DKIM1; k=…; p=…`), as a DNS lookup returns it.
pub fn txt_value(key: &PrivateKey) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        key.kind.tag(),
        key.public_key_base64()
    )
}

/// Whether `selector` is a usable DKIM selector: dot-separated DNS labels of
/// letters, digits and hyphens.
pub fn valid_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 63
        && selector.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The bit length of an RSA modulus, from a DER `RSAPublicKey` (PKCS#1):
/// `SEQUENCE { INTEGER modulus, INTEGER exponent }`.
fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let (tag, body, _) = der_element(pkcs1)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, modulus, _) = der_element(body)?;
    if tag != 0x02 {
        return None;
    }
    let first = modulus.iter().position(|&b| b != 0)?;
    let significant = &modulus[first..];
    Some(significant.len() * 8 - significant[0].leading_zeros() as usize)
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Wraps a PKCS#1 `RSAPublicKey` in the `SubjectPublicKeyInfo` DKIM records
/// publish (what `openssl rsa -pubout` prints).
fn rsa_subject_public_key_info(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1), NULL.
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(der_wrap(0x03, &bit_string));
    der_wrap(0x30, &body)
}

fn der_wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519_pem() -> String {
        let der = Ed25519Key::generate_pkcs8().expect("a key");
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    #[test]
    fn an_ed25519_pem_key_loads_and_its_record_names_it() {
        let key = PrivateKey::from_pem(ed25519_pem().as_bytes(), "test").expect("loads");
        assert_eq!(key.kind, KeyKind::Ed25519);
        let record = txt_record("mail.example", "s1", &key);
        assert!(
            record.starts_with("s1._domainkey.mail.example. IN TXT \"v=DKIM1; k=ed25519; p="),
            "{record}"
        );
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(matches!(
            PrivateKey::from_pem(b"hello", "x"),
            Err(KeyError::NotPem(_))
        ));
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert!(valid_selector("mail2026"));
        assert!(valid_selector("a.b-c"));
        assert!(!valid_selector(""));
        assert!(!valid_selector("a b"));
        assert!(!valid_selector("-a"));
    }

    #[test]
    fn spki_wraps_pkcs1_like_openssl() {
        // A tiny stand-in modulus: the structure, not the size, is checked.
        let pkcs1 = [0x30, 0x06, 0x02, 0x01, 0x0b, 0x02, 0x01, 0x03];
        let spki = rsa_subject_public_key_info(&pkcs1);
        assert_eq!(spki[0], 0x30);
        assert_eq!(
            &spki[2..17],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00
            ]
        );
        assert_eq!(rsa_modulus_bits(&pkcs1), Some(4));
    }
}

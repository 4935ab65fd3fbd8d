//! `EmailAddress`: an address as received, with the identity key used for
//! uniqueness and rate limits.
//!
//! The address is kept exactly as received so that mail is delivered to it
//! unchanged. The identity key is the ASCII-lowercased local part and the
//! domain in IDNA A-label form (UTS 46, non-transitional, so `straße.de` stays
//! distinct from `strasse.de`). There is no Unicode case folding, and plus-tags
//! belong to the identity; they are stripped only for rate limits.

use std::fmt;

/// Longest local part (RFC 5321 section 4.5.3.1.1).
const MAX_LOCAL_LEN: usize = 64;
/// Longest domain (RFC 5321 section 4.5.3.1.2).
const MAX_DOMAIN_LEN: usize = 255;

/// Why an address cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address has no @")]
    MissingAt,
    #[error("the local part must be plain ASCII (SMTPUTF8 is not supported)")]
    NonAsciiLocalPart,
    #[error("the local part is not a plain dot-atom")]
    InvalidLocalPart,
    #[error("the local part is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the domain is not a valid host name")]
    InvalidDomain,
    #[error("the domain is longer than 255 characters")]
    DomainTooLong,
}

/// A single mailbox address that may own a customer account.
///
/// Quoted local parts, source routes, IP literals and non-ASCII local parts
/// are refused: none of them belongs on a customer account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    /// The address exactly as received (domain possibly in Unicode form).
    received: String,
    /// Local part as received.
    local: String,
    /// Domain in lowercase A-label form.
    domain_ascii: String,
}

impl EmailAddress {
    /// Parses a bare address (`local@domain`, no display name, no brackets).
    ///
    /// # Errors
    /// Returns the first rule the address breaks.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let received = input.trim();
        if received.is_empty() {
            return Err(AddressError::Empty);
        }
        let (local, domain) = received.rsplit_once('@').ok_or(AddressError::MissingAt)?;
        if !local.is_ascii() {
            return Err(AddressError::NonAsciiLocalPart);
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(AddressError::LocalPartTooLong);
        }
        if !is_dot_atom(local) {
            return Err(AddressError::InvalidLocalPart);
        }
        let domain_ascii = domain_to_a_label(domain)?;
        Ok(Self {
            received: received.to_owned(),
            local: local.to_owned(),
            domain_ascii,
        })
    }

    /// The address as received.
    pub fn as_str(&self) -> &str {
        &self.received
    }

    /// The address to hand to an SMTP relay: local part as received, domain
    /// as A-label, so no SMTPUTF8 is needed.
    pub fn delivery_address(&self) -> String {
        format!("{}@{}", self.local, self.domain_ascii)
    }

    /// Key for uniqueness: ASCII-lowercased local part, A-label domain.
    pub fn identity_key(&self) -> String {
        self.key_of(&self.local)
    }

    /// Key for rate limits: the identity key without a `+tag`.
    pub fn rate_key(&self) -> String {
        let base = self
            .local
            .split_once('+')
            .map_or(self.local.as_str(), |(base, _)| base);
        self.key_of(base)
    }

    /// `local@domain`, the local part ASCII-lowercased, in one allocation
    /// (the writer thread builds several keys per message).
    fn key_of(&self, local: &str) -> String {
        let mut key = String::with_capacity(local.len() + 1 + self.domain_ascii.len());
        key.push_str(local);
        key.make_ascii_lowercase();
        key.push('@');
        key.push_str(&self.domain_ascii);
        key
    }

    /// The local part as received.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain in lowercase A-label form.
    pub fn domain(&self) -> &str {
        &self.domain_ascii
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.received
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.received)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", self.received)
    }
}

/// RFC 5322 dot-atom: atext runs separated by single dots.
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
}

/// Converts a domain to lowercase A-label form and checks it is a host name
/// with at least two labels (no IP literals, no bare host names).
fn domain_to_a_label(domain: &str) -> Result<String, AddressError> {
    if domain.is_empty() || domain.starts_with('[') || domain.ends_with('.') {
        return Err(AddressError::InvalidDomain);
    }
    let ascii = idna::domain_to_ascii_cow(domain.as_bytes(), idna::AsciiDenyList::STD3)
        .map_err(|_| AddressError::InvalidDomain)?
        .into_owned();
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(AddressError::DomainTooLong);
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid_labels = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    // A top-level label of digits only would make this an IP address.
    let numeric_tld = labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if !valid_labels || numeric_tld {
        return Err(AddressError::InvalidDomain);
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_lowercase_ascii_with_a_label_domain() {
        let address = EmailAddress::parse("Jane.Doe+Help@Bücher.Example").expect("valid");
        assert_eq!(address.as_str(), "Jane.Doe+Help@Bücher.Example");
        assert_eq!(
            address.identity_key(),
            "jane.doe+help@xn--bcher-kva.example"
        );
        assert_eq!(address.rate_key(), "jane.doe@xn--bcher-kva.example");
        assert_eq!(
            address.delivery_address(),
            "Jane.Doe+Help@xn--bcher-kva.example"
        );
    }

    #[test]
    fn sharp_s_is_not_folded_to_ss() {
        let sharp = EmailAddress::parse("a@straße.de").expect("valid");
        let plain = EmailAddress::parse("a@strasse.de").expect("valid");
        assert_ne!(sharp.identity_key(), plain.identity_key());
    }

    #[test]
    fn known_bad_addresses_are_refused() {
        let cases = [
            ("", AddressError::Empty),
            ("no-at-sign", AddressError::MissingAt),
            ("jörg@example.com", AddressError::NonAsciiLocalPart),
            ("\"quoted\"@example.com", AddressError::InvalidLocalPart),
            ("a..b@example.com", AddressError::InvalidLocalPart),
            (".a@example.com", AddressError::InvalidLocalPart),
            ("a b@example.com", AddressError::InvalidLocalPart),
            ("@example.com", AddressError::InvalidLocalPart),
            ("a@[127.0.0.1]", AddressError::InvalidDomain),
            ("a@localhost", AddressError::InvalidDomain),
            ("a@1.2.3.4", AddressError::InvalidDomain),
            ("a@-bad.example", AddressError::InvalidDomain),
            ("a@exa_mple.com", AddressError::InvalidDomain),
            ("a@example.com.", AddressError::InvalidDomain),
            ("@b@example.com", AddressError::InvalidLocalPart),
        ];
        for (input, expected) in cases {
            assert_eq!(EmailAddress::parse(input), Err(expected), "input {input:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(
            EmailAddress::parse(&long_local),
            Err(AddressError::LocalPartTooLong)
        );
        let long_domain = format!("a@{}.com", vec!["a".repeat(60); 5].join("."));
        assert_eq!(
            EmailAddress::parse(&long_domain),
            Err(AddressError::DomainTooLong)
        );
    }
}

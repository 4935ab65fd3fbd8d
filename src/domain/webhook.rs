//! What a webhook endpoint is told and how it knows it is us: the kinds of
//! customer event (`EventKind`, with the stable names receivers match on)
//! and the signing secret (`WebhookSecret`, the Standard Webhooks `whsec_`
//! form).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretSlice};
use std::fmt;

/// Something that happened to a customer, as a webhook announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A pending customer was created (mail, portal, invitation).
    Registered,
    /// A customer became active: activation page, or a sign-in method that
    /// proved the address (which may create the customer active at once).
    Activated,
    Disabled,
    Enabled,
    /// The customer's data was removed (the operator's erase, or the purge
    /// of a customer who never activated).
    Erased,
    /// A customer signed in; sent only to endpoints that list it.
    SignedIn,
}

impl EventKind {
    /// Every kind, in the order the README lists them.
    pub const ALL: [EventKind; 6] = [
        EventKind::Registered,
        EventKind::Activated,
        EventKind::Disabled,
        EventKind::Enabled,
        EventKind::Erased,
        EventKind::SignedIn,
    ];

    /// The kinds an endpoint gets when its `events` list is empty: the
    /// customer's lifecycle, without the (frequent) sign-ins.
    pub const LIFECYCLE: [EventKind; 5] = [
        EventKind::Registered,
        EventKind::Activated,
        EventKind::Disabled,
        EventKind::Enabled,
        EventKind::Erased,
    ];

    /// The payload's `type`: stable, never renamed.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "customer.registered",
            EventKind::Activated => "customer.activated",
            EventKind::Disabled => "customer.disabled",
            EventKind::Enabled => "customer.enabled",
            EventKind::Erased => "customer.erased",
            EventKind::SignedIn => "customer.signed_in",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event {text:?}; events are {}", names.join(", "))
            })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of 24 to 64
/// random bytes (the specification's bounds). Only the decoded key is kept,
/// and it never prints.
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with whsec_")]
    Prefix,
    #[error("is not base64 after whsec_")]
    Base64,
    #[error("must hold 24 to 64 bytes (32 to 88 base64 characters); it holds {0}")]
    Length(usize),
}

impl WebhookSecret {
    /// Parses the `whsec_…` form.
    ///
    /// # Errors
    /// The prefix, the base64 or the length is wrong.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(SecretSlice::from(key)))
    }

    /// A fresh secret of 32 random bytes, in its `whsec_` form, for an
    /// operator to configure on both sides.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        // Without a working OS random source no secret can be safe.
        getrandom::fill(&mut key).expect("the OS random source must be available");
        format!("whsec_{}", STANDARD.encode(key))
    }

    /// The HMAC key.
    pub fn key(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert!("customer.created".parse::<EventKind>().is_err());
    }

    #[test]
    fn secrets_need_the_prefix_base64_and_24_to_64_bytes() {
        let good = WebhookSecret::generate();
        assert_eq!(
            WebhookSecret::parse(&good).expect("own form").key().len(),
            32
        );
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(SecretError::Prefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not*base64").err(),
            Some(SecretError::Base64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").err(),
            Some(SecretError::Length(5))
        );
        assert!(!format!("{:?}", WebhookSecret::parse(&good)).contains(&good[6..]));
    }
}

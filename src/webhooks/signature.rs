//! The Standard Webhooks signature: HMAC-SHA256, keyed with the endpoint's
//! secret, over `{webhook-id}.{webhook-timestamp}.{body}`, sent base64 in
//! `webhook-signature` as `v1,<signature>`. Receivers check it with the
//! specification's published libraries.

use crate::domain::WebhookSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The `webhook-signature` value for one attempt.
pub fn sign(secret: &WebhookSecret, event_id: &str, timestamp: i64, body: &str) -> String {
    // Any key length is a valid HMAC key; the secret holds 24 to 64 bytes.
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(secret.key()).expect("HMAC accepts keys of any length");
    mac.update(event_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_reference_libraries() {
        // The test vector of the specification's own libraries.
        let secret =
            WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("secret");
        let signature = sign(
            &secret,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn signs_the_readme_example() {
        let secret =
            WebhookSecret::parse("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY").expect("secret");
        let body = r#"{"type":"customer.activated","timestamp":"2025-03-03T09:41:07Z","data":{"email":"jane@example.com","name":"Jane Doe","company":"Acme","service":"support","status":"active","channel":"mail","via":"activation"}}"#;
        assert_eq!(
            sign(&secret, "msg_4Zb0Yl2xQy8d6HqZ3kVn1A", 1_740_994_868, body),
            "v1,bUWv5DFPnOY5KwLK9rILO03UKTPMX14TC4uOGhgKLdI="
        );
    }
}

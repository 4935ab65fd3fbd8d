//! What an event says: the Standard Webhooks JSON shape
//! (`{"type", "timestamp", "data"}`) with the customer in `data`, and the
//! event's `msg_…` id. Rendered once, when the event is queued, so every
//! endpoint and every attempt gets the same bytes.

use crate::domain::{Channel, EventKind};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// The customer an event is about, as it stands after the event.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerData<'a> {
    /// The address as the customer gave it (the API looks customers up by
    /// it).
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub company: Option<&'a str>,
    /// The service's id.
    pub service: &'a str,
    /// `pending`, `active` or `disabled`; `erased` once erased.
    pub status: &'a str,
    /// How the customer came in: mail, portal, invitation, google,
    /// directory.
    pub channel: &'a str,
}

/// An event ready to queue: its id and the body every endpoint gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `msg_` and 22 URL-safe characters: the `webhook-id`.
    pub id: String,
    pub kind: EventKind,
    /// The JSON body, exactly as signed and sent.
    pub body: String,
}

#[derive(Serialize)]
struct Body<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: D,
}

#[derive(Serialize)]
struct Data<'a> {
    #[serde(flatten)]
    customer: &'a CustomerData<'a>,
    /// What caused the event: the channel of the decision (mail, portal,
    /// operator, api, purge, google, directory, email_link), the activation
    /// page (`activation`), or the sign-in method (`password`, …).
    via: &'a str,
}

/// The event `kind` about `customer`, caused by `via`, at `now` (Unix
/// seconds).
///
/// # Errors
/// The body cannot be rendered (it always can; JSON of strings).
pub fn customer_event(
    kind: EventKind,
    customer: &CustomerData<'_>,
    via: Channel,
    now: i64,
) -> anyhow::Result<Event> {
    let body = Body {
        kind: kind.as_str(),
        timestamp: rfc3339(now),
        data: Data {
            customer,
            via: via.as_str(),
        },
    };
    Ok(Event {
        id: new_event_id(),
        kind,
        body: serde_json::to_string(&body)?,
    })
}

/// The body of `registrar webhooks test`: type `webhook.test`, naming the
/// endpoint, so a receiver can check its signature handling.
///
/// # Errors
/// As `customer_event`.
pub fn test_event(endpoint: &str, now: i64) -> anyhow::Result<(String, String)> {
    #[derive(Serialize)]
    struct Test<'a> {
        endpoint: &'a str,
    }
    let body = Body {
        kind: "webhook.test",
        timestamp: rfc3339(now),
        data: Test { endpoint },
    };
    Ok((new_event_id(), serde_json::to_string(&body)?))
}

/// A fresh event id: 128 random bits, URL-safe (never a `.`, which the
/// signed content uses as its separator).
fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    // Without a working OS random source there is nothing sensible to do.
    getrandom::fill(&mut bytes).expect("the OS random source must be available");
    format!("msg_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Unix seconds as RFC 3339 in UTC (`2025-03-01T12:00:00Z`), as events
/// and the customer API write times.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_specification_shape() {
        let customer = CustomerData {
            email: "Ann@Example.com",
            name: Some("Ann \"A\" Lee"),
            company: None,
            service: "demo",
            status: "active",
            channel: "mail",
        };
        let event = customer_event(
            EventKind::Activated,
            &customer,
            Channel::Activation,
            1_700_000_000,
        )
        .expect("event");
        assert_eq!(
            event.body,
            r#"{"type":"customer.activated","timestamp":"2023-11-14T22:13:20Z","data":{"email":"Ann@Example.com","name":"Ann \"A\" Lee","company":null,"service":"demo","status":"active","channel":"mail","via":"activation"}}"#
        );
        assert!(
            event.id.starts_with("msg_") && event.id.len() == 26,
            "{}",
            event.id
        );
        assert!(!event.id.contains('.'));
        let again = customer_event(
            EventKind::Activated,
            &customer,
            Channel::Activation,
            1_700_000_000,
        )
        .expect("event");
        assert_ne!(again.id, event.id, "every event has its own id");
    }
}

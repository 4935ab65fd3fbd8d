//! The only module that knows lettre: composes replies as RFC 5322 bytes and
//! hands stored bytes to an SMTP relay (`relay`: pooled connections of our
//! own, with `TCP_NODELAY`) or, without one, writes them as `.eml` files
//! into a folder.
//!
//! Composition happens before a reply is queued, outside the store's
//! writer, so the Message-ID is fixed per outbox row and a retried delivery
//! sends the very same bytes.

mod relay;

use crate::domain::{EmailAddress, Token};
use crate::replies::Reply;
use crate::settings::OutboundSettings;
use anyhow::Context as _;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use relay::Relay;
use std::sync::Arc;
use std::time::Duration;

/// Everything about one outgoing mail except its wording.
#[derive(Debug, Clone, Copy)]
pub struct Addressing<'a> {
    /// Our From: address and the display name to show (the service's name).
    pub from: &'a EmailAddress,
    pub from_name: &'a str,
    /// The one recipient.
    pub to: &'a EmailAddress,
    /// Our loop stamp: the support address that answered.
    pub loop_stamp: &'a EmailAddress,
    /// The inbound Message-ID, when answering a message.
    pub in_reply_to: Option<&'a str>,
    /// The Message-ID of this mail (without brackets).
    pub message_id: &'a str,
}

/// A fresh Message-ID (without brackets) at our own domain.
pub fn new_message_id(hostname: &str) -> String {
    format!("{}@{hostname}", Token::generate().expose())
}

/// Composes a reply as the bytes that will be sent.
///
/// # Errors
/// Fails when an address or header cannot be encoded.
pub fn compose(addressing: Addressing<'_>, reply: &Reply) -> anyhow::Result<Vec<u8>> {
    let from = Mailbox::new(
        Some(clean_display_name(addressing.from_name)),
        to_address(addressing.from)?,
    );
    let to = Mailbox::new(None, to_address(addressing.to)?);
    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(reply.subject.clone())
        .date_now()
        .message_id(Some(format!("<{}>", addressing.message_id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Loop"),
            addressing.loop_stamp.delivery_address(),
        ));
    if let Some(id) = addressing.in_reply_to.filter(|id| is_plain_message_id(id)) {
        builder = builder
            .in_reply_to(format!("<{id}>"))
            .references(format!("<{id}>"));
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            reply.text.clone(),
            reply.html.clone(),
        ))
        .context("failed to compose the reply")?;
    Ok(message.formatted())
}

/// Display names come from our settings, but a stray control character would
/// make lettre panic; drop them.
fn clean_display_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).collect()
}

/// A Message-ID we may copy into In-Reply-To: no brackets, spaces or controls.
fn is_plain_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

fn to_address(address: &EmailAddress) -> anyhow::Result<Address> {
    Address::new(address.local_part(), address.domain())
        .with_context(|| format!("{address} cannot be used as a mail address"))
}

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection trouble, 4xx, timeout).
    #[error("temporary delivery failure: {0}")]
    Temporary(String),
    /// The relay refused for good (5xx).
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Sends stored replies; cheap to clone (the relay's connections are
/// shared).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    Relay(Arc<Relay>),
    Folder(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    /// Builds the relay client (keeping up to `parallel_deliveries`
    /// connections open), or the folder transport when no relay is
    /// configured (creating the folder).
    ///
    /// # Errors
    /// Fails when the relay URL is unusable or the folder cannot be created.
    pub fn new(settings: &OutboundSettings, hostname: &str) -> anyhow::Result<Self> {
        let transport = match &settings.relay {
            Some(url) => Transport::Relay(Arc::new(Relay::new(url, hostname, settings)?)),
            None => {
                std::fs::create_dir_all(&settings.folder).with_context(|| {
                    format!(
                        "failed to create the outbound folder {}",
                        settings.folder.display()
                    )
                })?;
                Transport::Folder(AsyncFileTransport::new(&settings.folder))
            }
        };
        Ok(Self {
            transport,
            timeout: settings.send_timeout,
        })
    }

    /// Delivers stored bytes to one recipient. The whole attempt is bounded by
    /// the send timeout: lettre's own timeout covers only the connect.
    ///
    /// # Errors
    /// `SendError::Temporary` or `SendError::Permanent`, as the relay answered.
    pub async fn send(
        &self,
        envelope_from: &str,
        recipient: &str,
        body: &[u8],
    ) -> Result<(), SendError> {
        let from = if envelope_from.is_empty() {
            None
        } else {
            Some(
                envelope_from
                    .parse::<Address>()
                    .map_err(|e| SendError::Permanent(e.to_string()))?,
            )
        };
        let to = recipient
            .parse::<Address>()
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let envelope =
            Envelope::new(from, vec![to]).map_err(|e| SendError::Permanent(e.to_string()))?;
        let attempt = async {
            match &self.transport {
                Transport::Relay(relay) => relay.send(&envelope, body).await,
                Transport::Folder(folder) => folder
                    .send_raw(&envelope, body)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::Temporary(e.to_string())),
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Temporary(
                    "the relay did not answer in time".into(),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replies::{Reply, ReplyKind};

    #[test]
    fn replies_carry_the_loop_headers() {
        let from = EmailAddress::parse("no-reply@registrar.example").expect("valid");
        let to = EmailAddress::parse("jane@bücher.example").expect("valid");
        let support = EmailAddress::parse("support@helpdesk.example").expect("valid");
        let reply = Reply {
            kind: ReplyKind::Activation,
            subject: "Activate".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        };
        let addressing = Addressing {
            from: &from,
            from_name: "Help\r\nBcc: x",
            to: &to,
            loop_stamp: &support,
            in_reply_to: Some("abc@mail.example"),
            message_id: "m1@registrar.example",
        };
        let bytes = compose(addressing, &reply).expect("composes");
        let text = String::from_utf8(bytes).expect("ascii");
        for expected in [
            "Auto-Submitted: auto-replied",
            "X-Auto-Response-Suppress: All",
            "X-Loop: support@helpdesk.example",
            "In-Reply-To: <abc@mail.example>",
            "Message-ID: <m1@registrar.example>",
            "To: jane@xn--bcher-kva.example",
        ] {
            assert!(text.contains(expected), "{expected} missing in\n{text}");
        }
        assert!(!text.contains("\r\nBcc:"));
    }
}

//! The only module that knows lettre: composes replies as RFC 5322 bytes and
//! hands stored bytes to an SMTP relay (`relay`: connections of our own with
//! `TCP_NODELAY`, kept open between replies) or, without one, writes them as
//! `.eml` files into a folder, DKIM-signed on the way out when a key is set.
//!
//! Composition happens when a reply is queued, so the Message-ID is fixed per
//! outbox row and a retried delivery sends the same message. Signing happens
//! at each send (`dkim`): the signature covers exactly the bytes handed over,
//! and the stored body, erased after delivery, never needs to be kept for it.
//! Each attempt reports the relay's answer (code and text), which the outbox
//! records.
//!
//! The folder and its files are private to the daemon's user (`0700` and
//! `0600`: they hold live activation links), and delivered files are removed
//! after `outbound.folder_retention` (`remove_old_files`).

mod relay;

use crate::dkim::{PrivateKey, Signer};
use crate::domain::{EmailAddress, Token};
use crate::mime::AlternativeBody;
use crate::replies::Reply;
use crate::settings::{OutboundSettings, Settings};
use anyhow::Context as _;
use lettre::address::Envelope;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, Message};
use relay::{Relay, RelayOptions};
use secrecy::ExposeSecret as _;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// Composes a reply as the bytes that will be sent: its header, then its
/// body (the one already encoded with it, else encoded now).
///
/// # Errors
/// Fails when an address or header cannot be encoded.
pub fn compose(addressing: Addressing<'_>, reply: &Reply) -> anyhow::Result<Vec<u8>> {
    let encoded_now;
    let body = match &reply.encoded {
        Some(body) => body,
        None => {
            encoded_now = AlternativeBody::encode(&reply.text, &reply.html);
            &encoded_now
        }
    };
    let (sender, recipient) = (to_address(addressing.from)?, to_address(addressing.to)?);
    // Named, so that lettre does not parse the From and To headers back to
    // work it out: the bytes are sent with the outbox row's own envelope.
    let envelope = Envelope::new(Some(sender.clone()), vec![recipient.clone()])
        .context("failed to address the reply")?;
    let from = Mailbox::new(Some(clean_display_name(addressing.from_name)), sender);
    let to = Mailbox::new(None, recipient);
    let content_type = ContentType::parse(&format!(
        "multipart/alternative; boundary=\"{}\"",
        body.boundary()
    ))
    .context("failed to name the reply's boundary")?;
    let mut builder = Message::builder()
        .envelope(envelope)
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
    // Every part is encoded to ASCII lines (lettre never chooses 8bit for
    // a part), so the multipart as a whole is 7bit.
    let message = builder
        .header(MIME_VERSION_1_0)
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            body.bytes().to_vec(),
            ContentTransferEncoding::SevenBit,
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

/// What a relay said: its reply code (none when no relay answered: the
/// connection failed or timed out) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAnswer {
    pub code: Option<u16>,
    pub text: String,
}

impl RelayAnswer {
    fn without_code(text: impl Into<String>) -> Self {
        Self {
            code: None,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for RelayAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "{code} {}", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection trouble, 4xx, timeout).
    #[error("temporary delivery failure: {0}")]
    Temporary(RelayAnswer),
    /// The relay refused for good (5xx).
    #[error("permanent delivery failure: {0}")]
    Permanent(RelayAnswer),
}

impl SendError {
    pub fn answer(&self) -> &RelayAnswer {
        match self {
            SendError::Temporary(answer) | SendError::Permanent(answer) => answer,
        }
    }
}

/// One stored reply to hand over.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The service it speaks for (whose DKIM key signs it).
    pub service: Option<&'a str>,
    /// The envelope sender; empty for the null sender.
    pub envelope_from: &'a str,
    pub recipient: &'a str,
    /// The composed, unsigned message.
    pub body: &'a [u8],
}

/// The DKIM signers, by service, read at start-up. A signer signs only mail
/// whose From domain is its `d=`.
#[derive(Clone, Default)]
pub struct Signers {
    global: Option<Arc<Signer>>,
    by_service: HashMap<String, Arc<Signer>>,
}

impl Signers {
    /// The signers the settings configure: the global key for
    /// `outbound.from_address`'s domain, and each service's own key for its
    /// From domain.
    ///
    /// # Errors
    /// A key file that cannot be read (validation checked it; it may have
    /// changed since).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let signer = |dkim: &crate::settings::DkimSettings, domain: &str| {
            let key = PrivateKey::load(&dkim.key_file)?;
            anyhow::Ok(Arc::new(Signer::new(domain, &dkim.selector, key)))
        };
        let global = settings
            .dkim
            .as_ref()
            .map(|dkim| signer(dkim, settings.outbound.from_address.domain()))
            .transpose()?;
        let mut by_service = HashMap::new();
        for service in &settings.services {
            if let Some(dkim) = &service.dkim {
                let domain = settings.from_address(service).domain();
                by_service.insert(service.id.clone(), signer(dkim, domain)?);
            }
        }
        Ok(Self { global, by_service })
    }

    /// The signer for a message of `service` sent from `from_domain`.
    pub fn for_message(&self, service: Option<&str>, from_domain: &str) -> Option<&Signer> {
        let own = service.and_then(|id| self.by_service.get(id));
        [own, self.global.as_ref()]
            .into_iter()
            .flatten()
            .map(Arc::as_ref)
            .find(|signer| signer.domain().eq_ignore_ascii_case(from_domain))
    }

    /// Signs `body` for `service` when a key signs for its From domain;
    /// otherwise returns it as it is, uncopied.
    fn sign<'b>(&self, service: Option<&str>, body: &'b [u8]) -> Cow<'b, [u8]> {
        if !self.may_sign(service) {
            return Cow::Borrowed(body);
        }
        let Some(signer) = from_domain(body).and_then(|domain| self.for_message(service, &domain))
        else {
            return Cow::Borrowed(body);
        };
        match signer.sign(body) {
            Ok(signed) => Cow::Owned(signed),
            Err(error) => {
                tracing::error!(error.message = %error, "DKIM signing failed; sending unsigned");
                Cow::Borrowed(body)
            }
        }
    }

    /// Whether any key may sign a message of `service`: without one, its
    /// From header is not even read.
    fn may_sign(&self, service: Option<&str>) -> bool {
        self.global.is_some() || service.is_some_and(|id| self.by_service.contains_key(id))
    }
}

/// The domain of a stored message's From address (lowercase).
fn from_domain(body: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse_headers(body)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.to_ascii_lowercase())
}

/// Sends stored replies; cheap to clone (clones share the relay's
/// connections).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    timeout: Duration,
    signers: Signers,
}

#[derive(Clone)]
enum Transport {
    Relay(Arc<Relay>),
    Folder(PathBuf),
}

impl Mailer {
    /// Builds the relay client (keeping up to `outbound.parallel_deliveries`
    /// connections open between replies), or the folder transport when no
    /// relay is configured (creating the folder), and the DKIM signers.
    ///
    /// # Errors
    /// Fails when the relay URL is unusable, the folder cannot be created or
    /// a DKIM key cannot be read.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let outbound: &OutboundSettings = &settings.outbound;
        let transport = match &outbound.relay {
            Some(url) => {
                let credentials = (!outbound.username.is_empty()).then(|| {
                    Credentials::new(
                        outbound.username.clone(),
                        outbound.password.expose_secret().to_owned(),
                    )
                });
                let options = RelayOptions {
                    hostname: &settings.smtp.hostname,
                    credentials,
                    max_idle: outbound.parallel_deliveries,
                };
                Transport::Relay(Arc::new(Relay::new(url.expose(), options)?))
            }
            None => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&outbound.folder)
                    .with_context(|| {
                        format!(
                            "failed to create the outbound folder {}",
                            outbound.folder.display()
                        )
                    })?;
                Transport::Folder(outbound.folder.clone())
            }
        };
        Ok(Self {
            transport,
            timeout: outbound.send_timeout,
            signers: Signers::from_settings(settings)?,
        })
    }

    /// Signs and delivers a stored reply to its one recipient. The whole
    /// attempt is bounded by the send timeout: lettre's own timeout covers
    /// only the connect.
    ///
    /// # Errors
    /// `SendError::Temporary` or `SendError::Permanent`, with the relay's
    /// answer.
    pub async fn send(&self, outgoing: Outgoing<'_>) -> Result<RelayAnswer, SendError> {
        let permanent = |e: &dyn std::fmt::Display| {
            SendError::Permanent(RelayAnswer::without_code(e.to_string()))
        };
        let from = if outgoing.envelope_from.is_empty() {
            None
        } else {
            Some(
                outgoing
                    .envelope_from
                    .parse::<Address>()
                    .map_err(|e| permanent(&e))?,
            )
        };
        let to = outgoing
            .recipient
            .parse::<Address>()
            .map_err(|e| permanent(&e))?;
        let envelope = Envelope::new(from, vec![to]).map_err(|e| permanent(&e))?;
        let body = self.signers.sign(outgoing.service, outgoing.body);
        let attempt = async {
            match &self.transport {
                Transport::Relay(relay) => relay.send(&envelope, &body).await,
                Transport::Folder(folder) => {
                    let folder = folder.clone();
                    let body = body.into_owned();
                    tokio::task::spawn_blocking(move || write_eml(&folder, &body))
                        .await
                        .map_err(|e| {
                            SendError::Temporary(RelayAnswer::without_code(e.to_string()))
                        })?
                        .map(|name| RelayAnswer::without_code(format!("written as {name}")))
                        .map_err(|e| SendError::Temporary(RelayAnswer::without_code(e.to_string())))
                }
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Temporary(RelayAnswer::without_code(
                    "the relay did not answer in time",
                )))
            })
    }
}

/// The code and text of a relay's refusal; for a failure without a reply
/// (connection refused, TLS), lettre's description.
fn relay_error_answer(error: &lettre::transport::smtp::Error) -> RelayAnswer {
    match error.status() {
        Some(code) => RelayAnswer {
            code: Some(u16::from(code)),
            text: std::error::Error::source(error)
                .map(ToString::to_string)
                .unwrap_or_default(),
        },
        None => RelayAnswer::without_code(error.to_string()),
    }
}

/// Writes one message as a new `.eml` file readable by our user only, and
/// syncs it before delivery is recorded. The bytes go to a hidden temporary
/// name first and the file is renamed into place once complete (as in a
/// Maildir), so whatever watches the folder never reads half a message.
fn write_eml(folder: &Path, body: &[u8]) -> std::io::Result<String> {
    let stem = Token::generate().expose();
    let name = format!("{stem}.eml");
    let partial = folder.join(format!(".{stem}.partial"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    let written = file
        .write_all(body)
        .and_then(|()| file.sync_data())
        .and_then(|()| std::fs::rename(&partial, folder.join(&name)));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    // The rename itself survives a power cut once the folder is synced.
    std::fs::File::open(folder)?.sync_all()?;
    Ok(name)
}

/// Removes `.eml` files (and `.partial` ones a crash left) older than
/// `retention` from the outbound folder (they hold live activation links);
/// returns how many were removed.
///
/// # Errors
/// The folder cannot be read. A file that cannot be removed is skipped and
/// tried again next time.
pub fn remove_old_files(folder: &Path, retention: Duration) -> std::io::Result<usize> {
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified < cutoff);
        // A `.partial` file is what a crash left mid-write.
        let ours = path
            .extension()
            .is_some_and(|ext| ext == "eml" || ext == "partial");
        if old && ours && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
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
            encoded: None,
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

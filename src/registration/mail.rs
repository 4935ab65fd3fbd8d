//! Registration by mail: sender authentication, then the decision and its
//! consequences in one transaction, answered only after the commit.
//!
//! Registration does not speak SMTP: the caller hands in `MailAnswers`, the
//! words it answers with, and the code is recorded with the decision.

use crate::domain::{Channel, EmailAddress};
use crate::message::{EnvelopeSender, InboundMessage, ParseError};
use crate::policy::{
    self, AuthVerdict, Decision, MailRequest, OwnIdentity, RefusalMode, SenderAuthMode,
    SenderState, ServiceLoad,
};
use crate::registration::decide::{Ask, Decided, Kept, decide, prepare_failed, until_prepared};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{self, Attempt, Prepared, ReplyContext};
use crate::registration::{Registrar, secs};
use crate::sender_auth::{Dns, DnsSource, SenderAuthenticator};
use crate::settings::{Service, Settings};
use crate::store::inbound::NewInbound;
use crate::store::{self, inbound};
use rusqlite::Connection;
use std::sync::Arc;
use std::time::Duration;

/// What happened to a message sent to a support address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Decided now; `dropped` when a refusal was answered `250` by setting.
    Decided { decision: Decision, dropped: bool },
    /// A copy of a message already accepted: answered `250`, nothing created.
    Duplicate,
}

/// An answer to a message: its reply code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub text: String,
}

/// How the way in answers a message, handed in by the caller (the SMTP
/// intake; `registrar explain` shows the same words) so that registration
/// records the code without importing a protocol.
#[derive(Debug, Clone, Copy)]
pub struct MailAnswers {
    /// The answer to a decided message; the flag is `dropped`.
    pub decided: fn(&Decision, bool) -> Answer,
    /// The answer to a message that cannot be read at all.
    pub unreadable: fn(&ParseError) -> Answer,
}

/// Whether a refusal of this service is answered as accepted.
pub fn dropped(service: &Service, decision: &Decision) -> bool {
    matches!(decision, Decision::Refuse(_)) && service.policy.refusal == RefusalMode::Drop
}

/// One message, as the transaction behind `from_mail` sees it.
struct Received<'a> {
    settings: &'a Settings,
    service: &'a Service,
    message: &'a InboundMessage,
    auth: &'a AuthVerdict,
    raw: &'a [u8],
    answers: MailAnswers,
    now: i64,
}

/// The envelope sender as recorded: the address, or what MAIL FROM gave.
fn recorded_sender(message: &InboundMessage) -> String {
    match &message.sender {
        EnvelopeSender::Address(address) => address.as_str().to_owned(),
        _ => message.envelope.mail_from.clone(),
    }
}

/// The envelope sender, when it is an address that may be answered.
fn sender_address(message: &InboundMessage) -> Option<&EmailAddress> {
    match &message.sender {
        EnvelopeSender::Address(address) => Some(address),
        _ => None,
    }
}

/// How a reply to `message` is addressed and stamped: the support address
/// the message was sent to answers it (our loop stamp).
fn reply_context<'a>(
    settings: &'a Settings,
    service: &'a Service,
    message: &'a InboundMessage,
) -> ReplyContext<'a> {
    let support = message
        .envelope
        .recipients
        .iter()
        .find_map(|r| {
            service
                .support_addresses
                .iter()
                .find(|s| s.identity_key().eq_ignore_ascii_case(r))
        })
        .unwrap_or(&service.support_addresses[0]);
    ReplyContext {
        settings,
        service,
        support,
        in_reply_to: message.message_id.as_deref(),
    }
}

/// The replies worth preparing before the transaction: what policy would
/// decide for a sender it has never heard of (a pure call; the common case
/// by far). Automatic mail, impostors and refusals get none, so a flood of
/// them costs no rendering; any other reply is prepared on demand.
fn likely_replies(received: &Received<'_>) -> anyhow::Result<Prepared> {
    let mut prepared = Prepared::default();
    let Some(address) = sender_address(received.message) else {
        return Ok(prepared);
    };
    let service = received.service;
    let guess = policy::evaluate_mail(
        &service.policy,
        own_identity(received.settings, service),
        MailRequest {
            message: received.message,
            auth: received.auth,
            sender: SenderState::New,
            history: policy::ReplyHistory::default(),
            load: ServiceLoad {
                replies_last_day: Some(0),
            },
            now: received.now,
        },
    );
    if let Err(kind) = prepared.for_decision(&guess) {
        let context = reply_context(received.settings, service, received.message);
        prepared.add(outgoing::prepare(&context, address, kind, received.now)?);
    }
    Ok(prepared)
}

fn own_identity<'a>(settings: &'a Settings, service: &'a Service) -> OwnIdentity<'a> {
    OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    }
}

/// The transaction behind `from_mail`.
fn decide_mail(
    conn: &Connection,
    received: &Received<'_>,
    prepared: &Prepared,
) -> anyhow::Result<Attempt<MailOutcome>> {
    let Received {
        settings,
        service,
        message,
        auth,
        raw,
        answers,
        now,
    } = *received;
    let envelope_from = recorded_sender(message);
    let since = now - secs(settings.store.idempotency_window);
    if inbound::earlier_copy(
        conn,
        message.message_id.as_deref(),
        &envelope_from,
        &message.content_hash,
        since,
    )?
    .is_some()
    {
        return Ok(Attempt::Done(MailOutcome::Duplicate));
    }
    let address = sender_address(message);
    let own = own_identity(settings, service);
    let ask = Ask {
        channel: Channel::Mail,
        settings,
        service,
        address,
        recorded_as: &envelope_from,
        name: message.display_name(),
        replies: prepared,
        now,
    };
    let evaluate = |facts: &SenderFacts| {
        policy::evaluate_mail(
            &service.policy,
            own,
            MailRequest {
                message,
                auth,
                sender: facts.state(),
                history: facts.history,
                load: facts.load,
                now,
            },
        )
    };
    let keep = |decision: &Decision| -> anyhow::Result<Option<Kept>> {
        if let Decision::Defer(_) = decision {
            // Answered 4xx: the sender keeps the message and retries; nothing
            // of it is stored.
            return Ok(None);
        }
        let dropped = dropped(service, decision);
        let reply_code = (answers.decided)(decision, dropped).code;
        let inbound_id = if matches!(decision, Decision::Refuse(_)) && !dropped {
            // Refused in the session: the sender keeps the message; we keep
            // only the decision.
            None
        } else {
            let client_ip = message.envelope.client_ip.to_string();
            let envelope_to = message.envelope.recipients.join(", ");
            Some(inbound::insert(
                conn,
                &NewInbound {
                    service: &service.id,
                    client_ip: &client_ip,
                    helo: &message.envelope.helo,
                    envelope_from: &envelope_from,
                    envelope_to: &envelope_to,
                    message_id: message.message_id.as_deref(),
                    content_sha256: &message.content_hash,
                    raw,
                },
                now,
            )?)
        };
        Ok(Some(Kept {
            inbound_id,
            dropped,
            reply_code: Some(reply_code),
        }))
    };
    Ok(match decide(conn, &ask, evaluate, keep)? {
        Attempt::Done(Decided { decision, dropped }) => {
            Attempt::Done(MailOutcome::Decided { decision, dropped })
        }
        Attempt::NeedsReply(kind) => Attempt::NeedsReply(kind),
    })
}

/// Builds the sender authenticator the settings ask for; DNS is set up only when
/// a service uses `dmarc`. With `warn`, logs a warning for every service
/// that authenticates nobody (start-up).
pub fn sender_authenticator(settings: &Settings, warn: bool) -> SenderAuthenticator {
    for service in settings.services.iter().filter(|_| warn) {
        if service.policy.sender_auth == SenderAuthMode::Off {
            tracing::warn!(
                service = %service.id,
                "sender_auth = \"off\": senders of registration mail are not authenticated, \
                 so anyone can have an activation mail sent to any address; use \"dmarc\" or \
                 \"authentication-results\" for a service that faces the internet"
            );
        }
    }
    let needs_dns = settings
        .services
        .iter()
        .any(|service| service.policy.sender_auth == SenderAuthMode::Dmarc);
    let dns = if needs_dns {
        Dns::new(&settings.sender_auth.dns).unwrap_or_else(|error| {
            tracing::error!(
                error.message = %error,
                "no DNS for sender authentication: mail to dmarc services is deferred (451)"
            );
            Dns::unavailable()
        })
    } else {
        Dns::unavailable()
    };
    let timeout = match &settings.sender_auth.dns {
        DnsSource::Resolver { timeout, .. } => *timeout,
        DnsSource::Fixed(_) => Duration::from_secs(5),
    };
    // A message needs a handful of lookups (SPF includes, DKIM keys,
    // the DMARC tree walk); each may take up to `timeout`.
    SenderAuthenticator::new(dns, &settings.smtp.hostname, timeout * 4)
}

impl Registrar {
    /// Decides and records a message sent to `service`'s support address:
    /// authenticates the sender (DNS for `dmarc`) first, then runs the
    /// decision and its consequences in one store transaction and waits for
    /// the commit without blocking a tokio worker. `answers` words the reply
    /// the caller will give, whose code is recorded with the decision.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_mail(
        &self,
        service: &Service,
        message: InboundMessage,
        raw: Vec<u8>,
        answers: MailAnswers,
    ) -> Result<MailOutcome, RegistrationError> {
        let auth = if self.needs_sender_auth(service, &message) {
            self.sender_auth
                .verify(&service.policy.sender_auth, &message, &raw)
                .await
        } else {
            AuthVerdict::Off
        };
        let settings = self.settings();
        let service = Arc::new(service.clone());
        let message = Arc::new(message);
        let raw = Arc::new(raw);
        let auth = Arc::new(auth);
        let now = store::now();
        let received = Received {
            settings: &settings,
            service: &service,
            message: &message,
            auth: &auth,
            raw: &raw,
            answers,
            now,
        };
        // Rendering and MIME happen here, on this task, never in the writer.
        let prepared = likely_replies(&received).map_err(prepare_failed)?;
        let prepare = |kind| {
            let address = sender_address(&message)
                .ok_or_else(|| anyhow::anyhow!("a reply to a sender without an address"))?;
            outgoing::prepare(
                &reply_context(&settings, &service, &message),
                address,
                kind,
                now,
            )
        };
        let outcome = until_prepared(prepared, prepare, |prepared: Arc<Prepared>| {
            let (settings, service) = (Arc::clone(&settings), Arc::clone(&service));
            let (message, raw, auth) = (Arc::clone(&message), Arc::clone(&raw), Arc::clone(&auth));
            let store = self.store.clone();
            async move {
                store
                    .write(move |conn| {
                        let received = Received {
                            settings: &settings,
                            service: &service,
                            message: &message,
                            auth: &auth,
                            raw: &raw,
                            answers,
                            now,
                        };
                        decide_mail(conn, &received, &prepared)
                    })
                    .await
            }
        })
        .await?;
        self.wake_outbox_for(&outcome);
        Ok(outcome)
    }

    /// Whether policy will ask about the sender's authentication; when it
    /// will not (automatic mail, a mismatched From), no DNS lookup is made.
    fn needs_sender_auth(&self, service: &Service, message: &InboundMessage) -> bool {
        let settings = self.settings();
        policy::needs_sender_auth(&service.policy, own_identity(&settings, service), message)
    }

    fn wake_outbox_for(&self, outcome: &MailOutcome) {
        if let MailOutcome::Decided {
            decision,
            dropped: false,
        } = outcome
            && decision.sends_mail()
        {
            self.outbox_wake.notify_one();
        }
    }
}

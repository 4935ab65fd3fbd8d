//! Registration by mail: sender authentication, then the decision and its
//! consequences in one transaction, answered only after the commit.
//!
//! Registration does not speak SMTP: the caller hands in `MailAnswers`, the
//! words it answers with, and the code is recorded with the decision.

use crate::domain::Channel;
use crate::message::{EnvelopeSender, InboundMessage, ParseError};
use crate::policy::{
    self, AuthVerdict, Decision, MailRequest, OwnIdentity, RefusalMode, SenderAuthMode,
};
use crate::registration::Registrar;
use crate::registration::decide::{Ask, Decided, Kept, decide};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::ReplyContext;
use crate::sender_auth::{Dns, DnsSource, SenderAuthenticator};
use crate::settings::{Service, Settings};
use crate::store::inbound::NewInbound;
use crate::store::{self, inbound};
use rusqlite::Connection;
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

/// The transaction behind `from_mail`.
#[allow(clippy::too_many_arguments)] // each argument is a distinct input of the decision
fn decide_mail(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    message: &InboundMessage,
    auth: &AuthVerdict,
    raw: &[u8],
    answers: MailAnswers,
    now: i64,
) -> anyhow::Result<MailOutcome> {
    let envelope_from = match &message.sender {
        EnvelopeSender::Address(address) => address.as_str().to_owned(),
        _ => message.envelope.mail_from.clone(),
    };
    if inbound::earlier_copy(
        conn,
        message.message_id.as_deref(),
        &envelope_from,
        &message.content_hash,
    )?
    .is_some()
    {
        return Ok(MailOutcome::Duplicate);
    }
    let address = match &message.sender {
        EnvelopeSender::Address(address) => Some(address),
        _ => None,
    };
    let own = OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    };
    // The support address the message was sent to answers it (our loop
    // stamp).
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
    let ask = Ask {
        channel: Channel::Mail,
        service,
        address,
        recorded_as: &envelope_from,
        name: message.display_name(),
        reply: ReplyContext {
            settings,
            service,
            support,
            in_reply_to: message.message_id.as_deref(),
        },
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
    let Decided { decision, dropped } = decide(conn, &ask, evaluate, keep)?;
    Ok(MailOutcome::Decided { decision, dropped })
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
            let verdict = self
                .sender_auth
                .verify(&service.policy.sender_auth, &message, &raw)
                .await;
            self.observe_sender_auth(&service.policy.sender_auth, &verdict);
            verdict
        } else {
            AuthVerdict::Off
        };
        let settings = self.settings();
        let owned = service.clone();
        let outcome = self
            .store
            .write(move |conn| {
                decide_mail(
                    conn,
                    &settings,
                    &owned,
                    &message,
                    &auth,
                    &raw,
                    answers,
                    store::now(),
                )
            })
            .await?;
        self.observe_mail(&service.id, &outcome);
        self.wake_outbox_for(&outcome);
        Ok(outcome)
    }

    /// Whether policy will ask about the sender's authentication; when it
    /// will not (automatic mail, a mismatched From), no DNS lookup is made.
    fn needs_sender_auth(&self, service: &Service, message: &InboundMessage) -> bool {
        let own = OwnIdentity {
            support_addresses: &service.support_addresses,
            message_id_domain: &self.settings().smtp.hostname,
        };
        policy::needs_sender_auth(&service.policy, own, message)
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

//! Registration by mail: sender authentication, then the decision and its
//! consequences in one transaction, answered only after the commit. The
//! single From address is the one that registers and gets the reply; the
//! envelope sender only decides whether it may (see `policy`).
//!
//! Registration does not speak SMTP: the caller hands in `MailAnswers`, the
//! words it answers with, and the code is recorded with the decision.

use crate::domain::{Channel, ClientNetwork, Language};
use crate::message::{self, EnvelopeSender, InboundMessage, ParseError};
use crate::policy::{
    self, AuthVerdict, Decision, MailRequest, OwnIdentity, RefusalMode, SenderAuthMode,
};
use crate::registration::alarms::Alarm;
use crate::registration::decide::{About, Ask, Decided, Kept, Outcome, decide, record};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{NotPrepared, PreparedReplies, ReplyContext};
use crate::registration::{Guards, Registrar, secs};
use crate::sender_auth::{Dns, DnsSource, SenderAuthenticator};
use crate::settings::{Service, Settings};
use crate::store::inbound::NewInbound;
use crate::store::{self, bounces, inbound};
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

/// The network a message's client is counted in. That is the original
/// client a relay in front of us named with XFORWARD (`Envelope::client_ip`)
/// when it did; none when the client we know is itself a relay that hands us
/// everybody's mail (one of `smtp.relays` that named nobody, or one of the
/// service's trusted relays), as counting it would put every sender behind
/// it in one network.
pub fn client_network(
    settings: &Settings,
    service: &Service,
    message: &InboundMessage,
) -> Option<ClientNetwork> {
    let ip = message.envelope.client_ip;
    let trusted = match &service.policy.sender_auth {
        SenderAuthMode::AuthenticationResults(trusted) => trusted
            .trusted_relays
            .iter()
            .any(|range| range.contains(ip)),
        SenderAuthMode::Off | SenderAuthMode::Dmarc => false,
    };
    let unnamed_relay = message.envelope.relay_ip.is_none() && settings.smtp.is_relay(ip);
    (!trusted && !unnamed_relay).then(|| ClientNetwork::of(ip))
}

/// What is kept of a message's raw bytes: all of them for a message we
/// answer, its header section for one we accept unanswered (automatic mail,
/// a dropped refusal), and nothing once the hour's quota for its client or
/// for everybody is used up.
fn kept_raw<'r>(
    guards: &Guards,
    service: &Service,
    client: Option<ClientNetwork>,
    raw: &'r [u8],
    answered: bool,
    now: i64,
) -> Option<&'r [u8]> {
    let kept = if answered {
        raw
    } else {
        message::header_section(raw)
    };
    let size = u64::try_from(kept.len()).unwrap_or(u64::MAX);
    if guards.raw_quota.take(client, size, now) {
        Some(kept)
    } else {
        guards.alarms.raise(Alarm::RawQuota, &service.id);
        None
    }
}

/// How the reply to `message` is addressed and stamped: by the support
/// address it was sent to (our loop stamp), in reply to it, in the language
/// it prefers.
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
        language: message.language.as_deref().and_then(Language::negotiate),
    }
}

/// The replies a decision on `message` may queue, rendered before its store
/// job: none when the message cannot register anybody (no single From,
/// automatic mail, a loop; policy's screen).
fn prepare_replies(
    settings: &Settings,
    service: &Service,
    message: &InboundMessage,
    now: i64,
) -> Option<PreparedReplies> {
    let from = message.from_address()?;
    let own = OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    };
    if !policy::may_be_answered(&service.policy, own, message) {
        return None;
    }
    PreparedReplies::try_to(&reply_context(settings, service, message), from, now)
}

/// The transaction behind `from_mail`.
#[allow(clippy::too_many_arguments)] // each argument is a distinct input of the decision
fn decide_mail(
    conn: &Connection,
    settings: &Settings,
    guards: &Guards,
    service: &Service,
    message: &InboundMessage,
    auth: &AuthVerdict,
    raw: &[u8],
    answers: MailAnswers,
    prepared: Option<&PreparedReplies>,
    now: i64,
) -> anyhow::Result<MailOutcome> {
    let envelope_from = match &message.sender {
        EnvelopeSender::Address(address) => address.as_str().to_owned(),
        _ => message.envelope.mail_from.clone(),
    };
    // The single From address registers and gets the reply, whatever the
    // envelope (policy decides whether it may). Without one nobody can; the
    // record is then about the envelope sender.
    let address = message.from_address();
    let about = match (address, &message.sender) {
        (Some(from), _) => About::address(service, from),
        (None, EnvelopeSender::Address(envelope)) => About::address(service, envelope),
        (None, _) => About {
            service: &service.id,
            address: &envelope_from,
            identity: None,
        },
    };
    if inbound::earlier_copy(
        conn,
        message.message_id.as_deref(),
        about.identity.as_deref(),
        &message.content_hash,
        now.saturating_sub(secs(settings.store.idempotency_window)),
        now,
    )?
    .is_some()
    {
        return Ok(MailOutcome::Duplicate);
    }
    // Mail that passes sender authentication shows the address is alive:
    // if its replies bounced, they are no longer suppressed.
    if let (AuthVerdict::Pass(_), Some(from)) = (auth, address)
        && bounces::lift(conn, &from.identity_key())?
    {
        record(
            conn,
            Channel::Bounce,
            &About::address(service, from),
            Outcome::of("bounce_lifted", "authenticated_mail"),
            Kept::default(),
            now,
        )?;
    }
    let own = OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    };
    let client = client_network(settings, service, message);
    let ask = Ask {
        channel: Channel::Mail,
        service,
        address,
        about,
        name: message.display_name(),
        client,
        guards,
        reply: reply_context(settings, service, message),
        prepared,
        now,
    };
    let evaluate = |facts: &SenderFacts| {
        policy::evaluate_mail_traced(
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
            let relay_ip = message.envelope.relay_ip.map(|ip| ip.to_string());
            let envelope_to = message.envelope.recipients.join(", ");
            Some(inbound::insert(
                conn,
                &NewInbound {
                    service: &service.id,
                    client_ip: &client_ip,
                    helo: &message.envelope.helo,
                    relay_ip: relay_ip.as_deref(),
                    envelope_from: &envelope_from,
                    envelope_to: &envelope_to,
                    message_id: message.message_id.as_deref(),
                    content_sha256: &message.content_hash,
                    raw: kept_raw(
                        guards,
                        service,
                        client,
                        raw,
                        decision.sends_mail() && !dropped,
                        now,
                    ),
                    size: raw.len(),
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
        // Rendering and composing happen here, on the session's task, so
        // that the single writer only writes.
        let now = store::now();
        // Shared with each attempt's job, not copied into it.
        let mut prepared = prepare_replies(&settings, service, &message, now).map(Arc::new);
        let (message, raw, auth) = (Arc::new(message), Arc::new(raw), Arc::new(auth));
        let outcome = loop {
            let (job_settings, guards, owned) = (
                Arc::clone(&settings),
                Arc::clone(&self.guards),
                service.clone(),
            );
            let (job_message, job_raw, job_auth, ready) = (
                Arc::clone(&message),
                Arc::clone(&raw),
                Arc::clone(&auth),
                prepared.as_ref().map(Arc::clone),
            );
            let decided = self
                .store
                .write_repeatable(move |conn| {
                    decide_mail(
                        conn,
                        &job_settings,
                        &guards,
                        &owned,
                        &job_message,
                        &job_auth,
                        &job_raw,
                        answers,
                        ready.as_deref(),
                        now,
                    )
                })
                .await
                .map_err(RegistrationError::from);
            match decided {
                Ok(outcome) => break outcome,
                // An active customer wrote: the notice is prepared now, and
                // the message decided again (the first run wrote nothing).
                Err(error) => NotPrepared::prepare_notice(
                    error,
                    &mut prepared,
                    &reply_context(&settings, service, &message),
                )?,
            }
        };
        self.observe_mail(&service.id, &outcome);
        self.wake_outbox_for(&outcome);
        if let MailOutcome::Decided {
            decision: Decision::Register { .. },
            dropped: false,
        } = &outcome
        {
            self.wake_webhooks();
        }
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

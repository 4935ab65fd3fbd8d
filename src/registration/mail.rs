//! Registration by mail: sender authentication, then the decision and its
//! consequences in one transaction, answered only after the commit.

use super::*;

/// What happened to a message sent to a support address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Decided now; `dropped` when a refusal was answered `250` by setting.
    Decided { decision: Decision, dropped: bool },
    /// A copy of a message already accepted: answered `250`, nothing created.
    Duplicate,
}

/// The transaction behind `from_mail`.
fn decide_mail(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    message: &InboundMessage,
    auth: &AuthVerdict,
    raw: &[u8],
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
    let (customer, history) = match address {
        Some(address) => load_sender(conn, address, now)?,
        None => (None, ReplyHistory::default()),
    };
    let state = customer
        .as_ref()
        .map_or(SenderState::New, Customer::sender_state);
    let own = OwnIdentity {
        support_addresses: &service.support_addresses,
        message_id_domain: &settings.smtp.hostname,
    };
    let load = service_load(conn, service, now)?;
    let decision = policy::evaluate_mail(
        &service.policy,
        own,
        MailRequest {
            message,
            auth,
            sender: state,
            history,
            load,
            now,
        },
    );
    if let Decision::Defer(_) = decision {
        // Answered 4xx: the sender keeps the message and retries; nothing
        // of it is stored.
        return Ok(MailOutcome::Decided {
            decision,
            dropped: false,
        });
    }
    let dropped =
        matches!(decision, Decision::Refuse(_)) && service.policy.refusal == RefusalMode::Drop;
    let reply = smtp_reply::for_decision(&decision, dropped);

    let inbound_id = if matches!(decision, Decision::Refuse(_)) && !dropped {
        // Refused in the session: the sender keeps the message; we keep only
        // the decision.
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
    if !dropped && let Some(address) = address {
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
        let context = ReplyContext {
            settings,
            service,
            support,
            in_reply_to: message.message_id.as_deref(),
        };
        apply(
            conn,
            &context,
            &decision,
            address,
            customer.as_ref(),
            message.display_name(),
            "mail",
            now,
        )?;
    }
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id,
            channel: "mail",
            service: &service.id,
            address: &envelope_from,
            identity: address.map(EmailAddress::identity_key).as_deref(),
            outcome: decision.name(),
            reason: decision.reason(),
            dropped,
            reply_code: Some(reply.code),
        },
        now,
    )?;
    Ok(MailOutcome::Decided { decision, dropped })
}

impl Registrar {
    /// Decides and records a message sent to `service`'s support address:
    /// authenticates the sender (DNS for `dmarc`) first, then runs the
    /// decision and its consequences in one store transaction and waits for
    /// the commit without blocking a tokio worker.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_mail(
        &self,
        service: &Service,
        message: InboundMessage,
        raw: Vec<u8>,
    ) -> Result<MailOutcome, StoreError> {
        let auth = if self.needs_sender_auth(service, &message) {
            self.sender_auth
                .verify(&service.policy.sender_auth, &message, &raw)
                .await
        } else {
            AuthVerdict::Off
        };
        let settings = self.settings();
        let service = service.clone();
        let outcome = self
            .store
            .write(move |conn| {
                decide_mail(
                    conn,
                    &settings,
                    &service,
                    &message,
                    &auth,
                    &raw,
                    store::now(),
                )
            })
            .await?;
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

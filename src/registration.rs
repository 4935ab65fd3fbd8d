//! The use cases every way in shares, each one store transaction: a
//! registration by mail, a registration from the portal form, and the
//! activation that turns a pending customer into an active one.
//!
//! Each use case loads what policy needs, asks `policy`, and writes the
//! decision with all its consequences (inbound record, customer, token hash,
//! outbox row) in the same transaction, so a caller that hears "done" knows
//! all of it is durable, and a failure leaves nothing behind.

use crate::domain::{CustomerName, EmailAddress, Token, TokenHash};
use crate::mailer::{self, Addressing};
use crate::message::{EnvelopeSender, InboundMessage};
use crate::policy::{
    self, Decision, MailRequest, OwnIdentity, RefusalMode, ReplyHistory, SenderState, ServiceLoad,
};
use crate::replies::{self, Reply};
use crate::sender_auth::{AuthVerdict, SenderAuthenticator};
use crate::settings::{Service, Settings};
use crate::smtp::reply::{self as smtp_reply};
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::inbound::{self, NewDecision, NewInbound};
use crate::store::outbox::{self, NewReply};
use crate::store::{self, Store, StoreError, sessions, tokens};
use rusqlite::Connection;
use std::sync::Arc;
use tokio::sync::Notify;

/// What happened to a message sent to a support address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// Decided now; `dropped` when a refusal was answered `250` by setting.
    Decided { decision: Decision, dropped: bool },
    /// A copy of a message already accepted: answered `250`, nothing created.
    Duplicate,
}

/// Runs the registration use cases against the store.
#[derive(Clone)]
pub struct Registrar {
    settings: Arc<Settings>,
    store: Store,
    /// Wakes the outbox worker when a reply was queued.
    outbox_wake: Arc<Notify>,
    /// Verifies senders before the store transaction (DNS for `dmarc`).
    sender_auth: Arc<SenderAuthenticator>,
}

/// A pending customer, as the activation form shows it.
#[derive(Debug, Clone)]
pub struct PendingCustomer {
    pub email: String,
    pub name: Option<String>,
}

impl Registrar {
    /// Builds the registrar and its sender authenticator.
    pub fn new(settings: Arc<Settings>, store: Store, outbox_wake: Arc<Notify>) -> Self {
        let sender_auth = Arc::new(SenderAuthenticator::from_settings(&settings, true));
        Self {
            settings,
            store,
            outbox_wake,
            sender_auth,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

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
        let settings = Arc::clone(&self.settings);
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
            message_id_domain: &self.settings.smtp.hostname,
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

    /// Decides and records a "Create an account" request from the portal.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_portal(
        &self,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
    ) -> Result<Decision, StoreError> {
        let settings = Arc::clone(&self.settings);
        let service = service.clone();
        let decision = self
            .store
            .write(move |conn| {
                decide_portal(
                    conn,
                    &settings,
                    &service,
                    &address,
                    name.as_ref(),
                    store::now(),
                )
            })
            .await?;
        if decision.sends_mail() {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }

    /// The pending customer a live activation token belongs to; changes
    /// nothing (mail scanners fetch links).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn pending_for_token(
        &self,
        token: &Token,
    ) -> Result<Option<PendingCustomer>, StoreError> {
        let hash = token.hash();
        self.store
            .read(move |conn| {
                let Some(id) = tokens::live_customer(conn, &hash, store::now())? else {
                    return Ok(None);
                };
                Ok(customers::by_id(conn, id)?.map(|c| PendingCustomer {
                    email: c.email,
                    name: c.name,
                }))
            })
            .await
    }
}

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Replies the service queued in the last 24 hours, for its daily budget.
fn service_load(conn: &Connection, service: &Service, now: i64) -> anyhow::Result<ServiceLoad> {
    Ok(ServiceLoad {
        replies_last_day: Some(inbound::service_replies_since(
            conn,
            &service.id,
            now - DAY_SECS,
        )?),
    })
}

/// Seconds in a day, for the service's daily reply budget.
const DAY_SECS: i64 = 24 * 60 * 60;

/// The transaction behind `from_mail_blocking`.
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

/// The transaction behind `from_portal`.
fn decide_portal(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    now: i64,
) -> anyhow::Result<Decision> {
    let (customer, history) = load_sender(conn, address, now)?;
    let state = customer
        .as_ref()
        .map_or(SenderState::New, Customer::sender_state);
    let load = service_load(conn, service, now)?;
    let decision = policy::evaluate_portal(&service.policy, address, state, history, load, now);
    let context = ReplyContext {
        settings,
        service,
        support: &service.support_addresses[0],
        in_reply_to: None,
    };
    apply(
        conn,
        &context,
        &decision,
        address,
        customer.as_ref(),
        name,
        "portal",
        now,
    )?;
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "portal",
            service: &service.id,
            address: address.as_str(),
            identity: Some(&address.identity_key()),
            outcome: decision.name(),
            reason: decision.reason(),
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(decision)
}

fn load_sender(
    conn: &Connection,
    address: &EmailAddress,
    now: i64,
) -> anyhow::Result<(Option<Customer>, ReplyHistory)> {
    let customer = customers::by_identity(conn, &address.identity_key())?;
    let history = outbox::history(conn, &address.rate_key(), now)?;
    Ok((customer, history))
}

/// What a reply needs besides its wording.
struct ReplyContext<'a> {
    settings: &'a Settings,
    service: &'a Service,
    /// The support address that answers (our loop stamp).
    support: &'a EmailAddress,
    in_reply_to: Option<&'a str>,
}

/// Writes a decision's consequences: customer, token hash, outbox row.
#[allow(clippy::too_many_arguments)] // each argument is a distinct fact of the decision
fn apply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    decision: &Decision,
    address: &EmailAddress,
    customer: Option<&Customer>,
    name: Option<&CustomerName>,
    source: &str,
    now: i64,
) -> anyhow::Result<()> {
    let settings = context.settings;
    let reply = match decision {
        Decision::Register { company } => {
            let identity = address.identity_key();
            let customer_id = customers::insert_pending(
                conn,
                &NewCustomer {
                    email: address.as_str(),
                    identity: &identity,
                    name: name.map(AsRef::as_ref),
                    company: company.as_deref(),
                    service: &context.service.id,
                    source,
                },
                now,
            )?;
            new_activation_reply(conn, context, customer_id, now)?
        }
        Decision::ResendActivation => {
            let customer =
                customer.ok_or_else(|| anyhow::anyhow!("resend decided without a customer"))?;
            new_activation_reply(conn, context, customer.id, now)?
        }
        Decision::AlreadyActive { notify: true } => replies::already_active(
            &context.service.name,
            &replies::login_link(&settings.http.public_url),
        )?,
        Decision::AlreadyActive { notify: false }
        | Decision::Suppress(_)
        | Decision::Refuse(_)
        | Decision::Defer(_) => {
            return Ok(());
        }
    };
    queue_reply(conn, context, address, &reply, now)
}

/// Replaces the customer's token with a new one and renders the mail that
/// carries it. The raw token lives on only inside the rendered mail.
fn new_activation_reply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    customer_id: i64,
    now: i64,
) -> anyhow::Result<Reply> {
    let settings = context.settings;
    let token = Token::generate();
    let ttl = settings.activation.token_ttl.as_secs();
    let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    tokens::replace(conn, customer_id, &token.hash(), now, expires_at)?;
    let link = replies::activation_link(&settings.http.public_url, &token);
    replies::activation(&context.service.name, &link, expires_at, ttl / 3600)
}

fn queue_reply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    reply: &Reply,
    now: i64,
) -> anyhow::Result<()> {
    let settings = context.settings;
    let message_id = mailer::new_message_id(&settings.smtp.hostname);
    let body = mailer::compose(
        Addressing {
            from: &settings.outbound.from_address,
            from_name: &context.service.name,
            to,
            loop_stamp: context.support,
            in_reply_to: context.in_reply_to,
            message_id: &message_id,
        },
        reply,
    )?;
    let envelope_from = settings
        .outbound
        .envelope_from
        .as_ref()
        .map(EmailAddress::delivery_address)
        .unwrap_or_default();
    outbox::enqueue(
        conn,
        &NewReply {
            kind: reply.kind.as_str(),
            recipient: &to.delivery_address(),
            rate_key: &to.rate_key(),
            envelope_from: &envelope_from,
            message_id: &message_id,
            body: &body,
        },
        now,
    )?;
    Ok(())
}

/// What an operator's invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    /// A pending customer was created (`created`) or reused, and the
    /// invitation with a fresh link is queued.
    Invited { created: bool },
    /// The customer is already active; nothing was sent.
    AlreadyActive,
    /// The customer is disabled; nothing was sent.
    Disabled,
}

/// What `hand_over_link` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOver {
    /// A fresh link for the pending customer; the old one no longer works.
    Link(url::Url),
    /// No customer has this address.
    Unknown,
    /// The customer is not pending (active or disabled).
    NotPending(customers::Status),
}

/// What enabling or disabling an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Unknown,
    /// From one status to another (possibly the same).
    Changed {
        from: customers::Status,
        to: customers::Status,
    },
}

/// The operator's and the portal's other ways in: invitations, hand-over
/// links, resends, account state, and the purge of expired pending customers.
impl Registrar {
    /// Invites `address` to `service`: creates the pending customer (or
    /// reuses a pending one) and queues the invitation mail with a new link,
    /// in one transaction. An operator's invitation is not subject to the
    /// self-registration policy. Blocks the calling thread (the CLI).
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub fn invite_blocking(
        &self,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
    ) -> Result<InviteOutcome, StoreError> {
        let settings = Arc::clone(&self.settings);
        let service = service.clone();
        let outcome = self.store.write_blocking(move |conn| {
            invite_tx(
                conn,
                &settings,
                &service,
                &address,
                name.as_ref(),
                store::now(),
            )
        })?;
        self.outbox_wake.notify_one();
        Ok(outcome)
    }

    /// Replaces a pending customer's token with a new one and returns the
    /// link, for an operator to hand over. Only the hash is stored. Blocks.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub fn hand_over_link_blocking(&self, address: &EmailAddress) -> Result<HandOver, StoreError> {
        let settings = Arc::clone(&self.settings);
        let address = address.clone();
        self.store.write_blocking(move |conn| {
            let now = store::now();
            let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
                return Ok(HandOver::Unknown);
            };
            if customer.status != customers::Status::Pending {
                return Ok(HandOver::NotPending(customer.status));
            }
            let token = Token::generate();
            tokens::replace(
                conn,
                customer.id,
                &token.hash(),
                now,
                now + secs(settings.activation.token_ttl),
            )?;
            record_operator(conn, &customer, "link", "handed_over", now)?;
            Ok(HandOver::Link(replies::activation_link(
                &settings.http.public_url,
                &token,
            )))
        })
    }

    /// "Send me a new link", from the page a dead link opens. Only existing
    /// customers get mail: a pending one a new activation link, an active one
    /// the "you already have an account" note (both within the reply limits);
    /// an unknown address gets nothing. Recorded either way. The caller
    /// answers the same whatever happened.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn resend(&self, address: EmailAddress) -> Result<Option<Decision>, StoreError> {
        let settings = Arc::clone(&self.settings);
        let decision = self
            .store
            .write(move |conn| resend_tx(conn, &settings, &address, store::now()))
            .await?;
        if decision.as_ref().is_some_and(Decision::sends_mail) {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }

    /// `activate`, plus: ends the session the browser held before (the id is
    /// rotated), and queues the "account activated" notice, all in the same
    /// transaction. `None` when the token is not live.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub async fn activate_with_notice(
        &self,
        token: &Token,
        name: CustomerName,
        password_hash: String,
        session: TokenHash,
        previous_session: Option<TokenHash>,
    ) -> Result<Option<i64>, StoreError> {
        let hash = token.hash();
        let settings = Arc::clone(&self.settings);
        let activated = self
            .store
            .write(move |conn| {
                let now = store::now();
                let Some(customer_id) = tokens::consume(conn, &hash, now)? else {
                    return Ok(None);
                };
                if !customers::activate(conn, customer_id, name.as_ref(), &password_hash, now)? {
                    anyhow::bail!("token {hash:?} belonged to a customer that is not pending");
                }
                if let Some(previous) = previous_session {
                    sessions::delete(conn, &previous)?;
                }
                let ttl = secs(settings.session.absolute_timeout);
                sessions::create(conn, &session, customer_id, now, now + ttl)?;
                if let Some(customer) = customers::by_id(conn, customer_id)? {
                    queue_activated_notice(conn, &settings, &customer, now)?;
                }
                Ok(Some(customer_id))
            })
            .await?;
        if activated.is_some() {
            self.outbox_wake.notify_one();
        }
        Ok(activated)
    }

    /// Opens a session for a customer who signed in, ending the one the
    /// browser held before (a new id at every sign-in).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn rotate_session(
        &self,
        customer_id: i64,
        session: TokenHash,
        previous_session: Option<TokenHash>,
    ) -> Result<(), StoreError> {
        let session_ttl = secs(self.settings.session.absolute_timeout);
        self.store
            .write(move |conn| {
                let now = store::now();
                if let Some(previous) = previous_session {
                    sessions::delete(conn, &previous)?;
                }
                sessions::create(conn, &session, customer_id, now, now + session_ttl)?;
                Ok(())
            })
            .await
    }

    /// Disables (ending every session) or enables an account. Enabling makes
    /// it active again if it was ever activated, else pending. Blocks.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub fn set_enabled_blocking(
        &self,
        address: &EmailAddress,
        enabled: bool,
    ) -> Result<StatusChange, StoreError> {
        let identity = address.identity_key();
        self.store.write_blocking(move |conn| {
            let now = store::now();
            let Some(customer) = customers::by_identity(conn, &identity)? else {
                return Ok(StatusChange::Unknown);
            };
            let to = if enabled {
                customers::enable(conn, &identity)?.unwrap_or(customer.status)
            } else {
                customers::set_status(conn, &identity, customers::Status::Disabled)?;
                sessions::delete_for_customer(conn, customer.id)?;
                customers::Status::Disabled
            };
            let outcome = if enabled { "enable" } else { "disable" };
            record_operator(conn, &customer, outcome, to.as_str(), now)?;
            Ok(StatusChange::Changed {
                from: customer.status,
                to,
            })
        })
    }

    /// Deletes pending customers older than `activation.pending_expiry` with
    /// their tokens, recording a decision for each, and drops expired
    /// sessions. Returns how many customers were purged.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let expiry = secs(self.settings.activation.pending_expiry);
        let idle = secs(self.settings.session.idle_timeout);
        self.store
            .write(move |conn| {
                let now = store::now();
                let purged = customers::purge_pending_before(conn, now.saturating_sub(expiry))?;
                for customer in &purged {
                    inbound::record_decision(
                        conn,
                        &NewDecision {
                            inbound_id: None,
                            channel: "purge",
                            service: &customer.service,
                            address: &customer.email,
                            identity: Some(&customer.identity),
                            outcome: "purged",
                            reason: "pending_expired",
                            dropped: false,
                            reply_code: None,
                        },
                        now,
                    )?;
                }
                sessions::purge_expired(conn, now, idle)?;
                Ok(purged.len())
            })
            .await
    }
}

/// The transaction behind `invite_blocking`.
fn invite_tx(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    now: i64,
) -> anyhow::Result<InviteOutcome> {
    let existing = customers::by_identity(conn, &address.identity_key())?;
    let (customer_id, created) = match &existing {
        None => {
            let company = match &service.policy.access {
                policy::Access::Companies(companies) => companies
                    .iter()
                    .find(|c| c.domains.iter().any(|d| d == address.domain()))
                    .map(|c| c.name.clone()),
                _ => None,
            };
            let id = customers::insert_pending(
                conn,
                &NewCustomer {
                    email: address.as_str(),
                    identity: &address.identity_key(),
                    name: name.map(AsRef::as_ref),
                    company: company.as_deref(),
                    service: &service.id,
                    source: "invitation",
                },
                now,
            )?;
            (id, true)
        }
        Some(customer) => match customer.status {
            customers::Status::Pending => (customer.id, false),
            customers::Status::Active => {
                record_operator(conn, customer, "invite", "already_active", now)?;
                return Ok(InviteOutcome::AlreadyActive);
            }
            customers::Status::Disabled => {
                record_operator(conn, customer, "invite", "account_disabled", now)?;
                return Ok(InviteOutcome::Disabled);
            }
        },
    };
    let token = Token::generate();
    let ttl = settings.activation.token_ttl.as_secs();
    let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    tokens::replace(conn, customer_id, &token.hash(), now, expires_at)?;
    let link = replies::activation_link(&settings.http.public_url, &token);
    let shown_name = name
        .map(|n| n.as_ref().to_owned())
        .or_else(|| existing.as_ref().and_then(|c| c.name.clone()));
    let reply = replies::invitation(
        &service.name,
        shown_name.as_deref(),
        &link,
        expires_at,
        ttl / 3600,
    )?;
    let context = ReplyContext {
        settings,
        service,
        support: &service.support_addresses[0],
        in_reply_to: None,
    };
    queue_reply(conn, &context, address, &reply, now)?;
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "operator",
            service: &service.id,
            address: address.as_str(),
            identity: Some(&address.identity_key()),
            outcome: "invite",
            reason: if created {
                "operator_invitation"
            } else {
                "invited_again"
            },
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(InviteOutcome::Invited { created })
}

/// The transaction behind `resend`.
fn resend_tx(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    now: i64,
) -> anyhow::Result<Option<Decision>> {
    let (customer, history) = load_sender(conn, address, now)?;
    let Some(customer) = customer else {
        let service = &settings.services[0];
        inbound::record_decision(
            conn,
            &NewDecision {
                inbound_id: None,
                channel: "resend",
                service: &service.id,
                address: address.as_str(),
                identity: Some(&address.identity_key()),
                outcome: "ignore",
                reason: "unknown_address",
                dropped: false,
                reply_code: None,
            },
            now,
        )?;
        return Ok(None);
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    // A resend only serves customers who already exist (registered by any
    // channel, or invited), so the portal switch does not apply; the
    // denylist, the account state and the reply limits do.
    let mut policy = service.policy.clone();
    policy.portal = true;
    let load = service_load(conn, service, now)?;
    let decision = policy::evaluate_portal(
        &policy,
        address,
        customer.sender_state(),
        history,
        load,
        now,
    );
    let context = ReplyContext {
        settings,
        service,
        support: &service.support_addresses[0],
        in_reply_to: None,
    };
    apply(
        conn,
        &context,
        &decision,
        address,
        Some(&customer),
        None,
        "resend",
        now,
    )?;
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "resend",
            service: &service.id,
            address: address.as_str(),
            identity: Some(&address.identity_key()),
            outcome: decision.name(),
            reason: decision.reason(),
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(Some(decision))
}

/// Queues the "account activated" notice to a customer just activated.
fn queue_activated_notice(
    conn: &Connection,
    settings: &Settings,
    customer: &Customer,
    now: i64,
) -> anyhow::Result<()> {
    let Ok(address) = EmailAddress::parse(&customer.email) else {
        tracing::warn!(
            customer.id = customer.id,
            "stored address does not parse; no activation notice"
        );
        return Ok(());
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    let reply = replies::account_activated(
        &service.name,
        customer.name.as_deref().unwrap_or(customer.email.as_str()),
        &replies::login_link(&settings.http.public_url),
    )?;
    let context = ReplyContext {
        settings,
        service,
        support: &service.support_addresses[0],
        in_reply_to: None,
    };
    queue_reply(conn, &context, &address, &reply, now)
}

/// Records an operator's action on a customer as a decision.
fn record_operator(
    conn: &Connection,
    customer: &Customer,
    outcome: &str,
    reason: &str,
    now: i64,
) -> anyhow::Result<()> {
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "operator",
            service: &customer.service,
            address: &customer.email,
            identity: Some(&customer.identity),
            outcome,
            reason,
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(())
}

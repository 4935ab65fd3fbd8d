//! The use cases every way in shares, each one store transaction: `mail`
//! (a message to a support address), `portal` ("Create an account" and
//! resend), `operator` (invitations, hand-over links, account state, purge)
//! and `activation` (the activation page and sign-in sessions). This file
//! holds the `Registrar` and what they share: loading the sender's state and
//! writing a decision's consequences (customer, token hash, outbox row).
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
use crate::settings::{LiveSettings, Service, Settings};
use crate::smtp::reply::{self as smtp_reply};
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::inbound::{self, NewDecision, NewInbound};
use crate::store::outbox::{self, NewReply};
use crate::store::{self, Store, StoreError, sessions, tokens};
use rusqlite::Connection;
use std::sync::Arc;
use tokio::sync::Notify;

mod activation;
mod mail;
mod operator;
mod portal;

pub use activation::PendingCustomer;
pub use mail::MailOutcome;
pub use operator::{HandOver, InviteOutcome, Purged, StatusChange};

/// Runs the registration use cases against the store.
#[derive(Clone)]
pub struct Registrar {
    /// Reloadable settings; each use case works on one snapshot.
    settings: LiveSettings,
    store: Store,
    /// Wakes the outbox worker when a reply was queued.
    outbox_wake: Arc<Notify>,
    /// Verifies senders before the store transaction (DNS for `dmarc`).
    sender_auth: Arc<SenderAuthenticator>,
}

impl Registrar {
    /// Builds the registrar and its sender authenticator.
    pub fn new(settings: Arc<Settings>, store: Store, outbox_wake: Arc<Notify>) -> Self {
        let sender_auth = Arc::new(SenderAuthenticator::from_settings(&settings, true));
        Self {
            settings: LiveSettings::new(Settings::clone(&settings)),
            store,
            outbox_wake,
            sender_auth,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The settings in force now (services and policies may be reloaded).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.current()
    }

    /// The handle a reload (SIGHUP) swaps the services through.
    pub fn live_settings(&self) -> &LiveSettings {
        &self.settings
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

impl<'a> ReplyContext<'a> {
    /// A reply not answering a message (portal, resend, operator): stamped
    /// with the service's first support address.
    fn unprompted(settings: &'a Settings, service: &'a Service) -> Self {
        Self {
            settings,
            service,
            support: &service.support_addresses[0],
            in_reply_to: None,
        }
    }
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

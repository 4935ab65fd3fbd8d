//! The one decision pipeline every way in uses, inside the caller's store
//! transaction: load what policy needs (`facts`), evaluate, apply the
//! decision's consequences (customer, token hash, outbox row), record it.
//! `record` is the only place a decision row is written, for operators'
//! actions too.
//!
//! The address that registers is the address that gets the reply: `apply`
//! takes one address for the customer row, the rate-limit key and the outbox
//! recipient, so an activation link can go to no one else.

use crate::domain::{Channel, ClientNetwork, CustomerName, EmailAddress, EventKind};
use crate::policy::{Decision, DeferReason, Evaluation, RefuseReason, SuppressReason};
use crate::registration::Guards;
use crate::registration::alarms::Alarm;
use crate::registration::events::{self, emit, emit_for};
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{
    NotPrepared, PreparedReplies, ReplyContext, new_activation_reply, queue_prepared, queue_reply,
    render_already_active,
};
use crate::settings::Service;
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::inbound::{self, NewDecision};
use crate::store::reply_counts::{self, Keys};
use rusqlite::Connection;

/// A request to decide, as a way in brings it.
pub(super) struct Ask<'a> {
    pub(super) channel: Channel,
    pub(super) service: &'a Service,
    /// Who would register and be answered (for mail, the single From
    /// address); `None` when nobody can be.
    pub(super) address: Option<&'a EmailAddress>,
    /// Whom the decision record is about (for mail without a usable From,
    /// the envelope sender as given).
    pub(super) about: About<'a>,
    /// The name given with the request (the form's, or From's display name).
    pub(super) name: Option<&'a CustomerName>,
    /// The network the request came from, when it is counted (not for a
    /// trusted relay, whose clients we cannot tell apart).
    pub(super) client: Option<ClientNetwork>,
    /// The circuit breaker and the alarms.
    pub(super) guards: &'a Guards,
    /// How a reply is addressed and stamped.
    pub(super) reply: ReplyContext<'a>,
    /// The replies to `address`, rendered before the store job; a way in
    /// that mails nothing has none.
    pub(super) prepared: Option<&'a PreparedReplies>,
    pub(super) now: i64,
}

/// What a way in keeps of a decided request besides the decision itself.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Kept {
    /// The stored message, when one was kept.
    pub(super) inbound_id: Option<i64>,
    /// A refusal answered as accepted (`refusal = "drop"`): nothing applied.
    pub(super) dropped: bool,
    /// The SMTP reply code the decision was answered with.
    pub(super) reply_code: Option<u16>,
}

/// Whom a record is about.
pub(super) struct About<'a> {
    pub(super) service: &'a str,
    pub(super) address: &'a str,
    pub(super) identity: Option<String>,
}

impl<'a> About<'a> {
    pub(super) fn customer(customer: &'a Customer) -> Self {
        Self {
            service: &customer.service,
            address: &customer.email,
            identity: Some(customer.identity.clone()),
        }
    }

    pub(super) fn address(service: &'a Service, address: &'a EmailAddress) -> Self {
        Self {
            service: &service.id,
            address: address.as_str(),
            identity: Some(address.identity_key()),
        }
    }
}

/// An outcome as recorded: stable names, and a note for a person.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outcome<'a> {
    pub(super) name: &'a str,
    pub(super) reason: &'a str,
    /// What else the record says (for mail, how the envelope was read).
    pub(super) note: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    /// An outcome with nothing to note.
    pub(super) fn of(name: &'a str, reason: &'a str) -> Self {
        Self {
            name,
            reason,
            note: None,
        }
    }
}

/// What evaluating a request gave: the decision, and what its record notes.
pub(super) struct Judged {
    pub(super) decision: Decision,
    pub(super) note: Option<String>,
}

impl From<Decision> for Judged {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            note: None,
        }
    }
}

impl From<Evaluation> for Judged {
    fn from(evaluation: Evaluation) -> Self {
        Self {
            decision: evaluation.decision,
            note: evaluation.note,
        }
    }
}

/// A decision made, and whether it was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decided {
    pub(super) decision: Decision,
    pub(super) dropped: bool,
}

/// Loads, evaluates, applies and records one request. `evaluate` is the
/// policy call for the channel; `keep` is what the way in keeps of the
/// request once decided (mail stores the message and its reply code), or
/// `None` when nothing of it may be stored (a deferred message).
///
/// # Errors
/// A storage failure; the caller's transaction rolls back.
pub(super) fn decide<J: Into<Judged>>(
    conn: &Connection,
    ask: &Ask<'_>,
    evaluate: impl FnOnce(&SenderFacts) -> J,
    keep: impl FnOnce(&Decision) -> anyhow::Result<Option<Kept>>,
) -> anyhow::Result<Decided> {
    let mut facts = SenderFacts::load(conn, ask.service, ask.address, ask.client, ask.now)?;
    facts.load.new_senders = Some(ask.guards.breaker.count());
    let Judged { decision, note } = evaluate(&facts).into();
    if let (Some(prepared), Some(address)) = (ask.prepared, ask.address)
        && !prepared.serves(&decision, address)
    {
        // Before anything is written or counted: the caller prepares the
        // reply and asks again.
        return Err(NotPrepared.into());
    }
    if let Some(alarm) = alarm_for(&decision) {
        ask.guards.alarms.raise(alarm, &ask.service.id);
    }
    let Some(kept) = keep(&decision)? else {
        return Ok(Decided {
            decision,
            dropped: false,
        });
    };
    if !kept.dropped
        && let Some(address) = ask.address
    {
        apply(conn, ask, &decision, address, facts.customer.as_ref())?;
        if matches!(decision, Decision::Register { .. }) && !ask.channel.signs_in() {
            // Only a new sender is registered: the circuit breaker counts it
            // (a sign-in method mails nothing, so it is not counted).
            // Every decision runs on the store's one writer thread, so the
            // next one sees this count.
            ask.guards.breaker.record();
        }
    }
    record(
        conn,
        ask.channel,
        &ask.about,
        Outcome {
            name: decision.name(),
            reason: decision.reason(),
            note: note.as_deref(),
        },
        kept,
        ask.now,
    )?;
    Ok(Decided {
        decision,
        dropped: kept.dropped,
    })
}

/// Records an outcome about someone: the only place a decision row is
/// written.
///
/// # Errors
/// A storage failure.
pub(super) fn record(
    conn: &Connection,
    channel: Channel,
    about: &About<'_>,
    outcome: Outcome<'_>,
    kept: Kept,
    now: i64,
) -> anyhow::Result<()> {
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: kept.inbound_id,
            channel: channel.as_str(),
            service: about.service,
            address: about.address,
            identity: about.identity.as_deref(),
            outcome: outcome.name,
            reason: outcome.reason,
            note: outcome.note,
            dropped: kept.dropped,
            reply_code: kept.reply_code,
        },
        now,
    )?;
    Ok(())
}

/// The alarm a decision raises, when it was made by a limit that protects
/// everybody.
fn alarm_for(decision: &Decision) -> Option<Alarm> {
    match decision {
        Decision::Refuse(RefuseReason::ServiceBudget)
        | Decision::Suppress(SuppressReason::ServiceBudget) => Some(Alarm::ServiceBudget),
        Decision::Refuse(RefuseReason::DomainBudget)
        | Decision::Suppress(SuppressReason::DomainBudget) => Some(Alarm::DomainBudget),
        Decision::Refuse(RefuseReason::NetworkBudget)
        | Decision::Suppress(SuppressReason::NetworkBudget) => Some(Alarm::NetworkBudget),
        Decision::Defer(DeferReason::NewSenderFlood) => Some(Alarm::NewSenderFlood),
        _ => None,
    }
}

/// Writes a decision's consequences: customer, token hash, outbox row, and
/// the reply counted against the service, the sender's domain and the
/// client's network.
fn apply(
    conn: &Connection,
    ask: &Ask<'_>,
    decision: &Decision,
    address: &EmailAddress,
    customer: Option<&Customer>,
) -> anyhow::Result<()> {
    if ask.channel.signs_in() {
        return apply_sign_in(conn, ask, decision, address, customer);
    }
    let context = &ask.reply;
    let settings = context.settings;
    let now = ask.now;
    let prepared = ask.prepared;
    let queued = match decision {
        Decision::Register { company } => {
            let identity = address.identity_key();
            let new = NewCustomer {
                email: address.as_str(),
                identity: &identity,
                name: ask.name.map(AsRef::as_ref),
                company: company.as_deref(),
                service: &ask.service.id,
                source: ask.channel.as_str(),
            };
            let customer_id = customers::insert_pending(conn, &new, now)?;
            emit(
                conn,
                settings,
                EventKind::Registered,
                (
                    &events::CustomerData {
                        email: new.email,
                        name: new.name,
                        company: new.company,
                        service: new.service,
                        status: customers::Status::Pending.as_str(),
                        channel: new.source,
                    },
                    Some(new.identity),
                ),
                ask.channel,
                now,
            )?;
            queue_activation(conn, ask, customer_id, address)?
        }
        Decision::ResendActivation => {
            let customer =
                customer.ok_or_else(|| anyhow::anyhow!("resend decided without a customer"))?;
            queue_activation(conn, ask, customer.id, address)?
        }
        Decision::AlreadyActive { notify: true } => {
            match prepared.and_then(|p| p.already_active_to(address)) {
                Some(reply) => queue_prepared(conn, context, reply, None, now)?,
                None => {
                    let reply = render_already_active(context)?;
                    queue_reply(conn, context, address, &reply, now)?
                }
            }
        }
        Decision::AlreadyActive { notify: false }
        | Decision::Suppress(_)
        | Decision::Refuse(_)
        | Decision::Defer(_) => {
            return Ok(());
        }
    };
    if !queued {
        return Ok(());
    }
    count_reply(conn, &ask.service.id, address, ask.client, now)
}

/// Queues the activation mail for `customer_id` to `address`: the one
/// prepared before the job when there is one (only its token hashes and
/// outbox row are written here), else rendered now.
fn queue_activation(
    conn: &Connection,
    ask: &Ask<'_>,
    customer_id: i64,
    address: &EmailAddress,
) -> anyhow::Result<bool> {
    let (context, now) = (&ask.reply, ask.now);
    match ask.prepared.and_then(|p| p.activation_to(address)) {
        Some(reply) => queue_prepared(conn, context, reply, Some(customer_id), now),
        None => {
            let reply = new_activation_reply(conn, context, customer_id, address, now)?;
            queue_reply(conn, context, address, &reply, now)
        }
    }
}

/// Counts a reply queued for `service` against its daily budgets: the
/// service's own, the recipient's domain's and (when it is counted) the
/// client network's.
fn count_reply(
    conn: &Connection,
    service: &str,
    address: &EmailAddress,
    client: Option<ClientNetwork>,
    now: i64,
) -> anyhow::Result<()> {
    let network = client.map(|client| client.to_string());
    let keys = Keys {
        domain: Some(address.domain()),
        network: network.as_deref(),
    };
    reply_counts::add_reply(conn, service, keys, now)?;
    Ok(())
}

/// A sign-in method's consequences: the proof already showed the address is
/// the visitor's, so a new customer is created active (no activation mail,
/// no password until they set one) and a pending one is activated; either
/// way `customer.activated` is queued (a customer created active was never
/// pending, so no `customer.registered`). The session is the caller's.
fn apply_sign_in(
    conn: &Connection,
    ask: &Ask<'_>,
    decision: &Decision,
    address: &EmailAddress,
    customer: Option<&Customer>,
) -> anyhow::Result<()> {
    match decision {
        Decision::Register { company } => {
            let id = customers::insert_active(
                conn,
                &NewCustomer {
                    email: address.as_str(),
                    identity: &address.identity_key(),
                    name: ask.name.map(AsRef::as_ref),
                    company: company.as_deref(),
                    service: &ask.service.id,
                    source: ask.channel.as_str(),
                },
                ask.now,
            )?;
            activated(conn, ask, id)?;
        }
        Decision::ResendActivation => {
            let customer =
                customer.ok_or_else(|| anyhow::anyhow!("activation decided without a customer"))?;
            if customers::activate_proven(conn, customer.id, ask.name.map(AsRef::as_ref), ask.now)?
            {
                activated(conn, ask, customer.id)?;
            }
        }
        Decision::AlreadyActive { .. }
        | Decision::Suppress(_)
        | Decision::Refuse(_)
        | Decision::Defer(_) => {}
    }
    Ok(())
}

/// Queues `customer.activated` for a customer a sign-in method just made
/// active.
fn activated(conn: &Connection, ask: &Ask<'_>, id: i64) -> anyhow::Result<()> {
    let settings = ask.reply.settings;
    if !events::wanted(settings, EventKind::Activated) {
        return Ok(());
    }
    let customer = customers::by_id(conn, id)?
        .ok_or_else(|| anyhow::anyhow!("activated a missing customer"))?;
    emit_for(
        conn,
        settings,
        EventKind::Activated,
        &customer,
        ask.channel,
        ask.now,
    )?;
    Ok(())
}

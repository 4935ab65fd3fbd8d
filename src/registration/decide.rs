//! The one decision pipeline every way in uses, inside the caller's store
//! transaction: load what policy needs (`facts`), evaluate, apply the
//! decision's consequences (customer, token hash, outbox row, reply counts),
//! record it. `record` is the only place a decision row is written, for
//! operators' actions too.
//!
//! The replies a decision may queue are prepared before the transaction
//! (`outgoing::Prepared`); a decision whose reply was not prepared returns
//! `Attempt::NeedsReply` before writing anything, and `until_prepared` runs
//! the use case again with that reply.

use crate::domain::{Channel, CustomerName, EmailAddress};
use crate::policy::Decision;
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{self, Attempt, Prepared, PreparedReply};
use crate::replies::ReplyKind;
use crate::settings::{Service, Settings};
use crate::store::StoreError;
use crate::store::counters::{self, Scope};
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::inbound::{self, NewDecision};
use rusqlite::Connection;
use std::sync::Arc;

/// A request to decide, as a way in brings it.
pub(super) struct Ask<'a> {
    pub(super) channel: Channel,
    pub(super) settings: &'a Settings,
    pub(super) service: &'a Service,
    /// Who would register or be answered; `None` for mail whose envelope
    /// sender is not an address.
    pub(super) address: Option<&'a EmailAddress>,
    /// The address as recorded (for mail, the envelope sender as given).
    pub(super) recorded_as: &'a str,
    /// The name given with the request (the form's, or From's display name).
    pub(super) name: Option<&'a CustomerName>,
    /// The replies the decision may queue, ready to write.
    pub(super) replies: &'a Prepared,
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

/// A decision made, and whether it was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decided {
    pub(super) decision: Decision,
    pub(super) dropped: bool,
}

/// Loads, evaluates, applies and records one request. `evaluate` is the
/// policy call for the channel; `keep` is what the way in keeps of the
/// request once decided (mail stores the message and its reply code), or
/// `None` when nothing of it may be stored (a deferred message). When the
/// decision queues a reply that was not prepared, nothing is written and
/// the answer is `Attempt::NeedsReply`.
///
/// # Errors
/// A storage failure; the caller's transaction rolls back.
pub(super) fn decide(
    conn: &Connection,
    ask: &Ask<'_>,
    evaluate: impl FnOnce(&SenderFacts) -> Decision,
    keep: impl FnOnce(&Decision) -> anyhow::Result<Option<Kept>>,
) -> anyhow::Result<Attempt<Decided>> {
    let facts = SenderFacts::load(conn, ask.service, ask.address, ask.now)?;
    let decision = evaluate(&facts);
    let reply = match ask.replies.for_decision(&decision) {
        Ok(reply) => reply,
        Err(kind) => return Ok(Attempt::NeedsReply(kind)),
    };
    let Some(kept) = keep(&decision)? else {
        return Ok(Attempt::Done(Decided {
            decision,
            dropped: false,
        }));
    };
    if !kept.dropped
        && let Some(address) = ask.address
    {
        apply(
            conn,
            ask,
            &decision,
            address,
            facts.customer.as_ref(),
            reply,
        )?;
    }
    let about = About {
        service: &ask.service.id,
        address: ask.recorded_as,
        identity: ask.address.map(EmailAddress::identity_key),
    };
    record(
        conn,
        ask.channel,
        &about,
        (decision.name(), decision.reason()),
        kept,
        ask.now,
    )?;
    Ok(Attempt::Done(Decided {
        decision,
        dropped: kept.dropped,
    }))
}

/// Runs a use case's transaction (`attempt`, given the replies prepared so
/// far) until its decision finds the reply it queues prepared: a missing one
/// is prepared outside the writer (`prepare`) and the transaction runs again,
/// deciding afresh. Twice at most in practice; a third miss is a bug.
///
/// # Errors
/// A storage failure, or a reply that cannot be prepared.
pub(super) async fn until_prepared<T, Run>(
    prepared: Prepared,
    prepare: impl Fn(ReplyKind) -> anyhow::Result<PreparedReply>,
    mut attempt: impl FnMut(Arc<Prepared>) -> Run,
) -> Result<T, RegistrationError>
where
    Run: Future<Output = Result<Attempt<T>, StoreError>>,
{
    let mut prepared = Arc::new(prepared);
    for _ in 0..3 {
        match attempt(Arc::clone(&prepared)).await? {
            Attempt::Done(done) => return Ok(done),
            Attempt::NeedsReply(kind) => {
                let mut more = Prepared::clone(&prepared);
                more.add(prepare(kind).map_err(prepare_failed)?);
                prepared = Arc::new(more);
            }
        }
    }
    Err(prepare_failed(anyhow::anyhow!(
        "the decision kept asking for a reply that was prepared"
    )))
}

/// A reply that could not be prepared, as the ways in see it.
pub(super) fn prepare_failed(error: anyhow::Error) -> RegistrationError {
    RegistrationError::Failed(Arc::new(error.context("failed to prepare a reply")))
}

/// Records an outcome (`(name, reason)`, stable names) about someone: the
/// only place a decision row is written.
///
/// # Errors
/// A storage failure.
pub(super) fn record(
    conn: &Connection,
    channel: Channel,
    about: &About<'_>,
    (outcome, reason): (&str, &str),
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
            outcome,
            reason,
            dropped: kept.dropped,
            reply_code: kept.reply_code,
        },
        now,
    )?;
    Ok(())
}

/// Writes a decision's consequences: customer, token hash, outbox row and
/// the reply counts (the address's, and the service's daily budget).
fn apply(
    conn: &Connection,
    ask: &Ask<'_>,
    decision: &Decision,
    address: &EmailAddress,
    customer: Option<&Customer>,
    reply: Option<&PreparedReply>,
) -> anyhow::Result<()> {
    let customer_id = match decision {
        Decision::Register { company } => Some(customers::insert_pending(
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
        )?),
        Decision::ResendActivation => Some(
            customer
                .ok_or_else(|| anyhow::anyhow!("resend decided without a customer"))?
                .id,
        ),
        _ => None,
    };
    if let Some(reply) = reply {
        outgoing::queue(conn, ask.settings, reply, customer_id, ask.now)?;
        counters::bump(conn, Scope::Service, &ask.service.id, ask.now)?;
    }
    Ok(())
}

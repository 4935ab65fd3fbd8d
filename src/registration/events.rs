//! The webhook events a use case queues: one row per endpoint that wants
//! the event, written in the use case's own transaction, so an event exists
//! exactly when the decision behind it was committed (the outbox pattern).
//! The daemon's webhook workers send them after the commit.

use crate::domain::{Channel, EventKind};
use crate::settings::Settings;
use crate::store::customers::Customer;
use crate::store::webhook_events::{self, NewEvent};
use crate::webhooks::payload;

pub(super) use crate::webhooks::payload::CustomerData;
use rusqlite::Connection;

/// Queues `kind` about `customer` (whose identity key is `identity`; `None`
/// for an erasure's own event), caused by `via`, for every endpoint that
/// wants it; returns whether any did.
///
/// # Errors
/// A storage failure; the caller's transaction rolls back.
pub(super) fn emit(
    conn: &Connection,
    settings: &Settings,
    kind: EventKind,
    (customer, identity): (&CustomerData<'_>, Option<&str>),
    via: Channel,
    now: i64,
) -> anyhow::Result<bool> {
    let mut endpoints = settings
        .webhooks
        .iter()
        .filter(|e| e.wants(kind))
        .peekable();
    if endpoints.peek().is_none() {
        return Ok(false);
    }
    let event = payload::customer_event(kind, customer, via, now)?;
    for endpoint in endpoints {
        webhook_events::enqueue(
            conn,
            &NewEvent {
                event_id: &event.id,
                endpoint: &endpoint.name,
                kind: kind.as_str(),
                identity,
                body: &event.body,
            },
            now,
        )?;
    }
    Ok(true)
}

/// `emit` for a customer row as it stands after the change.
///
/// # Errors
/// As `emit`.
pub(super) fn emit_for(
    conn: &Connection,
    settings: &Settings,
    kind: EventKind,
    customer: &Customer,
    via: Channel,
    now: i64,
) -> anyhow::Result<bool> {
    emit(
        conn,
        settings,
        kind,
        (&data(customer), Some(&customer.identity)),
        via,
        now,
    )
}

/// What an event says about a customer row.
pub(super) fn data(customer: &Customer) -> CustomerData<'_> {
    CustomerData {
        email: &customer.email,
        name: customer.name.as_deref(),
        company: customer.company.as_deref(),
        service: &customer.service,
        status: customer.status.as_str(),
        channel: &customer.source,
    }
}

/// Whether any endpoint wants `kind` (a use case skips the work of an event
/// nobody gets).
pub(super) fn wanted(settings: &Settings, kind: EventKind) -> bool {
    settings.webhooks.iter().any(|e| e.wants(kind))
}

//! What policy needs to know about a sender before it decides: the customer
//! (if any), the replies they got lately and the service's load. The daemon's
//! use cases and `registrar explain` call this one loader, so explain cannot
//! drift from what the daemon decides on.

use crate::domain::EmailAddress;
use crate::policy::{Bouncing, ReplyHistory, SenderState, ServiceLoad};
use crate::settings::Service;
use crate::store::customers::{self, Customer};
use crate::store::{self, bounces, inbound, outbox};
use rusqlite::Connection;
use std::path::Path;

/// Seconds in a day, for the service's daily reply budget.
const DAY_SECS: i64 = 24 * 60 * 60;

/// The sender's state, reply history and the service's load.
#[derive(Debug, Clone, Default)]
pub struct SenderFacts {
    /// The customer with the sender's address, if any.
    pub(super) customer: Option<Customer>,
    pub history: ReplyHistory,
    pub load: ServiceLoad,
}

impl SenderFacts {
    /// Loads the facts for `address` (none when the sender is not an
    /// address) and `service` at `now`, inside the caller's transaction.
    ///
    /// # Errors
    /// A storage failure.
    pub(super) fn load(
        conn: &Connection,
        service: &Service,
        address: Option<&EmailAddress>,
        now: i64,
    ) -> anyhow::Result<Self> {
        let (customer, history) = match address {
            Some(address) => {
                let mut history = outbox::history(conn, &address.rate_key(), now)?;
                if bounces::is_bouncing(conn, &address.identity_key())? {
                    history.bouncing = Bouncing::Yes;
                }
                (
                    customers::by_identity(conn, &address.identity_key())?,
                    history,
                )
            }
            None => (None, ReplyHistory::default()),
        };
        let load = ServiceLoad {
            replies_last_day: Some(inbound::service_replies_since(
                conn,
                &service.id,
                now - DAY_SECS,
            )?),
        };
        Ok(Self {
            customer,
            history,
            load,
        })
    }

    /// `load`, from the database at `path` opened read-only beside a running
    /// daemon (for `registrar explain`); nothing is written.
    ///
    /// # Errors
    /// The database cannot be opened or read.
    pub fn read_only(
        path: &Path,
        service: &Service,
        address: &EmailAddress,
        now: i64,
    ) -> anyhow::Result<Self> {
        let conn = store::open_read_only(path)?;
        Self::load(&conn, service, Some(address), now)
    }

    /// What we know of the sender: new, pending, active or disabled.
    pub fn state(&self) -> SenderState {
        self.customer
            .as_ref()
            .map_or(SenderState::New, Customer::sender_state)
    }
}

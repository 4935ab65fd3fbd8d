//! What policy needs to know about a sender before it decides: the customer
//! (if any), the replies they got lately and the service's load. The daemon's
//! use cases and `registrar explain` call this one loader, so explain cannot
//! drift from what the daemon decides on.
//!
//! Reply history and load come from the reply counters (`store::counters`,
//! kept per key and hour in the transactions that queue replies): a few
//! rows of one primary key, never a count of the day's mail.

use crate::domain::EmailAddress;
use crate::policy::{ReplyHistory, SenderState, ServiceLoad};
use crate::settings::Service;
use crate::store;
use crate::store::counters::{self, Scope};
use crate::store::customers::{self, Customer};
use rusqlite::Connection;
use std::path::Path;

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
                let replies = counters::last_day(conn, Scope::Address, &address.rate_key(), now)?;
                (
                    customers::by_identity(conn, &address.identity_key())?,
                    ReplyHistory {
                        last_reply_at: replies.last_at,
                        replies_last_day: replies.replies,
                    },
                )
            }
            None => (None, ReplyHistory::default()),
        };
        let load = ServiceLoad {
            replies_last_day: Some(
                counters::last_day(conn, Scope::Service, &service.id, now)?.replies,
            ),
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

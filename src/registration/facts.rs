//! What policy needs to know about a sender before it decides: the customer
//! (if any), whether the address asked never to be mailed, the replies it
//! got lately, and the load on the service, the sender's domain and the
//! client's network. The daemon's use cases and `registrar explain` call this
//! one loader, so explain cannot drift from what the daemon decides on.

use crate::domain::{ClientNetwork, EmailAddress};
use crate::policy::{Bouncing, ReplyHistory, SenderState, ServiceLoad};
use crate::settings::Service;
use crate::store::customers::{self, Customer};
use crate::store::reply_counts::{self, Keys};
use crate::store::{self, bounces, outbox, suppressions};
use rusqlite::Connection;
use std::path::Path;

/// The sender's state, reply history and the service's load.
#[derive(Debug, Clone, Default)]
pub struct SenderFacts {
    /// The customer with the sender's address, if any.
    pub(super) customer: Option<Customer>,
    /// The address's owner asked never to be mailed again.
    pub(super) suppressed: bool,
    pub history: ReplyHistory,
    pub load: ServiceLoad,
}

/// The replies an address got lately, and whether they bounce.
fn history_of(conn: &Connection, address: &EmailAddress, now: i64) -> anyhow::Result<ReplyHistory> {
    let mut history = outbox::history(conn, &address.rate_key(), now)?;
    if bounces::is_bouncing(conn, &address.identity_key())? {
        history.bouncing = Bouncing::Yes;
    }
    Ok(history)
}

impl SenderFacts {
    /// Loads the facts for `address` (none when the sender is not an
    /// address), asking from `client` (when its network is counted), for
    /// `service` at `now`, inside the caller's transaction. The circuit
    /// breaker's count is not the store's: the caller adds it.
    ///
    /// # Errors
    /// A storage failure.
    pub(super) fn load(
        conn: &Connection,
        service: &Service,
        address: Option<&EmailAddress>,
        client: Option<ClientNetwork>,
        now: i64,
    ) -> anyhow::Result<Self> {
        let (customer, suppressed, history) = match address {
            Some(address) => (
                customers::by_identity(conn, &address.identity_key())?,
                suppressions::contains(conn, &address.identity_key())?,
                history_of(conn, address, now)?,
            ),
            None => (None, false, ReplyHistory::default()),
        };
        let network = client.map(|client| client.to_string());
        let keys = Keys {
            domain: address.map(EmailAddress::domain),
            network: network.as_deref(),
        };
        let counts = reply_counts::last_day(conn, &service.id, keys, now)?;
        let load = ServiceLoad {
            replies_last_day: Some(counts.service),
            domain_replies_last_day: counts.domain,
            network_replies_last_day: counts.network,
            new_senders: None,
        };
        Ok(Self {
            customer,
            suppressed,
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
        client: Option<ClientNetwork>,
        now: i64,
    ) -> anyhow::Result<Self> {
        let conn = store::open_read_only(path)?;
        Self::load(&conn, service, Some(address), client, now)
    }

    /// What we know of the sender: new, pending, active, disabled, or an
    /// address whose owner asked never to be mailed.
    pub fn state(&self) -> SenderState {
        if self.suppressed {
            return SenderState::Suppressed;
        }
        self.account_state()
    }

    /// The account's state alone (new, pending, active, disabled), for a
    /// decision that mails nothing: a sign-in by its owner's own proof.
    pub fn account_state(&self) -> SenderState {
        self.customer
            .as_ref()
            .map_or(SenderState::New, Customer::sender_state)
    }
}

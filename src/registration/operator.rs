//! The operator's ways in and tools: invitations, hand-over links, enabling
//! and disabling customers.

use crate::domain::{Channel, CustomerName, EmailAddress, Token};
use crate::policy;
use crate::registration::decide::{About, Kept, record};
use crate::registration::error::RegistrationError;
use crate::registration::outgoing::{self, PreparedReply, ReplyContext};
use crate::registration::{Registrar, secs};
use crate::replies;
use crate::settings::{Service, Settings};
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::{self, sessions, tokens};
use rusqlite::Connection;
use std::sync::Arc;

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

/// The transaction behind `invite_blocking`; `invitation` was prepared
/// before it.
fn invite_tx(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    invitation: &PreparedReply,
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
                    source: Channel::Invitation.as_str(),
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
    outgoing::queue(conn, settings, invitation, Some(customer_id), now)?;
    let reason = if created {
        "operator_invitation"
    } else {
        "invited_again"
    };
    record(
        conn,
        Channel::Operator,
        &About::address(service, address),
        ("invite", reason),
        Kept::default(),
        now,
    )?;
    Ok(InviteOutcome::Invited { created })
}

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
    ) -> Result<InviteOutcome, RegistrationError> {
        let settings = self.settings();
        let service = service.clone();
        let now = store::now();
        // The invitation greets the customer by the name given, or the one
        // on record; it is rendered here, before the transaction.
        let identity = address.identity_key();
        let known_name = self
            .store
            .read_blocking(|conn| Ok(customers::by_identity(conn, &identity)?))?
            .and_then(|customer| customer.name);
        let shown_name = name.as_ref().map(|n| n.as_ref().to_owned()).or(known_name);
        let invitation = outgoing::prepare_invitation(
            &ReplyContext::unprompted(&settings, &service),
            &address,
            shown_name.as_deref(),
            now,
        )
        .map_err(|error| {
            RegistrationError::Failed(Arc::new(error.context("failed to prepare the invitation")))
        })?;
        let outcome = self.store.write_blocking(move |conn| {
            invite_tx(
                conn,
                &settings,
                &service,
                &address,
                name.as_ref(),
                &invitation,
                now,
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
    pub fn hand_over_link_blocking(
        &self,
        address: &EmailAddress,
    ) -> Result<HandOver, RegistrationError> {
        let settings = self.settings();
        let address = address.clone();
        let token = Token::generate();
        Ok(self.store.write_blocking(move |conn| {
            let now = store::now();
            let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
                return Ok(HandOver::Unknown);
            };
            if customer.status != customers::Status::Pending {
                return Ok(HandOver::NotPending(customer.status));
            }
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
        })?)
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
    ) -> Result<StatusChange, RegistrationError> {
        let identity = address.identity_key();
        Ok(self.store.write_blocking(move |conn| {
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
        })?)
    }
}

/// Records an operator's action on a customer.
fn record_operator(
    conn: &Connection,
    customer: &Customer,
    outcome: &str,
    reason: &str,
    now: i64,
) -> anyhow::Result<()> {
    record(
        conn,
        Channel::Operator,
        &About::customer(customer),
        (outcome, reason),
        Kept::default(),
        now,
    )
}

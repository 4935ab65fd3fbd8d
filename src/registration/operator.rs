//! The operator's ways in and tools: invitations, hand-over links, enabling
//! and disabling customers, finding customers, taking an address off the
//! "never mail" list, and the purge of never-activated customers and
//! everything else that ages out.
//!
//! An operator acts at the command line or, as another system, through the
//! customer API (`Actor`): the same use cases and the same rules, recorded
//! under the channel `operator` or `api`.

use crate::domain::{Channel, CustomerName, EmailAddress, EventKind, Token};
use crate::policy;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::registration::events::{self, emit, emit_for};
use crate::registration::outgoing::{
    FreshLinks, MailWanted, PacedJob, PacedMail, PreparedReply, ReplyContext, queue_prepared,
};
use crate::registration::{Registrar, secs};
use crate::replies;
use crate::settings::{Service, Settings};
use crate::store::customers::{self, Customer, NewCustomer};
use crate::store::{self, sessions, suppressions, tokens};
use rusqlite::Connection;
use std::sync::Arc;

/// An invitation's transaction as a paced job (`Registrar::invitation`).
type PacedInvitation = PacedJob<
    (),
    Box<dyn Fn(&MailWanted) -> anyhow::Result<PacedMail<()>> + Send + Sync>,
    Box<dyn Fn(&Connection, Option<&PacedMail<()>>) -> anyhow::Result<InviteOutcome> + Send + Sync>,
>;
/// Who acts on an account from outside the ways in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An operator at the command line.
    Operator,
    /// Another system, through the customer API.
    Api,
}

impl Actor {
    /// The channel its actions are recorded under.
    pub fn channel(self) -> Channel {
        match self {
            Actor::Operator => Channel::Operator,
            Actor::Api => Channel::Api,
        }
    }
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
    /// The address's owner asked never to be mailed; nothing was sent.
    Suppressed,
}

/// What taking an address off the "never mail" list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsuppressed {
    /// It was on the list and is mailed again from now on.
    Removed,
    /// It was not on the list.
    NotListed,
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

/// What an invitation to `address` must be: from `service`, naming
/// `name` (the operator's, else the pending customer's).
fn invitation_wanted(
    service: &Service,
    address: &EmailAddress,
    name: Option<String>,
) -> MailWanted {
    MailWanted {
        service: service.id.clone(),
        to: address.clone(),
        name,
    }
}

/// Renders and composes the invitation `wanted` names, with fresh links.
fn prepare_invitation(
    settings: &Settings,
    service: &Service,
    wanted: &MailWanted,
) -> anyhow::Result<PacedMail<()>> {
    let links = FreshLinks::new(settings, store::now());
    let context = ReplyContext::unprompted(settings, service);
    let public_url = &settings.http.public_url;
    let reply = replies::invitation(
        &context.voice(),
        wanted.name.as_deref(),
        &links.activation(public_url),
        &links.opt_out(public_url),
        links.expires_at,
        links.ttl_hours,
    )?;
    Ok(PacedMail {
        wanted: wanted.clone(),
        tokens: (),
        reply: PreparedReply::new(&context, &wanted.to, &reply, Some(links))?,
    })
}

/// The transaction behind `invite`.
#[allow(clippy::too_many_arguments)] // each argument is a distinct input of the invitation
fn invite_tx(
    conn: &Connection,
    settings: &Settings,
    actor: Actor,
    service: &Service,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    prepared: Option<&PacedMail<()>>,
    now: i64,
) -> anyhow::Result<InviteOutcome> {
    if suppressions::contains(conn, &address.identity_key())? {
        record(
            conn,
            actor.channel(),
            &About::address(service, address),
            Outcome::of("invite", "opted_out"),
            Kept::default(),
            now,
        )?;
        return Ok(InviteOutcome::Suppressed);
    }
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
            let new = NewCustomer {
                email: address.as_str(),
                identity: &address.identity_key(),
                name: name.map(AsRef::as_ref),
                company: company.as_deref(),
                service: &service.id,
                source: Channel::Invitation.as_str(),
            };
            let id = customers::insert_pending(conn, &new, now)?;
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
                actor.channel(),
                now,
            )?;
            (id, true)
        }
        Some(customer) => match customer.status {
            customers::Status::Pending => (customer.id, false),
            customers::Status::Active => {
                record_operator(conn, actor, customer, "invite", "already_active", now)?;
                return Ok(InviteOutcome::AlreadyActive);
            }
            customers::Status::Disabled => {
                record_operator(conn, actor, customer, "invite", "account_disabled", now)?;
                return Ok(InviteOutcome::Disabled);
            }
        },
    };
    let shown_name = name
        .map(|n| n.as_ref().to_owned())
        .or_else(|| existing.as_ref().and_then(|c| c.name.clone()));
    let wanted = invitation_wanted(service, address, shown_name);
    let mail = PacedMail::fitting(prepared, wanted)?;
    let context = ReplyContext::unprompted(settings, service);
    queue_prepared(conn, &context, &mail.reply, Some(customer_id), now)?;
    let reason = if created {
        "operator_invitation"
    } else {
        "invited_again"
    };
    record(
        conn,
        actor.channel(),
        &About::address(service, address),
        Outcome::of("invite", reason),
        Kept::default(),
        now,
    )?;
    Ok(InviteOutcome::Invited { created })
}

/// The transaction behind `set_enabled`.
fn set_enabled_tx(
    conn: &Connection,
    settings: &Settings,
    actor: Actor,
    identity: &str,
    enabled: bool,
    now: i64,
) -> anyhow::Result<StatusChange> {
    let Some(customer) = customers::by_identity(conn, identity)? else {
        return Ok(StatusChange::Unknown);
    };
    let to = if enabled {
        customers::enable(conn, identity)?.unwrap_or(customer.status)
    } else {
        customers::set_status(conn, identity, customers::Status::Disabled)?;
        sessions::delete_for_customer(conn, customer.id)?;
        customers::Status::Disabled
    };
    let outcome = if enabled { "enable" } else { "disable" };
    record_operator(conn, actor, &customer, outcome, to.as_str(), now)?;
    if to != customer.status {
        let kind = if enabled {
            EventKind::Enabled
        } else {
            EventKind::Disabled
        };
        let changed = customers::Customer {
            status: to,
            ..customer.clone()
        };
        emit_for(conn, settings, kind, &changed, actor.channel(), now)?;
    }
    Ok(StatusChange::Changed {
        from: customer.status,
        to,
    })
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
        let outcome = self
            .invitation(Actor::Operator, service, address, name)?
            .write_blocking(&self.store)?;
        self.invited(&outcome);
        Ok(outcome)
    }

    /// `invite_blocking` for async callers (the customer API), recorded as
    /// `actor`'s.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn invite(
        &self,
        actor: Actor,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
    ) -> Result<InviteOutcome, RegistrationError> {
        let outcome = self
            .invitation(actor, service, address, name)?
            .write(&self.store)
            .await?;
        self.invited(&outcome);
        Ok(outcome)
    }

    /// The invitation's transaction as a paced job, its mail prepared as
    /// the operator asks for it (the transaction finds the name of a
    /// pending customer, if the operator gave none).
    fn invitation(
        &self,
        actor: Actor,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
    ) -> Result<PacedInvitation, RegistrationError> {
        let (settings, service) = (self.settings(), Arc::new(service.clone()));
        let wanted = invitation_wanted(
            &service,
            &address,
            name.as_ref().map(|n| n.as_ref().to_owned()),
        );
        let first = prepare_invitation(&settings, &service, &wanted)
            .map_err(|e| RegistrationError::Failed(Arc::new(e)))?;
        let (job_settings, job_service) = (Arc::clone(&settings), Arc::clone(&service));
        Ok(PacedJob::new(
            Some(first),
            Box::new(move |wanted| prepare_invitation(&settings, &service, wanted)),
            Box::new(move |conn, prepared| {
                invite_tx(
                    conn,
                    &job_settings,
                    actor,
                    &job_service,
                    &address,
                    name.as_ref(),
                    prepared,
                    store::now(),
                )
            }),
        ))
    }

    /// After an invitation's commit: counted, and the workers woken.
    fn invited(&self, outcome: &InviteOutcome) {
        if let InviteOutcome::Invited { created } = outcome {
            self.outbox_wake.notify_one();
            if *created {
                self.metrics.registration(Channel::Invitation.as_str());
                self.wake_webhooks();
            }
        }
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
        Ok(self.store.write_blocking(move |conn| {
            let now = store::now();
            let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
                return Ok(HandOver::Unknown);
            };
            if customer.status != customers::Status::Pending {
                return Ok(HandOver::NotPending(customer.status));
            }
            let token = Token::generate_stamped();
            tokens::replace(
                conn,
                customer.id,
                &token.stamped_hash(),
                now,
                now + secs(settings.activation.token_ttl),
            )?;
            record_operator(conn, Actor::Operator, &customer, "link", "handed_over", now)?;
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
        let settings = self.settings();
        let change = self.store.write_blocking(move |conn| {
            set_enabled_tx(
                conn,
                &settings,
                Actor::Operator,
                &identity,
                enabled,
                store::now(),
            )
        })?;
        self.status_changed(change);
        Ok(change)
    }

    /// `set_enabled_blocking` for async callers (the customer API), recorded
    /// as `actor`'s.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub async fn set_enabled(
        &self,
        actor: Actor,
        address: &EmailAddress,
        enabled: bool,
    ) -> Result<StatusChange, RegistrationError> {
        let identity = address.identity_key();
        let settings = self.settings();
        let change = self
            .store
            .write(move |conn| {
                set_enabled_tx(conn, &settings, actor, &identity, enabled, store::now())
            })
            .await?;
        self.status_changed(change);
        Ok(change)
    }

    fn status_changed(&self, change: StatusChange) {
        if let StatusChange::Changed { from, to } = change
            && from != to
        {
            self.wake_webhooks();
        }
    }

    /// The customer with `address`, if any; changes nothing.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn customer(
        &self,
        address: &EmailAddress,
    ) -> Result<Option<customers::Customer>, RegistrationError> {
        let identity = address.identity_key();
        Ok(self
            .store
            .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
            .await?)
    }

    /// A page of customers in the order they last changed, after `after`;
    /// changes nothing.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn customers(
        &self,
        status: Option<customers::Status>,
        service: Option<String>,
        updated_since: Option<i64>,
        after: Option<customers::After>,
        limit: usize,
    ) -> Result<Vec<customers::Customer>, RegistrationError> {
        Ok(self
            .store
            .read(move |conn| {
                let filter = customers::Filter {
                    status,
                    service: service.as_deref(),
                    updated_since,
                };
                Ok(customers::page(conn, &filter, after, limit)?)
            })
            .await?)
    }

    /// Takes an address off the "never mail" list, recording who did it.
    /// Only an operator can; blocks (the CLI).
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub fn unsuppress_blocking(
        &self,
        address: &EmailAddress,
    ) -> Result<Unsuppressed, RegistrationError> {
        let settings = self.settings();
        let address = address.clone();
        Ok(self.store.write_blocking(move |conn| {
            if !suppressions::remove(conn, &address.identity_key())? {
                return Ok(Unsuppressed::NotListed);
            }
            let service = match customers::by_identity(conn, &address.identity_key())? {
                Some(customer) => customer.service,
                None => settings.services[0].id.clone(),
            };
            record(
                conn,
                Channel::Operator,
                &About {
                    service: &service,
                    address: address.as_str(),
                    identity: Some(address.identity_key()),
                },
                Outcome::of("unsuppress", "operator"),
                Kept::default(),
                store::now(),
            )?;
            Ok(Unsuppressed::Removed)
        })?)
    }
}

/// Records an operator's action on a customer.
fn record_operator(
    conn: &Connection,
    actor: Actor,
    customer: &Customer,
    outcome: &str,
    reason: &str,
    now: i64,
) -> anyhow::Result<()> {
    record(
        conn,
        actor.channel(),
        &About::customer(customer),
        Outcome::of(outcome, reason),
        Kept::default(),
        now,
    )
}

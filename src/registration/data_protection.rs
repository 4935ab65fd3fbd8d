//! A data-protection request about one address: `export` gathers what is
//! kept about it (the account, its sessions' times, every decision, the
//! metadata of its messages and of the replies sent to it, its place on the
//! never-mail list, the webhook events about it); `erase` removes the
//! account, its tokens, links and sessions, its stored messages, the replies
//! to it and the webhook events about it (queuing `customer.erased` for the
//! endpoints, so the help desk's systems erase it too), and keeps the
//! decisions with the address (and their notes) replaced by `erased`, so the
//! daily budgets and the record of what was decided stay true. The erasure
//! itself is recorded, anonymously.
//!
//! An address its owner put on the never-mail list stays there: the entry
//! is what keeps us from mailing them again should anyone register the
//! address later. Only `registrar customers unsuppress` removes it.
//!
//! Neither ever reads a token, a token or session hash, a password hash, a
//! message's bytes or a reply's body.

use crate::domain::{Channel, EmailAddress, EventKind};
use crate::registration::Registrar;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::registration::events::{self, emit};
use crate::settings::Settings;
use crate::store::customers::{self, Customer};
use crate::store::outbox::ReplyRecord;
use crate::store::{
    self, account_tokens, inbound, outbox, sessions, suppressions, tokens, webhook_events,
};
use rusqlite::Connection;
use serde::Serialize;

/// What an erased address becomes in the decision records.
pub const ERASED: &str = "erased";

/// Everything kept about one address, as exported. Times are RFC 3339 UTC.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// The address as asked about.
    pub address: String,
    pub exported_at: String,
    pub account: Option<AccountExport>,
    pub sessions: Vec<SessionExport>,
    pub decisions: Vec<DecisionExport>,
    pub messages: Vec<MessageExport>,
    pub replies: Vec<ReplyExport>,
    /// On the never-mail list, since when and by whom.
    pub never_mail: Option<NeverMailExport>,
    /// Webhook events about the address still kept (the bodies of
    /// delivered ones are gone).
    pub webhook_events: Vec<WebhookEventExport>,
}

impl Export {
    /// Nothing at all is kept about the address.
    pub fn is_empty(&self) -> bool {
        self.account.is_none()
            && self.never_mail.is_none()
            && self.decisions.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.webhook_events.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountExport {
    pub email: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub service: String,
    pub status: String,
    /// The way the account was created (mail, portal, invitation).
    pub source: String,
    pub created_at: String,
    pub activated_at: Option<String>,
    /// Whether a password is set (never the hash).
    pub has_password: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NeverMailExport {
    pub since: String,
    /// `recipient` (its owner's link) or `operator`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionExport {
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionExport {
    pub decided_at: String,
    pub channel: String,
    pub service: String,
    pub outcome: String,
    pub reason: String,
    /// How the request was read (for mail, the envelope), when noted.
    pub note: Option<String>,
    pub dropped: bool,
    pub reply_code: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageExport {
    pub received_at: String,
    pub service: String,
    pub client_ip: String,
    pub helo: String,
    /// The relay that named the client with XFORWARD, if one did.
    pub relay_ip: Option<String>,
    pub envelope_from: String,
    pub envelope_to: String,
    pub message_id: Option<String>,
    pub size: i64,
    /// Whether the message's bytes are still kept (they are not exported).
    pub raw_kept: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplyExport {
    pub queued_at: String,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub attempts: u32,
    pub sent_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookEventExport {
    pub queued_at: String,
    pub endpoint: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub account: bool,
    /// Activation tokens, password-reset and sign-in links, and "I did not
    /// ask for this" links.
    pub tokens: usize,
    pub sessions: usize,
    pub messages: usize,
    pub replies: usize,
    /// Webhook events about the address.
    pub webhook_events: usize,
    /// `customer.erased` was queued for the webhook endpoints (there was an
    /// account, and an endpoint wants the event).
    pub announced: bool,
    /// Decisions kept with the address replaced by `erased`.
    pub decisions_anonymised: usize,
    /// The address stays on the never-mail list (not erased).
    pub never_mail_kept: bool,
}

impl Erased {
    /// Nothing was erased (the never-mail list aside).
    pub fn is_empty(&self) -> bool {
        *self
            == Self {
                never_mail_kept: self.never_mail_kept,
                ..Self::default()
            }
    }
}

/// A Unix time as RFC 3339 (UTC).
fn at(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The replies addressed to `address` itself (a rate key also covers its
/// plus-tagged siblings, which are other addresses).
fn replies_to(conn: &Connection, address: &EmailAddress) -> rusqlite::Result<Vec<ReplyRecord>> {
    let identity = address.identity_key();
    Ok(outbox::by_rate_key(conn, &address.rate_key())?
        .into_iter()
        .filter(|reply| {
            EmailAddress::parse(&reply.recipient)
                .is_ok_and(|recipient| recipient.identity_key() == identity)
        })
        .collect())
}

fn account(customer: Customer) -> AccountExport {
    AccountExport {
        email: customer.email,
        name: customer.name,
        company: customer.company,
        service: customer.service,
        status: customer.status.as_str().to_owned(),
        source: customer.source,
        created_at: at(customer.created_at),
        activated_at: customer.activated_at.map(at),
        has_password: customer.password_hash.is_some(),
    }
}

fn export(conn: &Connection, address: &EmailAddress, now: i64) -> anyhow::Result<Export> {
    let identity = address.identity_key();
    let customer = customers::by_identity(conn, &identity)?;
    let sessions = match &customer {
        Some(customer) => sessions::for_customer(conn, customer.id)?,
        None => Vec::new(),
    };
    Ok(Export {
        address: address.as_str().to_owned(),
        exported_at: at(now),
        account: customer.map(account),
        sessions: sessions
            .into_iter()
            .map(|s| SessionExport {
                created_at: at(s.created_at),
                last_seen_at: at(s.last_seen_at),
                expires_at: at(s.expires_at),
            })
            .collect(),
        decisions: inbound::decisions_for(conn, &identity)?
            .into_iter()
            .map(|d| DecisionExport {
                decided_at: at(d.decided_at),
                channel: d.channel,
                service: d.service,
                outcome: d.outcome,
                reason: d.reason,
                note: d.note,
                dropped: d.dropped,
                reply_code: d.reply_code,
            })
            .collect(),
        messages: inbound::messages_for(conn, &identity)?
            .into_iter()
            .map(|m| MessageExport {
                received_at: at(m.received_at),
                service: m.service,
                client_ip: m.client_ip,
                helo: m.helo,
                relay_ip: m.relay_ip,
                envelope_from: m.envelope_from,
                envelope_to: m.envelope_to,
                message_id: m.message_id,
                size: m.size,
                raw_kept: m.raw_kept,
            })
            .collect(),
        replies: replies_to(conn, address)?
            .into_iter()
            .map(|r| ReplyExport {
                queued_at: at(r.created_at),
                kind: r.kind,
                recipient: r.recipient,
                status: r.status,
                attempts: r.attempts,
                sent_at: r.sent_at.map(at),
            })
            .collect(),
        never_mail: suppressions::find(conn, &identity)?.map(|s| NeverMailExport {
            since: at(s.created_at),
            source: s.source,
        }),
        webhook_events: webhook_events::about(conn, &identity)?
            .into_iter()
            .map(|e| WebhookEventExport {
                queued_at: at(e.created_at),
                endpoint: e.endpoint,
                kind: e.kind,
                status: e.status.as_str().to_owned(),
            })
            .collect(),
    })
}

/// The transaction behind `erase_blocking`.
fn erase(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    now: i64,
) -> anyhow::Result<Erased> {
    let identity = address.identity_key();
    let mut erased = Erased::default();
    let customer = customers::by_identity(conn, &identity)?;
    if let Some(customer) = &customer {
        erased.tokens = tokens::delete_for_customer(conn, customer.id)?
            + account_tokens::delete_for_customer(conn, customer.id)?;
        erased.sessions = sessions::delete_for_customer(conn, customer.id)?;
        erased.account = customers::delete(conn, customer.id)?;
    }
    erased.tokens += suppressions::delete_opt_out_tokens_for(conn, &identity)?;
    for reply in replies_to(conn, address)? {
        outbox::delete(conn, reply.id)?;
        erased.replies += 1;
    }
    erased.webhook_events = webhook_events::forget(conn, &identity)?;
    if let Some(customer) = &customer {
        // The help desk's systems heard of the customer: they hear that it
        // is gone. The event names the address until it is delivered.
        let data = events::CustomerData {
            status: ERASED,
            ..events::data(customer)
        };
        erased.announced = emit(
            conn,
            settings,
            EventKind::Erased,
            (&data, None),
            Channel::Operator,
            now,
        )?;
    }
    let forgotten = inbound::forget(conn, &identity, ERASED)?;
    erased.messages = forgotten.messages;
    erased.decisions_anonymised = forgotten.decisions;
    erased.never_mail_kept = suppressions::contains(conn, &identity)?;
    if erased.is_empty() {
        return Ok(erased);
    }
    let service = customer
        .map(|c| c.service)
        .unwrap_or_else(|| settings.services[0].id.clone());
    record(
        conn,
        Channel::Operator,
        &About {
            service: &service,
            address: ERASED,
            identity: None,
        },
        Outcome::of("erase", "data_protection_request"),
        Kept::default(),
        now,
    )?;
    Ok(erased)
}

impl Registrar {
    /// Everything kept about `address`, for a data-protection request.
    /// Blocks the calling thread (the CLI).
    ///
    /// # Errors
    /// A storage failure.
    pub fn export_blocking(&self, address: &EmailAddress) -> Result<Export, RegistrationError> {
        let address = address.clone();
        Ok(self
            .store
            .read_blocking(move |conn| export(conn, &address, store::now()))?)
    }

    /// Erases `address` in one transaction: account, tokens, sessions,
    /// stored messages and replies go; the decisions stay, anonymised; the
    /// erasure is recorded (when anything was kept). Blocks.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub fn erase_blocking(&self, address: &EmailAddress) -> Result<Erased, RegistrationError> {
        let settings = self.settings();
        let address = address.clone();
        let erased = self
            .store
            .write_blocking(move |conn| erase(conn, &settings, &address, store::now()))?;
        if erased.announced {
            self.wake_webhooks();
        }
        Ok(erased)
    }
}

//! The mail a use case queues, in two steps. `prepare_*` runs before the
//! store job is submitted: it renders the wording, composes the MIME message
//! with a fresh Message-ID and, for a mail with a link, makes the activation
//! token. `queue` runs inside the use case's transaction and only writes:
//! the token's hash, the outbox row and the address's reply count. The
//! single writer never renders (the outbox worker sends after the commit).

use crate::domain::{EmailAddress, Token, TokenHash};
use crate::mailer::{self, Addressing};
use crate::policy::Decision;
use crate::replies::{self, Reply, ReplyKind};
use crate::settings::{Service, Settings};
use crate::store::counters::{self, Scope};
use crate::store::outbox::{self, NewReply};
use crate::store::tokens;
use rusqlite::Connection;

/// What a reply needs besides its wording.
pub(super) struct ReplyContext<'a> {
    pub(super) settings: &'a Settings,
    pub(super) service: &'a Service,
    /// The support address that answers (our loop stamp).
    pub(super) support: &'a EmailAddress,
    pub(super) in_reply_to: Option<&'a str>,
}

impl<'a> ReplyContext<'a> {
    /// A reply not answering a message (portal, resend, operator): stamped
    /// with the service's first support address.
    pub(super) fn unprompted(settings: &'a Settings, service: &'a Service) -> Self {
        Self {
            settings,
            service,
            support: &service.support_addresses[0],
            in_reply_to: None,
        }
    }
}

/// A reply ready to queue: composed bytes with their Message-ID, and the
/// hash of the token its link carries, if any. The raw token lives on only
/// inside the composed bytes.
#[derive(Debug, Clone)]
pub(super) struct PreparedReply {
    kind: ReplyKind,
    to: EmailAddress,
    message_id: String,
    body: Vec<u8>,
    token: Option<PreparedToken>,
}

#[derive(Debug, Clone)]
struct PreparedToken {
    hash: TokenHash,
    expires_at: i64,
}

/// The replies a decision may queue, prepared before the writer runs. A
/// decision whose reply is missing asks for it (`Attempt::NeedsReply`)
/// before writing anything, and the use case runs again with it.
#[derive(Debug, Clone, Default)]
pub(super) struct Prepared {
    pub(super) activation: Option<PreparedReply>,
    pub(super) already_active: Option<PreparedReply>,
}

impl Prepared {
    /// The reply `decision` queues: `Ok(None)` when it queues none,
    /// `Err(kind)` when that reply was not prepared.
    pub(super) fn for_decision(
        &self,
        decision: &Decision,
    ) -> Result<Option<&PreparedReply>, ReplyKind> {
        let (wanted, kind) = match decision {
            Decision::Register { .. } | Decision::ResendActivation => {
                (&self.activation, ReplyKind::Activation)
            }
            Decision::AlreadyActive { notify: true } => {
                (&self.already_active, ReplyKind::AlreadyActive)
            }
            Decision::AlreadyActive { notify: false }
            | Decision::Suppress(_)
            | Decision::Refuse(_)
            | Decision::Defer(_) => return Ok(None),
        };
        wanted.as_ref().map(Some).ok_or(kind)
    }

    /// Adds a reply prepared after a first attempt asked for it.
    pub(super) fn add(&mut self, reply: PreparedReply) {
        match reply.kind {
            ReplyKind::AlreadyActive => self.already_active = Some(reply),
            _ => self.activation = Some(reply),
        }
    }
}

/// What one run of a use case's transaction came to.
#[derive(Debug)]
pub(super) enum Attempt<T> {
    Done(T),
    /// The decision queues a reply of this kind that was not prepared;
    /// nothing was written.
    NeedsReply(ReplyKind),
}

/// Prepares the reply of `kind` a decision on mail or the portal queues
/// (`Activation` or `AlreadyActive`), at `now`.
///
/// # Errors
/// A template fails to render or an address cannot be encoded.
pub(super) fn prepare(
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    kind: ReplyKind,
    now: i64,
) -> anyhow::Result<PreparedReply> {
    match kind {
        ReplyKind::AlreadyActive => {
            let reply = replies::already_active(
                &context.service.name,
                &replies::login_link(&context.settings.http.public_url),
            )?;
            compose(context, to, &reply, None)
        }
        _ => {
            let (token, link, expires_at, ttl_hours) = new_link(context.settings, now);
            let reply = replies::activation(&context.service.name, &link, expires_at, ttl_hours)?;
            compose(context, to, &reply, Some(token_for(&token, expires_at)))
        }
    }
}

/// Prepares an operator's invitation, with a new activation link.
///
/// # Errors
/// As `prepare`.
pub(super) fn prepare_invitation(
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    name: Option<&str>,
    now: i64,
) -> anyhow::Result<PreparedReply> {
    let (token, link, expires_at, ttl_hours) = new_link(context.settings, now);
    let reply = replies::invitation(&context.service.name, name, &link, expires_at, ttl_hours)?;
    compose(context, to, &reply, Some(token_for(&token, expires_at)))
}

/// Prepares the "account activated" notice to `name`.
///
/// # Errors
/// As `prepare`.
pub(super) fn prepare_activated_notice(
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    name: &str,
) -> anyhow::Result<PreparedReply> {
    let reply = replies::account_activated(
        &context.service.name,
        name,
        &replies::login_link(&context.settings.http.public_url),
    )?;
    compose(context, to, &reply, None)
}

/// Queues a prepared reply inside the caller's transaction: the token's
/// hash replaces the customer's token (when the reply carries a link), the
/// outbox row is written, and the address's reply count goes up.
///
/// # Errors
/// A storage failure, or a reply with a link but no customer.
pub(super) fn queue(
    conn: &Connection,
    settings: &Settings,
    reply: &PreparedReply,
    customer_id: Option<i64>,
    now: i64,
) -> anyhow::Result<()> {
    if let Some(token) = &reply.token {
        let customer_id =
            customer_id.ok_or_else(|| anyhow::anyhow!("a reply with a link needs a customer"))?;
        tokens::replace(conn, customer_id, &token.hash, now, token.expires_at)?;
    }
    let envelope_from = settings
        .outbound
        .envelope_from
        .as_ref()
        .map(EmailAddress::delivery_address)
        .unwrap_or_default();
    let rate_key = reply.to.rate_key();
    outbox::enqueue(
        conn,
        &NewReply {
            kind: reply.kind.as_str(),
            recipient: &reply.to.delivery_address(),
            rate_key: &rate_key,
            envelope_from: &envelope_from,
            message_id: &reply.message_id,
            body: &reply.body,
        },
        now,
    )?;
    counters::bump(conn, Scope::Address, &rate_key, now)?;
    Ok(())
}

/// A fresh token and the activation link that carries it, with its expiry
/// and lifetime in hours.
fn new_link(settings: &Settings, now: i64) -> (Token, url::Url, i64, u64) {
    let token = Token::generate();
    let ttl = settings.activation.token_ttl.as_secs();
    let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    let link = replies::activation_link(&settings.http.public_url, &token);
    (token, link, expires_at, ttl / 3600)
}

fn token_for(token: &Token, expires_at: i64) -> PreparedToken {
    PreparedToken {
        hash: token.hash(),
        expires_at,
    }
}

/// Composes `reply` to `to` with a fresh Message-ID, which stays the row's
/// for every delivery attempt.
fn compose(
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    reply: &Reply,
    token: Option<PreparedToken>,
) -> anyhow::Result<PreparedReply> {
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
    Ok(PreparedReply {
        kind: reply.kind,
        to: to.clone(),
        message_id,
        body,
        token,
    })
}

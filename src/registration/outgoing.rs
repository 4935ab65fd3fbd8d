//! The mail a use case queues: rendered once, with a fresh activation token
//! and a fresh "I did not ask for this" link where it carries a link, and
//! written to the outbox in the use case's own transaction (the outbox
//! worker sends it after the commit). Nothing is ever queued to an address
//! whose owner asked never to be mailed.

use crate::domain::{EmailAddress, Token};
use crate::mailer::{self, Addressing};
use crate::replies::{self, Reply};
use crate::settings::{Service, Settings};
use crate::store::outbox::{self, NewReply};
use crate::store::{suppressions, tokens};
use rusqlite::Connection;
use url::Url;

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

/// Replaces the customer's token with a new one and renders the mail that
/// carries it. The raw tokens live on only inside the rendered mail.
pub(super) fn new_activation_reply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    customer_id: i64,
    to: &EmailAddress,
    now: i64,
) -> anyhow::Result<Reply> {
    let settings = context.settings;
    let token = Token::generate();
    let ttl = settings.activation.token_ttl.as_secs();
    let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    tokens::replace(conn, customer_id, &token.hash(), now, expires_at)?;
    let link = replies::activation_link(&settings.http.public_url, &token);
    let opt_out = new_opt_out_link(conn, settings, to, now)?;
    replies::activation(
        &context.service.name,
        &link,
        &opt_out,
        expires_at,
        ttl / 3600,
    )
}

/// A fresh "I did not ask for this" link for `to`; only its hash is stored.
pub(super) fn new_opt_out_link(
    conn: &Connection,
    settings: &Settings,
    to: &EmailAddress,
    now: i64,
) -> anyhow::Result<Url> {
    let token = Token::generate();
    suppressions::add_opt_out_token(conn, &token.hash(), &to.identity_key(), to.as_str(), now)?;
    Ok(replies::opt_out_link(&settings.http.public_url, &token))
}

/// Queues `reply` to `to`; `false`, queueing nothing, when the address's
/// owner asked never to be mailed (whatever decided to write to them).
pub(super) fn queue_reply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    reply: &Reply,
    now: i64,
) -> anyhow::Result<bool> {
    if suppressions::contains(conn, &to.identity_key())? {
        tracing::info!(
            event = "not_queued",
            reason = "opted_out",
            kind = reply.kind.as_str()
        );
        return Ok(false);
    }
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
    let envelope_from = settings
        .outbound
        .envelope_from
        .as_ref()
        .map(EmailAddress::delivery_address)
        .unwrap_or_default();
    outbox::enqueue(
        conn,
        &NewReply {
            kind: reply.kind.as_str(),
            recipient: &to.delivery_address(),
            rate_key: &to.rate_key(),
            envelope_from: &envelope_from,
            message_id: &message_id,
            body: &body,
        },
        now,
    )?;
    Ok(true)
}

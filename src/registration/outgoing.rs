//! The mail a use case queues: rendered once, with a fresh activation token
//! and a fresh "I did not ask for this" link where it carries a link, and
//! written to the outbox in the use case's own transaction (the outbox
//! worker sends it after the commit). Nothing is ever queued to an address
//! whose owner asked never to be mailed.
//!
//! The replies of the ways in that register (mail, the portal's form, a
//! resend) are prepared before their store job is submitted
//! (`PreparedReplies`): rendered, composed with their Message-ID, their
//! tokens made. In the single writer's transaction only their token hashes
//! and outbox row are written, so the writer holds its transaction for SQL
//! alone. The paths a person paces (an operator's invitation, a reset link,
//! the "activated" notice) render in their transaction, from what it reads.

use crate::domain::{Channel, EmailAddress, Language, Token, TokenHash, Verp};
use crate::mailer::{self, Addressing};
use crate::policy::SuppressReason;
use crate::registration::RegistrationError;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::replies::{self, Reply, ReplyKind, Voice};
use crate::settings::{Service, Settings};
use crate::store::outbox::{self, NewReply};
use crate::store::{bounces, suppressions, tokens};
use rusqlite::Connection;
use std::sync::Arc;
use url::Url;

/// What a reply needs besides its wording.
pub(super) struct ReplyContext<'a> {
    pub(super) settings: &'a Settings,
    pub(super) service: &'a Service,
    /// The support address that answers (our loop stamp).
    pub(super) support: &'a EmailAddress,
    pub(super) in_reply_to: Option<&'a str>,
    /// The language the customer's software prefers (a message's
    /// `Content-Language`, a browser's `Accept-Language`); the service's own
    /// setting wins over it, and English is the last resort.
    pub(super) language: Option<Language>,
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
            language: None,
        }
    }

    /// The same context, with the language the customer prefers.
    pub(super) fn preferring(self, language: Option<Language>) -> Self {
        Self { language, ..self }
    }

    /// Who the reply speaks for, in which language.
    pub(super) fn voice(&self) -> Voice<'a> {
        Voice {
            wording: &self.settings.wording,
            service_id: &self.service.id,
            service_name: &self.service.name,
            language: self
                .service
                .language
                .or(self.language)
                .unwrap_or(Language::En),
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
    let (reply, links) = render_activation(context, now)?;
    links.store(conn, customer_id, to, now)?;
    Ok(reply)
}

/// The tokens an activation mail's links carry, by hash: the activation
/// link's (with its expiry) and the "I did not ask for this" link's.
#[derive(Debug, Clone)]
struct ActivationLinks {
    activation: TokenHash,
    expires_at: i64,
    opt_out: TokenHash,
}

impl ActivationLinks {
    /// Makes the links live: the activation token replaces the customer's,
    /// and the opt-out link is stored for `to`.
    fn store(
        &self,
        conn: &Connection,
        customer_id: i64,
        to: &EmailAddress,
        now: i64,
    ) -> anyhow::Result<()> {
        tokens::replace(conn, customer_id, &self.activation, now, self.expires_at)?;
        suppressions::add_opt_out_token(conn, &self.opt_out, &to.identity_key(), to.as_str(), now)?;
        Ok(())
    }
}

/// Renders an activation mail with fresh tokens; nothing is stored.
fn render_activation(
    context: &ReplyContext<'_>,
    now: i64,
) -> anyhow::Result<(Reply, ActivationLinks)> {
    let settings = context.settings;
    let token = Token::generate();
    let ttl = settings.activation.token_ttl.as_secs();
    let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
    let link = replies::activation_link(&settings.http.public_url, &token);
    let opt_out = Token::generate();
    let opt_out_link = replies::opt_out_link(&settings.http.public_url, &opt_out);
    let reply = replies::activation(
        &context.voice(),
        &link,
        &opt_out_link,
        expires_at,
        ttl / 3600,
    )?;
    let links = ActivationLinks {
        activation: token.hash(),
        expires_at,
        opt_out: opt_out.hash(),
    };
    Ok((reply, links))
}

/// Renders the "you already have an account" notice.
pub(super) fn render_already_active(context: &ReplyContext<'_>) -> anyhow::Result<Reply> {
    replies::already_active(
        &context.voice(),
        &replies::login_link(&context.settings.http.public_url),
    )
}

/// A reply rendered and composed before the store job: its bytes (the raw
/// tokens live on only inside them), its Message-ID, and the hashes of the
/// tokens its links carry.
#[derive(Debug, Clone)]
pub(super) struct PreparedReply {
    kind: ReplyKind,
    to: EmailAddress,
    composed: Composed,
    links: Option<ActivationLinks>,
}

/// The replies a decision about `to` may queue, prepared before the writer
/// runs: the activation mail (register, resend) always, and the "already
/// active" notice once a decision asked for it (`NotPrepared`): most
/// requests come from new senders, and rendering the notice for each would
/// cost as much again.
#[derive(Debug, Clone)]
pub(super) struct PreparedReplies {
    activation: PreparedReply,
    already_active: Option<PreparedReply>,
}

/// A decision needs the "already active" notice, which was not prepared:
/// the job wrote nothing (its savepoint is rolled back), and the caller
/// prepares the notice and submits the job again.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the \"already active\" notice was not prepared")]
pub(super) struct NotPrepared;

impl NotPrepared {
    /// After a job failed with `error`: when it failed for want of the
    /// notice, adds the notice to `prepared` so that the caller submits the
    /// job again; any other error is handed back.
    ///
    /// # Errors
    /// `error` itself, or the notice could not be rendered.
    pub(super) fn prepare_notice(
        error: RegistrationError,
        prepared: &mut Option<Arc<PreparedReplies>>,
        context: &ReplyContext<'_>,
    ) -> Result<(), RegistrationError> {
        let wanted = matches!(&error, RegistrationError::Failed(failure)
            if failure.downcast_ref::<NotPrepared>().is_some());
        match prepared.take() {
            Some(replies) if wanted => {
                let replies = Arc::unwrap_or_clone(replies)
                    .with_already_active(context)
                    .map_err(|e| RegistrationError::Failed(Arc::new(e)))?;
                *prepared = Some(Arc::new(replies));
                Ok(())
            }
            _ => Err(error),
        }
    }
}

impl PreparedReplies {
    /// Renders and composes the activation mail to `to`, with fresh tokens.
    ///
    /// # Errors
    /// A template fails to render or an address cannot be encoded.
    pub(super) fn to(
        context: &ReplyContext<'_>,
        to: &EmailAddress,
        now: i64,
    ) -> anyhow::Result<Self> {
        let (activation, links) = render_activation(context, now)?;
        Ok(Self {
            activation: PreparedReply {
                kind: activation.kind,
                to: to.clone(),
                composed: compose(context, to, &activation)?,
                links: Some(links),
            },
            already_active: None,
        })
    }

    /// Adds the "already active" notice to the same address.
    ///
    /// # Errors
    /// As `to`.
    pub(super) fn with_already_active(
        mut self,
        context: &ReplyContext<'_>,
    ) -> anyhow::Result<Self> {
        let to = self.activation.to.clone();
        let notice = render_already_active(context)?;
        self.already_active = Some(PreparedReply {
            kind: notice.kind,
            composed: compose(context, &to, &notice)?,
            to,
            links: None,
        });
        Ok(self)
    }

    /// `to`, or `None` (logged) when a reply cannot be rendered: the
    /// decision then renders in its transaction, and fails there as it
    /// would have.
    pub(super) fn try_to(context: &ReplyContext<'_>, to: &EmailAddress, now: i64) -> Option<Self> {
        Self::to(context, to, now)
            .inspect_err(|error| {
                tracing::warn!(error.message = %format!("{error:#}"), "a reply could not be prepared");
            })
            .ok()
    }

    /// The activation mail, if it was prepared for `to`.
    pub(super) fn activation_to(&self, to: &EmailAddress) -> Option<&PreparedReply> {
        (self.activation.to == *to).then_some(&self.activation)
    }

    /// The "already active" notice, if it was prepared for `to`.
    pub(super) fn already_active_to(&self, to: &EmailAddress) -> Option<&PreparedReply> {
        self.already_active
            .as_ref()
            .filter(|notice| notice.to == *to)
    }

    /// Whether a decision about `to` may go on: only a reply to `to` that
    /// was not prepared stops it.
    pub(super) fn serves(&self, decision: &crate::policy::Decision, to: &EmailAddress) -> bool {
        match decision {
            crate::policy::Decision::AlreadyActive { notify: true } => {
                self.already_active_to(to).is_some() || self.activation_to(to).is_none()
            }
            _ => true,
        }
    }
}

/// Queues a prepared reply inside the caller's transaction: makes its links
/// live for `customer_id` (a reply with links needs one), then writes the
/// outbox row as `queue_reply` does. Only SQL.
///
/// # Errors
/// A storage failure, or a reply with links but no customer.
pub(super) fn queue_prepared(
    conn: &Connection,
    context: &ReplyContext<'_>,
    reply: &PreparedReply,
    customer_id: Option<i64>,
    now: i64,
) -> anyhow::Result<bool> {
    if let Some(links) = &reply.links {
        let customer_id =
            customer_id.ok_or_else(|| anyhow::anyhow!("a reply with a link needs a customer"))?;
        links.store(conn, customer_id, &reply.to, now)?;
    }
    enqueue(conn, context, &reply.to, reply.kind, &reply.composed, now)
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
/// owner asked never to be mailed (whatever decided to write to them), or
/// when its mail bounces (a decision records it, reason `bouncing`): the
/// decisions of policy already suppress their replies, and this catches
/// every other mail (a notice, a reset link, an invitation).
pub(super) fn queue_reply(
    conn: &Connection,
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    reply: &Reply,
    now: i64,
) -> anyhow::Result<bool> {
    let composed = compose(context, to, reply)?;
    enqueue(conn, context, to, reply.kind, &composed, now)
}

/// A reply as MIME bytes, with the Message-ID it keeps for every delivery
/// attempt.
#[derive(Debug, Clone)]
struct Composed {
    message_id: String,
    body: Vec<u8>,
}

/// Composes `reply` to `to` with a fresh Message-ID.
fn compose(
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    reply: &Reply,
) -> anyhow::Result<Composed> {
    let settings = context.settings;
    let message_id = mailer::new_message_id(&settings.smtp.hostname);
    let body = mailer::compose(
        Addressing {
            from: settings.from_address(context.service),
            from_name: &context.service.name,
            to,
            loop_stamp: context.support,
            in_reply_to: context.in_reply_to,
            message_id: &message_id,
        },
        reply,
    )?;
    Ok(Composed { message_id, body })
}

/// Writes a composed reply's outbox row, unless its address is suppressed or
/// bouncing (see `queue_reply`).
fn enqueue(
    conn: &Connection,
    context: &ReplyContext<'_>,
    to: &EmailAddress,
    kind: ReplyKind,
    composed: &Composed,
    now: i64,
) -> anyhow::Result<bool> {
    if suppressions::contains(conn, &to.identity_key())? {
        tracing::info!(
            event = "not_queued",
            reason = "opted_out",
            kind = kind.as_str()
        );
        return Ok(false);
    }
    let settings = context.settings;
    if bounces::is_bouncing(conn, &to.identity_key())? {
        let note = format!("the {} mail was not sent", kind.as_str());
        record(
            conn,
            Channel::Bounce,
            &About::address(context.service, to),
            Outcome {
                name: "suppress",
                reason: SuppressReason::Bouncing.as_str(),
                note: Some(&note),
            },
            Kept::default(),
            now,
        )?;
        tracing::info!(
            event = "not_queued",
            reason = "bouncing",
            kind = kind.as_str()
        );
        return Ok(false);
    }
    let verp_token = settings.outbound.verp.as_ref().map(|_| Verp::new_token());
    let envelope_from = match (&settings.outbound.verp, &verp_token) {
        (Some(verp), Some(token)) => verp.address_for(token),
        _ => settings
            .outbound
            .envelope_from
            .as_ref()
            .map(EmailAddress::delivery_address)
            .unwrap_or_default(),
    };
    outbox::enqueue(
        conn,
        &NewReply {
            kind: kind.as_str(),
            service: &context.service.id,
            recipient: &to.delivery_address(),
            rate_key: &to.rate_key(),
            envelope_from: &envelope_from,
            message_id: &composed.message_id,
            body: &composed.body,
            verp_token: verp_token.as_deref(),
        },
        now,
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use crate::domain::EmailAddress;
    use crate::registration::outgoing::{PreparedReplies, ReplyContext};
    use crate::settings;

    #[test]
    fn a_prepared_reply_serves_only_the_address_it_was_prepared_for() {
        let settings = settings::load(None).expect("embedded defaults");
        let service = &settings.services[0];
        let context = ReplyContext::unprompted(&settings, service);
        let jane = EmailAddress::parse("jane@example.com").expect("address");
        let other = EmailAddress::parse("mallory@example.net").expect("address");
        let prepared = PreparedReplies::to(&context, &jane, 1_800_000_000).expect("renders");

        let activation = prepared.activation_to(&jane).expect("prepared for Jane");
        let body = String::from_utf8_lossy(&activation.composed.body);
        assert!(body.contains("To: jane@example.com"), "{body}");
        assert!(body.contains("/activate"), "{body}");
        assert!(activation.links.is_some(), "its token hashes go with it");
        assert!(
            prepared.already_active_to(&jane).is_none(),
            "the notice is prepared only when asked for"
        );
        let prepared = prepared.with_already_active(&context).expect("renders");
        assert!(prepared.already_active_to(&jane).is_some());
        // The activation link goes to the address that registers and to no
        // other: a decision about another address renders its own.
        assert!(prepared.activation_to(&other).is_none());
        assert!(prepared.already_active_to(&other).is_none());
    }
}

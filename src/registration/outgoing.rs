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
//! alone. The paths a person paces (an operator's invitation, a reset or
//! sign-in link, the "activated" notice) are prepared outside the writer
//! too (`PacedMail`): their transaction checks that the mail fits what it
//! finds (service, address, name) and otherwise fails with `MailWanted`,
//! writing nothing; the caller prepares that mail and submits again
//! (`PacedJob::write`).

use crate::domain::{Channel, EmailAddress, Language, Token, TokenHash, Verp};
use crate::mailer::{self, Addressing};
use crate::policy::SuppressReason;
use crate::registration::RegistrationError;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::replies::{self, Reply, ReplyKind, Voice};
use crate::settings::{Service, Settings};
use crate::store::outbox::{self, NewReply};
use crate::store::{Store, StoreError, bounces, suppressions, tokens};
use rusqlite::Connection;
use std::ops::ControlFlow;
use std::sync::Arc;
use url::Url;

/// How often a paced job is submitted with a freshly prepared mail before
/// it gives up: only a customer changing between two tries makes a third.
const PACED_TRIES: usize = 3;

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
    links.hashes.store(conn, customer_id, to, now)?;
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

/// Fresh activation and "I did not ask for this" links: the tokens a mail
/// shows, with their hashes as `ActivationLinks::store` keeps them.
pub(super) struct FreshLinks {
    /// The activation link's token, then the opt-out link's.
    tokens: [Token; 2],
    pub(super) expires_at: i64,
    /// The activation link's lifetime, as the mail says it.
    pub(super) ttl_hours: u64,
    hashes: ActivationLinks,
}

impl FreshLinks {
    /// New tokens for both links; nothing is stored.
    pub(super) fn new(settings: &Settings, now: i64) -> Self {
        let token = Token::generate_stamped();
        let ttl = settings.activation.token_ttl.as_secs();
        let expires_at = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
        let opt_out = Token::generate_stamped();
        Self {
            expires_at,
            ttl_hours: ttl / 3600,
            hashes: ActivationLinks {
                activation: token.stamped_hash(),
                expires_at,
                opt_out: opt_out.stamped_hash(),
            },
            tokens: [token, opt_out],
        }
    }

    /// The activation link, under `public_url`.
    pub(super) fn activation(&self, public_url: &Url) -> Url {
        replies::activation_link(public_url, &self.tokens[0])
    }

    /// The "I did not ask for this" link, under `public_url`.
    pub(super) fn opt_out(&self, public_url: &Url) -> Url {
        replies::opt_out_link(public_url, &self.tokens[1])
    }
}

/// Renders an activation mail with fresh tokens; nothing is stored.
fn render_activation(context: &ReplyContext<'_>, now: i64) -> anyhow::Result<(Reply, FreshLinks)> {
    let links = FreshLinks::new(context.settings, now);
    let [token, opt_out] = &links.tokens;
    let reply = replies::activation(
        &context.voice(),
        &context.settings.http.public_url,
        token,
        opt_out,
        links.expires_at,
        links.ttl_hours,
    )?;
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
            activation: PreparedReply::new(context, to, &activation, Some(links))?,
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
        let notice = render_already_active(context)?;
        self.already_active = Some(PreparedReply::new(
            context,
            &self.activation.to,
            &notice,
            None,
        )?);
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

impl PreparedReply {
    /// Composes `reply` to `to`; `links` are the tokens it carries, made
    /// live when it is queued.
    ///
    /// # Errors
    /// An address cannot be encoded.
    pub(super) fn new(
        context: &ReplyContext<'_>,
        to: &EmailAddress,
        reply: &Reply,
        links: Option<FreshLinks>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            kind: reply.kind,
            to: to.clone(),
            composed: compose(context, to, reply)?,
            links: links.map(|links| links.hashes),
        })
    }
}

/// What a paced mail (a reset or sign-in link, an invitation, the
/// "activated" notice) must be, as its transaction finds it: from which
/// service, to which address, naming whom. A job whose prepared mail does
/// not fit fails with it, writing nothing, and is submitted again with the
/// mail it names (`PacedJob::write`). It carries an address, so it
/// never reaches a log: the caller consumes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the mail of a paced job was not prepared for what its transaction found")]
pub(super) struct MailWanted {
    pub(super) service: String,
    pub(super) to: EmailAddress,
    pub(super) name: Option<String>,
}

impl MailWanted {
    /// The service the mail speaks for, as configured now.
    ///
    /// # Errors
    /// The service is no longer configured (settings were reloaded).
    pub(super) fn service<'s>(&self, settings: &'s Settings) -> anyhow::Result<&'s Service> {
        settings
            .service(&self.service)
            .ok_or_else(|| anyhow::anyhow!("service {:?} is not configured", self.service))
    }
}

/// A paced mail prepared outside the writer: what it was prepared for, the
/// tokens it carries that are not activation links (`tokens`), and the
/// composed mail.
#[derive(Debug)]
pub(super) struct PacedMail<T> {
    pub(super) wanted: MailWanted,
    pub(super) tokens: T,
    pub(super) reply: PreparedReply,
}

impl<T> PacedMail<T> {
    /// The prepared mail when it is the one `wanted`; otherwise the error
    /// that has the caller prepare that one.
    ///
    /// # Errors
    /// `wanted`, when `mail` is missing or was prepared for something else.
    pub(super) fn fitting(mail: Option<&Self>, wanted: MailWanted) -> anyhow::Result<&Self> {
        match mail {
            Some(mail) if mail.wanted == wanted => Ok(mail),
            _ => Err(wanted.into()),
        }
    }
}

/// A paced job with its mail: the transaction (`job`, given the mail
/// prepared so far), how a wanted mail is prepared, and that mail. Each
/// try submits the job with the current mail; a try that fails with
/// `MailWanted` prepares that mail for the next (`after`).
pub(super) struct PacedJob<X, P, J> {
    job: Arc<J>,
    prepare: P,
    mail: Option<Arc<PacedMail<X>>>,
    tries: usize,
}

impl<X, T, P, J> PacedJob<X, P, J>
where
    X: Send + Sync + 'static,
    T: Send + 'static,
    P: Fn(&MailWanted) -> anyhow::Result<PacedMail<X>>,
    J: Fn(&Connection, Option<&PacedMail<X>>) -> anyhow::Result<T> + Send + Sync + 'static,
{
    /// `job`, first submitted with `first` (perhaps no mail yet).
    pub(super) fn new(first: Option<PacedMail<X>>, prepare: P, job: J) -> Self {
        Self {
            job: Arc::new(job),
            prepare,
            mail: first.map(Arc::new),
            tries: 0,
        }
    }

    /// Submits the job until its mail fits.
    ///
    /// # Errors
    /// The job's own failure, a mail that cannot be rendered, or a customer
    /// who changed between every try; nothing was written.
    pub(super) async fn write(mut self, store: &Store) -> Result<T, RegistrationError> {
        loop {
            let done = store.write(self.next_try()).await;
            if let ControlFlow::Break(outcome) = self.after(done) {
                return outcome;
            }
        }
    }

    /// `write` for threads outside the tokio runtime (the command line).
    ///
    /// # Errors
    /// As `write`.
    pub(super) fn write_blocking(mut self, store: &Store) -> Result<T, RegistrationError> {
        loop {
            let done = store.write_blocking(self.next_try());
            if let ControlFlow::Break(outcome) = self.after(done) {
                return outcome;
            }
        }
    }

    /// The next try, as a store job.
    fn next_try(&mut self) -> impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static {
        self.tries += 1;
        let (job, mail) = (Arc::clone(&self.job), self.mail.clone());
        move |conn| job(conn, mail.as_deref())
    }

    /// What a try came to: `Break` with the outcome, or `Continue` with
    /// the wanted mail prepared for another try (at most `PACED_TRIES`).
    fn after(&mut self, done: Result<T, StoreError>) -> ControlFlow<Result<T, RegistrationError>> {
        let error = match done {
            Ok(done) => return ControlFlow::Break(Ok(done)),
            Err(error) => RegistrationError::from(error),
        };
        let wanted = match &error {
            RegistrationError::Failed(failure) => failure.downcast_ref::<MailWanted>().cloned(),
            _ => None,
        };
        let Some(wanted) = wanted else {
            return ControlFlow::Break(Err(error));
        };
        if self.tries >= PACED_TRIES {
            return ControlFlow::Break(Err(customer_kept_changing()));
        }
        match (self.prepare)(&wanted) {
            Ok(mail) => {
                self.mail = Some(Arc::new(mail));
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(Err(RegistrationError::Failed(Arc::new(e)))),
        }
    }
}

fn customer_kept_changing() -> RegistrationError {
    RegistrationError::Failed(Arc::new(anyhow::anyhow!(
        "the customer changed while their mail was being prepared; nothing was written"
    )))
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
    use crate::registration::RegistrationError;
    use crate::registration::outgoing::{
        MailWanted, PACED_TRIES, PacedJob, PacedMail, PreparedReplies, PreparedReply, ReplyContext,
    };
    use crate::replies;
    use crate::settings;
    use crate::store::StoreError;
    use std::cell::Cell;
    use std::ops::ControlFlow;
    use std::sync::Arc;

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

    #[test]
    fn a_paced_mail_serves_only_what_it_was_prepared_for_and_names_what_is_wanted() {
        let settings = settings::load(None).expect("embedded defaults");
        let service = &settings.services[0];
        let context = ReplyContext::unprompted(&settings, service);
        let pat = EmailAddress::parse("pat@example.com").expect("address");
        let wanted = |name: Option<&str>| MailWanted {
            service: service.id.clone(),
            to: pat.clone(),
            name: name.map(str::to_owned),
        };
        let reply = replies::account_activated(
            &context.voice(),
            "Pat",
            &replies::login_link(&settings.http.public_url),
        )
        .expect("renders");
        let mail = PacedMail {
            wanted: wanted(Some("Pat")),
            tokens: (),
            reply: PreparedReply::new(&context, &pat, &reply, None).expect("composes"),
        };

        assert!(PacedMail::fitting(Some(&mail), wanted(Some("Pat"))).is_ok());
        for (prepared, asked) in [
            (Some(&mail), wanted(Some("Patricia"))),
            (Some(&mail), wanted(None)),
            (None, wanted(Some("Pat"))),
        ] {
            let error = PacedMail::fitting(prepared, asked.clone()).expect_err("does not fit");
            assert_eq!(error.downcast_ref::<MailWanted>(), Some(&asked));
            assert!(
                !error.to_string().contains("pat@"),
                "the error never shows the address"
            );
        }
    }

    #[test]
    fn a_paced_job_prepares_what_its_transaction_wants_and_gives_up_after_its_tries() {
        let settings = settings::load(None).expect("embedded defaults");
        let service = &settings.services[0];
        let context = ReplyContext::unprompted(&settings, service);
        let pat = EmailAddress::parse("pat@example.com").expect("address");
        let wanted = MailWanted {
            service: service.id.clone(),
            to: pat.clone(),
            name: None,
        };
        let reply = replies::already_active(
            &context.voice(),
            &replies::login_link(&settings.http.public_url),
        )
        .expect("renders");
        let prepared = Cell::new(0);
        let mut paced = PacedJob::new(
            None,
            |wanted: &MailWanted| {
                prepared.set(prepared.get() + 1);
                Ok(PacedMail {
                    wanted: wanted.clone(),
                    tokens: (),
                    reply: PreparedReply::new(&context, &wanted.to, &reply, None)?,
                })
            },
            |_: &rusqlite::Connection, _: Option<&PacedMail<()>>| Ok(()),
        );
        let wants = || Err(StoreError::Failed(Arc::new(wanted.clone().into())));

        for try_number in 1..PACED_TRIES {
            drop(paced.next_try());
            assert!(paced.after(wants()).is_continue(), "try {try_number}");
            let mail = paced.mail.as_deref().expect("the wanted mail");
            assert_eq!(mail.wanted, wanted);
            assert_eq!(prepared.get(), try_number);
        }
        drop(paced.next_try());
        assert!(matches!(
            paced.after(wants()),
            ControlFlow::Break(Err(RegistrationError::Failed(_)))
        ));
        assert_eq!(
            prepared.get(),
            PACED_TRIES - 1,
            "no mail after the last try"
        );

        let other = Err(StoreError::Failed(Arc::new(anyhow::anyhow!(
            "disk on fire"
        ))));
        let mut paced = PacedJob::new(
            None,
            |_: &MailWanted| -> anyhow::Result<PacedMail<()>> { unreachable!("nothing wanted") },
            |_: &rusqlite::Connection, _: Option<&PacedMail<()>>| Ok(()),
        );
        drop(paced.next_try());
        match paced.after(other) {
            ControlFlow::Break(Err(RegistrationError::Failed(e))) => {
                assert!(e.to_string().contains("disk on fire"));
            }
            _ => panic!("any other failure is handed back as it is"),
        }
    }
}

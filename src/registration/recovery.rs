//! "Forgot your password?" and "Email me a sign-in link": the requests that
//! mail an active customer a single-use link, and the read-only lookup
//! behind each link's page. Using a link is a proof (`sign_in_methods`).
//!
//! Only an active customer gets mail, and for a sign-in link only where the
//! customer's service offers it and the denylist allows; every request is
//! recorded (with its channel), whatever happened, and the caller answers
//! the same bytes either way. An address whose owner asked never to be
//! mailed ("I did not ask for this") gets nothing. Tokens are stored as hashes only, like
//! activation tokens; a new link replaces the customer's unused one.

use crate::domain::{Channel, EmailAddress, Language, Token, TokenHash};
use crate::registration::Registrar;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::registration::outgoing::{
    MailWanted, PacedJob, PacedMail, PreparedReply, ReplyContext, queue_prepared,
};
use crate::replies;
use crate::settings::Settings;
use crate::store::account_tokens::{self, Purpose};
use crate::store::customers::{self, Status};
use crate::store::reply_counts::{self, Keys};
use crate::store::{self, suppressions};
use rusqlite::Connection;
use std::sync::Arc;

/// The customer a live link belongs to, as its page shows them.
#[derive(Debug, Clone)]
pub struct LinkHolder {
    pub email: String,
}

impl Registrar {
    /// "Forgot your password?": mails an active customer a reset link.
    /// Returns the recorded outcome's name (for the log); the caller answers
    /// the same whatever it is.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn request_password_reset(
        &self,
        address: EmailAddress,
        language: Option<Language>,
    ) -> Result<&'static str, RegistrationError> {
        self.request_link(address, Purpose::Reset, language).await
    }

    /// "Email me a sign-in link": mails an active customer whose service
    /// offers it a sign-in link.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn request_sign_in_link(
        &self,
        address: EmailAddress,
        language: Option<Language>,
    ) -> Result<&'static str, RegistrationError> {
        self.request_link(address, Purpose::SignIn, language).await
    }

    async fn request_link(
        &self,
        address: EmailAddress,
        purpose: Purpose,
        language: Option<Language>,
    ) -> Result<&'static str, RegistrationError> {
        let settings = self.settings();
        let job_settings = Arc::clone(&settings);
        // An active customer's link is prepared once the first try has
        // found who gets it (most requests name nobody).
        let outcome = PacedJob::new(
            None,
            |wanted| prepare_link(&settings, wanted, purpose, language, store::now()),
            move |conn, prepared| {
                request_tx(
                    conn,
                    &job_settings,
                    &address,
                    purpose,
                    prepared,
                    store::now(),
                )
            },
        )
        .write(&self.store)
        .await?;
        if outcome == SENT {
            self.outbox_wake.notify_one();
        }
        Ok(outcome)
    }

    /// The active customer a live link of `purpose` belongs to; changes
    /// nothing (mail scanners fetch links).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn link_holder(
        &self,
        token: &Token,
        reset: bool,
    ) -> Result<Option<LinkHolder>, RegistrationError> {
        let hash = token.hash();
        let purpose = if reset {
            Purpose::Reset
        } else {
            Purpose::SignIn
        };
        Ok(self
            .store
            .read(move |conn| {
                let Some(id) = account_tokens::live_customer(conn, &hash, purpose, store::now())?
                else {
                    return Ok(None);
                };
                Ok(customers::by_id(conn, id)?.map(|c| LinkHolder { email: c.email }))
            })
            .await?)
    }
}

const SENT: &str = "link_sent";

/// A link's token, by hash, with its expiry.
#[derive(Debug)]
struct LinkToken {
    hash: TokenHash,
    expires_at: i64,
}

/// Renders and composes the link mail `wanted` names, with a fresh token.
fn prepare_link(
    settings: &Settings,
    wanted: &MailWanted,
    purpose: Purpose,
    language: Option<Language>,
    now: i64,
) -> anyhow::Result<PacedMail<LinkToken>> {
    let service = wanted.service(settings)?;
    let token = Token::generate();
    let ttl = match purpose {
        Purpose::Reset => settings.activation.reset_ttl,
        Purpose::SignIn => settings.activation.sign_in_link_ttl,
    };
    let expires_at = now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let public_url = &settings.http.public_url;
    let minutes = ttl.as_secs() / 60;
    let context = ReplyContext::unprompted(settings, service).preferring(language);
    let reply = match purpose {
        Purpose::Reset => replies::password_reset(
            &context.voice(),
            &replies::token_link(public_url, "reset", &token),
            minutes,
        )?,
        Purpose::SignIn => replies::sign_in_link(
            &context.voice(),
            &replies::token_link(public_url, "login/link", &token),
            minutes,
        )?,
    };
    Ok(PacedMail {
        wanted: wanted.clone(),
        tokens: LinkToken {
            hash: token.hash(),
            expires_at,
        },
        reply: PreparedReply::new(&context, &wanted.to, &reply, None)?,
    })
}

/// The request's transaction: decide, record, and for an active customer
/// replace the link and queue the mail.
fn request_tx(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    purpose: Purpose,
    prepared: Option<&PacedMail<LinkToken>>,
    now: i64,
) -> anyhow::Result<&'static str> {
    let channel = match purpose {
        Purpose::Reset => Channel::PasswordReset,
        Purpose::SignIn => Channel::EmailLink,
    };
    let customer = customers::by_identity(conn, &address.identity_key())?;
    let service = customer
        .as_ref()
        .and_then(|c| settings.service(&c.service))
        .unwrap_or(&settings.services[0]);
    let about = About::address(service, address);
    let ignore = |reason| -> anyhow::Result<&'static str> {
        record(
            conn,
            channel,
            &about,
            Outcome::of("ignore", reason),
            Kept::default(),
            now,
        )?;
        Ok("ignore")
    };
    let Some(customer) = customer else {
        return ignore("unknown_address");
    };
    if customer.status != Status::Active {
        return ignore("not_active");
    }
    if purpose == Purpose::SignIn {
        if !service.policy.email_link {
            return ignore("self_registration_off");
        }
        if service.policy.denylist.denies(address) {
            return ignore("denied");
        }
    }
    // The mail goes to the address as the customer registered it; never to
    // one whose owner asked never to be mailed (the old link stays as it
    // was).
    let to = EmailAddress::parse(&customer.email).unwrap_or_else(|_| address.clone());
    if suppressions::contains(conn, &to.identity_key())? {
        return ignore("opted_out");
    }
    let mail = PacedMail::fitting(
        prepared,
        MailWanted {
            service: service.id.clone(),
            to,
            name: None,
        },
    )?;
    let token = &mail.tokens;
    account_tokens::replace(
        conn,
        customer.id,
        purpose,
        &token.hash,
        now,
        token.expires_at,
    )?;
    let context = ReplyContext::unprompted(settings, service);
    if !queue_prepared(conn, &context, &mail.reply, None, now)? {
        return ignore("opted_out");
    }
    // A link sent to an active customer counts against the service's daily
    // reply budget, as the "already active" notice does.
    reply_counts::add_reply(conn, &service.id, Keys::default(), now)?;
    record(
        conn,
        channel,
        &About::customer(&customer),
        Outcome::of(SENT, "active_customer"),
        Kept::default(),
        now,
    )?;
    Ok(SENT)
}

//! Activation: the read-only lookup behind the activation page, and the one
//! transaction that consumes the token, activates the customer, opens a
//! session (`sign_in::open_session`) and queues the "account activated"
//! notice and the `customer.activated` event.

use crate::domain::{Channel, CustomerName, EmailAddress, EventKind, Language, Token, TokenHash};
use crate::registration::error::RegistrationError;
use crate::registration::events::emit_for;
use crate::registration::outgoing::{
    MailWanted, PacedJob, PacedMail, PreparedReply, ReplyContext, queue_prepared,
};
use crate::registration::sign_in::open_session;
use crate::registration::{Registrar, secs};
use crate::replies;
use crate::settings::Settings;
use crate::store::customers::{self, Customer};
use crate::store::{self, tokens};
use rusqlite::Connection;
use std::sync::Arc;

/// A pending customer, as the activation form shows it.
#[derive(Debug, Clone)]
pub struct PendingCustomer {
    pub email: String,
    pub name: Option<String>,
}

/// What the "account activated" notice to `customer` must be, or `None`
/// (logged) when their stored address does not parse.
fn activated_notice_wanted(settings: &Settings, customer: &Customer) -> Option<MailWanted> {
    let Ok(to) = EmailAddress::parse(&customer.email) else {
        tracing::warn!(
            customer.id = customer.id,
            "stored address does not parse; no activation notice"
        );
        return None;
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    Some(MailWanted {
        service: service.id.clone(),
        to,
        name: Some(
            customer
                .name
                .clone()
                .unwrap_or_else(|| customer.email.clone()),
        ),
    })
}

/// Renders and composes the "account activated" notice `wanted` names.
fn prepare_activated_notice(
    settings: &Settings,
    wanted: &MailWanted,
    language: Option<Language>,
) -> anyhow::Result<PacedMail<()>> {
    let service = wanted.service(settings)?;
    let context = ReplyContext::unprompted(settings, service).preferring(language);
    let reply = replies::account_activated(
        &context.voice(),
        wanted.name.as_deref().unwrap_or(wanted.to.as_str()),
        &replies::login_link(&settings.http.public_url),
    )?;
    Ok(PacedMail {
        wanted: wanted.clone(),
        tokens: (),
        reply: PreparedReply::new(&context, &wanted.to, &reply, None)?,
    })
}

/// Queues the prepared "account activated" notice to a customer just
/// activated; fails with `MailWanted` when it was not prepared for them.
fn queue_activated_notice(
    conn: &Connection,
    settings: &Settings,
    customer: &Customer,
    prepared: Option<&PacedMail<()>>,
    now: i64,
) -> anyhow::Result<()> {
    let Some(wanted) = activated_notice_wanted(settings, customer) else {
        return Ok(());
    };
    let mail = PacedMail::fitting(prepared, wanted)?;
    let context = ReplyContext::unprompted(settings, mail.wanted.service(settings)?);
    queue_prepared(conn, &context, &mail.reply, None, now).map(drop)
}

impl Registrar {
    /// The pending customer a live activation token belongs to; changes
    /// nothing (mail scanners fetch links).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn pending_for_token(
        &self,
        token: &Token,
    ) -> Result<Option<PendingCustomer>, RegistrationError> {
        let keys = token.link_keys();
        Ok(self
            .store
            .read(move |conn| {
                let Some(id) = tokens::live_customer(conn, &keys, store::now())? else {
                    return Ok(None);
                };
                Ok(customers::by_id(conn, id)?.map(|c| PendingCustomer {
                    email: c.email,
                    name: c.name,
                }))
            })
            .await?)
    }

    /// `activate`, plus: ends the session the browser held before (the id is
    /// rotated), and queues the "account activated" notice and the
    /// `customer.activated` event, all in the same transaction. `None` when the token is not live.
    ///
    /// # Errors
    /// A storage failure; nothing changed.
    pub async fn activate_with_notice(
        &self,
        token: &Token,
        name: CustomerName,
        password_hash: String,
        session: TokenHash,
        previous_session: Option<TokenHash>,
        language: Option<Language>,
    ) -> Result<Option<i64>, RegistrationError> {
        let keys = token.link_keys();
        let settings = self.settings();
        let job_settings = Arc::clone(&settings);
        // The notice is prepared for the customer the token names now; the
        // transaction checks that it still fits.
        let first = self
            .notice_for_token(&keys, name.as_ref(), language)
            .await?;
        let activated = PacedJob::new(
            first,
            |wanted| prepare_activated_notice(&settings, wanted, language),
            move |conn, prepared| {
                let now = store::now();
                let Some(customer_id) = tokens::consume(conn, &keys, now)? else {
                    return Ok(None);
                };
                if !customers::activate(conn, customer_id, name.as_ref(), &password_hash, now)? {
                    anyhow::bail!(
                        "a live activation token belonged to a customer that is not pending"
                    );
                }
                let ttl = secs(job_settings.session.absolute_timeout);
                open_session(
                    conn,
                    customer_id,
                    &session,
                    previous_session.as_ref(),
                    ttl,
                    now,
                )?;
                if let Some(customer) = customers::by_id(conn, customer_id)? {
                    queue_activated_notice(conn, &job_settings, &customer, prepared, now)?;
                    emit_for(
                        conn,
                        &job_settings,
                        EventKind::Activated,
                        &customer,
                        Channel::Activation,
                        now,
                    )?;
                }
                Ok(Some(customer_id))
            },
        )
        .write(&self.store)
        .await?;
        if activated.is_some() {
            self.metrics.activation();
            self.outbox_wake.notify_one();
            self.wake_webhooks();
        }
        Ok(activated)
    }

    /// The "account activated" notice to the customer a live token belongs
    /// to, under the name they are activating with, prepared before the
    /// transaction; `None` when the token is not live.
    async fn notice_for_token(
        &self,
        keys: &[TokenHash; 2],
        name: &str,
        language: Option<Language>,
    ) -> Result<Option<PacedMail<()>>, RegistrationError> {
        let (settings, keys) = (self.settings(), *keys);
        let customer = self
            .store
            .read(
                move |conn| match tokens::live_customer(conn, &keys, store::now())? {
                    Some(id) => Ok(customers::by_id(conn, id)?),
                    None => Ok(None),
                },
            )
            .await?;
        let wanted = customer.and_then(|customer| {
            let customer = Customer {
                name: Some(name.to_owned()),
                ..customer
            };
            activated_notice_wanted(&settings, &customer)
        });
        wanted
            .map(|wanted| prepare_activated_notice(&settings, &wanted, language))
            .transpose()
            .map_err(|e| RegistrationError::Failed(Arc::new(e)))
    }
}

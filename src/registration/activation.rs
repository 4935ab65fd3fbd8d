//! Activation: the read-only lookup behind the activation page, and the one
//! transaction that consumes the token, activates the customer, opens a
//! session (`sign_in::open_session`) and queues the "account activated"
//! notice and the `customer.activated` event.

use crate::domain::{Channel, CustomerName, EmailAddress, EventKind, Language, Token, TokenHash};
use crate::registration::error::RegistrationError;
use crate::registration::events::emit_for;
use crate::registration::outgoing::{ReplyContext, queue_reply};
use crate::registration::sign_in::open_session;
use crate::registration::{Registrar, secs};
use crate::replies;
use crate::settings::Settings;
use crate::store::customers::{self, Customer};
use crate::store::{self, tokens};
use rusqlite::Connection;

/// A pending customer, as the activation form shows it.
#[derive(Debug, Clone)]
pub struct PendingCustomer {
    pub email: String,
    pub name: Option<String>,
}

/// Queues the "account activated" notice to a customer just activated.
fn queue_activated_notice(
    conn: &Connection,
    settings: &Settings,
    customer: &Customer,
    language: Option<Language>,
    now: i64,
) -> anyhow::Result<()> {
    let Ok(address) = EmailAddress::parse(&customer.email) else {
        tracing::warn!(
            customer.id = customer.id,
            "stored address does not parse; no activation notice"
        );
        return Ok(());
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    let context = ReplyContext::unprompted(settings, service).preferring(language);
    let reply = replies::account_activated(
        &context.voice(),
        customer.name.as_deref().unwrap_or(customer.email.as_str()),
        &replies::login_link(&settings.http.public_url),
    )?;
    queue_reply(conn, &context, &address, &reply, now).map(drop)
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
        let hash = token.hash();
        Ok(self
            .store
            .read(move |conn| {
                let Some(id) = tokens::live_customer(conn, &hash, store::now())? else {
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
        let hash = token.hash();
        let settings = self.settings();
        let activated = self
            .store
            .write(move |conn| {
                let now = store::now();
                let Some(customer_id) = tokens::consume(conn, &hash, now)? else {
                    return Ok(None);
                };
                if !customers::activate(conn, customer_id, name.as_ref(), &password_hash, now)? {
                    anyhow::bail!("token {hash:?} belonged to a customer that is not pending");
                }
                let ttl = secs(settings.session.absolute_timeout);
                open_session(
                    conn,
                    customer_id,
                    &session,
                    previous_session.as_ref(),
                    ttl,
                    now,
                )?;
                if let Some(customer) = customers::by_id(conn, customer_id)? {
                    queue_activated_notice(conn, &settings, &customer, language, now)?;
                    emit_for(
                        conn,
                        &settings,
                        EventKind::Activated,
                        &customer,
                        Channel::Activation,
                        now,
                    )?;
                }
                Ok(Some(customer_id))
            })
            .await?;
        if activated.is_some() {
            self.metrics.activation();
            self.outbox_wake.notify_one();
            self.wake_webhooks();
        }
        Ok(activated)
    }
}

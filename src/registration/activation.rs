//! Activation: the read-only lookup behind the activation page, and the one
//! transaction that consumes the token, activates the customer, opens a
//! session (`sign_in::open_session`) and queues the "account activated"
//! notice (prepared before it).

use crate::domain::{CustomerName, EmailAddress, Token, TokenHash};
use crate::registration::error::RegistrationError;
use crate::registration::outgoing::{self, PreparedReply, ReplyContext};
use crate::registration::sign_in::open_session;
use crate::registration::{Registrar, secs};
use crate::settings::Settings;
use crate::store::customers::{self, Customer};
use crate::store::{self, tokens};
use std::sync::Arc;

/// A pending customer, as the activation form shows it.
#[derive(Debug, Clone)]
pub struct PendingCustomer {
    pub email: String,
    pub name: Option<String>,
}

/// The "account activated" notice to `customer`, who will be called `name`:
/// prepared before the transaction that activates them. `None` when their
/// stored address does not parse (then no notice is sent).
fn prepare_activated_notice(
    settings: &Settings,
    customer: &Customer,
    name: &CustomerName,
) -> anyhow::Result<Option<PreparedReply>> {
    let Ok(address) = EmailAddress::parse(&customer.email) else {
        tracing::warn!(
            customer.id = customer.id,
            "stored address does not parse; no activation notice"
        );
        return Ok(None);
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    let context = ReplyContext::unprompted(settings, service);
    outgoing::prepare_activated_notice(&context, &address, name.as_ref()).map(Some)
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
    /// rotated), and queues the "account activated" notice, all in the same
    /// transaction. `None` when the token is not live.
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
    ) -> Result<Option<i64>, RegistrationError> {
        let hash = token.hash();
        let settings = self.settings();
        // The token's customer, read before the transaction so that the
        // notice is rendered outside the writer. A token belongs to one
        // customer for good, and an address never changes.
        let customer = self
            .store
            .read(move |conn| {
                let Some(id) = tokens::live_customer(conn, &hash, store::now())? else {
                    return Ok(None);
                };
                Ok(customers::by_id(conn, id)?)
            })
            .await?;
        let Some(customer) = customer else {
            return Ok(None);
        };
        let notice = prepare_activated_notice(&settings, &customer, &name).map_err(|error| {
            RegistrationError::Failed(Arc::new(error.context("failed to prepare the notice")))
        })?;
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
                match &notice {
                    Some(notice) if customer_id == customer.id => {
                        outgoing::queue(conn, &settings, notice, None, now)?;
                    }
                    Some(_) => tracing::warn!(
                        customer.id = customer_id,
                        "the token's customer changed; no activation notice"
                    ),
                    None => {}
                }
                Ok(Some(customer_id))
            })
            .await?;
        if activated.is_some() {
            self.outbox_wake.notify_one();
        }
        Ok(activated)
    }
}

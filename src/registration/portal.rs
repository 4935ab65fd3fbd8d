//! The portal's "Create an account" and "send me a new link" requests.

use crate::domain::{Channel, CustomerName, EmailAddress};
use crate::policy::{self, Decision};
use crate::registration::Registrar;
use crate::registration::decide::{About, Ask, Decided, Kept, decide, record};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::ReplyContext;
use crate::settings::{Service, Settings};
use crate::store::{self, customers};
use rusqlite::Connection;

/// A request by `channel` (the form, or a resend) for `address`, decided and
/// recorded; its consequences applied.
fn decide_request(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    channel: Channel,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    now: i64,
) -> anyhow::Result<Decision> {
    let ask = Ask {
        channel,
        service,
        address: Some(address),
        recorded_as: address.as_str(),
        name,
        reply: ReplyContext::unprompted(settings, service),
        now,
    };
    let evaluate = |facts: &SenderFacts| {
        policy::evaluate_request(
            &service.policy,
            channel,
            address,
            facts.state(),
            facts.history,
            facts.load,
            now,
        )
    };
    let Decided { decision, .. } = decide(conn, &ask, evaluate, |_| Ok(Some(Kept::default())))?;
    Ok(decision)
}

/// The transaction behind `resend`: only a customer who exists is decided
/// on, under their own service.
fn resend_tx(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    now: i64,
) -> anyhow::Result<Option<Decision>> {
    let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
        let service = &settings.services[0];
        record(
            conn,
            Channel::Resend,
            &About::address(service, address),
            ("ignore", "unknown_address"),
            Kept::default(),
            now,
        )?;
        return Ok(None);
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    decide_request(conn, settings, service, Channel::Resend, address, None, now).map(Some)
}

impl Registrar {
    /// Decides and records a "Create an account" request from the portal.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_portal(
        &self,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
    ) -> Result<Decision, RegistrationError> {
        let settings = self.settings();
        let service = service.clone();
        let decision = self
            .store
            .write(move |conn| {
                decide_request(
                    conn,
                    &settings,
                    &service,
                    Channel::Portal,
                    &address,
                    name.as_ref(),
                    store::now(),
                )
            })
            .await?;
        self.observe_decision(Channel::Portal, &decision, false);
        if decision.sends_mail() {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }

    /// "Send me a new link", from the page a dead link opens. Only existing
    /// customers get mail: a pending one a new activation link, an active one
    /// the "you already have an account" note (both within the reply limits);
    /// an unknown address gets nothing. Recorded either way. The caller
    /// answers the same whatever happened.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn resend(
        &self,
        address: EmailAddress,
    ) -> Result<Option<Decision>, RegistrationError> {
        let settings = self.settings();
        let decision = self
            .store
            .write(move |conn| resend_tx(conn, &settings, &address, store::now()))
            .await?;
        if let Some(decided) = &decision {
            self.observe_decision(Channel::Resend, decided, false);
        }
        if decision.as_ref().is_some_and(Decision::sends_mail) {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }
}

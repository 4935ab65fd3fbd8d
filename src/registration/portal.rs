//! The portal's "Create an account" and "send me a new link" requests.

use crate::domain::{Channel, CustomerName, EmailAddress};
use crate::policy::{self, Decision};
use crate::registration::Registrar;
use crate::registration::decide::{
    About, Ask, Decided, Kept, decide, prepare_failed, record, until_prepared,
};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{self, Attempt, Prepared, ReplyContext};
use crate::replies::ReplyKind;
use crate::settings::{Service, Settings};
use crate::store::{self, customers};
use rusqlite::Connection;
use std::sync::Arc;

/// A request by `channel` (the form, or a resend) for `address`, as `Ask`
/// needs it.
fn ask_for<'a>(
    settings: &'a Settings,
    service: &'a Service,
    (channel, address, name): (Channel, &'a EmailAddress, Option<&'a CustomerName>),
    prepared: &'a Prepared,
    now: i64,
) -> Ask<'a> {
    Ask {
        channel,
        settings,
        service,
        address: Some(address),
        recorded_as: address.as_str(),
        name,
        replies: prepared,
        now,
    }
}

/// A request from the portal (`ask`, whose address is set), decided and
/// recorded; its consequences applied.
fn decide_request(conn: &Connection, ask: &Ask<'_>) -> anyhow::Result<Attempt<Decision>> {
    let address = ask
        .address
        .ok_or_else(|| anyhow::anyhow!("a portal request without an address"))?;
    let evaluate = |facts: &SenderFacts| {
        policy::evaluate_request(
            &ask.service.policy,
            ask.channel,
            address,
            facts.state(),
            facts.history,
            facts.load,
            ask.now,
        )
    };
    Ok(
        match decide(conn, ask, evaluate, |_| Ok(Some(Kept::default())))? {
            Attempt::Done(Decided { decision, .. }) => Attempt::Done(decision),
            Attempt::NeedsReply(kind) => Attempt::NeedsReply(kind),
        },
    )
}

/// The service a resend for `address` is decided under: the customer's own,
/// or the first one for an unknown address (which gets no mail).
fn resend_service<'a>(
    settings: &'a Settings,
    customer: Option<&customers::Customer>,
) -> &'a Service {
    customer
        .and_then(|customer| settings.service(&customer.service))
        .unwrap_or(&settings.services[0])
}

/// The transaction behind `resend`: only a customer who exists is decided
/// on, under their own service.
fn resend_tx(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    prepared: &Prepared,
    now: i64,
) -> anyhow::Result<Attempt<Option<Decision>>> {
    let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
        let service = resend_service(settings, None);
        record(
            conn,
            Channel::Resend,
            &About::address(service, address),
            ("ignore", "unknown_address"),
            Kept::default(),
            now,
        )?;
        return Ok(Attempt::Done(None));
    };
    let service = resend_service(settings, Some(&customer));
    Ok(
        match decide_request(
            conn,
            &ask_for(
                settings,
                service,
                (Channel::Resend, address, None),
                prepared,
                now,
            ),
        )? {
            Attempt::Done(decision) => Attempt::Done(Some(decision)),
            Attempt::NeedsReply(kind) => Attempt::NeedsReply(kind),
        },
    )
}

impl Registrar {
    /// Decides and records a "Create an account" request from the portal.
    /// The activation mail (the likely reply) is prepared before the
    /// transaction; another is prepared if the decision asks for it.
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
        let service = Arc::new(service.clone());
        let address = Arc::new(address);
        let name = Arc::new(name);
        let now = store::now();
        let prepare = |kind| {
            outgoing::prepare(
                &ReplyContext::unprompted(&settings, &service),
                &address,
                kind,
                now,
            )
        };
        let mut prepared = Prepared::default();
        prepared.add(prepare(ReplyKind::Activation).map_err(prepare_failed)?);
        let decision = until_prepared(prepared, prepare, |prepared: Arc<Prepared>| {
            let (settings, service) = (Arc::clone(&settings), Arc::clone(&service));
            let (address, name) = (Arc::clone(&address), Arc::clone(&name));
            let store = self.store.clone();
            async move {
                store
                    .write(move |conn| {
                        let request = (Channel::Portal, address.as_ref(), name.as_ref().as_ref());
                        decide_request(conn, &ask_for(&settings, &service, request, &prepared, now))
                    })
                    .await
            }
        })
        .await?;
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
        let address = Arc::new(address);
        let now = store::now();
        // The customer's service words the mail; a customer's service never
        // changes, so reading it before the transaction is safe.
        let identity = address.identity_key();
        let customer = self
            .store
            .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
            .await?;
        let service = resend_service(&settings, customer.as_ref());
        let prepare = |kind| {
            outgoing::prepare(
                &ReplyContext::unprompted(&settings, service),
                &address,
                kind,
                now,
            )
        };
        let decision = until_prepared(Prepared::default(), prepare, |prepared: Arc<Prepared>| {
            let settings = Arc::clone(&settings);
            let address = Arc::clone(&address);
            let store = self.store.clone();
            async move {
                store
                    .write(move |conn| resend_tx(conn, &settings, &address, &prepared, now))
                    .await
            }
        })
        .await?;
        if decision.as_ref().is_some_and(Decision::sends_mail) {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }
}

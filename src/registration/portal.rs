//! The portal's "Create an account" and "send me a new link" requests.

use crate::domain::{Channel, ClientNetwork, CustomerName, EmailAddress, Language};
use crate::policy::{self, Decision, DeferReason};
use crate::registration::alarms::Alarm;
use crate::registration::decide::{About, Ask, Decided, Kept, Outcome, decide, record};
use crate::registration::error::RegistrationError;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::{NotPrepared, PreparedReplies, ReplyContext};
use crate::registration::{Guards, Registrar};
use crate::settings::{Service, Settings};
use crate::store::{self, customers};
use rusqlite::Connection;
use std::sync::Arc;

/// A request by `channel` (the form, or a resend) for `address` from
/// `client`, decided and recorded; its consequences applied.
#[allow(clippy::too_many_arguments)] // each argument is a distinct input of the decision
fn decide_request(
    conn: &Connection,
    settings: &Settings,
    guards: &Guards,
    service: &Service,
    channel: Channel,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    client: ClientNetwork,
    language: Option<Language>,
    prepared: Option<&PreparedReplies>,
    now: i64,
) -> anyhow::Result<Decision> {
    let ask = Ask {
        channel,
        service,
        address: Some(address),
        about: About::address(service, address),
        name,
        client: Some(client),
        guards,
        reply: ReplyContext::unprompted(settings, service).preferring(language),
        prepared,
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
    guards: &Guards,
    address: &EmailAddress,
    client: ClientNetwork,
    language: Option<Language>,
    now: i64,
) -> anyhow::Result<Option<Decision>> {
    let Some(customer) = customers::by_identity(conn, &address.identity_key())? else {
        let service = &settings.services[0];
        record(
            conn,
            Channel::Resend,
            &About::address(service, address),
            Outcome::of("ignore", "unknown_address"),
            Kept::default(),
            now,
        )?;
        return Ok(None);
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    decide_request(
        conn,
        settings,
        guards,
        service,
        Channel::Resend,
        address,
        None,
        client,
        language,
        // A resend's service is the customer's, known only here; a person
        // paces it, so its reply is rendered in the transaction.
        None,
        now,
    )
    .map(Some)
}

impl Registrar {
    /// Decides and records a "Create an account" request from the portal,
    /// made from `client`. While the circuit breaker on new senders is open,
    /// every request is put off alike (`Decision::Defer`, nothing recorded),
    /// whatever the address's state, so the answer tells nothing about it.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_portal(
        &self,
        service: &Service,
        address: EmailAddress,
        name: Option<CustomerName>,
        client: ClientNetwork,
        language: Option<Language>,
    ) -> Result<Decision, RegistrationError> {
        if self.guards.breaker.is_open() {
            self.guards.alarms.raise(Alarm::NewSenderFlood, &service.id);
            return Ok(Decision::Defer(DeferReason::NewSenderFlood));
        }
        let settings = self.settings();
        let now = store::now();
        let context = ReplyContext::unprompted(&settings, service).preferring(language);
        // Shared with each attempt's job, not copied into it.
        let mut prepared = PreparedReplies::try_to(&context, &address, now).map(Arc::new);
        let decision = loop {
            let (job_settings, guards, owned) = (
                Arc::clone(&settings),
                Arc::clone(&self.guards),
                service.clone(),
            );
            let (job_address, job_name, ready) = (
                address.clone(),
                name.clone(),
                prepared.as_ref().map(Arc::clone),
            );
            let decided = self
                .store
                .write(move |conn| {
                    decide_request(
                        conn,
                        &job_settings,
                        &guards,
                        &owned,
                        Channel::Portal,
                        &job_address,
                        job_name.as_ref(),
                        client,
                        language,
                        ready.as_deref(),
                        now,
                    )
                })
                .await
                .map_err(RegistrationError::from);
            match decided {
                Ok(decision) => break decision,
                // The address is an active customer's: the notice is
                // prepared now and the request decided again.
                Err(error) => NotPrepared::prepare_notice(error, &mut prepared, &context)?,
            }
        };
        self.observe_decision(Channel::Portal, &decision, false);
        if decision.sends_mail() {
            self.outbox_wake.notify_one();
        }
        if let Decision::Register { .. } = decision {
            self.wake_webhooks();
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
        client: ClientNetwork,
        language: Option<Language>,
    ) -> Result<Option<Decision>, RegistrationError> {
        let settings = self.settings();
        let guards = Arc::clone(&self.guards);
        let decision = self
            .store
            .write(move |conn| {
                resend_tx(
                    conn,
                    &settings,
                    &guards,
                    &address,
                    client,
                    language,
                    store::now(),
                )
            })
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

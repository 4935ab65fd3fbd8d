//! The portal's "Create an account" and "send me a new link" requests.

use super::*;

/// The transaction behind `from_portal`.
fn decide_portal(
    conn: &Connection,
    settings: &Settings,
    service: &Service,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    now: i64,
) -> anyhow::Result<Decision> {
    let (customer, history) = load_sender(conn, address, now)?;
    let state = customer
        .as_ref()
        .map_or(SenderState::New, Customer::sender_state);
    let load = service_load(conn, service, now)?;
    let decision = policy::evaluate_portal(&service.policy, address, state, history, load, now);
    let context = ReplyContext::unprompted(settings, service);
    apply(
        conn,
        &context,
        &decision,
        address,
        customer.as_ref(),
        name,
        "portal",
        now,
    )?;
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "portal",
            service: &service.id,
            address: address.as_str(),
            identity: Some(&address.identity_key()),
            outcome: decision.name(),
            reason: decision.reason(),
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(decision)
}

/// The transaction behind `resend`.
fn resend_tx(
    conn: &Connection,
    settings: &Settings,
    address: &EmailAddress,
    now: i64,
) -> anyhow::Result<Option<Decision>> {
    let (customer, history) = load_sender(conn, address, now)?;
    let Some(customer) = customer else {
        let service = &settings.services[0];
        inbound::record_decision(
            conn,
            &NewDecision {
                inbound_id: None,
                channel: "resend",
                service: &service.id,
                address: address.as_str(),
                identity: Some(&address.identity_key()),
                outcome: "ignore",
                reason: "unknown_address",
                dropped: false,
                reply_code: None,
            },
            now,
        )?;
        return Ok(None);
    };
    let service = settings
        .service(&customer.service)
        .unwrap_or(&settings.services[0]);
    // A resend only serves customers who already exist (registered by any
    // channel, or invited), so the portal switch does not apply; the
    // denylist, the account state and the reply limits do.
    let mut policy = service.policy.clone();
    policy.portal = true;
    let load = service_load(conn, service, now)?;
    let decision = policy::evaluate_portal(
        &policy,
        address,
        customer.sender_state(),
        history,
        load,
        now,
    );
    let context = ReplyContext::unprompted(settings, service);
    apply(
        conn,
        &context,
        &decision,
        address,
        Some(&customer),
        None,
        "resend",
        now,
    )?;
    inbound::record_decision(
        conn,
        &NewDecision {
            inbound_id: None,
            channel: "resend",
            service: &service.id,
            address: address.as_str(),
            identity: Some(&address.identity_key()),
            outcome: decision.name(),
            reason: decision.reason(),
            dropped: false,
            reply_code: None,
        },
        now,
    )?;
    Ok(Some(decision))
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
    ) -> Result<Decision, StoreError> {
        let settings = self.settings();
        let service = service.clone();
        let decision = self
            .store
            .write(move |conn| {
                decide_portal(
                    conn,
                    &settings,
                    &service,
                    &address,
                    name.as_ref(),
                    store::now(),
                )
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
    pub async fn resend(&self, address: EmailAddress) -> Result<Option<Decision>, StoreError> {
        let settings = self.settings();
        let decision = self
            .store
            .write(move |conn| resend_tx(conn, &settings, &address, store::now()))
            .await?;
        if decision.as_ref().is_some_and(Decision::sends_mail) {
            self.outbox_wake.notify_one();
        }
        Ok(decision)
    }
}

//! The proofs other than a password: an OpenID Connect sign-in ("Sign in
//! with Google"), a directory bind ("Sign in with your company account"),
//! an emailed sign-in link, and a password-reset link.
//!
//! The first three admit through the one decision pipeline under their own
//! channel (`policy::evaluate_sign_in`: the method's switch, the denylist,
//! the account's state and access; no reply limits, as nothing is mailed):
//! the first sign-in of an allowed address creates an active customer, a
//! pending customer becomes active, a disabled one is refused. Decision,
//! customer and session commit in one transaction, so a refusal creates
//! nothing. A reset link changes the password and ends every session of the
//! customer before it opens the new one, in one transaction too.

use crate::directory::DirectoryError;
use crate::domain::{Channel, CustomerName, EmailAddress, EventKind, Token, TokenHash};
use crate::oidc::{OidcError, Started};
use crate::policy::{self, Decision, RefuseReason};
use crate::registration::decide::{About, Ask, Decided, Kept, Outcome, decide, record};
use crate::registration::error::RegistrationError;
use crate::registration::events::emit_for;
use crate::registration::facts::SenderFacts;
use crate::registration::outgoing::ReplyContext;
use crate::registration::sign_in::{Declined, Proof, SignIn, open_session};
use crate::registration::{Guards, Registrar, secs};
use crate::settings::Settings;
use crate::store::account_tokens::{self, Purpose};
use crate::store::{self, customers, sessions};
use rusqlite::Connection;
use std::sync::Arc;

/// What a proven sign-in's transaction did.
enum Proven {
    SignedIn(i64),
    Disabled(i64),
    NotAllowed(RefuseReason),
    DeadLink,
}

impl Registrar {
    /// Whether "Sign in with Google" is configured.
    pub fn google_configured(&self) -> bool {
        self.providers.oidc.is_some()
    }

    /// Whether "Sign in with your company account" is configured.
    pub fn directory_configured(&self) -> bool {
        self.providers.directory.is_some()
    }

    /// Starts "Sign in with Google": where to send the browser, and the flow
    /// id for its cookie. Changes nothing but the login in flight kept in
    /// memory.
    ///
    /// # Errors
    /// Why it cannot start (not configured, provider unreachable, busy).
    pub async fn start_google(&self) -> Result<Started, Declined> {
        let Some(oidc) = self.providers.oidc.as_ref() else {
            return Err(Declined::NotConfigured);
        };
        oidc.start().await.map_err(|error| {
            tracing::warn!(error.message = %error, "cannot start an OpenID Connect sign-in");
            Declined::Unavailable
        })
    }

    /// The proofs other than a password (`sign_in` hands them here).
    pub(super) async fn sign_in_by(
        &self,
        proof: Proof,
        previous: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        match proof {
            // `sign_in` checks passwords itself.
            Proof::Password { .. } => Ok(SignIn::Refused),
            Proof::Google { flow, state, code } => {
                self.google(&flow, &state, &code, previous).await
            }
            Proof::Directory { login, password } => {
                let Some(directory) = self.providers.directory.as_ref() else {
                    return Ok(SignIn::Declined(Declined::NotConfigured));
                };
                let user = match directory.authenticate(&login, &password).await {
                    Ok(user) => user,
                    Err(DirectoryError::InvalidCredentials) => return Ok(SignIn::Refused),
                    Err(DirectoryError::NotInGroup) => {
                        return Ok(SignIn::Declined(Declined::NotInGroup));
                    }
                    Err(DirectoryError::NoMail) => return Ok(SignIn::Declined(Declined::NoEmail)),
                    Err(error @ DirectoryError::Unavailable(_)) => {
                        tracing::warn!(error.message = %error, "the directory is unavailable");
                        return Ok(SignIn::Declined(Declined::Unavailable));
                    }
                };
                let Ok(address) = EmailAddress::parse(&user.mail) else {
                    return Ok(SignIn::Declined(Declined::NoEmail));
                };
                let name = user.name.as_deref().and_then(CustomerName::parse);
                self.proven(Channel::Directory, address, name, previous)
                    .await
            }
            Proof::EmailLink { token } => self.email_link(&token, previous).await,
            Proof::ResetLink {
                token,
                password_hash,
            } => self.reset(&token, password_hash, previous).await,
        }
    }

    async fn google(
        &self,
        flow: &crate::domain::Token,
        state: &str,
        code: &str,
        previous: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let Some(oidc) = self.providers.oidc.as_ref() else {
            return Ok(SignIn::Declined(Declined::NotConfigured));
        };
        let identity = match oidc.finish(flow, state, code).await {
            Ok(identity) => identity,
            Err(error @ (OidcError::Unavailable(_) | OidcError::Busy)) => {
                tracing::warn!(error.message = %error, "the OpenID provider is unavailable");
                return Ok(SignIn::Declined(Declined::Unavailable));
            }
            Err(error) => {
                tracing::info!(event = "oidc_refused", error.message = %error);
                return Ok(SignIn::Declined(Declined::Invalid));
            }
        };
        if !identity.email_verified {
            return Ok(SignIn::Declined(Declined::EmailNotVerified));
        }
        let Some(address) = identity
            .email
            .as_deref()
            .and_then(|email| EmailAddress::parse(email).ok())
        else {
            return Ok(SignIn::Declined(Declined::NoEmail));
        };
        let name = identity.name.as_deref().and_then(CustomerName::parse);
        self.proven(Channel::Google, address, name, previous).await
    }

    /// A sign-in whose proof showed `address` is the visitor's: decided by
    /// the pipeline under `channel`, and signed in when admitted.
    async fn proven(
        &self,
        channel: Channel,
        address: EmailAddress,
        name: Option<CustomerName>,
        previous: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let settings = self.settings();
        let guards = Arc::clone(&self.guards);
        let session = Token::generate();
        let hash = session.hash();
        let outcome = self
            .store
            .write(move |conn| {
                let now = store::now();
                admit_and_open(
                    conn,
                    &settings,
                    &guards,
                    channel,
                    &address,
                    name.as_ref(),
                    &hash,
                    previous.as_ref(),
                    now,
                )
            })
            .await?;
        let (outcome, decision) = outcome;
        // Committed: a first sign-in that created the customer counts as a
        // registration by this channel.
        self.observe_decision(channel, &decision, false);
        Ok(self.proven_answer(outcome, session))
    }

    async fn email_link(
        &self,
        token: &Token,
        previous: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let settings = self.settings();
        let guards = Arc::clone(&self.guards);
        let token_hash = token.hash();
        let session = Token::generate();
        let hash = session.hash();
        let outcome = self
            .store
            .write(move |conn| {
                let now = store::now();
                let Some(id) = account_tokens::consume(conn, &token_hash, Purpose::SignIn, now)?
                else {
                    return Ok(Proven::DeadLink);
                };
                let customer = customers::by_id(conn, id)?
                    .ok_or_else(|| anyhow::anyhow!("a link without its customer"))?;
                let address = EmailAddress::parse(&customer.email)?;
                // The customer exists already: nothing is registered here.
                admit_and_open(
                    conn,
                    &settings,
                    &guards,
                    Channel::EmailLink,
                    &address,
                    None,
                    &hash,
                    previous.as_ref(),
                    now,
                )
                .map(|(outcome, _)| outcome)
            })
            .await?;
        Ok(self.proven_answer(outcome, session))
    }

    async fn reset(
        &self,
        token: &Token,
        password_hash: String,
        previous: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let token_hash = token.hash();
        let session = Token::generate();
        let hash = session.hash();
        let settings = self.settings();
        let ttl = secs(settings.session.absolute_timeout);
        let outcome = self
            .store
            .write(move |conn| {
                let now = store::now();
                let Some(id) = account_tokens::consume(conn, &token_hash, Purpose::Reset, now)?
                else {
                    return Ok(Proven::DeadLink);
                };
                let customer = customers::by_id(conn, id)?
                    .ok_or_else(|| anyhow::anyhow!("a link without its customer"))?;
                if !customers::set_password(conn, id, &password_hash)? {
                    return Ok(Proven::DeadLink);
                }
                // Whoever held a session (perhaps the reason for the reset)
                // is signed out everywhere.
                sessions::delete_for_customer(conn, id)?;
                open_session(conn, id, &hash, previous.as_ref(), ttl, now)?;
                emit_for(
                    conn,
                    &settings,
                    EventKind::SignedIn,
                    &customer,
                    Channel::PasswordReset,
                    now,
                )?;
                record(
                    conn,
                    Channel::PasswordReset,
                    &About::customer(&customer),
                    Outcome::of("password_changed", "reset_link"),
                    Kept::default(),
                    now,
                )?;
                Ok(Proven::SignedIn(id))
            })
            .await?;
        Ok(self.proven_answer(outcome, session))
    }
}

impl Registrar {
    /// The answer to a proven sign-in's transaction; a session opened (and
    /// perhaps a customer created or activated) may have queued events.
    fn proven_answer(&self, outcome: Proven, session: Token) -> SignIn {
        if let Proven::SignedIn(_) = outcome {
            self.wake_webhooks();
        }
        answer(outcome, session)
    }
}

fn answer(outcome: Proven, session: Token) -> SignIn {
    match outcome {
        Proven::SignedIn(customer_id) => SignIn::SignedIn {
            customer_id,
            session,
        },
        Proven::Disabled(customer_id) => SignIn::Disabled { customer_id },
        Proven::NotAllowed(reason) => SignIn::Declined(Declined::NotAllowed(reason)),
        Proven::DeadLink => SignIn::Declined(Declined::DeadLink),
    }
}

/// The service whose policy decides: an existing customer's own, else the
/// one the method's new customers join, else the first.
fn service_for<'s>(
    settings: &'s Settings,
    channel: Channel,
    existing: Option<&customers::Customer>,
) -> &'s crate::settings::Service {
    let method = match channel {
        Channel::Google => settings.oidc.as_ref().map(|o| o.service.as_str()),
        Channel::Directory => settings.ldap.as_ref().map(|l| l.service.as_str()),
        _ => None,
    };
    existing
        .and_then(|customer| settings.service(&customer.service))
        .or_else(|| method.and_then(|id| settings.service(id)))
        .unwrap_or(&settings.services[0])
}

/// Decides the sign-in, applies it (customer created or activated) and,
/// when admitted, opens the session; all in the caller's transaction.
/// Returns the decision too, for counting once it has committed.
#[allow(clippy::too_many_arguments)] // one transaction's inputs, each distinct
fn admit_and_open(
    conn: &Connection,
    settings: &Settings,
    guards: &Guards,
    channel: Channel,
    address: &EmailAddress,
    name: Option<&CustomerName>,
    session: &TokenHash,
    previous: Option<&TokenHash>,
    now: i64,
) -> anyhow::Result<(Proven, Decision)> {
    let existing = customers::by_identity(conn, &address.identity_key())?;
    let service = service_for(settings, channel, existing.as_ref());
    let ask = Ask {
        channel,
        service,
        address: Some(address),
        about: About::address(service, address),
        name,
        // A sign-in mails nothing: no reply budget counts it.
        client: None,
        guards,
        reply: ReplyContext::unprompted(settings, service),
        prepared: None,
        now,
    };
    // The proof is the owner's: an address that asked never to be mailed
    // may still sign in (nothing is mailed to it).
    let evaluate = |facts: &SenderFacts| {
        policy::evaluate_sign_in(&service.policy, channel, address, facts.account_state())
    };
    let Decided { decision, .. } = decide(conn, &ask, evaluate, |_| Ok(Some(Kept::default())))?;
    let proven = match &decision {
        Decision::Register { .. } | Decision::ResendActivation | Decision::AlreadyActive { .. } => {
            let customer = customers::by_identity(conn, &address.identity_key())?
                .ok_or_else(|| anyhow::anyhow!("admitted without a customer"))?;
            let ttl = secs(settings.session.absolute_timeout);
            open_session(conn, customer.id, session, previous, ttl, now)?;
            emit_for(conn, settings, EventKind::SignedIn, &customer, channel, now)?;
            Proven::SignedIn(customer.id)
        }
        Decision::Refuse(RefuseReason::AccountDisabled) => {
            Proven::Disabled(existing.map_or(0, |customer| customer.id))
        }
        Decision::Refuse(reason) => Proven::NotAllowed(*reason),
        // The sign-in rules neither suppress nor defer.
        Decision::Suppress(_) | Decision::Defer(_) => {
            Proven::NotAllowed(RefuseReason::SelfRegistrationOff)
        }
    };
    Ok((proven, decision))
}

//! Signing in: the one room that turns a proof of identity into an active
//! customer and a fresh session, finds the customer a session belongs to, and
//! ends sessions.
//!
//! The proof is a password, or one of the other methods (an OpenID Connect
//! sign-in, a directory bind, an emailed link, a password-reset link), whose
//! checks live in `sign_in_methods`: those can also create or activate the
//! customer, through the decision pipeline under their own channel. The
//! session rotation below is shared. Rate limits on failed attempts are the
//! web side's, which reserves an attempt before calling here.

use crate::domain::{Channel, EmailAddress, EventKind, Token, TokenHash};
use crate::password::{HashError, PasswordHasher};
use crate::policy::RefuseReason;
use crate::registration::error::RegistrationError;
use crate::registration::events::emit_for;
use crate::registration::{Registrar, secs};
use crate::store::customers::{self, Customer};
use crate::store::{self, sessions};
use rusqlite::Connection;
use secrecy::SecretString;

/// What a browser presents to sign in.
pub enum Proof {
    /// The sign-in form: `address` is `None` when what was typed is not an
    /// address (it still costs a dummy verify, so every failure takes as
    /// long).
    Password {
        address: Option<EmailAddress>,
        password: SecretString,
    },
    /// Back from the OpenID provider: the flow id from the browser's cookie,
    /// and the callback's `state` and `code`.
    Google {
        flow: Token,
        state: String,
        code: String,
    },
    /// "Sign in with your company account": the login (userPrincipalName or
    /// mail) and password, checked by binding to the directory.
    Directory {
        login: String,
        password: SecretString,
    },
    /// An emailed sign-in link, submitted from its page.
    EmailLink { token: Token },
    /// A password-reset link with the new password's argon2id hash (the
    /// caller checked the rules and hashed it): sets it, ends every session
    /// of the customer and opens a new one.
    ResetLink { token: Token, password_hash: String },
}

/// What a sign-in did.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: `session` is the new session's id for the cookie; the
    /// session the browser held before is ended.
    SignedIn { customer_id: i64, session: Token },
    /// The proof holds but the account is disabled; only someone who holds
    /// the proof learns this.
    Disabled { customer_id: i64 },
    /// The proof does not hold, the account is not active yet, or there is
    /// no such account (indistinguishable to the caller's visitor).
    Refused,
    /// Too many password checks are waiting: nothing was checked; try
    /// again shortly.
    Busy,
    /// A method other than a password could not sign anyone in, for a reason
    /// the visitor may be told (nothing was created).
    Declined(Declined),
}

/// Why a sign-in by another method than a password did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// The method is not configured.
    NotConfigured,
    /// The provider or directory cannot be reached now; try again later.
    Unavailable,
    /// The sign-in could not be verified: it expired, was used already,
    /// came back with the wrong `state`, or its token did not verify. Start
    /// again.
    Invalid,
    /// The provider does not vouch for the email address.
    EmailNotVerified,
    /// The directory user is not in the required group.
    NotInGroup,
    /// The directory entry or ID token has no usable email address.
    NoEmail,
    /// The self-registration policy refuses the address (switch off,
    /// denylist, not one of the accepted companies, nobody may register).
    NotAllowed(RefuseReason),
    /// The link is unknown, expired or used.
    DeadLink,
}

/// A signed-in customer, as the portal shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub company: Option<String>,
    /// The id of the service they registered for.
    pub service: String,
    /// Whether they have a password (a customer admitted by Google or the
    /// directory has none until they set one with a reset link).
    pub has_password: bool,
}

impl From<Customer> for Account {
    fn from(customer: Customer) -> Self {
        Self {
            id: customer.id,
            email: customer.email,
            name: customer.name,
            company: customer.company,
            service: customer.service,
            has_password: customer.password_hash.is_some(),
        }
    }
}

impl Proof {
    /// The method's stable name, as the metrics count it.
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Password { .. } => "password",
            Proof::Google { .. } => "google",
            Proof::Directory { .. } => "directory",
            Proof::EmailLink { .. } => "email_link",
            Proof::ResetLink { .. } => "reset_link",
        }
    }
}

impl SignIn {
    /// The result's stable name, as the metrics count it.
    pub fn result(&self) -> &'static str {
        match self {
            SignIn::SignedIn { .. } => "signed_in",
            SignIn::Disabled { .. } => "disabled",
            SignIn::Refused => "refused",
            SignIn::Busy => "busy",
            SignIn::Declined(_) => "declined",
        }
    }
}

impl Registrar {
    /// Checks `proof` and, for an active customer, opens a new session,
    /// ending `previous_session` (a new id at every sign-in). Every method
    /// comes through here, so each attempt is counted once, by method and
    /// result.
    ///
    /// # Errors
    /// A storage failure; no session was opened.
    pub async fn sign_in(
        &self,
        hasher: &PasswordHasher,
        proof: Proof,
        previous_session: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let method = proof.method();
        let outcome = self.check_proof(hasher, proof, previous_session).await?;
        self.metrics.sign_in(method, outcome.result());
        Ok(outcome)
    }

    /// `sign_in` before it is counted.
    async fn check_proof(
        &self,
        hasher: &PasswordHasher,
        proof: Proof,
        previous_session: Option<TokenHash>,
    ) -> Result<SignIn, RegistrationError> {
        let (address, password) = match proof {
            Proof::Password { address, password } => (address, password),
            other => return self.sign_in_by(other, previous_session).await,
        };
        let customer = match address {
            Some(address) => {
                let identity = address.identity_key();
                self.store
                    .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
                    .await?
            }
            None => None,
        };
        // Pending customers have no password; they and unknown addresses are
        // verified against the dummy hash so every failure takes as long.
        let stored = customer.as_ref().and_then(|c| c.password_hash.clone());
        let verified = match hasher.verify(password, stored).await {
            Ok(verified) => verified,
            Err(HashError::Busy) => return Ok(SignIn::Busy),
            Err(HashError::Failed(error)) => {
                tracing::error!(error.message = %error, "a password verification failed");
                false
            }
        };
        match customer {
            Some(customer) if verified && customer.status == customers::Status::Active => {
                let session = Token::generate();
                let hash = session.hash();
                let settings = self.settings();
                let ttl = secs(settings.session.absolute_timeout);
                let customer_id = customer.id;
                let queued = self
                    .store
                    .write(move |conn| {
                        let now = store::now();
                        open_session(
                            conn,
                            customer_id,
                            &hash,
                            previous_session.as_ref(),
                            ttl,
                            now,
                        )?;
                        emit_for(
                            conn,
                            &settings,
                            EventKind::SignedIn,
                            &customer,
                            Channel::Password,
                            now,
                        )
                    })
                    .await?;
                if queued {
                    self.wake_webhooks();
                }
                Ok(SignIn::SignedIn {
                    customer_id,
                    session,
                })
            }
            Some(customer) if verified && customer.status == customers::Status::Disabled => {
                Ok(SignIn::Disabled {
                    customer_id: customer.id,
                })
            }
            _ => Ok(SignIn::Refused),
        }
    }

    /// The customer a live session belongs to, extending its idle timeout.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn signed_in(
        &self,
        session: TokenHash,
    ) -> Result<Option<Account>, RegistrationError> {
        let idle = secs(self.settings().session.idle_timeout);
        let hash = session;
        let found = self
            .store
            .read(move |conn| {
                let Some(id) = sessions::customer(conn, &hash, store::now(), idle)? else {
                    return Ok(None);
                };
                Ok(customers::by_id(conn, id)?)
            })
            .await?;
        if found.is_some() {
            // Extends the idle timeout. This write is session bookkeeping on
            // a request that already carried our cookie, never a business
            // change.
            self.store
                .write(move |conn| Ok(sessions::touch(conn, &session, store::now())?))
                .await?;
        }
        Ok(found.map(Account::from))
    }

    /// Ends a session (signing out).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn sign_out(&self, session: TokenHash) -> Result<(), RegistrationError> {
        self.store
            .write(move |conn| Ok(sessions::delete(conn, &session)?))
            .await?;
        Ok(())
    }
}

/// Opens a session for `customer_id` lasting `ttl` seconds, ending the one
/// the browser held before: sign-in and activation both rotate the id here.
///
/// # Errors
/// A storage failure.
pub(super) fn open_session(
    conn: &Connection,
    customer_id: i64,
    session: &TokenHash,
    previous: Option<&TokenHash>,
    ttl: i64,
    now: i64,
) -> anyhow::Result<()> {
    if let Some(previous) = previous {
        sessions::delete(conn, previous)?;
    }
    sessions::create(conn, session, customer_id, now, now + ttl)?;
    Ok(())
}

//! Signing in: the one room that turns a proof of identity into an active
//! customer and a fresh session, finds the customer a session belongs to, and
//! ends sessions.
//!
//! Today the proof is a password. Another method (an OpenID Connect sign-in,
//! a directory bind, an emailed link) is one more `Proof` variant and its
//! check in `sign_in`; the account-state rules and the session rotation
//! below are shared. Rate limits on failed attempts are the web side's.

use crate::domain::{EmailAddress, Token, TokenHash};
use crate::password::PasswordHasher;
use crate::registration::error::RegistrationError;
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
}

impl From<Customer> for Account {
    fn from(customer: Customer) -> Self {
        Self {
            id: customer.id,
            email: customer.email,
            name: customer.name,
            company: customer.company,
            service: customer.service,
        }
    }
}

impl Proof {
    /// The method's stable name, as the metrics count it.
    pub fn method(&self) -> &'static str {
        match self {
            Proof::Password { .. } => "password",
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
        }
    }
}

impl Registrar {
    /// Checks `proof` and, for an active customer, opens a new session,
    /// ending `previous_session` (a new id at every sign-in). Counted by
    /// method and result.
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
        let Proof::Password { address, password } = proof;
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
        let verified = hasher.verify(password, stored).await;
        match customer {
            Some(customer) if verified && customer.status == customers::Status::Active => {
                let session = Token::generate();
                let hash = session.hash();
                let ttl = secs(self.settings().session.absolute_timeout);
                let customer_id = customer.id;
                self.store
                    .write(move |conn| {
                        open_session(
                            conn,
                            customer_id,
                            &hash,
                            previous_session.as_ref(),
                            ttl,
                            store::now(),
                        )
                    })
                    .await?;
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

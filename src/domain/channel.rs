//! The ways a request reaches registration, with the stable names that
//! decision records (`decisions.channel`) and customers (`customers.source`)
//! store. The names never change: existing databases and fixtures read them.

/// A way in to registration, or an operator's hand on an account.
///
/// The sign-in methods that can admit a customer (Google, the directory, an
/// emailed link) record their decisions under their own channel; signing in
/// with a password records none (the account exists already).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A message to a service's support address.
    Mail,
    /// The portal's "Create an account" form.
    Portal,
    /// "Send me a new link", for a customer who already exists.
    Resend,
    /// An operator's invitation: the source of the customer it creates (the
    /// decision itself is recorded as the operator's).
    Invitation,
    /// An operator's action on an account: invite, hand-over link, enable,
    /// disable.
    Operator,
    /// The purge of customers who never activated.
    Purge,
    /// The "I did not ask for this" link in a mail: its recipient stops all
    /// mail to the address.
    OptOut,
    /// "Sign in with Google" (any OpenID Connect issuer configured as
    /// `[oidc.google]`).
    Google,
    /// "Sign in with your company account": a bind to the directory (LDAP).
    Directory,
    /// "Email me a sign-in link".
    EmailLink,
    /// "Forgot your password?": a reset link for an active customer.
    PasswordReset,
}

impl Channel {
    /// The stable name, as stored and shown by replay.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "mail",
            Channel::Portal => "portal",
            Channel::Resend => "resend",
            Channel::Invitation => "invitation",
            Channel::Operator => "operator",
            Channel::Purge => "purge",
            Channel::OptOut => "opt_out",
            Channel::Google => "google",
            Channel::Directory => "directory",
            Channel::EmailLink => "email_link",
            Channel::PasswordReset => "password_reset",
        }
    }

    /// Whether this channel signs a customer in (and so creates or activates
    /// an account on its own proof, with no activation mail).
    pub fn signs_in(self) -> bool {
        matches!(
            self,
            Channel::Google | Channel::Directory | Channel::EmailLink
        )
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

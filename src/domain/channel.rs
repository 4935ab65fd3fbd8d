//! The ways a request reaches registration, with the stable names that
//! decision records (`decisions.channel`) and customers (`customers.source`)
//! store. The names never change: existing databases and fixtures read them.

/// A way in to registration, or an operator's hand on an account.
///
/// Sign-in methods (password today; Google, a directory bind or an email
/// link later) become variants here when they record decisions.
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
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

//! A service's self-registration settings as policy reads them: who may
//! register, the switches, the denylist, the reply limits and how senders are
//! authenticated. Plain data, built once by `settings` and never changed by a
//! request; the enum settings parse themselves from their configured names.

use crate::domain::{Channel, EmailAddress, IpRange, one_of};
use std::collections::HashSet;
use std::str::FromStr;

/// Who may register themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any address.
    Anyone,
    /// Only addresses at a company's accepted domain; the customer joins it.
    Companies(Vec<Company>),
    /// Nobody: only operators add customers.
    NoOne,
}

/// A company whose staff may register, by email domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub name: String,
    /// Accepted domains, lowercase A-label form.
    pub domains: Vec<String>,
}

/// The `self_registration` setting: the kind of `Access`, before the
/// companies are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfRegistration {
    Anyone,
    Companies,
    NoOne,
}

impl FromStr for SelfRegistration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[
                ("anyone", Self::Anyone),
                ("companies", Self::Companies),
                ("no-one", Self::NoOne),
            ],
        )
    }
}

/// What a refusal looks like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalMode {
    /// `550 5.7.1` in the SMTP session.
    Reject,
    /// `250`, with the refusal only recorded.
    Drop,
}

impl FromStr for RefusalMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(text, &[("reject", Self::Reject), ("drop", Self::Drop)])
    }
}

/// Addresses and domains that may never self-register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist {
    /// Identity keys of denied addresses.
    addresses: HashSet<String>,
    /// Denied domains (A-label); their subdomains are denied too.
    domains: HashSet<String>,
}

impl Denylist {
    /// Builds a denylist from entries that are either addresses or domains.
    ///
    /// # Errors
    /// Names the first entry that is neither.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in entries {
            if entry.contains('@') {
                let address = EmailAddress::parse(entry).map_err(|e| format!("{entry:?}: {e}"))?;
                list.addresses.insert(address.identity_key());
            } else {
                let probe = EmailAddress::parse(&format!("x@{entry}"))
                    .map_err(|_| format!("{entry:?} is neither an address nor a domain"))?;
                list.domains.insert(probe.domain().to_owned());
            }
        }
        Ok(list)
    }

    /// True when the address or its domain (or a parent domain) is listed.
    pub fn denies(&self, address: &EmailAddress) -> bool {
        if self.addresses.contains(&address.identity_key()) {
            return true;
        }
        let mut domain = address.domain();
        loop {
            if self.domains.contains(domain) {
                return true;
            }
            match domain.split_once('.') {
                Some((_, parent)) if parent.contains('.') => domain = parent,
                _ => return false,
            }
        }
    }
}

/// Limits on replies, in layers: to one address (plus-tag ignored), to one
/// sender domain, for one client network, and per service. The smaller
/// layers come first, so no one domain or network can spend the service's
/// budget for everybody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Least time between two replies to one address, in seconds.
    pub min_interval_secs: i64,
    /// Most replies to one address in 24 hours.
    pub max_per_day: u32,
    /// Most replies to addresses at one domain in 24 hours.
    pub domain_per_day: u32,
    /// Most replies for requests from one client network in 24 hours.
    pub network_per_day: u32,
    /// Most replies a service sends in 24 hours, to everyone together. New
    /// senders may use `new_sender_share` of it; the rest is kept for
    /// customers we already know.
    pub service_per_day: u32,
    /// What a request over a limit becomes.
    pub action: LimitAction,
}

impl ReplyLimits {
    /// The part of the service's budget new senders may use: 90%, so the
    /// last tenth stays for customers who already exist (a pending customer
    /// asking for a new link, an active one for the sign-in note) when a
    /// flood of new senders spends the rest.
    pub fn new_sender_share(&self) -> u32 {
        self.service_per_day - self.service_per_day / 10
    }
}

/// What a request over a reply limit becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    /// `Refuse(rate_limited)`: `550 5.7.1` in the session (or a recorded drop).
    Refuse,
    /// `Suppress(rate_limited)`: `250`, recorded, never answered.
    Suppress,
}

impl FromStr for LimitAction {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[("refuse", Self::Refuse), ("suppress", Self::Suppress)],
        )
    }
}

/// A service's effective self-registration settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    pub access: Access,
    /// Self-registration by mail to the support address.
    pub email: bool,
    /// Self-registration with the portal's "Create an account" form.
    pub portal: bool,
    /// "Sign in with Google" (creates an active customer at the first
    /// sign-in of an allowed address).
    pub google: bool,
    /// "Sign in with your company account" (the directory, LDAP).
    pub directory: bool,
    /// "Email me a sign-in link", for active customers.
    pub email_link: bool,
    pub denylist: Denylist,
    pub refusal: RefusalMode,
    /// Mail already active customers a "you have an account" note.
    pub notify_active: bool,
    pub limits: ReplyLimits,
    /// Subjects (lowercase prefixes) that mark an auto-reply.
    pub auto_reply_subjects: Vec<String>,
    /// More `Received` headers than this is a mail loop.
    pub max_received: usize,
    /// How the sender of a registration mail must be authenticated.
    pub sender_auth: SenderAuthMode,
}

impl ServicePolicy {
    /// The switch a channel obeys: `email` for mail, `portal` for the
    /// "Create an account" form, and one per sign-in method. `None` for
    /// channels no switch closes: a resend and a password reset serve
    /// customers who already exist (registered by any channel, or invited),
    /// and operators are not self-registration.
    pub fn switch_for(&self, channel: Channel) -> Option<bool> {
        match channel {
            Channel::Mail => Some(self.email),
            Channel::Portal => Some(self.portal),
            Channel::Google => Some(self.google),
            Channel::Directory => Some(self.directory),
            Channel::EmailLink => Some(self.email_link),
            Channel::Resend
            | Channel::PasswordReset
            | Channel::Invitation
            | Channel::Operator
            | Channel::Purge
            | Channel::OptOut => None,
        }
    }
}

/// How a service authenticates senders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderAuthMode {
    Off,
    AuthenticationResults(TrustedResults),
    Dmarc,
}

/// The `sender_auth` setting: the kind of `SenderAuthMode`, before the
/// trusted results are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAuthKind {
    Off,
    AuthenticationResults,
    Dmarc,
}

impl FromStr for SenderAuthKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        one_of(
            text,
            &[
                ("off", Self::Off),
                ("authentication-results", Self::AuthenticationResults),
                ("dmarc", Self::Dmarc),
            ],
        )
    }
}

/// Whose `Authentication-Results` headers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedResults {
    /// The authserv-id of our own border MTA, compared case-insensitively.
    pub authserv_id: String,
    /// SMTP peers allowed to hand us such headers.
    pub trusted_relays: Vec<IpRange>,
}

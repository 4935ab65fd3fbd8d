//! What a request brings to policy besides the service's settings: who we
//! are (for loop detection), the sender's state and reply history, the
//! service's load, and the verdict of sender authentication.

use crate::domain::EmailAddress;
use crate::message::InboundMessage;

/// Facts about the service itself that loop detection needs.
#[derive(Debug, Clone, Copy)]
pub struct OwnIdentity<'a> {
    /// The service's support addresses (our `X-Loop` stamp).
    pub support_addresses: &'a [EmailAddress],
    /// The domain of Message-IDs we generate.
    pub message_id_domain: &'a str,
}

/// What we already know about the address asking to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderState {
    New,
    Pending,
    Active,
    Disabled,
}

/// Replies already sent (or queued) to the address, plus-tag ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyHistory {
    /// When the last reply was queued, in Unix seconds.
    pub last_reply_at: Option<i64>,
    /// Replies queued in the last 24 hours.
    pub replies_last_day: u32,
    /// Whether a reply to the address bounced for good.
    pub bouncing: Bouncing,
}

/// Whether replies to an address bounce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bouncing {
    #[default]
    No,
    /// A reply bounced for good and the address has sent no authenticated
    /// mail since: replies to it are suppressed.
    Yes,
    /// It bounced, and the message being decided, which passed sender
    /// authentication, shows the address is alive again.
    Lifted,
}

/// Replies the whole service queued in the last 24 hours; `None` when the
/// caller does not count them (the budget is then not applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceLoad {
    pub replies_last_day: Option<u32>,
}

/// Everything `evaluate_mail` needs besides the settings.
#[derive(Debug, Clone, Copy)]
pub struct MailRequest<'a> {
    pub message: &'a InboundMessage,
    /// The verdict of `sender_auth` for this message.
    pub auth: &'a AuthVerdict,
    pub sender: SenderState,
    pub history: ReplyHistory,
    pub load: ServiceLoad,
    /// Unix seconds.
    pub now: i64,
}

/// The outcome of sender authentication (`sender_auth` produces it, policy
/// judges it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVerdict {
    /// The service does not authenticate senders.
    Off,
    /// Authenticated; the text says how.
    Pass(String),
    /// Not authenticated (a failure, or no result at all: `none`).
    Fail(String),
    /// A DNS lookup failed for now: answer `451 4.7.1`, store nothing.
    TemporaryError(String),
}

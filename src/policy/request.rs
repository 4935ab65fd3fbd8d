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
    /// The owner of the address said "I did not ask for this": the address
    /// is never mailed again, whatever else holds, until an operator says so.
    Suppressed,
}

/// Replies already sent (or queued) to the address, plus-tag ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyHistory {
    /// When the last reply was queued, in Unix seconds.
    pub last_reply_at: Option<i64>,
    /// Replies queued in the last 24 hours.
    pub replies_last_day: u32,
}

/// How much mail the service, the sender's domain and the client's network
/// already cost in the last 24 hours, and how many new senders the whole
/// daemon registered in the last minute. A `None` is not counted (the limit
/// is then not applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceLoad {
    /// Replies the whole service queued.
    pub replies_last_day: Option<u32>,
    /// Replies the service queued to addresses at the sender's domain.
    pub domain_replies_last_day: Option<u32>,
    /// Replies the service queued for requests from the client's network
    /// (not counted when the client is unknown or a trusted relay).
    pub network_replies_last_day: Option<u32>,
    /// New senders registered in the last minute, all services together,
    /// and the most allowed (the circuit breaker).
    pub new_senders: Option<NewSenders>,
}

/// The circuit breaker's count: new senders registered in the last minute
/// and the most allowed per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSenders {
    pub last_minute: u32,
    pub per_minute: u32,
}

impl NewSenders {
    /// Whether the next new sender must wait.
    pub fn open(self) -> bool {
        self.last_minute >= self.per_minute
    }
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

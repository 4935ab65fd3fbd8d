//! The self-registration policy: a pure function from settings, the request,
//! the sender's state and reply history, and `now` to a `Decision`.
//!
//! Nothing here does IO, reads a clock or touches the database, so every rule
//! is cheap to test exhaustively and replays give the same answer twice.
//! Turning a decision into rows and SMTP replies is `registration`'s job.

use crate::domain::EmailAddress;
use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use std::collections::HashSet;

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

/// What a refusal looks like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalMode {
    /// `550 5.7.1` in the SMTP session.
    Reject,
    /// `250`, with the refusal only recorded.
    Drop,
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

/// Limits on replies to one address (plus-tag ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Least time between two replies, in seconds.
    pub min_interval_secs: i64,
    /// Most replies in 24 hours.
    pub max_per_day: u32,
}

/// A service's effective self-registration settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    pub access: Access,
    /// Self-registration by mail to the support address.
    pub email: bool,
    /// Self-registration with the portal's "Create an account" form.
    pub portal: bool,
    pub denylist: Denylist,
    pub refusal: RefusalMode,
    /// Mail already active customers a "you have an account" note.
    pub notify_active: bool,
    pub limits: ReplyLimits,
    /// Subjects (lowercase prefixes) that mark an auto-reply.
    pub auto_reply_subjects: Vec<String>,
    /// More `Received` headers than this is a mail loop.
    pub max_received: usize,
}

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
}

/// The outcome of a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create a pending customer and mail an activation link.
    Register { company: Option<String> },
    /// Already pending: replace the token and mail a new link.
    ResendActivation,
    /// Already active: create nothing; mail a sign-in note when `notify`.
    AlreadyActive { notify: bool },
    /// Automatic mail: accept, record, never answer.
    Suppress(SuppressReason),
    /// Not allowed: refuse (or drop, per `RefusalMode`).
    Refuse(RefuseReason),
}

/// Why a message is accepted but never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressReason {
    NullSender,
    AutoSubmitted,
    Precedence,
    MailingList,
    DeliveryReport,
    SystemSender,
    AutoResponseSuppress,
    OwnLoop,
    AutoReplySubject,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The channel is switched off, or nobody may self-register.
    SelfRegistrationOff,
    /// "Certain companies" only, and the domain belongs to none.
    DomainNotAllowed,
    /// On the denylist.
    Denied,
    /// From: is missing, ambiguous or not the envelope sender.
    SenderMismatch,
    /// The envelope sender cannot own an account.
    InvalidSender,
    /// The local part is not ASCII (no SMTPUTF8 yet).
    NonAsciiSender,
    /// The customer exists and is disabled.
    AccountDisabled,
    /// A reply limit for the address is reached.
    RateLimited,
    /// More `Received` headers than allowed: a loop.
    TooManyHops,
}

impl Decision {
    /// Stable name of the outcome, as recorded and shown by replay.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Register { .. } => "register",
            Decision::ResendActivation => "resend_activation",
            Decision::AlreadyActive { .. } => "already_active",
            Decision::Suppress(_) => "suppress",
            Decision::Refuse(_) => "refuse",
        }
    }

    /// Stable name of the reason, as recorded and shown by replay.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Register { .. } => "new_customer",
            Decision::ResendActivation => "pending_customer",
            Decision::AlreadyActive { notify: true } => "active_customer",
            Decision::AlreadyActive { notify: false } => "active_customer_quiet",
            Decision::Suppress(reason) => reason.as_str(),
            Decision::Refuse(reason) => reason.as_str(),
        }
    }

    /// Whether this decision queues a reply.
    pub fn sends_mail(&self) -> bool {
        matches!(
            self,
            Decision::Register { .. }
                | Decision::ResendActivation
                | Decision::AlreadyActive { notify: true }
        )
    }
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::NullSender => "null_sender",
            SuppressReason::AutoSubmitted => "auto_submitted",
            SuppressReason::Precedence => "precedence",
            SuppressReason::MailingList => "mailing_list",
            SuppressReason::DeliveryReport => "delivery_report",
            SuppressReason::SystemSender => "system_sender",
            SuppressReason::AutoResponseSuppress => "auto_response_suppress",
            SuppressReason::OwnLoop => "own_loop",
            SuppressReason::AutoReplySubject => "auto_reply_subject",
        }
    }
}

impl RefuseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::SelfRegistrationOff => "self_registration_off",
            RefuseReason::DomainNotAllowed => "domain_not_allowed",
            RefuseReason::Denied => "denied",
            RefuseReason::SenderMismatch => "sender_mismatch",
            RefuseReason::InvalidSender => "invalid_sender",
            RefuseReason::NonAsciiSender => "non_ascii_sender",
            RefuseReason::AccountDisabled => "account_disabled",
            RefuseReason::RateLimited => "rate_limited",
            RefuseReason::TooManyHops => "too_many_hops",
        }
    }
}

/// The way a registration request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Portal,
}

/// Decides what to do with a message sent to a support address.
///
/// Order matters: automatic mail is recognised first (it is never answered,
/// whatever else holds), then the sender must be who the message says it is,
/// then the common rules for every channel apply.
pub fn evaluate_mail(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
    sender: SenderState,
    history: ReplyHistory,
    now: i64,
) -> Decision {
    if message.received_count > policy.max_received {
        return Decision::Refuse(RefuseReason::TooManyHops);
    }
    if let Some(reason) = automatic_mail(policy, own, message) {
        return Decision::Suppress(reason);
    }
    let address = match &message.sender {
        EnvelopeSender::Null => return Decision::Suppress(SuppressReason::NullSender),
        EnvelopeSender::Invalid(crate::domain::AddressError::NonAsciiLocalPart) => {
            return Decision::Refuse(RefuseReason::NonAsciiSender);
        }
        EnvelopeSender::Invalid(_) => return Decision::Refuse(RefuseReason::InvalidSender),
        EnvelopeSender::Address(address) => address,
    };
    match &message.from {
        FromHeader::Single { address: from, .. } if from.same_mailbox(address) => {}
        _ => return Decision::Refuse(RefuseReason::SenderMismatch),
    }
    admit(policy, Channel::Mail, address, sender, history, now)
}

/// Decides a request made with the portal's "Create an account" form.
pub fn evaluate_portal(
    policy: &ServicePolicy,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    now: i64,
) -> Decision {
    admit(policy, Channel::Portal, address, sender, history, now)
}

/// The rules every channel shares.
fn admit(
    policy: &ServicePolicy,
    channel: Channel,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    now: i64,
) -> Decision {
    let channel_on = match channel {
        Channel::Mail => policy.email,
        Channel::Portal => policy.portal,
    };
    if !channel_on {
        return Decision::Refuse(RefuseReason::SelfRegistrationOff);
    }
    if policy.denylist.denies(address) {
        return Decision::Refuse(RefuseReason::Denied);
    }
    let decision = match sender {
        SenderState::Disabled => return Decision::Refuse(RefuseReason::AccountDisabled),
        SenderState::Active => Decision::AlreadyActive {
            notify: policy.notify_active,
        },
        // A pending customer was admitted once (perhaps invited by an
        // operator); a new link is theirs even where access has since closed.
        SenderState::Pending => Decision::ResendActivation,
        SenderState::New => match &policy.access {
            Access::NoOne => return Decision::Refuse(RefuseReason::SelfRegistrationOff),
            Access::Anyone => Decision::Register { company: None },
            Access::Companies(companies) => match company_for(companies, address) {
                Some(company) => Decision::Register {
                    company: Some(company.name.clone()),
                },
                None => return Decision::Refuse(RefuseReason::DomainNotAllowed),
            },
        },
    };
    if decision.sends_mail() && !within_limits(policy.limits, history, now) {
        return match decision {
            Decision::AlreadyActive { .. } => Decision::AlreadyActive { notify: false },
            _ => Decision::Refuse(RefuseReason::RateLimited),
        };
    }
    decision
}

fn company_for<'a>(companies: &'a [Company], address: &EmailAddress) -> Option<&'a Company> {
    companies.iter().find(|company| {
        company
            .domains
            .iter()
            .any(|domain| domain == address.domain())
    })
}

fn within_limits(limits: ReplyLimits, history: ReplyHistory, now: i64) -> bool {
    let spaced = history
        .last_reply_at
        .is_none_or(|last| now - last >= limits.min_interval_secs);
    spaced && history.replies_last_day < limits.max_per_day
}

/// Recognises mail that must never be answered (RFC 3834 and common practice).
fn automatic_mail(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> Option<SuppressReason> {
    if message
        .auto_submitted
        .as_deref()
        .is_some_and(|value| value != "no")
    {
        return Some(SuppressReason::AutoSubmitted);
    }
    if message
        .precedence
        .as_deref()
        .is_some_and(|value| matches!(value, "bulk" | "list" | "junk" | "auto_reply"))
    {
        return Some(SuppressReason::Precedence);
    }
    if message.has_list_headers {
        return Some(SuppressReason::MailingList);
    }
    if message.is_report {
        return Some(SuppressReason::DeliveryReport);
    }
    if let EnvelopeSender::Null = message.sender {
        return Some(SuppressReason::NullSender);
    }
    if let EnvelopeSender::Address(address) = &message.sender
        && is_system_sender(address.local_part())
    {
        return Some(SuppressReason::SystemSender);
    }
    if message
        .auto_response_suppress
        .as_deref()
        .is_some_and(|value| {
            value
                .split(',')
                .map(str::trim)
                .any(|token| token.eq_ignore_ascii_case("all") || token.eq_ignore_ascii_case("oof"))
        })
    {
        return Some(SuppressReason::AutoResponseSuppress);
    }
    let stamped_by_us = message.loop_stamps.iter().any(|stamp| {
        EmailAddress::parse(stamp.trim_matches(|c| c == '<' || c == '>')).is_ok_and(|stamp| {
            own.support_addresses
                .iter()
                .any(|own| own.identity_key() == stamp.identity_key())
        })
    });
    let our_message_id = message.message_id.as_deref().is_some_and(|id| {
        id.rsplit_once('@')
            .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(own.message_id_domain))
    });
    if stamped_by_us || our_message_id {
        return Some(SuppressReason::OwnLoop);
    }
    if let Some(subject) = &message.subject {
        let subject = subject.trim().to_lowercase();
        if policy
            .auto_reply_subjects
            .iter()
            .any(|prefix| subject.starts_with(prefix.as_str()))
        {
            return Some(SuppressReason::AutoReplySubject);
        }
    }
    None
}

/// Local parts that belong to machines, not people.
fn is_system_sender(local: &str) -> bool {
    let local = local.to_ascii_lowercase();
    matches!(
        local.as_str(),
        "mailer-daemon"
            | "postmaster"
            | "noreply"
            | "no-reply"
            | "no_reply"
            | "donotreply"
            | "do-not-reply"
    ) || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-owner")
        || local.starts_with("bounce")
}

#[cfg(test)]
mod tests;

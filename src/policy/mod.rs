//! The self-registration policy: a pure function from settings, the request,
//! the sender's state and reply history, and `now` to a `Decision`.
//!
//! Nothing here does IO, reads a clock or touches the database, so every rule
//! is cheap to test exhaustively and replays give the same answer twice.
//! Turning a decision into rows and SMTP replies is `registration`'s job; the
//! DNS work of sender authentication is `sender_auth`'s, whose verdict comes
//! in as an argument.
//!
//! `evaluate_mail_traced` is the one implementation of the mail rules: it
//! returns the decision together with every rule it checked, in order.
//! `evaluate_mail` (the daemon) and `registrar explain` (operators) both call
//! it, so what explain prints is what the daemon did.
//!
//! `decision` holds the outcomes and their stable names, `automatic` the
//! recognition of automatic mail, `trace` the record of rules checked.

use crate::domain::{AddressError, EmailAddress};
use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use crate::sender_auth::{AuthVerdict, SenderAuthMode};
use std::collections::HashSet;
use std::fmt::Write as _;

mod automatic;
mod decision;
mod trace;

use automatic::automatic_mail;
pub use decision::*;
use trace::Trace;
pub use trace::{Check, Evaluation, MAIL_RULES};

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

/// Limits on replies to one address (plus-tag ignored) and per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Least time between two replies to one address, in seconds.
    pub min_interval_secs: i64,
    /// Most replies to one address in 24 hours.
    pub max_per_day: u32,
    /// Most replies a service sends in 24 hours, to everyone together.
    pub service_per_day: u32,
    /// What a request over a limit becomes.
    pub action: LimitAction,
}

/// What a request over a reply limit becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    /// `Refuse(rate_limited)`: `550 5.7.1` in the session (or a recorded drop).
    Refuse,
    /// `Suppress(rate_limited)`: `250`, recorded, never answered.
    Suppress,
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
    /// How the sender of a registration mail must be authenticated.
    pub sender_auth: SenderAuthMode,
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

/// The way a registration request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Portal,
}

/// Decides what to do with a message sent to a support address.
pub fn evaluate_mail(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    request: MailRequest<'_>,
) -> Decision {
    evaluate_mail_traced(policy, own, request).decision
}

/// `evaluate_mail` with every rule it checked.
///
/// Order matters: a mail loop is refused first; automatic mail is recognised
/// next (it is never answered, whatever else holds); then the sender must be
/// who the message says it is and be authenticated; then the rules every
/// channel shares apply.
pub fn evaluate_mail_traced(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    request: MailRequest<'_>,
) -> Evaluation {
    let mut trace = Trace::default();
    let decision = match screen(policy, own, request.message, &mut trace) {
        Err(decision) => decision,
        Ok(address) => match authenticated(request.auth, &mut trace) {
            Some(decision) => decision,
            None => admit(
                policy,
                Channel::Mail,
                address,
                request.sender,
                request.history,
                request.load,
                request.now,
                &mut trace,
            ),
        },
    };
    Evaluation {
        decision,
        checks: trace.checks,
    }
}

/// Whether the message gets as far as sender authentication: when it does
/// not, the decision is already made and no DNS lookup is worth doing.
pub fn needs_sender_auth(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> bool {
    policy.sender_auth != SenderAuthMode::Off
        && screen(policy, own, message, &mut Trace::default()).is_ok()
}

/// Decides a request made with the portal's "Create an account" form. The
/// service budget is not applied here (the caller does not count it yet).
pub fn evaluate_portal(
    policy: &ServicePolicy,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    load: ServiceLoad,
    now: i64,
) -> Decision {
    admit(
        policy,
        Channel::Portal,
        address,
        sender,
        history,
        load,
        now,
        &mut Trace::default(),
    )
}

/// The rules that read only the message: loops, automatic mail, and who the
/// sender is. `Ok` carries the envelope sender that may register.
fn screen<'m>(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &'m InboundMessage,
    trace: &mut Trace,
) -> Result<&'m EmailAddress, Decision> {
    let hops = format!(
        "{} Received headers, at most {}",
        message.received_count, policy.max_received
    );
    if message.received_count > policy.max_received {
        return Err(trace.decide(
            "received_hops",
            hops,
            Decision::Refuse(RefuseReason::TooManyHops),
        ));
    }
    trace.pass("received_hops", hops);
    if let Some(reason) = automatic_mail(policy, own, message, trace) {
        return Err(Decision::Suppress(reason));
    }
    let address = match &message.sender {
        EnvelopeSender::Null => {
            // Already suppressed above; kept so the match is complete.
            return Err(Decision::Suppress(SuppressReason::NullSender));
        }
        EnvelopeSender::Invalid(AddressError::NonAsciiLocalPart) => {
            return Err(trace.decide(
                "envelope_sender",
                "the local part is not ASCII",
                Decision::Refuse(RefuseReason::NonAsciiSender),
            ));
        }
        EnvelopeSender::Invalid(error) => {
            return Err(trace.decide(
                "envelope_sender",
                error.to_string(),
                Decision::Refuse(RefuseReason::InvalidSender),
            ));
        }
        EnvelopeSender::Address(address) => address,
    };
    trace.pass("envelope_sender", format!("<{address}> can own an account"));
    match &message.from {
        FromHeader::Single { address: from, .. } if from.same_mailbox(address) => {
            trace.pass(
                "from_is_envelope_sender",
                format!("From: <{from}> is the envelope sender"),
            );
            Ok(address)
        }
        other => {
            let detail = match other {
                FromHeader::Missing => "no From address".to_owned(),
                FromHeader::Ambiguous => "more than one From header or address".to_owned(),
                FromHeader::Invalid(error) => format!("the From address is not usable: {error}"),
                FromHeader::Single { address: from, .. } => {
                    format!("From: <{from}> is not the envelope sender <{address}>")
                }
            };
            Err(trace.decide(
                "from_is_envelope_sender",
                detail,
                Decision::Refuse(RefuseReason::SenderMismatch),
            ))
        }
    }
}

/// The sender-authentication rule; `None` when it passes.
fn authenticated(verdict: &AuthVerdict, trace: &mut Trace) -> Option<Decision> {
    match verdict {
        AuthVerdict::Off => {
            trace.pass(
                "sender_authentication",
                "off: senders are not authenticated",
            );
            None
        }
        AuthVerdict::Pass(detail) => {
            trace.pass("sender_authentication", format!("pass: {detail}"));
            None
        }
        AuthVerdict::Fail(detail) => Some(trace.decide(
            "sender_authentication",
            format!("not authenticated: {detail}"),
            Decision::Refuse(RefuseReason::NotAuthenticated),
        )),
        AuthVerdict::TemporaryError(detail) => Some(trace.decide(
            "sender_authentication",
            format!("temporary error: {detail}"),
            Decision::Defer(DeferReason::AuthTemporaryError),
        )),
    }
}

/// The rules every channel shares.
#[allow(clippy::too_many_arguments)] // each argument is a distinct input of the rules
fn admit(
    policy: &ServicePolicy,
    channel: Channel,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    load: ServiceLoad,
    now: i64,
    trace: &mut Trace,
) -> Decision {
    let channel_on = match channel {
        Channel::Mail => policy.email,
        Channel::Portal => policy.portal,
    };
    if !channel_on {
        return trace.decide(
            "channel_enabled",
            format!("self-registration by {channel:?} is off").to_lowercase(),
            Decision::Refuse(RefuseReason::SelfRegistrationOff),
        );
    }
    trace.pass(
        "channel_enabled",
        format!("self-registration by {channel:?} is on").to_lowercase(),
    );
    if policy.denylist.denies(address) {
        return trace.decide(
            "denylist",
            format!("<{}> or its domain is listed", address.identity_key()),
            Decision::Refuse(RefuseReason::Denied),
        );
    }
    trace.pass("denylist", "not listed");
    let decision = match sender {
        SenderState::Disabled => {
            return trace.decide(
                "sender_state",
                "the customer is disabled",
                Decision::Refuse(RefuseReason::AccountDisabled),
            );
        }
        SenderState::Active => {
            trace.pass("sender_state", "the customer is active");
            trace.pass("access", "not needed: the customer exists");
            Decision::AlreadyActive {
                notify: policy.notify_active,
            }
        }
        // A pending customer was admitted once (perhaps invited by an
        // operator); a new link is theirs even where access has since closed.
        SenderState::Pending => {
            trace.pass(
                "sender_state",
                "the customer is pending: a new link replaces the old one",
            );
            trace.pass("access", "not needed: the customer exists");
            Decision::ResendActivation
        }
        SenderState::New => {
            trace.pass("sender_state", "no customer with this address yet");
            match &policy.access {
                Access::NoOne => {
                    return trace.decide(
                        "access",
                        "nobody may self-register",
                        Decision::Refuse(RefuseReason::SelfRegistrationOff),
                    );
                }
                Access::Anyone => {
                    trace.pass("access", "anyone may self-register");
                    Decision::Register { company: None }
                }
                Access::Companies(companies) => match company_for(companies, address) {
                    Some(company) => {
                        trace.pass(
                            "access",
                            format!("{} is a domain of {}", address.domain(), company.name),
                        );
                        Decision::Register {
                            company: Some(company.name.clone()),
                        }
                    }
                    None => {
                        return trace.decide(
                            "access",
                            format!("{} belongs to no company", address.domain()),
                            Decision::Refuse(RefuseReason::DomainNotAllowed),
                        );
                    }
                },
            }
        }
    };
    if !decision.sends_mail() {
        return decision;
    }
    limit(policy.limits, decision, history, load, now, trace)
}

/// The reply limits: per address (spacing, per day), then per service.
fn limit(
    limits: ReplyLimits,
    decision: Decision,
    history: ReplyHistory,
    load: ServiceLoad,
    now: i64,
    trace: &mut Trace,
) -> Decision {
    let over = |trace: &mut Trace, rule, detail: String, refuse, suppress| {
        let limited = match (&decision, limits.action) {
            // A sign-in note is a courtesy: over a limit it is simply not sent.
            (Decision::AlreadyActive { .. }, _) => Decision::AlreadyActive { notify: false },
            (_, LimitAction::Refuse) => Decision::Refuse(refuse),
            (_, LimitAction::Suppress) => Decision::Suppress(suppress),
        };
        trace.decide(rule, detail, limited)
    };
    match history.last_reply_at {
        Some(last) if now - last < limits.min_interval_secs => {
            return over(
                trace,
                "reply_interval",
                format!(
                    "last reply {}s ago, at least {}s apart",
                    now - last,
                    limits.min_interval_secs
                ),
                RefuseReason::RateLimited,
                SuppressReason::RateLimited,
            );
        }
        Some(last) => trace.pass("reply_interval", format!("last reply {}s ago", now - last)),
        None => trace.pass("reply_interval", "no reply in the last 24 hours"),
    }
    let per_day = format!(
        "{} replies in 24 hours, at most {}",
        history.replies_last_day, limits.max_per_day
    );
    if history.replies_last_day >= limits.max_per_day {
        return over(
            trace,
            "replies_per_day",
            per_day,
            RefuseReason::RateLimited,
            SuppressReason::RateLimited,
        );
    }
    trace.pass("replies_per_day", per_day);
    match load.replies_last_day {
        Some(count) if count >= limits.service_per_day => over(
            trace,
            "service_budget",
            format!(
                "the service sent {count} replies in 24 hours, at most {}",
                limits.service_per_day
            ),
            RefuseReason::ServiceBudget,
            SuppressReason::ServiceBudget,
        ),
        Some(count) => {
            trace.pass(
                "service_budget",
                format!("{count} of {} replies used", limits.service_per_day),
            );
            decision
        }
        None => {
            trace.pass("service_budget", "not counted on this channel");
            decision
        }
    }
}

fn company_for<'a>(companies: &'a [Company], address: &EmailAddress) -> Option<&'a Company> {
    companies.iter().find(|company| {
        company
            .domains
            .iter()
            .any(|domain| domain == address.domain())
    })
}

#[cfg(test)]
mod tests;

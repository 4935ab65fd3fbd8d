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

use crate::domain::{AddressError, EmailAddress};
use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use crate::sender_auth::{AuthVerdict, SenderAuthMode};
use std::collections::HashSet;
use std::fmt::Write as _;

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
    /// Cannot decide now (a DNS lookup failed for the moment): answer `4xx`
    /// and store nothing, so the sender retries.
    Defer(DeferReason),
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
    /// A reply limit for the address is reached (`LimitAction::Suppress`).
    RateLimited,
    /// The service's daily reply budget is spent (`LimitAction::Suppress`).
    ServiceBudget,
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
    /// The service's daily reply budget is spent.
    ServiceBudget,
    /// More `Received` headers than allowed: a loop.
    TooManyHops,
    /// Sender authentication did not pass.
    NotAuthenticated,
}

/// Why a decision is put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    /// A DNS lookup for SPF, DKIM or DMARC failed temporarily.
    AuthTemporaryError,
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
            Decision::Defer(_) => "defer",
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
            Decision::Defer(reason) => reason.as_str(),
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
            SuppressReason::RateLimited => "rate_limited",
            SuppressReason::ServiceBudget => "service_budget",
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
            RefuseReason::ServiceBudget => "service_budget",
            RefuseReason::TooManyHops => "too_many_hops",
            RefuseReason::NotAuthenticated => "not_authenticated",
        }
    }
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::AuthTemporaryError => "sender_auth_temporary_error",
        }
    }
}

/// The way a registration request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Portal,
}

/// Every rule of `evaluate_mail_traced`, in the order it checks them.
pub const MAIL_RULES: &[&str] = &[
    "received_hops",
    "auto_submitted",
    "precedence",
    "list_headers",
    "delivery_report",
    "null_sender",
    "system_sender",
    "auto_response_suppress",
    "own_loop_stamp",
    "own_message_id",
    "auto_reply_subject",
    "envelope_sender",
    "from_is_envelope_sender",
    "sender_authentication",
    "channel_enabled",
    "denylist",
    "sender_state",
    "access",
    "reply_interval",
    "replies_per_day",
    "service_budget",
];

/// One rule as checked: its name, whether it decided, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A name from `MAIL_RULES`.
    pub rule: &'static str,
    /// True when this rule made (or changed) the decision.
    pub decided: bool,
    /// What the rule saw, for a person.
    pub detail: String,
}

/// A decision and the rules that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// The rules checked, in order; rules after the deciding one are absent.
    pub checks: Vec<Check>,
}

/// Collects checks while the rules run.
#[derive(Default)]
struct Trace {
    checks: Vec<Check>,
}

impl Trace {
    fn pass(&mut self, rule: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            rule,
            decided: false,
            detail: detail.into(),
        });
    }

    fn decide(
        &mut self,
        rule: &'static str,
        detail: impl Into<String>,
        decision: Decision,
    ) -> Decision {
        self.checks.push(Check {
            rule,
            decided: true,
            detail: detail.into(),
        });
        decision
    }
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

/// Recognises mail that must never be answered (RFC 3834 and common
/// practice), recording each rule it checks.
fn automatic_mail(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
    trace: &mut Trace,
) -> Option<SuppressReason> {
    let rule = |trace: &mut Trace, name, hit: bool, detail: String, reason| {
        if hit {
            trace.checks.push(Check {
                rule: name,
                decided: true,
                detail,
            });
            Some(reason)
        } else {
            trace.pass(name, detail);
            None
        }
    };
    let auto_submitted = message.auto_submitted.as_deref();
    rule(
        trace,
        "auto_submitted",
        auto_submitted.is_some_and(|value| value != "no"),
        match auto_submitted {
            Some(value) => format!("Auto-Submitted: {value}"),
            None => "no Auto-Submitted header".to_owned(),
        },
        SuppressReason::AutoSubmitted,
    )
    .or_else(|| {
        let precedence = message.precedence.as_deref();
        rule(
            trace,
            "precedence",
            precedence
                .is_some_and(|value| matches!(value, "bulk" | "list" | "junk" | "auto_reply")),
            match precedence {
                Some(value) => format!("Precedence: {value}"),
                None => "no Precedence header".to_owned(),
            },
            SuppressReason::Precedence,
        )
    })
    .or_else(|| {
        rule(
            trace,
            "list_headers",
            message.has_list_headers,
            if message.has_list_headers {
                "a List-* header is present".to_owned()
            } else {
                "no List-* header".to_owned()
            },
            SuppressReason::MailingList,
        )
    })
    .or_else(|| {
        rule(
            trace,
            "delivery_report",
            message.is_report,
            if message.is_report {
                "multipart/report (a DSN or MDN)".to_owned()
            } else {
                "not multipart/report".to_owned()
            },
            SuppressReason::DeliveryReport,
        )
    })
    .or_else(|| {
        let null = matches!(message.sender, EnvelopeSender::Null);
        rule(
            trace,
            "null_sender",
            null,
            if null {
                "MAIL FROM:<>".to_owned()
            } else {
                "the envelope sender is not null".to_owned()
            },
            SuppressReason::NullSender,
        )
    })
    .or_else(|| {
        let local = match &message.sender {
            EnvelopeSender::Address(address) => Some(address.local_part()),
            _ => None,
        };
        rule(
            trace,
            "system_sender",
            local.is_some_and(is_system_sender),
            match local {
                Some(local) if is_system_sender(local) => format!("{local} is a machine's mailbox"),
                Some(local) => format!("{local} is not a machine's mailbox"),
                None => "no usable envelope sender".to_owned(),
            },
            SuppressReason::SystemSender,
        )
    })
    .or_else(|| {
        let value = message.auto_response_suppress.as_deref();
        let hit = value.is_some_and(|value| {
            value
                .split(',')
                .map(str::trim)
                .any(|token| token.eq_ignore_ascii_case("all") || token.eq_ignore_ascii_case("oof"))
        });
        rule(
            trace,
            "auto_response_suppress",
            hit,
            match value {
                Some(value) => format!("X-Auto-Response-Suppress: {value}"),
                None => "no X-Auto-Response-Suppress header".to_owned(),
            },
            SuppressReason::AutoResponseSuppress,
        )
    })
    .or_else(|| {
        let stamped = message.loop_stamps.iter().find(|stamp| {
            EmailAddress::parse(stamp.trim_matches(|c| c == '<' || c == '>')).is_ok_and(|stamp| {
                own.support_addresses
                    .iter()
                    .any(|own| own.identity_key() == stamp.identity_key())
            })
        });
        rule(
            trace,
            "own_loop_stamp",
            stamped.is_some(),
            match stamped {
                Some(stamp) => format!("X-Loop: {stamp} is our own stamp"),
                None => format!("{} X-Loop headers, none ours", message.loop_stamps.len()),
            },
            SuppressReason::OwnLoop,
        )
    })
    .or_else(|| {
        let id = message.message_id.as_deref();
        let ours = id.is_some_and(|id| {
            id.rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(own.message_id_domain))
        });
        let mut detail = String::new();
        match id {
            Some(id) if ours => {
                let _ = write!(
                    detail,
                    "Message-ID <{id}> is at our domain {}",
                    own.message_id_domain
                );
            }
            Some(_) => {
                let _ = write!(detail, "Message-ID is not at {}", own.message_id_domain);
            }
            None => detail.push_str("no Message-ID"),
        }
        rule(
            trace,
            "own_message_id",
            ours,
            detail,
            SuppressReason::OwnLoop,
        )
    })
    .or_else(|| {
        let subject = message.subject.as_deref().map(|s| s.trim().to_lowercase());
        let matched = subject.as_deref().and_then(|subject| {
            policy
                .auto_reply_subjects
                .iter()
                .find(|prefix| subject.starts_with(prefix.as_str()))
        });
        rule(
            trace,
            "auto_reply_subject",
            matched.is_some(),
            match matched {
                Some(prefix) => format!("the subject starts with {prefix:?}"),
                None => "the subject is not a known auto-reply subject".to_owned(),
            },
            SuppressReason::AutoReplySubject,
        )
    })
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

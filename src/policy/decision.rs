//! The outcome of a registration request and its reasons, with the stable
//! names that records, replay and explain use.

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
    /// The daily budget for the sender's domain is spent.
    DomainBudget,
    /// The daily budget for the client's network is spent.
    NetworkBudget,
    /// The owner of the address asked never to be mailed again.
    OptedOut,
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
    /// From: is missing or ambiguous, or the envelope sender names another
    /// mailbox (without sender authentication: any other address).
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
    /// The daily budget for the sender's domain is spent.
    DomainBudget,
    /// The daily budget for the client's network is spent.
    NetworkBudget,
    /// More `Received` headers than allowed: a loop.
    TooManyHops,
    /// Sender authentication did not pass.
    NotAuthenticated,
    /// A forwarder rewrote the envelope sender (SRS) and From is not
    /// authenticated: who sent it cannot be told, and SRS is never decoded.
    ForwardedNotAuthenticated,
}

/// Why a decision is put off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    /// A DNS lookup for SPF, DKIM or DMARC failed temporarily.
    AuthTemporaryError,
    /// Too many new senders registered in the last minute (the circuit
    /// breaker): a flood must never become a flood of outbound mail.
    NewSenderFlood,
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
            SuppressReason::DomainBudget => "domain_budget",
            SuppressReason::NetworkBudget => "network_budget",
            SuppressReason::OptedOut => "opted_out",
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
            RefuseReason::DomainBudget => "domain_budget",
            RefuseReason::NetworkBudget => "network_budget",
            RefuseReason::TooManyHops => "too_many_hops",
            RefuseReason::NotAuthenticated => "not_authenticated",
            RefuseReason::ForwardedNotAuthenticated => "forwarded_not_authenticated",
        }
    }
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::AuthTemporaryError => "sender_auth_temporary_error",
            DeferReason::NewSenderFlood => "new_sender_flood",
        }
    }
}

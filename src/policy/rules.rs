//! The rules: mail is screened (loops, automatic mail, who the sender is),
//! its sender's authentication judged, and then every channel shares the same
//! admission rules (the channel's switch, denylist, account state, access) and
//! reply limits. Each rule records what it saw in the trace.
//!
//! Who registers by mail: the single From address, and the reply goes to it
//! and to no other. Without sender authentication From registers only when
//! the envelope sender names it (compared by identity, a BATV tag removed).
//! When authentication passes for the From domain, an envelope that a
//! forwarder rewrote (SRS) or that is in another domain does not matter.

use crate::domain::{AddressError, Channel, EmailAddress, EnvelopeMatch, ReturnPath};
use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use crate::policy::automatic::automatic_mail;
use crate::policy::config::{
    Access, Company, LimitAction, ReplyLimits, SenderAuthMode, ServicePolicy,
};
use crate::policy::decision::{Decision, DeferReason, RefuseReason, SuppressReason};
use crate::policy::request::{
    AuthVerdict, Bouncing, MailRequest, OwnIdentity, ReplyHistory, SenderState, ServiceLoad,
};
use crate::policy::trace::{Evaluation, Trace};

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
        Ok(screened) => match authenticated(request.auth, &screened, &mut trace) {
            Some(decision) => decision,
            None => admit(
                policy,
                Channel::Mail,
                screened.from,
                request.sender,
                lift_bouncing(request.history, request.auth),
                request.load,
                request.now,
                &mut trace,
            ),
        },
    };
    Evaluation {
        decision,
        checks: trace.checks,
        note: trace.note,
    }
}

/// A bouncing address that sends mail passing sender authentication shows
/// it is alive again: its replies are no longer suppressed (registration
/// clears the record when it applies the decision).
fn lift_bouncing(history: ReplyHistory, auth: &AuthVerdict) -> ReplyHistory {
    if history.bouncing == Bouncing::Yes && matches!(auth, AuthVerdict::Pass(_)) {
        return ReplyHistory {
            bouncing: Bouncing::Lifted,
            ..history
        };
    }
    history
}

/// Whether the message gets as far as sender authentication: when it does
/// not, the decision is already made and no DNS lookup is worth doing. It
/// does whenever the envelope sender might not matter (a forwarder's, another
/// domain's), as only a verdict for the From domain can let From register.
pub fn needs_sender_auth(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> bool {
    policy.sender_auth != SenderAuthMode::Off
        && screen(policy, own, message, &mut Trace::default()).is_ok()
}

/// Whether the message passes the screen that needs no facts (a single
/// From, not automatic, no loop, the envelope may name From): only then can
/// a decision on it reply, so only then is a reply worth preparing.
pub fn may_be_answered(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> bool {
    screen(policy, own, message, &mut Trace::default()).is_ok()
}

/// Decides a request made with the portal's "Create an account" form. The
/// service budget applies when the caller counts it (`load`).
pub fn evaluate_portal(
    policy: &ServicePolicy,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    load: ServiceLoad,
    now: i64,
) -> Decision {
    evaluate_request(policy, Channel::Portal, address, sender, history, load, now)
}

/// Decides a request that arrived by `channel` for `address` (the portal's
/// form, a resend): the rules every channel shares, with the switch that
/// channel obeys (`ServicePolicy::switch_for`).
pub fn evaluate_request(
    policy: &ServicePolicy,
    channel: Channel,
    address: &EmailAddress,
    sender: SenderState,
    history: ReplyHistory,
    load: ServiceLoad,
    now: i64,
) -> Decision {
    admit(
        policy,
        channel,
        address,
        sender,
        history,
        load,
        now,
        &mut Trace::default(),
    )
}

/// What screening found: the address that may register and how the
/// envelope sender relates to it.
struct Screened<'m> {
    /// The single From address: the one that registers and gets the reply.
    from: &'m EmailAddress,
    envelope: ReturnPath,
    matched: EnvelopeMatch,
}

/// Decides a sign-in by `channel` (Google, the directory, an emailed link)
/// for `address`, whose owner has just proven it: the rules every channel
/// shares, without the reply limits, because a sign-in sends no mail. A new
/// address that access admits becomes `Register`, a pending customer
/// `ResendActivation` (activated by the proof), an active one
/// `AlreadyActive`.
pub fn evaluate_sign_in(
    policy: &ServicePolicy,
    channel: Channel,
    address: &EmailAddress,
    sender: SenderState,
) -> Decision {
    admit_unlimited(policy, channel, address, sender, &mut Trace::default())
}

/// The rules that read only the message: loops, automatic mail, and who the
/// sender is. `Ok` carries the From address that may register.
fn screen<'m>(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &'m InboundMessage,
    trace: &mut Trace,
) -> Result<Screened<'m>, Decision> {
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
    let envelope = match &message.sender {
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
        EnvelopeSender::Address(address) => ReturnPath::read(address),
    };
    trace.pass("envelope_sender", envelope.to_string());
    let from = match &message.from {
        FromHeader::Single { address, .. } => address,
        FromHeader::Missing => return Err(no_single_from("no From address".to_owned(), trace)),
        FromHeader::Ambiguous => {
            return Err(no_single_from(
                "more than one From header or address".to_owned(),
                trace,
            ));
        }
        FromHeader::Invalid(error) => {
            return Err(no_single_from(
                format!("the From address is not usable: {error}"),
                trace,
            ));
        }
    };
    let matched = envelope.against(from);
    let shown = envelope.envelope();
    match matched {
        EnvelopeMatch::Same => trace.pass(
            "envelope_names_from",
            format!("From: <{from}> is the envelope sender"),
        ),
        EnvelopeMatch::OtherCase => {
            trace.pass(
                "envelope_names_from",
                format!(
                    "From: <{from}> is the envelope sender <{shown}>, \
                     the case of the local part aside"
                ),
            );
            trace.note = Some(format!(
                "envelope <{shown}>: From but for the case of the local part"
            ));
        }
        EnvelopeMatch::Untagged(tag) => {
            trace.pass(
                "envelope_names_from",
                format!("From: <{from}> is the envelope sender once its {tag} tag is removed"),
            );
            trace.note = Some(format!("envelope <{shown}>: {tag} tag removed"));
        }
        EnvelopeMatch::Forwarder(scheme) => trace.pass(
            "envelope_names_from",
            format!(
                "the envelope sender was rewritten by a forwarder ({scheme}) and is not decoded: \
                 From: <{from}> registers only if sender authentication passes"
            ),
        ),
        EnvelopeMatch::OtherDomain => trace.pass(
            "envelope_names_from",
            format!(
                "the envelope sender <{shown}> is in another domain: \
                 From: <{from}> registers only if sender authentication passes"
            ),
        ),
        EnvelopeMatch::OtherMailbox => {
            let named = envelope.mailbox().unwrap_or(shown);
            let detail = if named == shown {
                format!("From: <{from}> is not the envelope sender <{shown}>")
            } else {
                format!(
                    "From: <{from}> is not <{named}>, the envelope sender <{shown}> without its tag"
                )
            };
            trace.note = Some(format!("envelope <{shown}>: another mailbox than From"));
            return Err(trace.decide(
                "envelope_names_from",
                detail,
                Decision::Refuse(RefuseReason::SenderMismatch),
            ));
        }
    }
    Ok(Screened {
        from,
        envelope,
        matched,
    })
}

/// Without a single usable From address nobody registers.
fn no_single_from(detail: String, trace: &mut Trace) -> Decision {
    trace.decide(
        "envelope_names_from",
        detail,
        Decision::Refuse(RefuseReason::SenderMismatch),
    )
}

/// The sender-authentication rule; `None` when it passes.
///
/// When the envelope names From, a configured authentication must pass (or be
/// `off`). When it does not (a forwarder's, another domain's), only a pass
/// for the From domain lets From register: the envelope then does not matter,
/// and the reply goes to From all the same.
fn authenticated(
    verdict: &AuthVerdict,
    screened: &Screened<'_>,
    trace: &mut Trace,
) -> Option<Decision> {
    if !screened.matched.names_from() {
        return envelope_by_authentication(verdict, screened, trace);
    }
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

/// Sender authentication for an envelope that does not name From.
fn envelope_by_authentication(
    verdict: &AuthVerdict,
    screened: &Screened<'_>,
    trace: &mut Trace,
) -> Option<Decision> {
    let shown = screened.envelope.envelope();
    // Refusals name what would have helped: for a forwarder's envelope (never
    // decoded) that is the portal; for another domain, authentication when
    // the service has it, else an envelope that names From.
    let (envelope, when_off, when_failed) = match screened.matched {
        EnvelopeMatch::Forwarder(scheme) => (
            format!("envelope <{shown}>: rewritten by a forwarder ({scheme}), not decoded"),
            RefuseReason::ForwardedNotAuthenticated,
            RefuseReason::ForwardedNotAuthenticated,
        ),
        _ => (
            format!("envelope <{shown}>: another domain than From"),
            RefuseReason::SenderMismatch,
            RefuseReason::NotAuthenticated,
        ),
    };
    match verdict {
        AuthVerdict::Pass(detail) => {
            trace.pass(
                "sender_authentication",
                format!("pass: {detail}; so the envelope sender does not matter"),
            );
            trace.note = Some(format!(
                "{envelope}; it did not matter: From is authenticated ({detail})"
            ));
            None
        }
        AuthVerdict::Off => {
            trace.note = Some(format!("{envelope}; senders are not authenticated"));
            Some(trace.decide(
                "sender_authentication",
                "off: without sender authentication, From registers only when it is the envelope sender",
                Decision::Refuse(when_off),
            ))
        }
        AuthVerdict::Fail(detail) => {
            trace.note = Some(format!("{envelope}; From is not authenticated"));
            Some(trace.decide(
                "sender_authentication",
                format!("not authenticated: {detail}"),
                Decision::Refuse(when_failed),
            ))
        }
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
    let decision = admit_unlimited(policy, channel, address, sender, trace);
    if !decision.sends_mail() {
        return decision;
    }
    let new_sender = sender == SenderState::New;
    match load.new_senders {
        Some(count) if new_sender => {
            let detail = format!(
                "{} new senders registered in the last minute, at most {}",
                count.last_minute, count.per_minute
            );
            if count.open() {
                return trace.decide(
                    "circuit_breaker",
                    detail,
                    Decision::Defer(DeferReason::NewSenderFlood),
                );
            }
            trace.pass("circuit_breaker", detail);
        }
        Some(_) => trace.pass("circuit_breaker", "not a new sender"),
        None => trace.pass("circuit_breaker", "not counted here"),
    }
    limit(
        policy.limits,
        decision,
        new_sender,
        history,
        load,
        now,
        trace,
    )
}

/// The admission rules: the channel's switch, the denylist, the account's
/// state and access.
fn admit_unlimited(
    policy: &ServicePolicy,
    channel: Channel,
    address: &EmailAddress,
    sender: SenderState,
    trace: &mut Trace,
) -> Decision {
    match policy.switch_for(channel) {
        Some(false) => {
            return trace.decide(
                "channel_enabled",
                format!("self-registration by {channel} is off"),
                Decision::Refuse(RefuseReason::SelfRegistrationOff),
            );
        }
        Some(true) => trace.pass(
            "channel_enabled",
            format!("self-registration by {channel} is on"),
        ),
        None => trace.pass(
            "channel_enabled",
            format!("no switch applies to {channel}: the customer exists"),
        ),
    }
    if policy.denylist.denies(address) {
        return trace.decide(
            "denylist",
            format!("<{}> or its domain is listed", address.identity_key()),
            Decision::Refuse(RefuseReason::Denied),
        );
    }
    trace.pass("denylist", "not listed");
    match sender {
        SenderState::Suppressed => trace.decide(
            "sender_state",
            "the owner of the address asked never to be mailed again",
            Decision::Suppress(SuppressReason::OptedOut),
        ),
        SenderState::Disabled => trace.decide(
            "sender_state",
            "the customer is disabled",
            Decision::Refuse(RefuseReason::AccountDisabled),
        ),
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
                Access::NoOne => trace.decide(
                    "access",
                    "nobody may self-register",
                    Decision::Refuse(RefuseReason::SelfRegistrationOff),
                ),
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
                    None => trace.decide(
                        "access",
                        format!("{} belongs to no company", address.domain()),
                        Decision::Refuse(RefuseReason::DomainNotAllowed),
                    ),
                },
            }
        }
    }
}

/// The reply limits, smallest layer first: a bouncing address, per address
/// (spacing, per day), per sender domain, per client network, then the
/// service's budget, of which new senders may use only their share.
fn limit(
    limits: ReplyLimits,
    decision: Decision,
    new_sender: bool,
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
    match history.bouncing {
        Bouncing::Yes => {
            return trace.decide(
                "bouncing",
                "a reply to this address bounced for good; it has sent no authenticated mail since",
                Decision::Suppress(SuppressReason::Bouncing),
            );
        }
        Bouncing::Lifted => trace.pass(
            "bouncing",
            "a reply to this address bounced, and this authenticated mail from it lifts that",
        ),
        Bouncing::No => trace.pass("bouncing", "no reply to this address bounced"),
    }
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
    let layers = [
        (
            "domain_budget",
            "the sender's domain",
            load.domain_replies_last_day,
            limits.domain_per_day,
            RefuseReason::DomainBudget,
            SuppressReason::DomainBudget,
        ),
        (
            "network_budget",
            "the client's network",
            load.network_replies_last_day,
            limits.network_per_day,
            RefuseReason::NetworkBudget,
            SuppressReason::NetworkBudget,
        ),
    ];
    for (rule, whom, count, most, refuse, suppress) in layers {
        match count {
            Some(count) if count >= most => {
                return over(
                    trace,
                    rule,
                    format!("{whom} had {count} replies in 24 hours, at most {most}"),
                    refuse,
                    suppress,
                );
            }
            Some(count) => trace.pass(rule, format!("{count} of {most} replies used")),
            None => trace.pass(rule, "not counted on this channel"),
        }
    }
    let (budget, whose) = if new_sender {
        (limits.new_sender_share(), "the new senders' share")
    } else {
        (limits.service_per_day, "all")
    };
    match load.replies_last_day {
        Some(count) if count >= budget => over(
            trace,
            "service_budget",
            format!(
                "the service sent {count} replies in 24 hours; {whose} of its {} may be used",
                limits.service_per_day
            ),
            RefuseReason::ServiceBudget,
            SuppressReason::ServiceBudget,
        ),
        Some(count) => {
            trace.pass(
                "service_budget",
                format!(
                    "{count} of {} replies used ({whose} may be used)",
                    limits.service_per_day
                ),
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

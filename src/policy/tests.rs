//! Table tests for `evaluate_mail` and `evaluate_portal`.

use super::*;
use crate::domain::EmailAddress;
use crate::message::{Envelope, InboundMessage};
use std::net::IpAddr;

const NOW: i64 = 1_800_000_000;

fn policy() -> ServicePolicy {
    ServicePolicy {
        google: true,
        directory: true,
        email_link: false,
        access: Access::Anyone,
        email: true,
        portal: true,
        denylist: Denylist::parse(["blocked.example", "bad@example.com"]).expect("valid"),
        refusal: RefusalMode::Reject,
        notify_active: true,
        limits: ReplyLimits {
            min_interval_secs: 600,
            max_per_day: 5,
            domain_per_day: 20,
            network_per_day: 30,
            service_per_day: 100,
            action: LimitAction::Refuse,
        },
        auto_reply_subjects: vec!["out of office".into(), "automatic reply".into()],
        max_received: 50,
        sender_auth: SenderAuthMode::Off,
    }
}

fn support() -> Vec<EmailAddress> {
    vec![EmailAddress::parse("support@helpdesk.example").expect("valid")]
}

fn mail(mail_from: &str, headers: &str) -> InboundMessage {
    let envelope = Envelope {
        client_ip: IpAddr::from([192, 0, 2, 1]),
        helo: "mx.example.com".into(),
        relay_ip: None,
        mail_from: mail_from.into(),
        recipients: vec!["support@helpdesk.example".into()],
    };
    let raw = format!(
        "{headers}To: support@helpdesk.example\r\nSubject: hello\r\n\r\nPlease register me.\r\n"
    );
    InboundMessage::parse(envelope, raw.as_bytes()).expect("test message parses")
}

fn decide(
    policy: &ServicePolicy,
    message: &InboundMessage,
    state: SenderState,
    history: ReplyHistory,
) -> Decision {
    decide_with(
        policy,
        message,
        state,
        history,
        &AuthVerdict::Off,
        ServiceLoad::default(),
    )
}

fn decide_with(
    policy: &ServicePolicy,
    message: &InboundMessage,
    state: SenderState,
    history: ReplyHistory,
    auth: &AuthVerdict,
    load: ServiceLoad,
) -> Decision {
    let support = support();
    let own = OwnIdentity {
        support_addresses: &support,
        message_id_domain: "registrar.localhost",
    };
    let request = MailRequest {
        message,
        auth,
        sender: state,
        history,
        load,
        now: NOW,
    };
    let traced = evaluate_mail_traced(policy, own, request);
    assert_eq!(traced.decision, evaluate_mail(policy, own, request));
    let rules: Vec<&str> = traced.checks.iter().map(|c| c.rule).collect();
    let expected: Vec<&str> = MAIL_RULES.iter().copied().take(rules.len()).collect();
    assert_eq!(rules, expected, "the trace follows MAIL_RULES in order");
    let deciding = traced.checks.iter().filter(|c| c.decided).count();
    assert!(
        deciding <= 1,
        "at most one rule decides: {:?}",
        traced.checks
    );
    traced.decision
}

#[test]
fn mail_decisions_follow_the_rules() {
    let cases: Vec<(&str, &str, &str, SenderState, Decision)> = vec![
        (
            "a new sender registers",
            "jane@example.com",
            "From: Jane <jane@example.com>\r\n",
            SenderState::New,
            Decision::Register { company: None },
        ),
        (
            "a pending sender gets a new link",
            "jane@example.com",
            "From: jane@example.com\r\n",
            SenderState::Pending,
            Decision::ResendActivation,
        ),
        (
            "an active sender gets a note",
            "jane@example.com",
            "From: jane@example.com\r\n",
            SenderState::Active,
            Decision::AlreadyActive { notify: true },
        ),
        (
            "a disabled sender is refused",
            "jane@example.com",
            "From: jane@example.com\r\n",
            SenderState::Disabled,
            Decision::Refuse(RefuseReason::AccountDisabled),
        ),
        (
            "From must be the envelope sender",
            "jane@example.com",
            "From: boss@example.com\r\n",
            SenderState::New,
            Decision::Refuse(RefuseReason::SenderMismatch),
        ),
        (
            "From domain case does not matter",
            "jane@example.com",
            "From: jane@EXAMPLE.com\r\n",
            SenderState::New,
            Decision::Register { company: None },
        ),
        (
            "a missing From registers nobody",
            "jane@example.com",
            "",
            SenderState::New,
            Decision::Refuse(RefuseReason::SenderMismatch),
        ),
        (
            "two From addresses register nobody",
            "jane@example.com",
            "From: jane@example.com, x@example.com\r\n",
            SenderState::New,
            Decision::Refuse(RefuseReason::SenderMismatch),
        ),
        (
            "a denied domain is refused",
            "x@blocked.example",
            "From: x@blocked.example\r\n",
            SenderState::New,
            Decision::Refuse(RefuseReason::Denied),
        ),
        (
            "a denied subdomain is refused",
            "x@mail.blocked.example",
            "From: x@mail.blocked.example\r\n",
            SenderState::New,
            Decision::Refuse(RefuseReason::Denied),
        ),
        (
            "a denied address is refused even when active",
            "bad@example.com",
            "From: bad@example.com\r\n",
            SenderState::Active,
            Decision::Refuse(RefuseReason::Denied),
        ),
        (
            "Auto-Submitted is never answered",
            "jane@example.com",
            "From: jane@example.com\r\nAuto-Submitted: auto-replied\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::AutoSubmitted),
        ),
        (
            "Auto-Submitted: no is a human",
            "jane@example.com",
            "From: jane@example.com\r\nAuto-Submitted: no\r\n",
            SenderState::New,
            Decision::Register { company: None },
        ),
        (
            "bulk precedence is never answered",
            "jane@example.com",
            "From: jane@example.com\r\nPrecedence: bulk\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::Precedence),
        ),
        (
            "list mail is never answered",
            "jane@example.com",
            "From: jane@example.com\r\nList-Unsubscribe: <mailto:x@example.com>\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::MailingList),
        ),
        (
            "the null sender is never answered",
            "",
            "From: jane@example.com\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::NullSender),
        ),
        (
            "mailer-daemon is never answered",
            "MAILER-DAEMON@example.com",
            "From: MAILER-DAEMON@example.com\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::SystemSender),
        ),
        (
            "list owners are never answered",
            "owner-list@example.com",
            "From: owner-list@example.com\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::SystemSender),
        ),
        (
            "our own loop stamp is never answered",
            "jane@example.com",
            "From: jane@example.com\r\nX-Loop: support@helpdesk.example\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::OwnLoop),
        ),
        (
            "our own Message-ID is never answered",
            "jane@example.com",
            "From: jane@example.com\r\nMessage-ID: <x@registrar.localhost>\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::OwnLoop),
        ),
        (
            "X-Auto-Response-Suppress: OOF is respected",
            "jane@example.com",
            "From: jane@example.com\r\nX-Auto-Response-Suppress: DR, OOF\r\n",
            SenderState::New,
            Decision::Suppress(SuppressReason::AutoResponseSuppress),
        ),
        (
            "a non-ASCII local part is refused",
            "jörg@example.com",
            "From: jörg@example.com\r\n",
            SenderState::New,
            Decision::Refuse(RefuseReason::NonAsciiSender),
        ),
    ];
    for (description, mail_from, headers, state, expected) in cases {
        let message = mail(mail_from, headers);
        assert_eq!(
            decide(&policy(), &message, state, ReplyHistory::default()),
            expected,
            "{description}"
        );
    }
}

#[test]
fn auto_reply_subjects_are_suppressed() {
    let envelope_from = "jane@example.com";
    let mut message = mail(envelope_from, "From: jane@example.com\r\n");
    message.subject = Some("Out of Office: back Monday".into());
    assert_eq!(
        decide(
            &policy(),
            &message,
            SenderState::New,
            ReplyHistory::default()
        ),
        Decision::Suppress(SuppressReason::AutoReplySubject)
    );
}

#[test]
fn too_many_hops_is_a_loop() {
    let headers = "Received: from x\r\n".repeat(51) + "From: jane@example.com\r\n";
    let message = mail("jane@example.com", &headers);
    assert_eq!(
        decide(
            &policy(),
            &message,
            SenderState::New,
            ReplyHistory::default()
        ),
        Decision::Refuse(RefuseReason::TooManyHops)
    );
}

#[test]
fn access_modes() {
    let message = mail("jane@acme.example", "From: jane@acme.example\r\n");
    let other = mail("joe@other.example", "From: joe@other.example\r\n");
    let acme = Company {
        name: "Acme".into(),
        domains: vec!["acme.example".into()],
    };
    let companies = ServicePolicy {
        access: Access::Companies(vec![acme]),
        ..policy()
    };
    assert_eq!(
        decide(
            &companies,
            &message,
            SenderState::New,
            ReplyHistory::default()
        ),
        Decision::Register {
            company: Some("Acme".into())
        }
    );
    assert_eq!(
        decide(
            &companies,
            &other,
            SenderState::New,
            ReplyHistory::default()
        ),
        Decision::Refuse(RefuseReason::DomainNotAllowed)
    );
    let no_one = ServicePolicy {
        access: Access::NoOne,
        ..policy()
    };
    assert_eq!(
        decide(&no_one, &message, SenderState::New, ReplyHistory::default()),
        Decision::Refuse(RefuseReason::SelfRegistrationOff)
    );
    assert_eq!(
        decide(
            &no_one,
            &message,
            SenderState::Pending,
            ReplyHistory::default()
        ),
        Decision::ResendActivation,
        "an invited customer may ask for a new link"
    );
    let mail_off = ServicePolicy {
        email: false,
        ..policy()
    };
    assert_eq!(
        decide(
            &mail_off,
            &message,
            SenderState::New,
            ReplyHistory::default()
        ),
        Decision::Refuse(RefuseReason::SelfRegistrationOff)
    );
    let address = EmailAddress::parse("jane@acme.example").expect("valid");
    assert_eq!(
        evaluate_portal(
            &mail_off,
            &address,
            SenderState::New,
            ReplyHistory::default(),
            ServiceLoad::default(),
            NOW
        ),
        Decision::Register { company: None },
        "the portal switch is separate"
    );
}

#[test]
fn reply_limits() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let recent = ReplyHistory {
        last_reply_at: Some(NOW - 60),
        replies_last_day: 1,
    };
    let spaced = ReplyHistory {
        last_reply_at: Some(NOW - 601),
        replies_last_day: 4,
    };
    let exhausted = ReplyHistory {
        last_reply_at: Some(NOW - 3600),
        replies_last_day: 5,
    };
    assert_eq!(
        decide(&policy(), &message, SenderState::Pending, recent),
        Decision::Refuse(RefuseReason::RateLimited)
    );
    assert_eq!(
        decide(&policy(), &message, SenderState::Pending, spaced),
        Decision::ResendActivation
    );
    assert_eq!(
        decide(&policy(), &message, SenderState::Pending, exhausted),
        Decision::Refuse(RefuseReason::RateLimited)
    );
    assert_eq!(
        decide(&policy(), &message, SenderState::Active, recent),
        Decision::AlreadyActive { notify: false }
    );
}

#[test]
fn every_rfc_3834_marker_is_suppressed() {
    let cases: Vec<(&str, &str, &str, SuppressReason)> = vec![
        (
            "Precedence: list",
            "jane@example.com",
            "Precedence: list\r\n",
            SuppressReason::Precedence,
        ),
        (
            "Precedence: junk",
            "jane@example.com",
            "Precedence: junk\r\n",
            SuppressReason::Precedence,
        ),
        (
            "Precedence: auto_reply",
            "jane@example.com",
            "Precedence: auto_reply\r\n",
            SuppressReason::Precedence,
        ),
        (
            "List-Id",
            "jane@example.com",
            "List-Id: <users.example.com>\r\n",
            SuppressReason::MailingList,
        ),
        (
            "Auto-Submitted: auto-generated",
            "jane@example.com",
            "Auto-Submitted: auto-generated\r\n",
            SuppressReason::AutoSubmitted,
        ),
        (
            "X-Auto-Response-Suppress: All",
            "jane@example.com",
            "X-Auto-Response-Suppress: All\r\n",
            SuppressReason::AutoResponseSuppress,
        ),
        (
            "a DSN",
            "jane@example.com",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
            SuppressReason::DeliveryReport,
        ),
        (
            "an MDN",
            "jane@example.com",
            "Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n",
            SuppressReason::DeliveryReport,
        ),
    ];
    for (description, mail_from, extra, expected) in cases {
        let headers = format!("From: {mail_from}\r\n{extra}");
        let message = mail(mail_from, &headers);
        assert_eq!(
            decide(
                &policy(),
                &message,
                SenderState::New,
                ReplyHistory::default()
            ),
            Decision::Suppress(expected),
            "{description}"
        );
    }
    for local in [
        "postmaster",
        "noreply",
        "no-reply",
        "owner-users",
        "users-request",
        "Mailer-Daemon",
    ] {
        let address = format!("{local}@example.com");
        let message = mail(&address, &format!("From: {address}\r\n"));
        assert_eq!(
            decide(
                &policy(),
                &message,
                SenderState::New,
                ReplyHistory::default()
            ),
            Decision::Suppress(SuppressReason::SystemSender),
            "{local}"
        );
    }
    let human = mail(
        "jane@example.com",
        "From: jane@example.com\r\nX-Auto-Response-Suppress: DR, RN\r\n",
    );
    assert_eq!(
        decide(&policy(), &human, SenderState::New, ReplyHistory::default()),
        Decision::Register { company: None },
        "suppressing only DR and RN is not an auto-reply"
    );
}

#[test]
fn sender_authentication_verdicts_decide() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let cases = [
        (AuthVerdict::Off, Decision::Register { company: None }),
        (
            AuthVerdict::Pass("dmarc=pass".into()),
            Decision::Register { company: None },
        ),
        (
            AuthVerdict::Fail("dmarc=none".into()),
            Decision::Refuse(RefuseReason::NotAuthenticated),
        ),
        (
            AuthVerdict::TemporaryError("SERVFAIL".into()),
            Decision::Defer(DeferReason::AuthTemporaryError),
        ),
    ];
    for (verdict, expected) in cases {
        assert_eq!(
            decide_with(
                &policy(),
                &message,
                SenderState::New,
                ReplyHistory::default(),
                &verdict,
                ServiceLoad::default()
            ),
            expected,
            "{verdict:?}"
        );
    }
    let mismatch = mail("jane@example.com", "From: boss@example.com\r\n");
    assert_eq!(
        decide_with(
            &policy(),
            &mismatch,
            SenderState::New,
            ReplyHistory::default(),
            &AuthVerdict::Pass("dmarc=pass".into()),
            ServiceLoad::default()
        ),
        Decision::Refuse(RefuseReason::SenderMismatch),
        "authentication never excuses an envelope naming another mailbox in From's domain"
    );
    let forwarded = mail(
        "SRS0=HHH=TT=example.com=jane@forwarder.example",
        "From: jane@example.com\r\n",
    );
    let own = OwnIdentity {
        support_addresses: &support(),
        message_id_domain: "registrar.localhost",
    };
    let dmarc = ServicePolicy {
        sender_auth: SenderAuthMode::Dmarc,
        ..policy()
    };
    assert!(needs_sender_auth(&dmarc, own, &message));
    assert!(
        !needs_sender_auth(&dmarc, own, &mismatch),
        "no DNS for a message already refused"
    );
    assert!(
        needs_sender_auth(&dmarc, own, &forwarded),
        "a forwarder's envelope needs the verdict for From"
    );
    assert!(
        !needs_sender_auth(&policy(), own, &message),
        "no DNS when off"
    );
}

#[test]
fn the_service_budget_and_the_limit_action_apply() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let spent = ServiceLoad {
        replies_last_day: Some(100),
        ..ServiceLoad::default()
    };
    let room = ServiceLoad {
        replies_last_day: Some(89),
        ..ServiceLoad::default()
    };
    let auth = AuthVerdict::Off;
    let none = ReplyHistory::default();
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, spent),
        Decision::Refuse(RefuseReason::ServiceBudget)
    );
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, room),
        Decision::Register { company: None }
    );
    let suppressing = ServicePolicy {
        limits: ReplyLimits {
            action: LimitAction::Suppress,
            ..policy().limits
        },
        ..policy()
    };
    assert_eq!(
        decide_with(&suppressing, &message, SenderState::New, none, &auth, spent),
        Decision::Suppress(SuppressReason::ServiceBudget)
    );
    let recent = ReplyHistory {
        last_reply_at: Some(NOW - 60),
        replies_last_day: 1,
    };
    assert_eq!(
        decide_with(
            &suppressing,
            &message,
            SenderState::Pending,
            recent,
            &auth,
            room
        ),
        Decision::Suppress(SuppressReason::RateLimited)
    );
    assert_eq!(
        decide_with(&policy(), &message, SenderState::Active, none, &auth, spent),
        Decision::AlreadyActive { notify: false },
        "over the budget a sign-in note is simply not sent"
    );
}

/// The ping-pong against an auto-responder without RFC 3834 manners, over 24
/// simulated hours with a clock this test controls: the responder answers
/// every reply of ours one minute later, and on top of that mails us once a
/// minute whatever we do (the worst case: a responder stuck in a retry loop).
/// Every one of its mails goes through `evaluate_mail` with the history our
/// replies so far produce.
#[test]
fn an_auto_responder_gets_at_most_the_rate_limit() {
    let policy = policy();
    let start = NOW;
    let mut replies: Vec<i64> = Vec::new();
    let mut pending: SenderState = SenderState::New;
    let mut inbound = 0u32;
    for minute in 0..(24 * 60) {
        let now = start + minute * 60;
        inbound += 1;
        let history = ReplyHistory {
            last_reply_at: replies.iter().copied().filter(|t| *t > now - 86_400).max(),
            replies_last_day: u32::try_from(replies.iter().filter(|t| **t > now - 86_400).count())
                .expect("small"),
        };
        let message = mail(
            "responder@example.com",
            "From: responder@example.com\r\nSubject: Thank you for your message\r\n",
        );
        let support = support();
        let own = OwnIdentity {
            support_addresses: &support,
            message_id_domain: "registrar.localhost",
        };
        let decision = evaluate_mail(
            &policy,
            own,
            MailRequest {
                message: &message,
                auth: &AuthVerdict::Off,
                sender: pending,
                history,
                load: ServiceLoad::default(),
                now,
            },
        );
        if decision.sends_mail() {
            replies.push(now);
            pending = SenderState::Pending;
        }
    }
    let busiest_hour = (0..24 * 60)
        .map(|minute| {
            let from = start + minute * 60;
            replies
                .iter()
                .filter(|t| (from..from + 3600).contains(*t))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "ping-pong: {inbound} inbound mails in 24 simulated hours, {} replies, at most {busiest_hour} in any hour",
        replies.len()
    );
    assert_eq!(
        busiest_hour, 5,
        "1 per 10 minutes, capped by 5 a day: {replies:?}"
    );
    assert_eq!(
        replies.len(),
        5,
        "five replies in 24 hours for {inbound} inbound mails"
    );
    for pair in replies.windows(2) {
        assert!(
            pair[1] - pair[0] >= 600,
            "replies at least 10 minutes apart"
        );
    }
}

#[test]
fn the_service_budget_applies_to_the_portal_too() {
    let address = EmailAddress::parse("jane@example.com").expect("valid");
    let budget = policy().limits.service_per_day;
    let spent = ServiceLoad {
        replies_last_day: Some(budget),
        ..ServiceLoad::default()
    };
    assert_eq!(
        evaluate_portal(
            &policy(),
            &address,
            SenderState::New,
            ReplyHistory::default(),
            spent,
            NOW
        ),
        Decision::Refuse(RefuseReason::ServiceBudget)
    );
}

#[test]
fn new_senders_are_the_first_to_wait_when_the_service_budget_runs_low() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let none = ReplyHistory::default();
    let auth = AuthVerdict::Off;
    // 90 of 100 used: the new senders' share is spent, the reserve is not.
    let low = ServiceLoad {
        replies_last_day: Some(90),
        ..ServiceLoad::default()
    };
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, low),
        Decision::Refuse(RefuseReason::ServiceBudget)
    );
    assert_eq!(
        decide_with(&policy(), &message, SenderState::Pending, none, &auth, low),
        Decision::ResendActivation,
        "a customer we know still gets a new link"
    );
    assert_eq!(
        decide_with(&policy(), &message, SenderState::Active, none, &auth, low),
        Decision::AlreadyActive { notify: true }
    );
}

#[test]
fn the_domain_and_network_budgets_come_before_the_service_budget() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let none = ReplyHistory::default();
    let auth = AuthVerdict::Off;
    let domain_spent = ServiceLoad {
        replies_last_day: Some(0),
        domain_replies_last_day: Some(20),
        network_replies_last_day: Some(0),
        new_senders: None,
    };
    assert_eq!(
        decide_with(
            &policy(),
            &message,
            SenderState::New,
            none,
            &auth,
            domain_spent
        ),
        Decision::Refuse(RefuseReason::DomainBudget)
    );
    let network_spent = ServiceLoad {
        domain_replies_last_day: Some(19),
        network_replies_last_day: Some(30),
        ..domain_spent
    };
    assert_eq!(
        decide_with(
            &policy(),
            &message,
            SenderState::New,
            none,
            &auth,
            network_spent
        ),
        Decision::Refuse(RefuseReason::NetworkBudget)
    );
    let room = ServiceLoad {
        network_replies_last_day: Some(29),
        ..network_spent
    };
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, room),
        Decision::Register { company: None }
    );
}

#[test]
fn the_circuit_breaker_defers_new_senders_only() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    let none = ReplyHistory::default();
    let auth = AuthVerdict::Off;
    let open = ServiceLoad {
        new_senders: Some(NewSenders {
            last_minute: 10,
            per_minute: 10,
        }),
        ..ServiceLoad::default()
    };
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, open),
        Decision::Defer(DeferReason::NewSenderFlood)
    );
    assert_eq!(
        decide_with(&policy(), &message, SenderState::Pending, none, &auth, open),
        Decision::ResendActivation
    );
    let closed = ServiceLoad {
        new_senders: Some(NewSenders {
            last_minute: 9,
            per_minute: 10,
        }),
        ..ServiceLoad::default()
    };
    assert_eq!(
        decide_with(&policy(), &message, SenderState::New, none, &auth, closed),
        Decision::Register { company: None }
    );
}

#[test]
fn an_address_whose_owner_opted_out_is_never_answered() {
    let message = mail("jane@example.com", "From: jane@example.com\r\n");
    assert_eq!(
        decide(
            &policy(),
            &message,
            SenderState::Suppressed,
            ReplyHistory::default()
        ),
        Decision::Suppress(SuppressReason::OptedOut)
    );
}

/// The envelope shapes of issue 15, each with every verdict: who registers
/// by mail is From, and only when the envelope names it or authentication
/// passes for the From domain.
#[test]
fn who_registers_follows_the_envelope_and_authentication() {
    use AuthVerdict::{Fail, Off, Pass, TemporaryError};
    let register = || Decision::Register { company: None };
    let refuse = Decision::Refuse;
    let defer = Decision::Defer(DeferReason::AuthTemporaryError);
    let pass = || Pass("dmarc=pass for example.com".into());
    let fail = || Fail("dmarc=fail for example.com".into());
    let temporary = || TemporaryError("SERVFAIL".into());
    let from = "From: Jane <jane.doe@example.com>\r\n";
    // (shape, envelope, [(verdict, decision, what the record notes)])
    type Expected = (AuthVerdict, Decision, Option<&'static str>);
    let cases: Vec<(&str, &str, Vec<Expected>)> = vec![
        (
            "plain",
            "jane.doe@example.com",
            vec![
                (Off, register(), None),
                (pass(), register(), None),
                (fail(), refuse(RefuseReason::NotAuthenticated), None),
                (temporary(), defer.clone(), None),
            ],
        ),
        (
            "local part in other case",
            "Jane.Doe@Example.com",
            vec![
                (Off, register(), Some("the case of the local part")),
                (pass(), register(), Some("the case of the local part")),
                (
                    fail(),
                    refuse(RefuseReason::NotAuthenticated),
                    Some("the case of the local part"),
                ),
            ],
        ),
        (
            "BATV prvs",
            "prvs=0123456789=jane.doe@example.com",
            vec![
                (Off, register(), Some("BATV prvs tag removed")),
                (pass(), register(), Some("BATV prvs tag removed")),
                (
                    fail(),
                    refuse(RefuseReason::NotAuthenticated),
                    Some("BATV prvs tag removed"),
                ),
            ],
        ),
        (
            "BATV btv1 with other case",
            "btv1==5f2a17c8e1d==Jane.Doe@example.com",
            vec![
                (Off, register(), Some("BATV btv1 tag removed")),
                (pass(), register(), Some("BATV btv1 tag removed")),
            ],
        ),
        (
            "BATV before another mailbox",
            "prvs=0123456789=boss@example.com",
            vec![
                (
                    Off,
                    refuse(RefuseReason::SenderMismatch),
                    Some("another mailbox"),
                ),
                (
                    pass(),
                    refuse(RefuseReason::SenderMismatch),
                    Some("another mailbox"),
                ),
            ],
        ),
        (
            "SRS0",
            "SRS0=HHH=TT=example.com=jane.doe@forwarder.example",
            vec![
                (
                    Off,
                    refuse(RefuseReason::ForwardedNotAuthenticated),
                    Some(
                        "rewritten by a forwarder (SRS0), not decoded; senders are not authenticated",
                    ),
                ),
                (
                    pass(),
                    register(),
                    Some("it did not matter: From is authenticated (dmarc=pass for example.com)"),
                ),
                (
                    fail(),
                    refuse(RefuseReason::ForwardedNotAuthenticated),
                    Some("From is not authenticated"),
                ),
                (temporary(), defer.clone(), None),
            ],
        ),
        (
            "Microsoft 365 SRS",
            "bounces+SRS=44ldt=IX=example.com=jane.doe@contoso.onmicrosoft.com",
            vec![
                (
                    Off,
                    refuse(RefuseReason::ForwardedNotAuthenticated),
                    Some("(Microsoft 365 SRS), not decoded"),
                ),
                (pass(), register(), Some("it did not matter")),
            ],
        ),
        (
            "SRS0 naming someone else",
            "SRS0=HHH=TT=evil.example=mallory@forwarder.example",
            vec![
                (
                    Off,
                    refuse(RefuseReason::ForwardedNotAuthenticated),
                    Some("not decoded"),
                ),
                (pass(), register(), Some("it did not matter")),
            ],
        ),
        (
            "another domain",
            "jane.doe@mail.example.net",
            vec![
                (
                    Off,
                    refuse(RefuseReason::SenderMismatch),
                    Some("another domain than From"),
                ),
                (pass(), register(), Some("it did not matter")),
                (
                    fail(),
                    refuse(RefuseReason::NotAuthenticated),
                    Some("From is not authenticated"),
                ),
                (temporary(), defer.clone(), None),
            ],
        ),
        (
            "another mailbox in From's domain",
            "boss@example.com",
            vec![
                (
                    Off,
                    refuse(RefuseReason::SenderMismatch),
                    Some("another mailbox"),
                ),
                (
                    pass(),
                    refuse(RefuseReason::SenderMismatch),
                    Some("another mailbox"),
                ),
            ],
        ),
    ];
    let support = support();
    let own = OwnIdentity {
        support_addresses: &support,
        message_id_domain: "registrar.localhost",
    };
    for (shape, envelope, verdicts) in cases {
        let message = mail(envelope, from);
        for (verdict, expected, note) in verdicts {
            let description = format!("{shape}, {verdict:?}");
            let decision = decide_with(
                &policy(),
                &message,
                SenderState::New,
                ReplyHistory::default(),
                &verdict,
                ServiceLoad::default(),
            );
            assert_eq!(decision, expected, "{description}");
            let evaluation = evaluate_mail_traced(
                &policy(),
                own,
                MailRequest {
                    message: &message,
                    auth: &verdict,
                    sender: SenderState::New,
                    history: ReplyHistory::default(),
                    load: ServiceLoad::default(),
                    now: NOW,
                },
            );
            match (note, &evaluation.note) {
                (None, None) => {}
                (Some(expected), Some(found)) => assert!(
                    found.contains(expected) && found.contains(envelope),
                    "{description}: {found:?} should name {envelope} and say {expected:?}"
                ),
                (expected, found) => {
                    panic!("{description}: note {found:?}, expected {expected:?}")
                }
            }
        }
    }
}

#[test]
fn machine_mailboxes_are_recognised_behind_batv_and_in_from_after_srs() {
    let cases = [
        (
            "postmaster behind a BATV tag",
            "prvs=0123456789=postmaster@example.com",
            "From: postmaster@example.com\r\n",
            Some(SuppressReason::SystemSender),
        ),
        (
            "a forwarder's SRS address is not a machine's because of its local part",
            "bounces+SRS=44ldt=IX=example.com=jane@contoso.onmicrosoft.com",
            "From: jane@example.com\r\n",
            None,
        ),
        (
            "a no-reply From behind SRS",
            "SRS0=HHH=TT=example.com=noreply@forwarder.example",
            "From: noreply@example.com\r\n",
            Some(SuppressReason::SystemSender),
        ),
    ];
    for (description, envelope, headers, expected) in cases {
        let decision = decide_with(
            &policy(),
            &mail(envelope, headers),
            SenderState::New,
            ReplyHistory::default(),
            &AuthVerdict::Pass("dmarc=pass".into()),
            ServiceLoad::default(),
        );
        match expected {
            Some(reason) => assert_eq!(decision, Decision::Suppress(reason), "{description}"),
            None => assert!(
                !matches!(decision, Decision::Suppress(_)),
                "{description}: {decision:?}"
            ),
        }
    }
}

#[test]
fn sign_in_methods_obey_their_switch_the_denylist_access_and_no_reply_limits() {
    use crate::domain::Channel;
    let jane = EmailAddress::parse("jane@acme.example").expect("valid");
    let listed = EmailAddress::parse("bad@example.com").expect("valid");
    let acme = Company {
        name: "Acme".into(),
        domains: vec!["acme.example".into()],
    };
    let companies = ServicePolicy {
        access: Access::Companies(vec![acme]),
        ..policy()
    };
    let outsider = EmailAddress::parse("joe@elsewhere.example").expect("valid");
    let cases = [
        (
            "a new allowed address registers",
            policy(),
            Channel::Google,
            &jane,
            SenderState::New,
            Decision::Register { company: None },
        ),
        (
            "the company joins",
            companies.clone(),
            Channel::Directory,
            &jane,
            SenderState::New,
            Decision::Register {
                company: Some("Acme".into()),
            },
        ),
        (
            "a domain outside the companies is refused",
            companies,
            Channel::Google,
            &outsider,
            SenderState::New,
            Decision::Refuse(RefuseReason::DomainNotAllowed),
        ),
        (
            "the denylist wins",
            policy(),
            Channel::Google,
            &listed,
            SenderState::Active,
            Decision::Refuse(RefuseReason::Denied),
        ),
        (
            "the method's switch closes it",
            policy(),
            Channel::EmailLink,
            &jane,
            SenderState::Active,
            Decision::Refuse(RefuseReason::SelfRegistrationOff),
        ),
        (
            "a pending customer is activated by the proof",
            policy(),
            Channel::Directory,
            &jane,
            SenderState::Pending,
            Decision::ResendActivation,
        ),
        (
            "a disabled customer is refused",
            policy(),
            Channel::Google,
            &jane,
            SenderState::Disabled,
            Decision::Refuse(RefuseReason::AccountDisabled),
        ),
    ];
    for (description, policy, channel, address, state, expected) in cases {
        assert_eq!(
            evaluate_sign_in(&policy, channel, address, state),
            expected,
            "{description}"
        );
    }
}

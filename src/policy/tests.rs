//! Table tests for `evaluate_mail` and `evaluate_portal`.

use super::*;
use crate::message::{Envelope, InboundMessage};
use std::net::IpAddr;

const NOW: i64 = 1_800_000_000;

fn policy() -> ServicePolicy {
    ServicePolicy {
        access: Access::Anyone,
        email: true,
        portal: true,
        denylist: Denylist::parse(["blocked.example", "bad@example.com"]).expect("valid"),
        refusal: RefusalMode::Reject,
        notify_active: true,
        limits: ReplyLimits {
            min_interval_secs: 600,
            max_per_day: 5,
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
    decide_with(policy, message, state, history, &AuthVerdict::Off, ServiceLoad::default())
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
    assert!(deciding <= 1, "at most one rule decides: {:?}", traced.checks);
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

//! Recognising automatic mail (RFC 3834 and common practice): bounces,
//! auto-replies, list mail, our own loop. Such mail is accepted and never
//! answered.
//!
//! The rules are a table, checked in order: each has the name the trace and
//! `registrar explain` show, the reason it suppresses with, and a check that
//! says whether it matches and what it saw. A new rule is one function and
//! one row (and its name in `MAIL_RULES`).

use crate::domain::{EmailAddress, ReturnPath};
use crate::message::{EnvelopeSender, FromHeader, InboundMessage};
use crate::policy::config::ServicePolicy;
use crate::policy::decision::SuppressReason;
use crate::policy::request::OwnIdentity;
use crate::policy::trace::{Check, Trace};

/// One rule: whether the message is automatic by it, and what it saw.
type Matches = fn(&ServicePolicy, OwnIdentity<'_>, &InboundMessage) -> (bool, String);

struct Rule {
    /// The name in the trace (one of `MAIL_RULES`).
    name: &'static str,
    reason: SuppressReason,
    matches: Matches,
}

/// The rules, in the order they are checked (and shown).
const RULES: &[Rule] = &[
    Rule {
        name: "auto_submitted",
        reason: SuppressReason::AutoSubmitted,
        matches: auto_submitted,
    },
    Rule {
        name: "precedence",
        reason: SuppressReason::Precedence,
        matches: precedence,
    },
    Rule {
        name: "list_headers",
        reason: SuppressReason::MailingList,
        matches: list_headers,
    },
    Rule {
        name: "delivery_report",
        reason: SuppressReason::DeliveryReport,
        matches: delivery_report,
    },
    Rule {
        name: "null_sender",
        reason: SuppressReason::NullSender,
        matches: null_sender,
    },
    Rule {
        name: "system_sender",
        reason: SuppressReason::SystemSender,
        matches: system_sender,
    },
    Rule {
        name: "auto_response_suppress",
        reason: SuppressReason::AutoResponseSuppress,
        matches: auto_response_suppress,
    },
    Rule {
        name: "own_loop_stamp",
        reason: SuppressReason::OwnLoop,
        matches: own_loop_stamp,
    },
    Rule {
        name: "own_message_id",
        reason: SuppressReason::OwnLoop,
        matches: own_message_id,
    },
    Rule {
        name: "auto_reply_subject",
        reason: SuppressReason::AutoReplySubject,
        matches: auto_reply_subject,
    },
];

/// Recognises mail that must never be answered, recording each rule it
/// checks; the first rule that matches decides.
pub(super) fn automatic_mail(
    policy: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
    trace: &mut Trace,
) -> Option<SuppressReason> {
    for rule in RULES {
        let (hit, detail) = (rule.matches)(policy, own, message);
        if hit {
            trace.checks.push(Check {
                rule: rule.name,
                decided: true,
                detail,
            });
            return Some(rule.reason);
        }
        trace.pass(rule.name, detail);
    }
    None
}

fn auto_submitted(
    _: &ServicePolicy,
    _: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    match message.auto_submitted.as_deref() {
        Some(value) => (value != "no", format!("Auto-Submitted: {value}")),
        None => (false, "no Auto-Submitted header".to_owned()),
    }
}

fn precedence(_: &ServicePolicy, _: OwnIdentity<'_>, message: &InboundMessage) -> (bool, String) {
    match message.precedence.as_deref() {
        Some(value) => (
            matches!(value, "bulk" | "list" | "junk" | "auto_reply"),
            format!("Precedence: {value}"),
        ),
        None => (false, "no Precedence header".to_owned()),
    }
}

fn list_headers(_: &ServicePolicy, _: OwnIdentity<'_>, message: &InboundMessage) -> (bool, String) {
    if message.has_list_headers {
        (true, "a List-* header is present".to_owned())
    } else {
        (false, "no List-* header".to_owned())
    }
}

fn delivery_report(
    _: &ServicePolicy,
    _: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    if message.is_report {
        (true, "multipart/report (a DSN or MDN)".to_owned())
    } else {
        (false, "not multipart/report".to_owned())
    }
}

fn null_sender(_: &ServicePolicy, _: OwnIdentity<'_>, message: &InboundMessage) -> (bool, String) {
    if matches!(message.sender, EnvelopeSender::Null) {
        (true, "MAIL FROM:<>".to_owned())
    } else {
        (false, "the envelope sender is not null".to_owned())
    }
}

/// Whether the envelope sender or the From address is a machine's mailbox.
/// A BATV tag is removed first; a forwarder's SRS address is not read (it
/// names the forwarder), and From is what registers then, so From is checked
/// too.
fn system_sender(
    _: &ServicePolicy,
    _: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    let path = match &message.sender {
        EnvelopeSender::Address(address) => ReturnPath::read(address),
        _ => return (false, "no usable envelope sender".to_owned()),
    };
    if let Some(mailbox) = path.mailbox()
        && is_system_sender(mailbox.local_part())
    {
        return (
            true,
            format!("{} is a machine's mailbox", mailbox.local_part()),
        );
    }
    if let FromHeader::Single { address: from, .. } = &message.from
        && is_system_sender(from.local_part())
    {
        return (
            true,
            format!("From: {} is a machine's mailbox", from.local_part()),
        );
    }
    let envelope = match path.mailbox() {
        Some(mailbox) => mailbox.local_part().to_owned(),
        None => "the forwarder's envelope (not read)".to_owned(),
    };
    (
        false,
        format!("neither {envelope} nor From is a machine's mailbox"),
    )
}

fn auto_response_suppress(
    _: &ServicePolicy,
    _: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    let Some(value) = message.auto_response_suppress.as_deref() else {
        return (false, "no X-Auto-Response-Suppress header".to_owned());
    };
    let hit = value
        .split(',')
        .map(str::trim)
        .any(|token| token.eq_ignore_ascii_case("all") || token.eq_ignore_ascii_case("oof"));
    (hit, format!("X-Auto-Response-Suppress: {value}"))
}

fn own_loop_stamp(
    _: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    let stamped = message.loop_stamps.iter().find(|stamp| {
        EmailAddress::parse(stamp.trim_matches(|c| c == '<' || c == '>')).is_ok_and(|stamp| {
            own.support_addresses
                .iter()
                .any(|own| own.identity_key() == stamp.identity_key())
        })
    });
    match stamped {
        Some(stamp) => (true, format!("X-Loop: {stamp} is our own stamp")),
        None => (
            false,
            format!("{} X-Loop headers, none ours", message.loop_stamps.len()),
        ),
    }
}

fn own_message_id(
    _: &ServicePolicy,
    own: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    let Some(id) = message.message_id.as_deref() else {
        return (false, "no Message-ID".to_owned());
    };
    let ours = id
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(own.message_id_domain));
    if ours {
        (
            true,
            format!(
                "Message-ID <{id}> is at our domain {}",
                own.message_id_domain
            ),
        )
    } else {
        (
            false,
            format!("Message-ID is not at {}", own.message_id_domain),
        )
    }
}

fn auto_reply_subject(
    policy: &ServicePolicy,
    _: OwnIdentity<'_>,
    message: &InboundMessage,
) -> (bool, String) {
    let subject = message.subject.as_deref().map(|s| s.trim().to_lowercase());
    let matched = subject.as_deref().and_then(|subject| {
        policy
            .auto_reply_subjects
            .iter()
            .find(|prefix| subject.starts_with(prefix.as_str()))
    });
    match matched {
        Some(prefix) => (true, format!("the subject starts with {prefix:?}")),
        None => (
            false,
            "the subject is not a known auto-reply subject".to_owned(),
        ),
    }
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

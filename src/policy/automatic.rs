//! Recognising automatic mail (RFC 3834 and common practice): bounces,
//! auto-replies, list mail, our own loop. Such mail is accepted and never
//! answered.

use super::trace::Trace;
use super::*;

/// Recognises mail that must never be answered (RFC 3834 and common
/// practice), recording each rule it checks.
pub(super) fn automatic_mail(
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
pub(super) fn is_system_sender(local: &str) -> bool {
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

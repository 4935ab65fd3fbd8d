//! The trace of `evaluate_mail_traced`: every rule checked, in order, with
//! what it saw; `registrar explain` prints it.

use crate::policy::Decision;

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
    "envelope_names_from",
    "sender_authentication",
    "channel_enabled",
    "denylist",
    "sender_state",
    "access",
    "circuit_breaker",
    "reply_interval",
    "replies_per_day",
    "domain_budget",
    "network_budget",
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
    /// What the decision record keeps besides the outcome: how the envelope
    /// sender was read when it was not simply the From address (a BATV tag
    /// removed, another case, a forwarder's envelope that authentication made
    /// irrelevant, or why it kept From from registering).
    pub note: Option<String>,
}

/// Collects checks while the rules run.
#[derive(Default)]
pub(super) struct Trace {
    pub(super) checks: Vec<Check>,
    /// `Evaluation::note`, set by the rule that has something to record.
    pub(super) note: Option<String>,
}

impl Trace {
    pub(super) fn pass(&mut self, rule: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            rule,
            decided: false,
            detail: detail.into(),
        });
    }

    pub(super) fn decide(
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

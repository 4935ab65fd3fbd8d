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
//! `config` holds a service's policy settings, `request` what a request
//! brings, `rules` the rules themselves, `automatic` the recognition of
//! automatic mail (a table of named rules), `decision` the outcomes and their
//! stable names, `trace` the record of rules checked.

mod automatic;
mod config;
mod decision;
mod request;
mod rules;
mod trace;

pub use config::{
    Access, Company, Denylist, LimitAction, RefusalMode, ReplyLimits, SelfRegistration,
    SenderAuthKind, SenderAuthMode, ServicePolicy, TrustedResults,
};
pub use decision::{Decision, DeferReason, RefuseReason, SuppressReason};
pub use request::{
    AuthVerdict, Bouncing, MailRequest, NewSenders, OwnIdentity, ReplyHistory, SenderState,
    ServiceLoad,
};
pub use rules::{
    evaluate_mail, evaluate_mail_traced, evaluate_portal, evaluate_request, evaluate_sign_in,
    may_be_answered, needs_sender_auth,
};
pub use trace::{Check, Evaluation, MAIL_RULES};

#[cfg(test)]
mod tests;

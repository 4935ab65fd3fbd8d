//! Which answer a message gets at end of DATA, in one place: decisions,
//! duplicates, storage faults and unreadable messages mapped to the named
//! replies of `answer`.
//!
//! Our own faults are always temporary (4xx) so the sender retries; a 5xx is
//! only ever about the message itself.

use crate::message::ParseError;
use crate::policy::{Decision, DeferReason, RefuseReason};
use crate::registration::{MailOutcome, RegistrationError};
use crate::smtp::answer;

/// A reply code with its text (enhanced status code first). Built only by
/// the named functions of `answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

/// The answer for a decided message.
pub fn for_decision(decision: &Decision, dropped: bool) -> SmtpReply {
    let refusal = match decision {
        Decision::Refuse(reason) if !dropped => *reason,
        Decision::Register { .. } | Decision::ResendActivation | Decision::AlreadyActive { .. } => {
            return answer::accepted_reply_on_its_way();
        }
        Decision::Suppress(_) | Decision::Refuse(_) => return answer::accepted(),
        Decision::Defer(DeferReason::AuthTemporaryError) => {
            return answer::sender_auth_unavailable();
        }
        Decision::Defer(DeferReason::NewSenderFlood) => return answer::new_senders_wait(),
    };
    match refusal {
        RefuseReason::SelfRegistrationOff => answer::self_registration_off(),
        RefuseReason::DomainNotAllowed => answer::domain_not_allowed(),
        RefuseReason::Denied | RefuseReason::AccountDisabled => answer::address_not_allowed(),
        RefuseReason::SenderMismatch => answer::sender_mismatch(),
        RefuseReason::InvalidSender => answer::invalid_sender(),
        RefuseReason::NonAsciiSender => answer::non_ascii_sender(),
        RefuseReason::RateLimited => answer::sender_rate_limited(),
        RefuseReason::ServiceBudget => answer::service_budget_spent(),
        RefuseReason::DomainBudget => answer::domain_budget_spent(),
        RefuseReason::NetworkBudget => answer::network_budget_spent(),
        RefuseReason::NotAuthenticated => answer::not_authenticated(),
        RefuseReason::TooManyHops => answer::too_many_hops(),
        RefuseReason::ForwardedNotAuthenticated => answer::forwarded_not_authenticated(),
    }
}

/// The answer for a message that went through registration.
pub fn for_outcome(outcome: &MailOutcome) -> SmtpReply {
    match outcome {
        MailOutcome::Decided { decision, dropped } => for_decision(decision, *dropped),
        MailOutcome::Duplicate => answer::already_accepted(),
    }
}

/// The answer when the decision could not be committed: temporary, so the
/// sender keeps the message and retries.
pub fn for_store_error(error: &RegistrationError) -> SmtpReply {
    match error {
        RegistrationError::Full => answer::storage_full(),
        RegistrationError::Closed => answer::shutting_down(),
        RegistrationError::Failed(_) => answer::storage_failed(),
    }
}

/// The answer for a message we cannot read at all.
///
/// A parser panic is answered `451`: the fault may be ours (a parser bug a
/// later version fixes), and a temporary answer keeps the sender's copy. An
/// unparseable message is permanent: retrying sends the same bytes.
pub fn for_parse_error(error: &ParseError) -> SmtpReply {
    match error {
        ParseError::ParserPanicked => answer::processing_failed(),
        ParseError::Unparseable => answer::unreadable_message(),
    }
}

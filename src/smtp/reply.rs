//! Every SMTP answer intake gives at end of DATA, in one place: decisions,
//! duplicates, storage faults and unreadable messages mapped to codes.
//!
//! Our own faults are always temporary (4xx) so the sender retries; a 5xx is
//! only ever about the message itself.

use crate::message::ParseError;
use crate::policy::{Decision, DeferReason, RefuseReason};
use crate::registration::{MailOutcome, RegistrationError};

/// A reply code with its text (enhanced status code first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: u16,
    pub text: String,
}

impl SmtpReply {
    fn new(code: u16, text: &str) -> Self {
        Self {
            code,
            text: text.to_owned(),
        }
    }
}

/// The answer for a decided message.
pub fn for_decision(decision: &Decision, dropped: bool) -> SmtpReply {
    let refusal = match decision {
        Decision::Refuse(reason) if !dropped => *reason,
        Decision::Register { .. } | Decision::ResendActivation | Decision::AlreadyActive { .. } => {
            return SmtpReply::new(250, "2.0.0 message accepted; a reply is on its way");
        }
        Decision::Suppress(_) | Decision::Refuse(_) => {
            return SmtpReply::new(250, "2.0.0 message accepted");
        }
        Decision::Defer(DeferReason::AuthTemporaryError) => {
            return SmtpReply::new(
                451,
                "4.7.1 the sender could not be authenticated right now (DNS); try again later",
            );
        }
        Decision::Defer(DeferReason::NewSenderFlood) => {
            return SmtpReply::new(
                451,
                "4.7.1 too many new registrations right now; try again later",
            );
        }
    };
    match refusal {
        RefuseReason::SelfRegistrationOff => SmtpReply::new(
            550,
            "5.7.1 self-registration by mail is not available for this service",
        ),
        RefuseReason::DomainNotAllowed => SmtpReply::new(
            550,
            "5.7.1 self-registration is not available for addresses at this domain",
        ),
        RefuseReason::Denied => SmtpReply::new(
            550,
            "5.7.1 self-registration is not available for this address",
        ),
        RefuseReason::SenderMismatch => SmtpReply::new(
            550,
            "5.7.1 the From address must be exactly one address equal to the envelope sender; nobody was registered",
        ),
        RefuseReason::InvalidSender => SmtpReply::new(
            550,
            "5.7.1 the envelope sender cannot be registered; nobody was registered",
        ),
        RefuseReason::NonAsciiSender => SmtpReply::new(
            553,
            "5.6.7 non-ASCII local parts are not supported; nobody was registered",
        ),
        RefuseReason::AccountDisabled => SmtpReply::new(
            550,
            "5.7.1 self-registration is not available for this address",
        ),
        RefuseReason::RateLimited => SmtpReply::new(
            550,
            "5.7.1 too many registration mails for this address; try again later",
        ),
        RefuseReason::ServiceBudget => SmtpReply::new(
            550,
            "5.7.1 this service has sent too many registration mails today; try again tomorrow",
        ),
        RefuseReason::DomainBudget => SmtpReply::new(
            550,
            "5.7.1 too many registration mails for addresses at this domain today; try again tomorrow",
        ),
        RefuseReason::NetworkBudget => SmtpReply::new(
            550,
            "5.7.1 too many registration mails from your network today; try again tomorrow",
        ),
        RefuseReason::NotAuthenticated => SmtpReply::new(
            550,
            "5.7.1 the sender could not be authenticated (DMARC); nobody was registered",
        ),
        RefuseReason::TooManyHops => {
            SmtpReply::new(554, "5.4.6 too many Received headers; mail loop suspected")
        }
    }
}

/// The answer for a message that went through registration.
pub fn for_outcome(outcome: &MailOutcome) -> SmtpReply {
    match outcome {
        MailOutcome::Decided { decision, dropped } => for_decision(decision, *dropped),
        MailOutcome::Duplicate => SmtpReply::new(250, "2.0.0 message already accepted"),
    }
}

/// The answer when the decision could not be committed: temporary, so the
/// sender keeps the message and retries.
pub fn for_store_error(error: &RegistrationError) -> SmtpReply {
    match error {
        RegistrationError::Full => {
            SmtpReply::new(452, "4.3.1 insufficient system storage; try again later")
        }
        RegistrationError::Closed => {
            SmtpReply::new(421, "4.3.2 service shutting down; try again later")
        }
        RegistrationError::Failed(_) => {
            SmtpReply::new(451, "4.3.0 temporary storage failure; try again later")
        }
    }
}

/// The answer for a message we cannot read at all.
///
/// A parser panic is answered `451`: the fault may be ours (a parser bug a
/// later version fixes), and a temporary answer keeps the sender's copy. An
/// unparseable message is permanent: retrying sends the same bytes.
pub fn for_parse_error(error: &ParseError) -> SmtpReply {
    match error {
        ParseError::ParserPanicked => SmtpReply::new(
            451,
            "4.3.0 the message could not be processed; try again later",
        ),
        ParseError::Unparseable => {
            SmtpReply::new(550, "5.6.0 the message has no readable header section")
        }
    }
}

//! Delivery reports for our own replies: a report that came back to a VERP
//! envelope sender names its outbox row by the token; a permanent failure
//! (5.x.x) marks the reply bounced and its address bouncing, so later
//! replies to it are suppressed (reason `bouncing`) until the address sends
//! authenticated mail (`mail.rs` lifts it). Every report is recorded as a
//! decision of the `bounce` channel; a token that names no reply changes
//! nothing.

use crate::domain::{Channel, EmailAddress};
use crate::dsn::DeliveryReport;
use crate::registration::Registrar;
use crate::registration::decide::{About, Kept, Outcome, record};
use crate::registration::error::RegistrationError;
use crate::replies::format_time;
use crate::store::bounces::{self, Report};
use crate::store::{self};
use rusqlite::Connection;

/// What a report to a VERP address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceOutcome {
    /// A permanent failure: the address is bouncing now.
    Bouncing,
    /// A report of another kind (a delay, a success), recorded.
    Noted,
    /// Mail to the address that is not a delivery report (an auto-reply):
    /// recorded, nothing changed.
    NotAReport,
    /// The token names none of our replies: nothing recorded.
    Unknown,
}

fn from_bounce_tx(
    conn: &Connection,
    token: &str,
    report: Option<&DeliveryReport>,
    now: i64,
) -> anyhow::Result<BounceOutcome> {
    let Some(reply) = bounces::reply_for_token(conn, token)? else {
        return Ok(BounceOutcome::Unknown);
    };
    let identity = EmailAddress::parse(&reply.recipient).map_or_else(
        |_| reply.recipient.to_ascii_lowercase(),
        |a| a.identity_key(),
    );
    let about = About {
        service: reply.service.as_deref().unwrap_or("-"),
        address: &reply.recipient,
        identity: Some(identity.clone()),
    };
    let sent = format!(
        "the {} mail of {}",
        reply.kind,
        format_time(reply.created_at)
    );
    let Some(status) = report.and_then(|report| report.status_for(&reply.recipient)) else {
        let note = format!("mail to the bounce address of {sent} that is no delivery report");
        record_bounce(conn, &about, "ignored", "not_a_delivery_report", &note, now)?;
        return Ok(BounceOutcome::NotAReport);
    };
    let diagnostic = status.diagnostic.as_deref();
    let note = format!(
        "{} {} for {sent}{}",
        status.action,
        status.status,
        diagnostic.map_or_else(String::new, |d| format!(": {d}"))
    );
    if !status.is_permanent_failure() {
        record_bounce(conn, &about, "delivery_report", "not_a_failure", &note, now)?;
        return Ok(BounceOutcome::Noted);
    }
    let verdict = Report {
        status: &status.status,
        diagnostic,
        at: now,
    };
    bounces::mark_reply_bounced(conn, reply.outbox_id, verdict)?;
    bounces::mark(conn, &identity, &reply.recipient, reply.outbox_id, verdict)?;
    record_bounce(conn, &about, "bouncing", "permanent_failure", &note, now)?;
    Ok(BounceOutcome::Bouncing)
}

fn record_bounce(
    conn: &Connection,
    about: &About<'_>,
    name: &str,
    reason: &str,
    note: &str,
    now: i64,
) -> anyhow::Result<()> {
    record(
        conn,
        Channel::Bounce,
        about,
        Outcome {
            name,
            reason,
            note: Some(note),
        },
        Kept::default(),
        now,
    )
}

impl Registrar {
    /// Takes a message sent to the VERP address carrying `token`, read as a
    /// delivery report (`None` when it is not one), in one transaction.
    ///
    /// # Errors
    /// A storage failure; nothing was recorded.
    pub async fn from_bounce(
        &self,
        token: String,
        report: Option<DeliveryReport>,
    ) -> Result<BounceOutcome, RegistrationError> {
        Ok(self
            .store
            .write(move |conn| from_bounce_tx(conn, &token, report.as_ref(), store::now()))
            .await?)
    }
}

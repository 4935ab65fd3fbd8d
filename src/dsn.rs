//! Delivery status notifications (RFC 3464): a `multipart/report` whose
//! `message/delivery-status` part says, per recipient, what became of a
//! message (`Action: failed`, `Status: 5.1.1`, `Diagnostic-Code: …`).
//!
//! mail-parser finds the parts (inside `catch_unwind`, as `message` does);
//! the delivery-status part, which it leaves as bytes, is read here: groups
//! of header-like fields separated by empty lines, the first about the
//! message, each further one about a recipient. Nothing here decides what a
//! report changes; `registration` does.

use mail_parser::{MessageParser, MimeHeaders as _, PartType};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Final-Recipient`, the address alone (the `rfc822;` type removed).
    pub final_recipient: Option<String>,
    /// `Action`, lowercased: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, like `5.1.1`.
    pub status: String,
    /// `Diagnostic-Code`, as the receiving system gave it.
    pub diagnostic: Option<String>,
}

impl RecipientStatus {
    /// A permanent failure: the message was not and will not be delivered.
    pub fn is_permanent_failure(&self) -> bool {
        self.action == "failed" && self.status.starts_with('5')
    }
}

/// A delivery status notification, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub recipients: Vec<RecipientStatus>,
}

impl DeliveryReport {
    /// Reads a delivery status notification; `None` when `raw` is not one
    /// (no `message/delivery-status` part, or one without a recipient).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        catch_unwind(AssertUnwindSafe(|| parse_report(raw))).ok()?
    }

    /// The status for `recipient` (compared without ASCII case), or the only
    /// one when the report names a single recipient.
    pub fn status_for(&self, recipient: &str) -> Option<&RecipientStatus> {
        self.recipients
            .iter()
            .find(|r| {
                r.final_recipient
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(recipient))
            })
            .or(match self.recipients.as_slice() {
                [only] => Some(only),
                _ => None,
            })
    }
}

fn parse_report(raw: &[u8]) -> Option<DeliveryReport> {
    let message = MessageParser::default().parse(raw)?;
    let status_part = message.parts.iter().find(|part| {
        part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|sub| {
                    sub.eq_ignore_ascii_case("delivery-status")
                        || sub.eq_ignore_ascii_case("global-delivery-status")
                })
        })
    })?;
    let body: &[u8] = match &status_part.body {
        PartType::Text(text) => text.as_bytes(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes,
        _ => return None,
    };
    let text = String::from_utf8_lossy(body);
    let recipients: Vec<RecipientStatus> = field_groups(&text)
        .into_iter()
        .skip(1)
        .filter_map(|fields| recipient_status(&fields))
        .collect();
    (!recipients.is_empty()).then_some(DeliveryReport { recipients })
}

/// The groups of fields, each a list of (lowercased name, value), folded
/// lines joined.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn recipient_status(fields: &[(String, String)]) -> Option<RecipientStatus> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let status = get("status")?;
    let status = status.split_whitespace().next()?.to_owned();
    let address = |value: String| {
        let address = value
            .split_once(';')
            .map_or(value.as_str(), |(_, a)| a)
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned();
        (!address.is_empty()).then_some(address)
    };
    Some(RecipientStatus {
        final_recipient: get("final-recipient")
            .and_then(address)
            .or_else(|| get("original-recipient").and_then(address)),
        action: get("action")
            .map(|a| a.to_ascii_lowercase())
            .unwrap_or_default(),
        status,
        diagnostic: get("diagnostic-code"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "From: MAILER-DAEMON@mx.example.com\r\n\
To: bounces+0123@registrar.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
Arrival-Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; jane@example.com\r\n\
Original-Recipient: rfc822;jane@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <jane@example.com>: Recipient address\r\n\
\x20rejected: User unknown\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Subject: Activate your account\r\n\
--B--\r\n";

    #[test]
    fn a_postfix_style_report_is_read() {
        let report = DeliveryReport::parse(REPORT.as_bytes()).expect("a report");
        let status = report.status_for("JANE@example.com").expect("jane");
        assert!(status.is_permanent_failure());
        assert_eq!(status.status, "5.1.1");
        assert_eq!(
            status.diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown")
        );
    }

    #[test]
    fn a_delay_is_not_a_failure_and_plain_mail_is_no_report() {
        let delayed = REPORT
            .replace("Action: failed", "Action: delayed")
            .replace("Status: 5.1.1", "Status: 4.4.1");
        let report = DeliveryReport::parse(delayed.as_bytes()).expect("a report");
        assert!(!report.recipients[0].is_permanent_failure());
        assert_eq!(
            DeliveryReport::parse(
                b"From: a@example.com\r\nSubject: out of office\r\n\r\nback soon\r\n"
            ),
            None
        );
    }
}

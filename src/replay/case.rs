//! One replay case: an `.eml` file and the `<case>.expect.toml` beside it.
//!
//! The expectation file holds the case's inputs (envelope, preconditions,
//! settings layered for this case) and the expected outcome, normalised so
//! that it is the same on every run. This module reads, finds and writes those
//! files; it runs nothing. The format is documented in fixtures/README.md.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Suffix of the expectation file that sits beside `<case>.eml`.
pub const EXPECT_SUFFIX: &str = "expect.toml";

/// The first lines of every expectation file `--update` writes.
const HEADER: &str = "\
# Replay case for the .eml file beside this one; see fixtures/README.md.
# `registrar replay --update` keeps every key and rewrites only [expect],
# so write notes into `description` and `source`, not into comments.
";

/// An `.eml` file to replay and, when it exists, its expectation file.
#[derive(Debug, Clone)]
pub struct Case {
    /// The message.
    pub eml: PathBuf,
    /// Where its expectation file is (or would be).
    pub expect_path: PathBuf,
    /// The expectation file's content; `None` when there is no file.
    pub file: Option<CaseFile>,
}

/// The content of `<case>.expect.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What the case shows, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the shape of the message comes from (RFC, client, observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The SMTP envelope; the `.eml` alone does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeSpec>,
    /// State set up through the real pipeline before the message is sent.
    #[serde(default, skip_serializing_if = "Given::is_default")]
    pub given: Given,
    /// Settings layered over the loaded ones for this case only, shaped like
    /// a configuration file (`[settings.policy] email = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<toml::Table>,
    /// The expected outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Outcome>,
}

/// The envelope of a case; missing parts are filled in (see `Envelope`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSpec {
    /// `MAIL FROM`, without brackets; `""` is the null sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    /// `RCPT TO`, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcpt_to: Option<Vec<String>>,
    /// The client's address as the original receiving server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// The name the client gave in EHLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
}

/// A fully resolved envelope, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: IpAddr,
    pub helo: String,
}

impl From<&Envelope> for EnvelopeSpec {
    fn from(envelope: &Envelope) -> Self {
        Self {
            mail_from: Some(envelope.mail_from.clone()),
            rcpt_to: Some(envelope.rcpt_to.clone()),
            client_ip: Some(envelope.client_ip),
            helo: Some(envelope.helo.clone()),
        }
    }
}

/// Preconditions, each set up through the real pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Given {
    /// The state of the registered address's account (the single From
    /// address) before the message.
    #[serde(default, skip_serializing_if = "SenderGiven::is_new")]
    pub sender: SenderGiven,
    /// The very same message was accepted once before (a client retrying
    /// after a lost `250`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier_copy: bool,
}

impl Given {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The registered address's account before the message arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderGiven {
    /// No account (a fresh database).
    #[default]
    New,
    /// Registered by an earlier mail, not yet activated.
    Pending,
    /// Registered and activated over HTTP with the activation link.
    Active,
    /// Registered, then disabled by an operator.
    Disabled,
}

impl SenderGiven {
    fn is_new(&self) -> bool {
        *self == SenderGiven::New
    }
}

/// The observable outcome of one message, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The SMTP step that gave the final answer: `connect`, `mail`, `rcpt`,
    /// `data` (the DATA command) or `message` (end of DATA).
    pub stage: String,
    /// The final SMTP reply code.
    pub code: u16,
    /// The final SMTP reply text (enhanced status code first).
    pub reply: String,
    /// The recorded decision (`Decision::name`); absent when none was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The recorded reason (`Decision::reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The recorded note: how the envelope sender was read when it was not
    /// simply the From address (a BATV tag removed, a forwarder's envelope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A refusal answered `250` by the `refusal = "drop"` setting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    /// The registered address's account afterwards (the single From
    /// address, else the envelope sender): `none`, `pending`, `active` or
    /// `disabled`.
    pub customer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_company: Option<String>,
    /// How many mails were sent because of this message.
    pub mails_sent: usize,
    /// Each mail sent, ordered by recipient and subject.
    #[serde(default, rename = "mail", skip_serializing_if = "Vec::is_empty")]
    pub mails: Vec<SentMail>,
}

/// One mail the daemon sent, normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// The first link in the text part, its token masked as `[token]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Outcome {
    /// The outcome as the `[expect]` table reads in a file, for diffs.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Wrapper<'a> {
            expect: &'a Outcome,
        }
        toml::to_string_pretty(&Wrapper { expect: self })
            .unwrap_or_else(|e| format!("# cannot print the outcome: {e}\n"))
    }
}

/// The expectation path for an `.eml` path.
pub fn expect_path(eml: &Path) -> PathBuf {
    eml.with_extension(EXPECT_SUFFIX)
}

/// Finds every `.eml` file under `paths` (files as given, folders
/// recursively, each folder's files in name order) and reads the expectation
/// beside each.
///
/// # Errors
/// A path that does not exist or is not an `.eml` file, a folder that cannot
/// be read, or an expectation file that is not valid.
pub fn discover(paths: &[PathBuf]) -> anyhow::Result<Vec<Case>> {
    let mut emls = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry =
                    entry.with_context(|| format!("cannot read the folder {}", path.display()))?;
                if entry.file_type().is_file() && is_eml(entry.path()) {
                    found.push(entry.into_path());
                }
            }
            emls.extend(found);
        } else if is_eml(path) {
            emls.push(path.clone());
        } else {
            anyhow::bail!("{} is not an .eml file", path.display());
        }
    }
    emls.into_iter()
        .map(|eml| {
            let expect_path = expect_path(&eml);
            let file = read_case_file(&expect_path)?;
            Ok(Case {
                eml,
                expect_path,
                file,
            })
        })
        .collect()
}

fn is_eml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("eml"))
}

/// Reads an expectation file; `None` when it does not exist.
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub fn read_case_file(path: &Path) -> anyhow::Result<Option<CaseFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let file = toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
    Ok(Some(file))
}

/// Writes an expectation file.
///
/// # Errors
/// The file cannot be serialised or written.
pub fn write_case_file(path: &Path, file: &CaseFile) -> anyhow::Result<()> {
    let body = toml::to_string_pretty(file).context("cannot serialise the expectation")?;
    std::fs::write(path, format!("{HEADER}\n{body}"))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expectation_file_survives_a_round_trip() {
        let text = r#"
description = "a plain message"
[envelope]
mail_from = "jane@example.com"
rcpt_to = ["support@helpdesk.example"]
client_ip = "192.0.2.1"
[given]
sender = "pending"
[settings.policy]
email = false
[expect]
stage = "message"
code = 250
reply = "2.0.0 message accepted"
decision = "register"
reason = "new_customer"
customer = "pending"
mails_sent = 1
[[expect.mail]]
to = "jane@example.com"
subject = "Activate"
link = "http://x/activate?token=[token]"
"#;
        let file: CaseFile = toml::from_str(text).expect("parses");
        assert_eq!(file.given.sender, SenderGiven::Pending);
        let again: CaseFile =
            toml::from_str(&toml::to_string_pretty(&file).expect("prints")).expect("parses again");
        assert_eq!(again, file);
    }

    #[test]
    fn the_expectation_sits_beside_the_message() {
        assert_eq!(
            expect_path(Path::new("fixtures/register/gmail.eml")),
            PathBuf::from("fixtures/register/gmail.expect.toml")
        );
    }
}

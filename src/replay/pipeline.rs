//! Runs one case through the real daemon: builds the `Application` with its
//! listeners on port 0, its own database and the outbound side writing `.eml`
//! files into a folder, sets up the preconditions, delivers the message over
//! SMTP, waits for the outbox to settle and reads the outcome back.
//!
//! Outbound mail is captured with the daemon's own "no relay" transport
//! (lettre writing `.eml` files), so the mail read back is exactly the bytes
//! the mailer produced, and no extra server is needed. Outcomes are
//! normalised here: tokens in links are masked, and nothing that changes per
//! run (Message-IDs, dates, ports) is kept.

use crate::app::Application;
use crate::domain::EmailAddress;
use crate::replay::case::{Case, Envelope, EnvelopeSpec, Given, Outcome, SenderGiven, SentMail};
use crate::replay::{smtp_client, web_client};
use crate::settings::{RawSettings, Settings};
use crate::store::customers::{self, Status};
use crate::store::{Store, inbound, outbox};
use anyhow::Context as _;
use mail_parser::MessageParser;
use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// How long the outbox may take to send what a message queued.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// How the envelope is filled in where a case does not record it.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeDefaults {
    pub mail_from: Option<String>,
    pub client_ip: Option<IpAddr>,
}

/// Runs cases, one daemon each.
pub struct Pipeline {
    /// The loaded settings (embedded defaults, `--config`, environment).
    raw: RawSettings,
    /// A database shared by every case (`--db`); otherwise each case gets a
    /// fresh one in `work`.
    shared_db: Option<PathBuf>,
    defaults: EnvelopeDefaults,
    work: TempDir,
    /// Where the daemon writes outbound mail, for every case.
    outbound: PathBuf,
    /// Files already in `outbound`: mail of earlier cases and preconditions.
    seen: HashSet<OsString>,
    cases_run: usize,
}

/// What running a case produced.
#[derive(Debug, Clone)]
pub struct Observed {
    pub envelope: Envelope,
    pub outcome: Outcome,
}

impl Pipeline {
    /// Prepares a pipeline with a working folder for databases and mail.
    ///
    /// # Errors
    /// The working folder cannot be created.
    pub fn new(
        raw: RawSettings,
        shared_db: Option<PathBuf>,
        defaults: EnvelopeDefaults,
    ) -> anyhow::Result<Self> {
        let work = tempfile::Builder::new()
            .prefix("registrar-replay-")
            .tempdir()
            .context("cannot create a working folder")?;
        let outbound = work.path().join("outbound");
        std::fs::create_dir_all(&outbound).context("cannot create the outbound folder")?;
        Ok(Self {
            raw,
            shared_db,
            defaults,
            work,
            outbound,
            seen: HashSet::new(),
            cases_run: 0,
        })
    }

    /// Runs one case through a fresh daemon and reads its outcome.
    ///
    /// # Errors
    /// The settings are invalid, the daemon cannot start, a precondition
    /// cannot be set up, or the message cannot be delivered or settled.
    pub async fn run(&mut self, case: &Case) -> anyhow::Result<Observed> {
        let raw_message = std::fs::read(&case.eml)
            .with_context(|| format!("cannot read {}", case.eml.display()))?;
        let file = case.file.clone().unwrap_or_default();
        let settings = self.settings_for(file.settings.as_ref())?;
        let envelope = resolve_envelope(
            file.envelope.as_ref(),
            &self.defaults,
            &raw_message,
            &settings,
        );

        let app = Application::build(settings)
            .await
            .context("the daemon does not start")?;
        let daemon = Daemon {
            smtp: app.smtp_addr(),
            http: app.http_addr(),
            store: app.store(),
        };
        let stop = app.shutdown_handle();
        let running = tokio::spawn(app.run_until_stopped());

        let result = self
            .exercise(&daemon, &file.given, &envelope, &raw_message)
            .await;

        stop.trigger();
        match running.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error.context("the daemon failed")),
            Err(error) => anyhow::bail!("the daemon task failed: {error}"),
        }
        let outcome = result?;
        Ok(Observed { envelope, outcome })
    }

    /// The case's settings: the loaded ones, the case's own layer on top,
    /// then what replay itself needs (port 0, own database, capture folder).
    fn settings_for(&mut self, layer: Option<&toml::Table>) -> anyhow::Result<Settings> {
        let raw = match layer {
            Some(layer) => {
                let mut table = toml::Table::try_from(&self.raw)
                    .context("cannot represent the settings as TOML")?;
                merge(&mut table, layer);
                table
                    .try_into::<RawSettings>()
                    .context("the case's [settings] do not fit the settings")?
            }
            None => self.raw.clone(),
        };
        let mut settings = raw.validate()?;
        self.cases_run += 1;
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        settings.smtp.listen = SocketAddr::new(loopback, 0);
        settings.http.listen = SocketAddr::new(loopback, 0);
        // Replay reads outcomes from the store, not from /metrics.
        settings.admin.listen = None;
        settings.store.path = match &self.shared_db {
            Some(path) => path.clone(),
            None => self
                .work
                .path()
                .join(format!("case-{}.sqlite3", self.cases_run)),
        };
        settings.outbound.relay = None;
        settings.outbound.folder = self.outbound.clone();
        Ok(settings)
    }

    async fn exercise(
        &mut self,
        daemon: &Daemon,
        given: &Given,
        envelope: &Envelope,
        raw: &[u8],
    ) -> anyhow::Result<Outcome> {
        self.set_up(daemon, given, envelope, raw)
            .await
            .context("precondition")?;
        self.mark_seen()?;
        let last_decision = daemon
            .store
            .read(|conn| Ok(inbound::last_decision_id(conn)?))
            .await?;

        let reply = smtp_client::deliver(daemon.smtp, envelope, raw).await?;
        daemon.settle().await?;

        let decisions = daemon
            .store
            .read(move |conn| Ok(inbound::decisions_after(conn, last_decision)?))
            .await?;
        let decision = decisions.last();
        let customer = match registered_address(envelope, raw) {
            Some(address) => {
                let identity = address.identity_key();
                daemon
                    .store
                    .read(move |conn| Ok(customers::by_identity(conn, &identity)?))
                    .await?
            }
            None => None,
        };
        let mails = self.new_mails()?;
        Ok(Outcome {
            stage: reply.stage.to_owned(),
            code: reply.code,
            reply: reply.text,
            decision: decision.map(|d| d.outcome.clone()),
            reason: decision.map(|d| d.reason.clone()),
            note: decision.and_then(|d| d.note.clone()),
            dropped: decision.is_some_and(|d| d.dropped),
            customer: customer
                .as_ref()
                .map_or("none", |c| c.status.as_str())
                .to_owned(),
            customer_name: customer.as_ref().and_then(|c| c.name.clone()),
            customer_company: customer.as_ref().and_then(|c| c.company.clone()),
            mails_sent: mails.len(),
            mails,
        })
    }

    /// Brings the sender into the state the case asks for, through the
    /// real pipeline.
    async fn set_up(
        &mut self,
        daemon: &Daemon,
        given: &Given,
        envelope: &Envelope,
        raw: &[u8],
    ) -> anyhow::Result<()> {
        if given.sender != SenderGiven::New {
            let address = registered_address(envelope, raw).with_context(|| {
                format!(
                    "a sender state needs a usable From or envelope sender, not {:?}",
                    envelope.mail_from
                )
            })?;
            self.mark_seen()?;
            // The customer registers first as a plain message from their own
            // address, whatever envelope the case itself uses.
            let registration = registration_message(&address);
            let plain = Envelope {
                mail_from: address.as_str().to_owned(),
                ..envelope.clone()
            };
            let reply = smtp_client::deliver(daemon.smtp, &plain, &registration).await?;
            anyhow::ensure!(
                reply.code == 250,
                "registering {address} answered {} {}",
                reply.code,
                reply.text
            );
            daemon.settle().await?;
            if given.sender == SenderGiven::Active {
                let link = self
                    .new_mails_raw()?
                    .iter()
                    .find_map(|mail| first_link(mail))
                    .context("no activation mail came for the registration")?;
                web_client::activate(daemon.http, &link).await?;
                // Activation queues an "account activated" notice; it belongs
                // to the precondition, not to the case.
                daemon.settle().await?;
                self.mark_seen()?;
            }
            if given.sender == SenderGiven::Disabled {
                let identity = address.identity_key();
                let found = daemon
                    .store
                    .write(move |conn| {
                        Ok(customers::set_status(conn, &identity, Status::Disabled)?)
                    })
                    .await?;
                anyhow::ensure!(found, "no customer {address} to disable");
            }
        }
        if given.earlier_copy {
            let reply = smtp_client::deliver(daemon.smtp, envelope, raw).await?;
            anyhow::ensure!(
                reply.code == 250,
                "the earlier copy answered {} {}",
                reply.code,
                reply.text
            );
            daemon.settle().await?;
        }
        Ok(())
    }

    /// Remembers every mail written so far, so the next read sees only new
    /// ones.
    fn mark_seen(&mut self) -> anyhow::Result<()> {
        self.new_mails_raw().map(drop)
    }

    /// Mail written since the last look, in file-name order.
    fn new_mails_raw(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.outbound).context("cannot read the outbound folder")? {
            let name = entry
                .context("cannot read the outbound folder")?
                .file_name();
            if !self.seen.contains(&name) {
                names.push(name);
            }
        }
        names.sort();
        let mut mails = Vec::new();
        for name in names {
            let path = self.outbound.join(&name);
            mails.push(
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
            );
            self.seen.insert(name);
        }
        Ok(mails)
    }

    /// Mail written since the last look, normalised and sorted.
    fn new_mails(&mut self) -> anyhow::Result<Vec<SentMail>> {
        let mut mails: Vec<SentMail> = self
            .new_mails_raw()?
            .iter()
            .map(|raw| summarize(raw))
            .collect();
        mails.sort();
        Ok(mails)
    }
}

/// What a case needs of a running daemon.
struct Daemon {
    smtp: SocketAddr,
    http: SocketAddr,
    store: Store,
}

impl Daemon {
    /// Waits until nothing is queued in the outbox.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let queued = self
                .store
                .read(|conn| Ok(outbox::depth(conn)?.queued))
                .await?;
            if queued == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the outbox still holds {queued} queued mail after {SETTLE_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Layers `layer` over `base`: tables merge key by key, anything else
/// (values, arrays) is replaced.
fn merge(base: &mut toml::Table, layer: &toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(layer)) => merge(base, layer),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The envelope: the case's own, then the command line's defaults, then what
/// the message says (Return-Path, From, a support address among To/Cc).
pub fn resolve_envelope(
    spec: Option<&EnvelopeSpec>,
    defaults: &EnvelopeDefaults,
    raw: &[u8],
    settings: &Settings,
) -> Envelope {
    let spec = spec.cloned().unwrap_or_default();
    let message = MessageParser::default().parse(raw);
    let mail_from = spec
        .mail_from
        .or_else(|| defaults.mail_from.clone())
        .or_else(|| {
            let message = message.as_ref()?;
            let path = message.header_raw("Return-Path")?.trim();
            Some(
                path.trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim()
                    .to_owned(),
            )
        })
        .or_else(|| {
            let from = message.as_ref()?.from()?.first()?.address()?;
            Some(from.to_owned())
        })
        .unwrap_or_default();
    let support: Vec<&EmailAddress> = settings
        .services
        .iter()
        .flat_map(|service| &service.support_addresses)
        .collect();
    let rcpt_to = spec.rcpt_to.unwrap_or_else(|| {
        let addressed: Vec<String> = message
            .as_ref()
            .map(|message| {
                [message.to(), message.cc()]
                    .into_iter()
                    .flatten()
                    .flat_map(|list| list.iter())
                    .filter_map(|addr| addr.address())
                    .filter_map(|addr| EmailAddress::parse(addr).ok())
                    .filter(|addr| {
                        support
                            .iter()
                            .any(|s| s.identity_key() == addr.identity_key())
                    })
                    .map(|addr| addr.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if addressed.is_empty() {
            support
                .first()
                .map(|s| vec![s.as_str().to_owned()])
                .unwrap_or_default()
        } else {
            addressed
        }
    });
    Envelope {
        mail_from,
        rcpt_to,
        client_ip: spec
            .client_ip
            .or(defaults.client_ip)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        helo: spec.helo.unwrap_or_else(|| "replay.localhost".to_owned()),
    }
}

/// The address a case is about: the one the daemon registers, the single
/// From address; else the envelope sender.
fn registered_address(envelope: &Envelope, raw: &[u8]) -> Option<EmailAddress> {
    let from = MessageParser::default().parse(raw).and_then(|message| {
        let from = message.from()?;
        match from.as_list()? {
            [single] => EmailAddress::parse(single.address()?).ok(),
            _ => None,
        }
    });
    from.or_else(|| EmailAddress::parse(&envelope.mail_from).ok())
}

/// The plain first message a customer sends, used to set up an account.
fn registration_message(address: &EmailAddress) -> Vec<u8> {
    format!(
        "From: {address}\r\nSubject: Please register me\r\n\
         Message-ID: <precondition.{}@replay.invalid>\r\n\
         Date: Mon, 1 Jun 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\nI would like an account.\r\n",
        address.identity_key().replace('@', ".")
    )
    .into_bytes()
}

/// A sent mail reduced to what does not change between runs.
fn summarize(raw: &[u8]) -> SentMail {
    let message = MessageParser::default().parse(raw);
    let header = |name: &str| {
        message
            .as_ref()
            .and_then(|m| m.header_raw(name))
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    SentMail {
        to: message
            .as_ref()
            .and_then(|m| m.to()?.first()?.address().map(str::to_owned))
            .unwrap_or_default(),
        subject: message
            .as_ref()
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default(),
        in_reply_to: header("In-Reply-To"),
        link: first_link(raw).map(|link| mask_token(&link)),
    }
}

/// The first http(s) link in a mail's text part.
fn first_link(raw: &[u8]) -> Option<String> {
    let message = MessageParser::default().parse(raw)?;
    let text = message.body_text(0)?;
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    Some(
        text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '"')
            .collect(),
    )
}

/// Replaces the value of a `token` query parameter with `[token]`.
fn mask_token(link: &str) -> String {
    let Ok(mut url) = url::Url::parse(link) else {
        return link.to_owned();
    };
    if !url.query_pairs().any(|(key, _)| key == "token") {
        return link.to_owned();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if key == "token" {
                "[token]".to_owned()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    url.set_query(None);
    let query: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("{url}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_links_are_masked() {
        assert_eq!(
            mask_token("http://127.0.0.1:8080/activate?token=abcDEF123"),
            "http://127.0.0.1:8080/activate?token=[token]"
        );
        assert_eq!(
            mask_token("http://127.0.0.1:8080/login"),
            "http://127.0.0.1:8080/login"
        );
    }

    #[test]
    fn a_settings_layer_merges_tables_and_replaces_values() {
        let mut base: toml::Table =
            toml::from_str("[policy]\nemail = true\nportal = true\ndenylist = [\"a.example\"]")
                .expect("base");
        let layer: toml::Table =
            toml::from_str("[policy]\nemail = false\ndenylist = []").expect("layer");
        merge(&mut base, &layer);
        let expected: toml::Table =
            toml::from_str("[policy]\nemail = false\nportal = true\ndenylist = []")
                .expect("expected");
        assert_eq!(base, expected);
    }

    #[test]
    fn the_envelope_comes_from_return_path_and_the_support_address_in_to() {
        let settings = crate::settings::load(None).expect("defaults");
        let raw = b"Return-Path: <bounce+x@example.com>\r\nFrom: Jane <jane@example.com>\r\n\
                    To: Support <SUPPORT@helpdesk.example>, other@example.com\r\n\r\nhi\r\n";
        let envelope = resolve_envelope(None, &EnvelopeDefaults::default(), raw, &settings);
        assert_eq!(envelope.mail_from, "bounce+x@example.com");
        assert_eq!(
            envelope.rcpt_to,
            vec!["SUPPORT@helpdesk.example".to_owned()]
        );
        let raw = b"From: Jane <jane@example.com>\r\nTo: nobody@example.com\r\n\r\nhi\r\n";
        let envelope = resolve_envelope(None, &EnvelopeDefaults::default(), raw, &settings);
        assert_eq!(envelope.mail_from, "jane@example.com");
        assert_eq!(
            envelope.rcpt_to,
            vec!["support@helpdesk.example".to_owned()]
        );
    }
}

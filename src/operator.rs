//! What an operator does from the command line, on the same database the
//! daemon is using: invite a customer, hand over a fresh activation link,
//! list and show customers (with every decision recorded for them), disable
//! and enable accounts, take an address off the "never mail" list its
//! owner put it on, export or erase what is kept about an address, and back
//! the database up or restore it.
//!
//! Each command opens its own `Store` (SQLite in WAL mode with a busy
//! timeout, so it writes alongside a running daemon), runs one use case of
//! `registration`, and returns the text to print. Mail queued here is sent by
//! the daemon's outbox worker at its next poll. `backup` needs no `Store`
//! (it copies the file through SQLite); `restore` refuses while a daemon
//! holds the database. Parsing arguments is `main.rs`'s job; this module
//! knows no clap.

use crate::domain::{CustomerName, EmailAddress};
use crate::metrics::Metrics;
use crate::registration::{HandOver, InviteOutcome, Registrar, StatusChange, Unsuppressed};
use crate::replies::format_time;
use crate::settings::Settings;
use crate::store::backup::{self, Checked};
use crate::store::customers::{self, Status};
use crate::store::outbox::{self, SentMail};
use crate::store::{self, Store, inbound, suppressions};
use anyhow::{Context as _, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;

/// The operator's view of the daemon's database.
pub struct Operator {
    registrar: Registrar,
}

impl Operator {
    /// Opens the database named in `settings` (migrating it if needed).
    ///
    /// # Errors
    /// When the database cannot be opened.
    pub fn open(settings: Settings) -> anyhow::Result<Self> {
        // Nobody scrapes a command's metrics; the daemon counts its own.
        let metrics = Metrics::new();
        let store = Store::open(
            &settings.store.path,
            settings.store.max_batch,
            metrics.clone(),
        )?;
        // Nobody listens here: the daemon's outbox worker finds queued mail
        // when it next polls.
        let wake = Arc::new(Notify::new());
        Ok(Self {
            registrar: Registrar::new(Arc::new(settings), store, wake, metrics),
        })
    }

    /// `registrar invite EMAIL --service S [--name N]`.
    ///
    /// # Errors
    /// Unknown service, invalid address or name, an account that is active or
    /// disabled, or a storage failure.
    pub fn invite(&self, email: &str, service: &str, name: Option<&str>) -> anyhow::Result<String> {
        let settings = self.registrar.settings();
        let Some(service) = settings.service(service) else {
            let known: Vec<&str> = settings.services.iter().map(|s| s.id.as_str()).collect();
            bail!(
                "unknown service {service:?}; services are: {}",
                known.join(", ")
            );
        };
        let address = parse_address(email)?;
        let name = match name {
            Some(text) => Some(
                CustomerName::parse(text)
                    .with_context(|| format!("{text:?} is not a usable name"))?,
            ),
            None => None,
        };
        match self
            .registrar
            .invite_blocking(service, address.clone(), name)?
        {
            InviteOutcome::Invited { created: true } => Ok(format!(
                "invited {address} to {}: pending account created, invitation queued\n",
                service.id
            )),
            InviteOutcome::Invited { created: false } => Ok(format!(
                "invited {address} to {} again: the account was already pending; a new invitation with a new link is queued and the old link no longer works\n",
                service.id
            )),
            InviteOutcome::AlreadyActive => {
                bail!("{address} already has an active account; nothing was sent")
            }
            InviteOutcome::Disabled => bail!(
                "{address} has a disabled account; enable it with `registrar customers enable {address}`"
            ),
            InviteOutcome::Suppressed => bail!(
                "the owner of {address} asked never to be mailed; if they now want an invitation, \
                 run `registrar customers unsuppress {address}` first"
            ),
        }
    }

    /// `registrar link EMAIL`: a fresh activation link to hand over.
    ///
    /// # Errors
    /// Invalid address, no such customer, a customer that is not pending, or
    /// a storage failure.
    pub fn link(&self, email: &str) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        match self.registrar.hand_over_link_blocking(&address)? {
            HandOver::Link(link) => Ok(format!("{link}\n")),
            HandOver::Unknown => bail!("no customer has the address {address}"),
            HandOver::NotPending(status) => bail!(
                "{address} is {}; only pending customers get an activation link",
                status.as_str()
            ),
        }
    }

    /// `registrar customers list [--status S] [--service S]`: one customer a
    /// line, newest first, tab-separated.
    ///
    /// # Errors
    /// Unknown status, or a storage failure.
    pub fn list(&self, status: Option<&str>, service: Option<&str>) -> anyhow::Result<String> {
        let status = match status {
            Some(text) => Some(Status::parse(text).with_context(|| {
                format!("unknown status {text:?}; use pending, active or disabled")
            })?),
            None => None,
        };
        let service = service.map(str::to_owned);
        let rows = self
            .registrar
            .store()
            .read_blocking(|conn| Ok(customers::list(conn, status, service.as_deref())?))?;
        let mut out = String::from("email\tstatus\tservice\tsource\tcreated\tname\n");
        for c in rows {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                c.email,
                c.status.as_str(),
                c.service,
                c.source,
                format_time(c.created_at),
                c.name.as_deref().unwrap_or("-")
            );
        }
        Ok(out)
    }

    /// `registrar customers show EMAIL`: the account and every decision
    /// recorded for the address, oldest first (also after a purge).
    ///
    /// # Errors
    /// Invalid address, nothing known about it, or a storage failure.
    pub fn show(&self, email: &str) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        let identity = address.identity_key();
        let rate_key = address.rate_key();
        let (customer, suppression, decisions, mails) =
            self.registrar.store().read_blocking(|conn| {
                Ok((
                    customers::by_identity(conn, &identity)?,
                    suppressions::find(conn, &identity)?,
                    inbound::decisions_for(conn, &identity)?,
                    outbox::mails_to(conn, &rate_key)?,
                ))
            })?;
        if customer.is_none() && decisions.is_empty() && mails.is_empty() {
            bail!("nothing is known about {email}");
        }
        let mut out = String::new();
        match customer {
            Some(c) => {
                let _ = writeln!(out, "email:      {}", c.email);
                let _ = writeln!(out, "status:     {}", c.status.as_str());
                let _ = writeln!(out, "name:       {}", c.name.as_deref().unwrap_or("-"));
                let _ = writeln!(out, "company:    {}", c.company.as_deref().unwrap_or("-"));
                let _ = writeln!(out, "service:    {}", c.service);
                let _ = writeln!(out, "source:     {}", c.source);
                let _ = writeln!(out, "created:    {}", format_time(c.created_at));
                let activated = c.activated_at.map_or_else(|| "-".to_owned(), format_time);
                let _ = writeln!(out, "activated:  {activated}");
            }
            None => {
                let _ = writeln!(out, "email:      {email}");
                let _ = writeln!(out, "status:     no account");
            }
        }
        if let Some(suppression) = suppression {
            let _ = writeln!(
                out,
                "never mail: since {} (by the {}; undo with `registrar customers unsuppress`)",
                format_time(suppression.created_at),
                suppression.source
            );
        }
        let _ = writeln!(out, "decisions:");
        for d in decisions {
            let code = d.reply_code.map_or_else(String::new, |c| format!(" ({c})"));
            let dropped = if d.dropped { " [dropped]" } else { "" };
            let _ = writeln!(
                out,
                "  {}  {:<8} {:<10} {} / {}{code}{dropped}",
                format_time(d.decided_at),
                d.channel,
                d.service,
                d.outcome,
                d.reason
            );
            if let Some(note) = &d.note {
                let _ = writeln!(out, "      {note}");
            }
        }
        let _ = writeln!(out, "mails:");
        for mail in &mails {
            write_mail(&mut out, mail);
        }
        let dead = mails.iter().filter(|m| m.status == "dead").count();
        if dead > 0 {
            let _ = writeln!(out, "dead mails: {dead}");
        }
        Ok(out)
    }

    /// `registrar customers disable|enable EMAIL`.
    ///
    /// # Errors
    /// Invalid address, no such customer, or a storage failure.
    pub fn set_enabled(&self, email: &str, enabled: bool) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        match self.registrar.set_enabled_blocking(&address, enabled)? {
            StatusChange::Unknown => bail!("no customer has the address {address}"),
            StatusChange::Changed { from, to } if from == to => {
                Ok(format!("{address} is already {}\n", to.as_str()))
            }
            StatusChange::Changed { from, to } => Ok(format!(
                "{address}: {} -> {}{}\n",
                from.as_str(),
                to.as_str(),
                if enabled {
                    ""
                } else {
                    " (signed out everywhere)"
                }
            )),
        }
    }
}

/// One mail in `customers show`: when it was queued, what it was, to whom,
/// its delivery state, and the relay's last answer.
fn write_mail(out: &mut String, mail: &SentMail) {
    let state = match (mail.status.as_str(), mail.bounced_at) {
        (_, Some(_)) => "bounced",
        ("sent", None) => "delivered",
        ("dead", None) => "dead",
        _ if mail.attempts > 0 => "retrying",
        _ => "queued",
    };
    let _ = writeln!(
        out,
        "  {}  {:<17} {:<10} {:<8} to {}",
        format_time(mail.created_at),
        mail.kind,
        mail.service.as_deref().unwrap_or("-"),
        state,
        mail.recipient
    );
    let attempts = match mail.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let last = match (mail.last_attempt_at, &mail.last_reply) {
        (Some(at), Some(reply)) => {
            let code = mail
                .last_reply_code
                .map_or_else(String::new, |code| format!("{code} "));
            format!(", last {}: {code}{reply}", format_time(at))
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "      {attempts}{last}");
    if let Some(at) = mail.bounced_at {
        let _ = writeln!(
            out,
            "      bounced {}: {} {}",
            format_time(at),
            mail.bounce_status.as_deref().unwrap_or("-"),
            mail.bounce_diagnostic.as_deref().unwrap_or("")
        );
    }
}

/// `registrar dkim-record [--service S]`: the DNS TXT record that publishes
/// the DKIM key signing the mail of a service (or the global key), in zone
/// file form, with a comment naming the key.
///
/// # Errors
/// Unknown service, no key configured for it, or an unreadable key file.
pub fn dkim_record(settings: &Settings, service: Option<&str>) -> anyhow::Result<String> {
    let (dkim, from) = match service {
        Some(id) => {
            let Some(service) = settings.service(id) else {
                bail!("unknown service {id:?}");
            };
            let from = settings.from_address(service);
            let dkim = service.dkim.as_ref().or_else(|| {
                settings
                    .dkim
                    .as_ref()
                    .filter(|_| from.domain() == settings.outbound.from_address.domain())
            });
            let Some(dkim) = dkim else {
                bail!(
                    "no DKIM key signs the mail of {id} (From {from}): set [dkim] selector and key_file, or the service's own dkim table"
                );
            };
            (dkim, from)
        }
        None => {
            let Some(dkim) = settings.dkim.as_ref() else {
                bail!("no DKIM key is configured: set [dkim] selector and key_file");
            };
            (dkim, &settings.outbound.from_address)
        }
    };
    let key = crate::dkim::PrivateKey::load(&dkim.key_file)?;
    let bits = match key.kind {
        crate::dkim::KeyKind::Rsa { bits } => format!("RSA {bits} bits"),
        crate::dkim::KeyKind::Ed25519 => "Ed25519".to_owned(),
    };
    Ok(format!(
        "; DKIM key for mail from {from} ({bits}, {})\n{}\n",
        dkim.key_file.display(),
        crate::dkim::txt_record(from.domain(), &dkim.selector, &key)
    ))
}

impl Operator {
    /// `registrar customers export EMAIL`: everything kept about the
    /// address, as JSON (never a token, hash, message or reply body).
    ///
    /// # Errors
    /// Invalid address, nothing known about it, or a storage failure.
    pub fn export(&self, email: &str) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        let export = self.registrar.export_blocking(&address)?;
        if export.is_empty() {
            bail!("nothing is known about {address}");
        }
        let mut json = serde_json::to_string_pretty(&export)?;
        json.push('\n');
        Ok(json)
    }

    /// `registrar customers erase EMAIL`: removes the account, its tokens,
    /// sessions, stored messages and replies; keeps the decisions with the
    /// address replaced by `erased`; records the erasure.
    ///
    /// # Errors
    /// Invalid address, nothing known about it, or a storage failure.
    pub fn erase(&self, email: &str) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        let erased = self.registrar.erase_blocking(&address)?;
        if erased.is_empty() && !erased.never_mail_kept {
            bail!("nothing is known about {address}");
        }
        let never_mail = if erased.never_mail_kept {
            "; it stays on the never-mail list (its owner asked never to be mailed; `registrar customers unsuppress` removes it)"
        } else {
            ""
        };
        Ok(format!(
            "erased {address}: account {}, {} tokens, {} sessions, {} stored messages, {} replies, {} webhook events{}; {} decisions kept with the address replaced by \"erased\"{never_mail}\n",
            if erased.account { "removed" } else { "none" },
            erased.tokens,
            erased.sessions,
            erased.messages,
            erased.replies,
            erased.webhook_events,
            if erased.announced {
                " (customer.erased queued for the webhook endpoints)"
            } else {
                ""
            },
            erased.decisions_anonymised,
        ))
    }

    /// `registrar customers unsuppress EMAIL`: mail to the address is
    /// allowed again (its owner had followed "I did not ask for this").
    ///
    /// # Errors
    /// Invalid address, or a storage failure.
    pub fn unsuppress(&self, email: &str) -> anyhow::Result<String> {
        let address = parse_address(email)?;
        match self.registrar.unsuppress_blocking(&address)? {
            Unsuppressed::Removed => Ok(format!(
                "{address} may be mailed again; the next registration or invitation reaches it\n"
            )),
            Unsuppressed::NotListed => bail!("{address} is not on the never-mail list"),
        }
    }
}

/// `registrar backup FILE`: a consistent copy of the database named in
/// `settings`, made while the daemon runs, checked, then moved to `file`.
///
/// # Errors
/// The database cannot be read, or the copy cannot be written or fails its
/// check.
pub fn backup(settings: &Settings, file: &Path) -> anyhow::Result<String> {
    let checked = backup::backup(&settings.store.path, file)?;
    Ok(format!(
        "backed up {} to {}: {}\n",
        settings.store.path.display(),
        file.display(),
        describe(&checked)
    ))
}

/// `registrar restore FILE`: replaces the database named in `settings` with
/// the backup `file`, which is checked first; refuses while the daemon runs.
///
/// # Errors
/// The daemon holds the database, the file fails its check, or a copy
/// fails.
pub fn restore(settings: &Settings, file: &Path) -> anyhow::Result<String> {
    let restored = backup::restore(&settings.store.path, file, store::now())?;
    let kept = restored.kept.map_or_else(String::new, |kept| {
        format!("; the database it replaced is kept as {}", kept.display())
    });
    Ok(format!(
        "restored {} from {}: {}{kept}\n",
        settings.store.path.display(),
        file.display(),
        describe(&restored.checked)
    ))
}

fn describe(checked: &Checked) -> String {
    format!(
        "integrity ok, schema version {}, {} customers, {} decisions, {} bytes",
        checked.schema_version, checked.customers, checked.decisions, checked.bytes
    )
}

fn parse_address(email: &str) -> anyhow::Result<EmailAddress> {
    EmailAddress::parse(email).with_context(|| format!("{email:?} is not a usable address"))
}

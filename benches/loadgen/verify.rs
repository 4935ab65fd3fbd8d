//! The crash harness's checks, on a database the daemon has stopped using:
//! every message answered `250` is there with its decision, no address has
//! two customers, every reply a registration promised is in the outbox, and
//! `PRAGMA integrity_check` says `ok`.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::io::BufRead as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The database file.
    #[arg(long)]
    db: PathBuf,
    /// Files written by `send --accepted-log` (one or more).
    #[arg(long, required = true)]
    accepted: Vec<PathBuf>,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(&args.db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut failures = Vec::new();

    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    if integrity != "ok" {
        failures.push(format!("integrity_check: {integrity}"));
    }

    let mut acknowledged = 0u64;
    let mut missing = 0u64;
    let mut undecided = 0u64;
    let mut no_reply = 0u64;
    let mut find =
        conn.prepare("SELECT id FROM inbound WHERE message_id = ?1 AND envelope_from = ?2")?;
    let mut decided = conn.prepare("SELECT outcome FROM decisions WHERE identity = ?1")?;
    // Addresses with a reply in the outbox, read once (the outbox has no
    // index by address: the policy reads counters instead).
    let replied: std::collections::HashSet<String> = conn
        .prepare("SELECT DISTINCT rate_key FROM outbox")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for path in &args.accepted {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        for line in file.lines() {
            let line = line?;
            let mut fields = line.split('\t');
            let (Some(sender), Some(message_id)) = (fields.next(), fields.next()) else {
                continue;
            };
            acknowledged += 1;
            let found: Option<i64> = find
                .query_row([message_id, sender], |row| row.get(0))
                .optional()?;
            if found.is_none() {
                missing += 1;
                if missing <= 5 {
                    failures.push(format!(
                        "answered 250 but not stored: {sender} {message_id}"
                    ));
                }
                continue;
            }
            let identity = sender.to_ascii_lowercase();
            let outcome: Option<String> = decided
                .query_row([&identity], |row| row.get(0))
                .optional()?;
            match outcome.as_deref() {
                None => undecided += 1,
                Some("register" | "resend_activation") => {
                    if !replied.contains(&identity) {
                        no_reply += 1;
                    }
                }
                Some(_) => {}
            }
        }
    }
    if missing > 0 {
        failures.push(format!("{missing} acknowledged messages missing"));
    }
    if undecided > 0 {
        failures.push(format!(
            "{undecided} acknowledged messages without a decision"
        ));
    }
    if no_reply > 0 {
        failures.push(format!("{no_reply} registrations without an outbox row"));
    }

    let twice: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (SELECT lower(email) FROM customers GROUP BY lower(email) HAVING COUNT(*) > 1)",
        [],
        |row| row.get(0),
    )?;
    if twice > 0 {
        failures.push(format!("{twice} addresses with two customers"));
    }
    // Every registration decision must have left its reply in the outbox,
    // whether or not the load generator heard the 250.
    let mut orphans = 0i64;
    let mut registrations = conn.prepare(
        "SELECT identity FROM decisions
         WHERE outcome IN ('register', 'resend_activation') AND dropped = 0",
    )?;
    for identity in registrations.query_map([], |row| row.get::<_, Option<String>>(0))? {
        if !identity?.is_some_and(|identity| replied.contains(&identity)) {
            orphans += 1;
        }
    }
    if orphans > 0 {
        failures.push(format!(
            "{orphans} registration decisions without an outbox row"
        ));
    }
    let (customers, outbox, decisions): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM outbox), (SELECT COUNT(*) FROM decisions)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    println!(
        "verify: {acknowledged} acknowledged; database holds {customers} customers, \
         {decisions} decisions, {outbox} outbox rows; integrity_check={integrity}"
    );
    if failures.is_empty() {
        println!("verify: ok (0 of {acknowledged} acknowledged messages lost)");
        Ok(())
    } else {
        for failure in &failures {
            println!("verify: FAIL {failure}");
        }
        anyhow::bail!("{} check(s) failed", failures.len())
    }
}

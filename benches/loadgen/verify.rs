//! The crash harness's checks, on a database the daemon has stopped using:
//! every message answered `250` is there with its decision, no address has
//! two customers, every reply a registration promised is in the outbox, and
//! `PRAGMA integrity_check` says `ok`.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashSet;
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
    // Every stored (Message-ID, envelope sender), read once: the index on
    // Message-ID leads with the period a message came in (schema 18), so a
    // lookup by Message-ID alone would read the whole table each time.
    let stored = conn
        .prepare("SELECT message_id, envelope_from FROM inbound WHERE message_id IS NOT NULL")?
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<HashSet<(String, String)>, _>>()?;
    let mut decided = conn.prepare("SELECT outcome FROM decisions WHERE identity = ?1")?;
    let mut replies = conn.prepare("SELECT COUNT(*) FROM outbox WHERE rate_key = ?1")?;
    for path in &args.accepted {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        for line in file.lines() {
            let line = line?;
            let mut fields = line.split('\t');
            let (Some(sender), Some(message_id)) = (fields.next(), fields.next()) else {
                continue;
            };
            acknowledged += 1;
            if !stored.contains(&(message_id.to_owned(), sender.to_owned())) {
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
                    let count: i64 = replies.query_row([&identity], |row| row.get(0))?;
                    if count == 0 {
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
    let orphans: i64 = conn.query_row(
        "SELECT COUNT(*) FROM decisions d
         WHERE d.outcome IN ('register', 'resend_activation') AND d.dropped = 0
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.rate_key = d.identity)",
        [],
        |row| row.get(0),
    )?;
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

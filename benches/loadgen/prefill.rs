//! Fills a registrar database with past traffic, fast: the schema comes
//! from the daemon's own migrations (`Store::open`), then every row goes in
//! through prepared statements in one transaction with `synchronous=OFF`
//! (a benchmark fixture, not data anyone needs to survive a power cut).
//!
//! Each past message is, like real traffic: an accepted registration
//! (inbound record, decision, customer, token for the pending ones, a sent
//! reply whose body is erased), or every `refused_every`-th one a refusal
//! answered in the session (a decision only).

use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct PrefillArgs {
    /// The database file (created and migrated if missing).
    #[arg(long)]
    db: PathBuf,
    /// Past messages to add.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Service id of the rows.
    #[arg(long, default_value = "bench")]
    service: String,
    /// Support address the past messages were sent to.
    #[arg(long, default_value = "support@bench.test")]
    rcpt: String,
    /// The messages are spread evenly over this many days, ending an hour ago.
    #[arg(long, default_value_t = 365)]
    days: u64,
    /// Every n-th message was refused in the session (0: none).
    #[arg(long, default_value_t = 5)]
    refused_every: u64,
    /// Makes senders distinct from those of other fills and of the load.
    #[arg(long, default_value = "past")]
    tag: String,
}

pub fn run(args: &PrefillArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // The daemon's own migrations make the schema; the writer thread it
    // starts ends when the store is dropped.
    drop(registrar::store::Store::open(
        &args.db,
        1,
        registrar::metrics::Metrics::new(),
    )?);
    let mut conn = Connection::open(&args.db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?; // 256 MiB
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let now = registrar::store::now();
    let newest = now - 3600;
    let span = i64::try_from(args.days * 86_400)?;
    let count = args.messages.max(1);
    let tx = conn.transaction()?;
    {
        let mut inbound = tx.prepare(
            "INSERT INTO inbound (received_at, service, client_ip, helo, envelope_from, envelope_to,
                                  message_id, content_sha256, size, raw)
             VALUES (?1, ?2, ?3, 'prefill.test', ?4, ?5, ?6, ?7, 2048, NULL)",
        )?;
        let mut customer = tx.prepare(
            "INSERT INTO customers (email, identity, name, company, service, status, password_hash,
                                    source, created_at, activated_at, updated_at)
             VALUES (?1, ?1, ?2, NULL, ?3, ?4, ?5, 'mail', ?6, ?7, COALESCE(?7, ?6))",
        )?;
        let mut token = tx.prepare(
            "INSERT INTO activation_tokens (hash, customer_id, created_at, expires_at, used_at)
             VALUES (?1, ?2, ?3, ?4, NULL)",
        )?;
        let mut decision = tx.prepare(
            "INSERT INTO decisions (decided_at, inbound_id, channel, service, address, identity,
                                    outcome, reason, dropped, reply_code)
             VALUES (?1, ?2, 'mail', ?3, ?4, ?5, ?6, ?7, 0, ?8)",
        )?;
        let mut outbox = tx.prepare(
            "INSERT INTO outbox (created_at, kind, recipient, rate_key, envelope_from, message_id,
                                 body, status, attempts, next_attempt_at, sent_at)
             VALUES (?1, 'activation', ?2, ?2, '', ?3, NULL, 'sent', 1, ?1, ?1 + 1)",
        )?;
        // Pending customers older than this would have been purged; the
        // older ones are active.
        let pending_after = now - 30 * 86_400;
        for n in 0..args.messages {
            let at = newest - span + i64::try_from(n)? * span / i64::try_from(count)?;
            let sender = format!("p{}{n}@hist{}.example", args.tag, n % 997);
            let client_ip = format!("127.{}.{}.{}", 1 + n % 250, (n / 250) % 250, 2 + n % 250);
            if args.refused_every > 0 && n % args.refused_every == args.refused_every - 1 {
                decision.execute(params![
                    at,
                    Option::<i64>::None,
                    args.service,
                    sender,
                    sender,
                    "refuse",
                    "sender_mismatch",
                    550
                ])?;
                continue;
            }
            let message_id = format!("{}.{n}@prefill.test", args.tag);
            let hash = Sha256::digest(message_id.as_bytes());
            inbound.execute(params![
                at,
                args.service,
                client_ip,
                sender,
                args.rcpt,
                message_id,
                &hash[..]
            ])?;
            let inbound_id = tx.last_insert_rowid();
            let pending = at > pending_after;
            customer.execute(params![
                sender,
                if pending { None } else { Some(format!("Past Customer {n}")) },
                args.service,
                if pending { "pending" } else { "active" },
                if pending {
                    None
                } else {
                    Some("$argon2id$v=19$m=19456,t=2,p=1$cHJlZmlsbA$cHJlZmlsbGVkLW5vdC1hLXJlYWwtaGFzaA")
                },
                at,
                if pending { None } else { Some(at + 600) },
            ])?;
            let customer_id = tx.last_insert_rowid();
            if pending {
                let token_hash = Sha256::digest(format!("token {message_id}").as_bytes());
                token.execute(params![&token_hash[..], customer_id, at, at + 72 * 3600])?;
            }
            decision.execute(params![
                at,
                inbound_id,
                args.service,
                sender,
                sender,
                "register",
                "new_customer",
                250
            ])?;
            outbox.execute(params![at, sender, format!("out.{message_id}")])?;
        }
    }
    // What the daemon keeps beside those rows: the service's reply counts
    // for the hours its daily budget still reads.
    tx.execute(
        "INSERT INTO reply_counts (scope, service, key, hour, replies)
         SELECT 'service', ?2, '', created_at / 3600, COUNT(*)
         FROM outbox WHERE created_at > ?1 GROUP BY created_at / 3600
         ON CONFLICT (scope, service, key, hour) DO UPDATE
         SET replies = replies + excluded.replies",
        params![now - 2 * 86_400, args.service],
    )?;
    // The past messages are stored without their bytes, as a history whose
    // raw bytes left long ago: the purge's walk that erases them has
    // passed them all.
    tx.execute(
        "INSERT INTO purge_cursors (name, after_id)
         SELECT 'inbound_raw', COALESCE(MAX(id), 0) FROM inbound WHERE true
         ON CONFLICT (name) DO UPDATE SET after_id = excluded.after_id",
        [],
    )?;
    tx.commit()?;
    let filled = started.elapsed();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    println!(
        "prefill: {} past messages into {} in {:.1}s (checkpointed in {:.1}s)",
        args.messages,
        args.db.display(),
        filled.as_secs_f64(),
        (started.elapsed() - filled).as_secs_f64()
    );
    Ok(())
}

//! The idle-sessions stress: many idle connections from distinct client
//! addresses, then one normal mail from another address, retried once a
//! second like an impatient MTA, timed until it is answered `250`.

use crate::smtp::{self, Connection};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct IdleArgs {
    /// The server, on 127.0.0.0/8 only.
    #[arg(long)]
    target: SocketAddr,
    /// Idle connections, each from its own client address.
    #[arg(long, default_value_t = 300)]
    connections: u64,
    /// Envelope recipient of the normal mail.
    #[arg(long, default_value = "support@bench.test")]
    rcpt: String,
    /// First client-address number of the idle connections.
    #[arg(long, default_value_t = 900_000)]
    source_offset: u64,
    /// Give up on the normal mail after this many seconds.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
}

pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    crate::loopback_only(args.target)?;
    let timeout = Duration::from_secs(10);
    let mut idle = Vec::new();
    let mut greetings: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..args.connections {
        let source = smtp::client_address(args.source_offset + n);
        match Connection::open(args.target, source, timeout).await {
            Ok(connection) => {
                *greetings.entry("220+250".into()).or_default() += 1;
                idle.push(connection);
            }
            Err(failure) => *greetings.entry(failure.label()).or_default() += 1,
        }
    }
    println!(
        "idle: {} connections opened from distinct addresses: {}",
        args.connections,
        crate::stats::codes_line(&greetings)
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.deadline);
    let source = smtp::client_address(args.source_offset + args.connections + 1);
    let (sender, message_id) = crate::load::identity("idle", started.elapsed().as_nanos() as u64);
    let body = smtp::message(&sender, &args.rcpt, &message_id, 2048);
    let mut attempts = 0u32;
    let mut last = String::new();
    while Instant::now() < deadline {
        attempts += 1;
        let result = match Connection::open(args.target, source, timeout).await {
            Ok(mut connection) => {
                let sent = connection.send(&sender, &args.rcpt, &body).await;
                connection.quit().await;
                sent
            }
            Err(failure) => Err(failure),
        };
        match result {
            Ok(()) => {
                let waited = started.elapsed().as_secs_f64();
                println!(
                    "idle: normal mail answered 250 after {waited:.2}s ({attempts} attempts, last refusal {last:?})"
                );
                println!("idle_time_to_250={waited:.2} held={}", idle.len());
                return Ok(());
            }
            Err(failure) => last = failure.label(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "idle: normal mail NOT answered 250 within {}s ({attempts} attempts, last {last})",
        args.deadline
    );
    println!("idle_time_to_250=none held={}", idle.len());
    Ok(())
}

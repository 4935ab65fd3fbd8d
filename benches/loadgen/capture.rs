//! A capturing relay of our own (the daemon's `outbound.relay` in the
//! end-to-end run): speaks just enough SMTP for lettre, records each
//! recipient with the time its mail arrived, and keeps nothing else.

use crate::load::{self, LoadArgs};
use crate::stats;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Arrival time by recipient (lowercased), first mail only.
#[derive(Default)]
pub struct Captured {
    pub arrivals: Mutex<HashMap<String, SystemTime>>,
    pub mails: std::sync::atomic::AtomicU64,
    pub arrived: Notify,
}

/// Serves the relay on `listener` until the process ends.
pub async fn serve(listener: TcpListener, captured: Arc<Captured>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(session(stream, Arc::clone(&captured)));
    }
}

async fn session(stream: TcpStream, captured: Arc<Captured>) -> std::io::Result<()> {
    // Each reply is one small write answering a command: send it at once.
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 capture.test ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let verb = text.get(..4).unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250 capture.test\r\n").await?,
            "MAIL" => {
                recipients.clear();
                write.write_all(b"250 2.1.0 ok\r\n").await?;
            }
            "RCPT" => {
                if let Some(address) = text
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                {
                    recipients.push(address.0.to_ascii_lowercase());
                }
                write.write_all(b"250 2.1.5 ok\r\n").await?;
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                }
                let now = SystemTime::now();
                {
                    let mut arrivals = captured
                        .arrivals
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner());
                    for recipient in recipients.drain(..) {
                        arrivals.entry(recipient).or_insert(now);
                    }
                }
                captured
                    .mails
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                captured.arrived.notify_waiters();
                write.write_all(b"250 2.0.0 captured\r\n").await?;
            }
            "RSET" | "NOOP" => write.write_all(b"250 2.0.0 ok\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 5.5.2 not here\r\n").await?,
        }
    }
}

/// The end-to-end run: relay up, load sent, then wait for a reply to every
/// accepted message; prints the end-to-end rate and `250`-to-relay times.
pub async fn e2e(args: LoadArgs, capture: SocketAddr, settle_seconds: u64) -> anyhow::Result<()> {
    crate::loopback_only(capture)?;
    let listener = TcpListener::bind(capture).await?;
    let captured = Arc::new(Captured::default());
    tokio::spawn(serve(listener, Arc::clone(&captured)));

    let started = SystemTime::now();
    let outcome = load::run(&args).await?;
    load::report(&args, &outcome)?;
    let expected: Vec<String> = outcome
        .accepted
        .iter()
        .map(|a| a.sender.to_ascii_lowercase())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(settle_seconds);
    loop {
        let arrived = {
            let arrivals = captured
                .arrivals
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            expected
                .iter()
                .filter(|s| arrivals.contains_key(*s))
                .count()
        };
        if arrived >= expected.len() {
            break;
        }
        if Instant::now() >= deadline {
            println!(
                "e2e: gave up waiting: {arrived} of {} replies arrived",
                expected.len()
            );
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), captured.arrived.notified()).await;
    }
    let arrivals = captured
        .arrivals
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut delays = Vec::new();
    let mut last = started;
    for accepted in &outcome.accepted {
        if let Some(at) = arrivals.get(&accepted.sender.to_ascii_lowercase()) {
            delays.push(at.duration_since(accepted.at).unwrap_or_default());
            last = last.max(*at);
        }
    }
    // From the first connection to the last reply mail at the relay.
    let last_arrival = last.duration_since(started).unwrap_or_default();
    let arrived = delays.len();
    println!(
        "e2e: {arrived} of {} accepted registrations had their reply at the relay; \
         load {:.2}s, last reply at {:.2}s",
        expected.len(),
        outcome.elapsed.as_secs_f64(),
        last_arrival.as_secs_f64()
    );
    println!("250-to-relay: {}", stats::latency_line(delays.clone()));
    delays.sort_unstable();
    println!(
        "e2e_rate={:.1} accept_rate={:.1} relay_p50_ms={:.1} relay_p99_ms={:.1} complete={}",
        arrived as f64 / last_arrival.as_secs_f64().max(1e-9),
        outcome.accepted_rate(),
        stats::percentile(&delays, 50.0).as_secs_f64() * 1000.0,
        stats::percentile(&delays, 99.0).as_secs_f64() * 1000.0,
        u8::from(arrived == expected.len())
    );
    Ok(())
}

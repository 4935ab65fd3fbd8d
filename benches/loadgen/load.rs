//! The load: N messages from N distinct senders over M parallel sessions,
//! one or K messages per connection, each connection from its own loopback
//! client address. Every final reply is counted by code.

use crate::smtp::{self, Connection, Failure};
use crate::stats;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

#[derive(clap::Args, Clone)]
pub struct LoadArgs {
    /// The server, on 127.0.0.0/8 only.
    #[arg(long)]
    pub target: SocketAddr,
    /// Messages in all, each from a distinct sender.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,
    /// Parallel sessions.
    #[arg(long, default_value_t = 10)]
    pub sessions: u64,
    /// Messages per connection.
    #[arg(long, default_value_t = 1)]
    pub per_connection: u64,
    /// Envelope recipient (a support address of the server under test).
    #[arg(long, default_value = "support@bench.test")]
    pub rcpt: String,
    /// Makes senders and Message-IDs distinct between runs.
    #[arg(long, default_value = "a")]
    pub tag: String,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// First client-address number, so that runs can use disjoint addresses.
    #[arg(long, default_value_t = 0)]
    pub source_offset: u64,
    /// Messages per second to aim at (default: as fast as the server takes them).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Longest wait for one reply, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Stop starting new messages after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub max_seconds: u64,
    /// Pause between connection attempts of a session after a network error
    /// (the crash harness: the daemon is down for a moment), in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub error_pause_ms: u64,
    /// Write `sender<TAB>message-id<TAB>unix-nanos` for every `250` to this file.
    #[arg(long)]
    pub accepted_log: Option<PathBuf>,
    /// Runtime threads of the generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Send MAIL, RCPT and DATA as one pipelined group (RFC 2920), as
    /// Postfix's SMTP client does, instead of waiting for each reply.
    #[arg(long)]
    pub pipelining: bool,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub sender: String,
    pub message_id: String,
    /// Wall-clock time of the `250`, to compare with the capturing relay.
    pub at: SystemTime,
}

#[derive(Default)]
pub struct Outcome {
    pub codes: BTreeMap<String, u64>,
    pub latencies: Vec<Duration>,
    pub accepted: Vec<Accepted>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn accepted_rate(&self) -> f64 {
        self.accepted.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Sender and Message-ID of message `n`.
pub fn identity(tag: &str, n: u64) -> (String, String) {
    (
        format!("u{tag}{n}@bench{}.test", n % 97),
        format!("{tag}.{n}@loadgen.test"),
    )
}

pub async fn run_and_report(args: LoadArgs) -> anyhow::Result<()> {
    let outcome = run(&args).await?;
    report(&args, &outcome)?;
    Ok(())
}

pub fn report(args: &LoadArgs, outcome: &Outcome) -> anyhow::Result<()> {
    if let Some(path) = &args.accepted_log {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for accepted in &outcome.accepted {
            let nanos = accepted
                .at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            writeln!(
                file,
                "{}\t{}\t{nanos}",
                accepted.sender, accepted.message_id
            )?;
        }
        file.flush()?;
    }
    println!(
        "target={} messages={} sessions={} per_connection={} pipelining={} elapsed={:.3}s",
        args.target,
        args.messages,
        args.sessions,
        args.per_connection,
        args.pipelining,
        outcome.elapsed.as_secs_f64()
    );
    println!("codes: {}", stats::codes_line(&outcome.codes));
    println!(
        "latency (start of transaction to final reply): {}",
        stats::latency_line(outcome.latencies.clone())
    );
    println!(
        "accepted={} rate={:.1}",
        outcome.accepted.len(),
        outcome.accepted_rate()
    );
    Ok(())
}

struct Shared {
    args: LoadArgs,
    /// Set by SIGTERM or SIGINT: start no new message, report what happened.
    stop: std::sync::atomic::AtomicBool,
    next_message: AtomicU64,
    next_connection: AtomicU64,
    started: Instant,
    deadline: Instant,
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<Outcome> {
    crate::loopback_only(args.target)?;
    anyhow::ensure!(
        args.sessions > 0 && args.per_connection > 0,
        "sessions and per-connection must be positive"
    );
    let started = Instant::now();
    let shared = Arc::new(Shared {
        args: args.clone(),
        stop: std::sync::atomic::AtomicBool::new(false),
        next_message: AtomicU64::new(0),
        next_connection: AtomicU64::new(0),
        started,
        deadline: started + Duration::from_secs(args.max_seconds),
    });
    let stopper = tokio::spawn(stop_on_signal(Arc::clone(&shared)));
    let mut workers = Vec::new();
    for _ in 0..args.sessions {
        workers.push(tokio::spawn(session(Arc::clone(&shared))));
    }
    let mut outcome = Outcome::default();
    for worker in workers {
        let part = worker.await?;
        for (code, count) in part.codes {
            *outcome.codes.entry(code).or_default() += count;
        }
        outcome.latencies.extend(part.latencies);
        outcome.accepted.extend(part.accepted);
    }
    outcome.elapsed = started.elapsed();
    stopper.abort();
    let unsent = args.messages - outcome.codes.values().sum::<u64>().min(args.messages);
    if unsent > 0 {
        outcome.codes.insert("not_sent".into(), unsent);
    }
    Ok(outcome)
}

/// One parallel session: connection after connection until the messages
/// run out or the deadline passes.
async fn session(shared: Arc<Shared>) -> Outcome {
    let args = &shared.args;
    let timeout = Duration::from_secs(args.timeout);
    let mut outcome = Outcome::default();
    loop {
        let first = shared
            .next_message
            .fetch_add(args.per_connection, Ordering::Relaxed);
        if first >= args.messages
            || Instant::now() >= shared.deadline
            || shared.stop.load(Ordering::Relaxed)
        {
            break;
        }
        let last = (first + args.per_connection).min(args.messages);
        pace(&shared, first).await;
        let source = smtp::client_address(
            args.source_offset + shared.next_connection.fetch_add(1, Ordering::Relaxed),
        );
        let began = Instant::now();
        let mut connection = match Connection::open(args.target, source, timeout).await {
            Ok(connection) => connection.pipelined(args.pipelining),
            Err(failure) => {
                count_failure(&mut outcome, &failure, last - first);
                if args.error_pause_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(args.error_pause_ms)).await;
                }
                continue;
            }
        };
        let mut began = began;
        let mut broken = None;
        for n in first..last {
            if n > first {
                pace(&shared, n).await;
                began = Instant::now();
            }
            let (sender, message_id) = identity(&args.tag, n);
            let body = smtp::message(&sender, &args.rcpt, &message_id, args.size);
            match connection.send(&sender, &args.rcpt, &body).await {
                Ok(()) => {
                    outcome.latencies.push(began.elapsed());
                    *outcome.codes.entry("250".into()).or_default() += 1;
                    outcome.accepted.push(Accepted {
                        sender,
                        message_id,
                        at: SystemTime::now(),
                    });
                }
                Err(failure) => {
                    outcome.latencies.push(began.elapsed());
                    let network = failure.code.is_none();
                    let closing = failure.code == Some(421);
                    count_failure(&mut outcome, &failure, 1);
                    if network || closing {
                        broken = Some(last - n - 1);
                        break;
                    }
                    // A refused message (5xx, or 4xx other than 421) ends only
                    // that transaction; make sure the session is clean.
                    let _ = connection.command("RSET", smtp::Stage::Mail, 250).await;
                }
            }
        }
        match broken {
            Some(left) => {
                if left > 0 {
                    *outcome.codes.entry("not_sent".into()).or_default() += left;
                }
            }
            None => connection.quit().await,
        }
    }
    outcome
}

/// The crash harness stops the load with SIGTERM once its kills are done;
/// the report (and the accepted log) must still be written.
async fn stop_on_signal(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    shared.stop.store(true, Ordering::Relaxed);
}

fn count_failure(outcome: &mut Outcome, failure: &Failure, messages: u64) {
    *outcome.codes.entry(failure.label()).or_default() += messages;
}

/// With `--rate`, message `n` does not start before `n / rate` seconds.
async fn pace(shared: &Shared, n: u64) {
    if let Some(rate) = shared.args.rate.filter(|r| *r > 0.0) {
        let at = shared.started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
    }
}

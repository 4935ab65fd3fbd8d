//! `loadgen`: the SMTP load generator and database tools behind the scripts
//! in `benches/` (issue 9).
//!
//! Build: `cargo build --release --example loadgen`; the binary is
//! `target/release/examples/loadgen`. Subcommands:
//!
//! - `send`: N messages from N distinct senders over M parallel sessions, one
//!   message per connection or K, every connection from its own loopback
//!   client address (127.x.y.z, bound before connect); prints the final reply
//!   codes by count, the per-message latency and the rate.
//! - `e2e`: `send` plus a capturing relay of our own; waits for every reply
//!   mail and prints the end-to-end rate and the time from `250` to relay.
//! - `idle`: holds many idle sessions from distinct addresses, then times one
//!   normal mail from another address until it is answered `250`.
//! - `prefill`: fills a registrar database with past messages, decisions,
//!   customers, tokens and sent replies in one transaction.
//! - `verify`: the crash harness's checks on a database.
//!
//! Only loopback targets are accepted: this is a load generator, and it must
//! not be pointed at someone else's server.

mod capture;
mod idle;
mod load;
mod prefill;
mod smtp;
mod stats;
mod verify;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser)]
#[command(about = "SMTP load generator and database tools for registrar's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sends a load and reports reply codes, latency and rate.
    Send(load::LoadArgs),
    /// Sends a load with a capturing relay listening, and waits for every reply.
    E2e(E2eArgs),
    /// Holds idle sessions, then times one normal mail.
    Idle(idle::IdleArgs),
    /// Fills a registrar database with past traffic.
    Prefill(prefill::PrefillArgs),
    /// Checks a database after the crash harness.
    Verify(verify::VerifyArgs),
}

#[derive(clap::Args)]
struct E2eArgs {
    #[command(flatten)]
    load: load::LoadArgs,
    /// Where the capturing relay listens (the daemon's `outbound.relay`).
    #[arg(long)]
    capture: SocketAddr,
    /// Longest wait, after the load, for the last reply mail.
    #[arg(long, default_value_t = 300)]
    settle_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Prefill(args) => prefill::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Send(args) => runtime(args.threads)?.block_on(load::run_and_report(args)),
        Command::E2e(args) => runtime(args.load.threads)?.block_on(capture::e2e(
            args.load,
            args.capture,
            args.settle_seconds,
        )),
        Command::Idle(args) => runtime(1)?.block_on(idle::run(args)),
    }
}

/// A small runtime: the generator should leave the CPUs to the server.
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    })
}

/// Refuses anything but an IPv4 loopback target (client addresses are
/// drawn from 127.0.0.0/8, which only reaches 127.0.0.0/8).
pub fn loopback_only(target: SocketAddr) -> anyhow::Result<()> {
    match target {
        SocketAddr::V4(v4) if v4.ip().is_loopback() => Ok(()),
        _ => anyhow::bail!("refusing {target}: only 127.0.0.0/8 targets are allowed"),
    }
}

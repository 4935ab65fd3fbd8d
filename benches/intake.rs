//! Intake throughput: messages per second the real daemon accepts over real
//! SMTP, with 1 and with 10 parallel sessions, and the group-commit batch
//! sizes the store writer saw (read from `/metrics` on the admin listener).
//!
//! Run with `cargo bench --bench intake` (optionally `-- MESSAGES`, default
//! 2000 per run). Every message comes from a distinct sender, so each one is
//! a full registration: inbound record, decision, customer, token, outbox row.

use registrar::app::Application;
use registrar::replay::smtp_client::{Reply, SmtpClient};
use std::time::{Duration, Instant};

const SUPPORT: &str = "support@helpdesk.example";

fn main() -> anyhow::Result<()> {
    let messages: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("messages per run: {messages}");
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>14} {:>13}",
        "sessions", "seconds", "messages/s", "commits", "jobs/commit", "largest batch"
    );
    for sessions in [1usize, 10] {
        let result = runtime.block_on(run(sessions, messages))?;
        println!(
            "{:>8} {:>10.2} {:>12.0} {:>10} {:>14.2} {:>13}",
            sessions,
            result.elapsed.as_secs_f64(),
            messages as f64 / result.elapsed.as_secs_f64(),
            result.commits,
            result.jobs as f64 / result.commits.max(1) as f64,
            result.largest_batch
        );
    }
    Ok(())
}

/// A wrong answer stops the run: the figures would measure something else.
fn expect(reply: Reply, code: u16) -> anyhow::Result<()> {
    anyhow::ensure!(
        reply.code == code,
        "unexpected SMTP reply: {} {}",
        reply.code,
        reply.text
    );
    Ok(())
}

struct RunResult {
    elapsed: Duration,
    commits: u64,
    jobs: u64,
    largest_batch: u64,
}

async fn run(sessions: usize, messages: usize) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let mut settings = registrar::settings::load(None)?;
    settings.smtp.listen = "127.0.0.1:0".parse()?;
    settings.http.listen = "127.0.0.1:0".parse()?;
    settings.http.public_url = url::Url::parse("http://127.0.0.1:0/")?;
    settings.store.path = dir.path().join("bench.sqlite3");
    settings.outbound.relay = None;
    settings.outbound.folder = dir.path().join("outbound");
    // One client sends everything: lift the per-client and per-session caps
    // (and the service's daily reply budget) that would otherwise stop it.
    settings.smtp.max_messages_per_session = u32::MAX;
    settings.smtp.max_sessions_per_ip = u32::MAX;
    settings.smtp.max_connections_per_ip_per_minute = u32::MAX;
    settings.services[0].policy.limits.service_per_day = u32::MAX;
    settings.services[0].policy.limits.domain_per_day = u32::MAX;
    settings.services[0].policy.limits.network_per_day = u32::MAX;
    settings.circuit_breaker.new_senders_per_minute = u32::MAX;
    settings.store.raw_quota.per_client_per_hour = u64::MAX;
    settings.store.raw_quota.per_hour = u64::MAX;
    settings.admin.listen = Some("127.0.0.1:0".parse()?);
    let app = Application::build(settings).await?;
    let smtp = app.smtp_addr();
    let admin = app
        .admin_addr()
        .ok_or_else(|| anyhow::anyhow!("no admin listener"))?;
    let stop = app.shutdown_handle();
    let store = app.store();
    let daemon = tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..sessions {
        let share = messages / sessions + usize::from(worker < messages % sessions);
        workers.push(tokio::spawn(async move {
            let (mut client, _) = SmtpClient::connect(smtp).await?;
            expect(client.command("EHLO bench.test").await?, 250)?;
            for n in 0..share {
                let from = format!("user{worker}x{n}@bench.example");
                let message = format!(
                    "From: Bench User <{from}>\r\nTo: {SUPPORT}\r\nSubject: account\r\n\
                     Message-ID: <{worker}.{n}@bench.example>\r\n\r\nplease\r\n"
                );
                expect(client.command(&format!("MAIL FROM:<{from}>")).await?, 250)?;
                expect(client.command(&format!("RCPT TO:<{SUPPORT}>")).await?, 250)?;
                expect(client.command("DATA").await?, 354)?;
                expect(client.send_body(message.as_bytes()).await?, 250)?;
            }
            let _ = client.command("QUIT").await;
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();

    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await?
        .text()
        .await?;
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    };
    // The batch-size histogram counts commits and sums their jobs; the
    // largest batch is the writer's own figure.
    let result = RunResult {
        elapsed,
        commits: metric("registrar_store_batch_jobs_count ") as u64,
        jobs: metric("registrar_store_batch_jobs_sum ") as u64,
        largest_batch: store
            .stats()
            .largest_batch
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    stop.trigger();
    daemon.await??;
    Ok(result)
}

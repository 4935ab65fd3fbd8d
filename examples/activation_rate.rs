//! Measures argon2id time per hash at the configured cost, and activations per
//! second through the real daemon (GET the link, POST name and password over
//! HTTP, one transaction) against the bare hash rate.
//!
//! Run: `cargo run --example activation_rate [ACTIVATIONS]` (a debug build:
//! argon2 and blake2 are built at opt-level 3 by Cargo.toml, the rest is not
//! optimized). Uses the embedded defaults, a temp database and port 0; mail
//! goes to `.eml` files in the temp folder. Rate limits are lifted for the
//! run, since every request comes from one address.

use registrar::app::Application;
use registrar::domain::EmailAddress;
use registrar::metrics::Metrics;
use registrar::password::PasswordHasher;
use registrar::registration::{HandOver, Registrar};
use registrar::settings;
use registrar::store::Store;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let activations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir()?;
    let mut settings = settings::load(None)?;
    settings.smtp.listen = "127.0.0.1:0".parse()?;
    settings.http.listen = "127.0.0.1:0".parse()?;
    settings.http.public_url = url::Url::parse("http://127.0.0.1:0/")?;
    settings.store.path = dir.path().join("bench.sqlite3");
    settings.outbound.folder = dir.path().join("outbound");
    settings.rate_limits.activations_per_ip = u32::MAX;
    settings.rate_limits.invalid_tokens_per_ip = u32::MAX;
    // Every activation is sent at once: let them all wait for a hash rather
    // than be told to come back (this measures the hash rate, not the cap).
    settings.password.max_queued_hashes = usize::MAX;
    settings.admin.listen = None;
    let password = settings.password.clone();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "argon2id m={} KiB, t={}, p={}; max_concurrent_hashes={}; {cores} cores",
        password.argon2_memory_kib,
        password.argon2_iterations,
        password.argon2_parallelism,
        password.max_concurrent_hashes
    );

    // Bare hash rate: one thread, then one thread per permit.
    let hasher = PasswordHasher::new(&password, Metrics::new())?;
    let samples = 20;
    let started = Instant::now();
    for _ in 0..samples {
        hasher.hash_blocking("violet staple orbit canyon")?;
    }
    let per_hash = started.elapsed() / samples;
    println!(
        "one thread: {:.1} ms per hash",
        per_hash.as_secs_f64() * 1e3
    );
    let threads = password.max_concurrent_hashes;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let hasher = hasher.clone();
            scope.spawn(move || {
                for _ in 0..samples {
                    let _ = hasher.hash_blocking("violet staple orbit canyon");
                }
            });
        }
    });
    let bare_rate = (threads as u32 * samples) as f64 / started.elapsed().as_secs_f64();
    println!("{threads} threads: {bare_rate:.1} hashes/s (the bare hash rate)");

    // Activations through the daemon.
    let app = Application::build(settings).await?;
    let http_addr = app.http_addr();
    let app_settings = app.settings();
    let stop = app.shutdown_handle();
    let running = tokio::spawn(app.run_until_stopped());
    let links = {
        let settings = Arc::clone(&app_settings);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            let metrics = Metrics::new();
            let store = Store::open(
                &settings.store.path,
                settings.store.max_batch,
                metrics.clone(),
            )?;
            let service = settings.services[0].clone();
            let registrar = Registrar::new(settings, store, Arc::default(), metrics);
            (0..activations)
                .map(|i| {
                    let address = EmailAddress::parse(&format!("bench{i}@example.com"))?;
                    registrar.invite_blocking(&service, address.clone(), None)?;
                    match registrar.hand_over_link_blocking(&address)? {
                        HandOver::Link(link) => Ok(link.to_string()),
                        other => anyhow::bail!("no link: {other:?}"),
                    }
                })
                .collect()
        })
        .await??
    };
    let started = Instant::now();
    let tasks: Vec<_> = links
        .into_iter()
        .map(|link| tokio::spawn(activate(link, http_addr)))
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await?? {
            ok += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = f64::from(ok) / elapsed;
    println!(
        "{ok}/{activations} activations in {elapsed:.2} s: {rate:.1} activations/s ({:.0}% of the bare hash rate)",
        100.0 * rate / bare_rate
    );
    stop.trigger();
    running.await??;
    Ok(())
}

/// GET the link, then POST name and password, as a browser would.
async fn activate(link: String, http_addr: std::net::SocketAddr) -> anyhow::Result<bool> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = http.get(&link).send().await?.text().await?;
    let field = |name: &str| -> String {
        let marker = format!("name=\"{name}\" value=\"");
        page.find(&marker)
            .map(|at| {
                page[at + marker.len()..]
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let response = http
        .post(format!("http://{http_addr}/activate"))
        .form(&[
            ("csrf", field("csrf")),
            ("token", field("token")),
            ("name", "Bench".to_owned()),
            ("password", "violet staple orbit canyon".to_owned()),
            ("confirm", "violet staple orbit canyon".to_owned()),
        ])
        .send()
        .await?;
    Ok(response.status() == reqwest::StatusCode::SEE_OTHER)
}

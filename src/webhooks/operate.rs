//! `registrar webhooks …`: what an operator does with the queues beside a
//! running daemon. `list` shows each endpoint's queue and recent events,
//! `retry` queues dead events again (their age counted from now), `test`
//! sends a signed `webhook.test` event to endpoints at once and reports
//! their answers, and `secret` prints a fresh signing secret.
//!
//! `list` and `retry` work on the database only; the daemon's workers send
//! what `retry` queued at their next poll. Parsing arguments is `main.rs`'s
//! job.

use crate::domain::WebhookSecret;
use crate::replies::format_time;
use crate::settings::Settings;
use crate::store::webhook_events::{self, Status};
use crate::store::{self, Store};
use crate::webhooks::{payload, sender};
use anyhow::{Context as _, bail};
use std::fmt::Write as _;

/// Events `list` shows at most.
const LIST_LIMIT: usize = 100;

/// `registrar webhooks list [--status S] [--endpoint E]`: every endpoint
/// (configured, or still holding events) with its counts, then the newest
/// events, tab-separated.
///
/// # Errors
/// Unknown status, or a storage failure.
pub fn list(
    store: &Store,
    settings: &Settings,
    status: Option<&str>,
    endpoint: Option<&str>,
) -> anyhow::Result<String> {
    let status =
        match status {
            Some(text) => Some(Status::parse(text).with_context(|| {
                format!("unknown status {text:?}; use queued, delivered or dead")
            })?),
            None => None,
        };
    let endpoint = endpoint.map(str::to_owned);
    let (counts, events) = store.read_blocking(|conn| {
        Ok((
            webhook_events::counts(conn)?,
            webhook_events::list(conn, status, endpoint.as_deref(), LIST_LIMIT)?,
        ))
    })?;
    let mut out = String::from("endpoint\tqueued\tdelivered\tdead\turl\n");
    for configured in &settings.webhooks {
        let (queued, delivered, dead) = counts
            .iter()
            .find(|(name, ..)| *name == configured.name)
            .map_or((0, 0, 0), |(_, q, s, d)| (*q, *s, *d));
        let _ = writeln!(
            out,
            "{}\t{queued}\t{delivered}\t{dead}\t{}",
            configured.name,
            without_query(&configured.url)
        );
    }
    for (name, queued, delivered, dead) in &counts {
        if settings.webhooks.iter().all(|c| c.name != *name) {
            let _ = writeln!(
                out,
                "{name}\t{queued}\t{delivered}\t{dead}\t(no longer configured)"
            );
        }
    }
    out.push_str("\nevent\tendpoint\ttype\tstatus\tqueued\tattempts\tnext attempt\tlast answer\n");
    for event in events {
        let next = if event.status == Status::Queued {
            format_time(event.next_attempt_ms / 1000)
        } else {
            "-".to_owned()
        };
        let answer = match (&event.last_status, &event.last_error) {
            (_, Some(error)) => error.clone(),
            (Some(status), None) => status.to_string(),
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{next}\t{answer}",
            event.event_id,
            event.endpoint,
            event.kind,
            event.status.as_str(),
            format_time(event.created_at),
            event.attempts
        );
    }
    Ok(out)
}

/// `registrar webhooks retry [--endpoint E] [EVENT_ID…]`: dead events
/// queued again, due at once.
///
/// # Errors
/// A storage failure.
pub fn retry(
    store: &Store,
    endpoint: Option<&str>,
    event_ids: &[String],
) -> anyhow::Result<String> {
    let endpoint = endpoint.map(str::to_owned);
    let event_ids = event_ids.to_vec();
    let queued = store.write_blocking(move |conn| {
        Ok(webhook_events::retry_dead(
            conn,
            endpoint.as_deref(),
            &event_ids,
            store::now(),
        )?)
    })?;
    Ok(format!(
        "{queued} dead event{} queued again; the daemon sends {} at its next poll\n",
        if queued == 1 { "" } else { "s" },
        if queued == 1 { "it" } else { "them" }
    ))
}

/// `registrar webhooks test [--endpoint E]`: a signed `webhook.test` event
/// sent to each endpoint (or the named one) now, with each answer.
///
/// # Errors
/// No endpoint is configured or named, or an endpoint did not answer `2xx`
/// (after every endpoint was tried).
pub async fn test(settings: &Settings, endpoint: Option<&str>) -> anyhow::Result<String> {
    let endpoints: Vec<_> = settings
        .webhooks
        .iter()
        .filter(|e| endpoint.is_none_or(|name| e.name == name))
        .collect();
    if endpoints.is_empty() {
        match endpoint {
            Some(name) => bail!("no [[webhooks]] endpoint is named {name:?}"),
            None => bail!("no [[webhooks]] endpoint is configured"),
        }
    }
    let client = crate::http_client::build(settings.webhook_delivery.timeout)?;
    let mut out = String::new();
    let mut failed = 0;
    for endpoint in endpoints {
        let now = store::now();
        let (id, body) = payload::test_event(&endpoint.name, now)?;
        match sender::send(&client, endpoint, &id, now, &body).await {
            Ok(status) => {
                let _ = writeln!(out, "{}: delivered {id} ({status})", endpoint.name);
            }
            Err(failure) => {
                failed += 1;
                let _ = writeln!(out, "{}: failed {id}: {}", endpoint.name, failure.message);
            }
        }
    }
    if failed > 0 {
        bail!("{out}{failed} endpoint(s) did not accept the test event");
    }
    Ok(out)
}

/// `registrar webhooks secret`: a new `whsec_` secret for an endpoint.
pub fn secret() -> String {
    format!("{}\n", WebhookSecret::generate())
}

/// An endpoint's URL without its query (which may hold a credential).
fn without_query(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

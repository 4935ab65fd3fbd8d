//! One delivery attempt: a POST of the stored body to the endpoint with the
//! Standard Webhooks headers, signed for this attempt's timestamp, under the
//! client's timeout and without following redirects. A `2xx` answer is
//! delivery; anything else is a failure the worker retries, except `410
//! Gone`, the receiver's way of saying it wants no more.

use crate::settings::WebhookEndpoint;
use crate::webhooks::signature;
use std::time::Duration;

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// What went wrong, for the operator (never the URL, which may hold a
    /// credential in its query).
    pub message: String,
    /// The wait the endpoint asked for (`Retry-After` in seconds).
    pub retry_after: Option<Duration>,
    /// Retrying cannot help (`410 Gone`).
    pub permanent: bool,
}

/// Sends `body` as event `event_id` to `endpoint`, signed at `timestamp`
/// (Unix seconds). Returns the `2xx` status.
///
/// # Errors
/// The `Failure`: no answer, or an answer other than `2xx`.
pub async fn send(
    client: &reqwest::Client,
    endpoint: &WebhookEndpoint,
    event_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<u16, Failure> {
    let signature = signature::sign(&endpoint.secret, event_id, timestamp, body);
    let response = client
        .post(endpoint.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header("webhook-id", event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|error| Failure {
            status: None,
            message: error.without_url().to_string(),
            retry_after: None,
            permanent: false,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(Failure {
        status: Some(status.as_u16()),
        message: format!("the endpoint answered {status}"),
        retry_after,
        permanent: status == reqwest::StatusCode::GONE,
    })
}

const USER_AGENT: &str = concat!("registrar/", env!("CARGO_PKG_VERSION"), " (webhooks)");

//! `Receiver`: a webhook endpoint of the test's own, a small HTTP server on
//! loopback. It checks every request the way the Standard Webhooks
//! specification tells a receiver to (its own HMAC-SHA256 over
//! `id.timestamp.body` with the secret's key, the timestamp within five
//! minutes), records it, and answers from a script (say `500` three times)
//! and then `200`.

use super::DEADLINE;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A secret both sides know (24 bytes: `0x01` … `0x18`).
pub const SECRET: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// Whether `webhook-signature` held a `v1` signature that verifies.
    pub verified: bool,
    pub body: serde_json::Value,
    /// What the receiver answered.
    pub answered: u16,
}

impl Request {
    /// The payload's `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// A string field of the payload's `data`.
    pub fn data(&self, field: &str) -> Option<&str> {
        self.body["data"][field].as_str()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

/// The test's webhook endpoint.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// Listens on `addr` (a port handed out before, for a receiver that
    /// comes up late).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// A loopback address nothing listens on yet (a receiver that is down).
    pub async fn free_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    }

    /// The URL to configure: `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next requests are answered with these statuses, in order; then
    /// `200` again.
    pub fn answer(&self, statuses: &[u16]) {
        self.shared
            .script
            .lock()
            .expect("receiver lock")
            .extend(statuses.iter().copied());
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("receiver lock").clone()
    }

    /// The requests answered `2xx`: the deliveries.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits until at least `count` deliveries have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let notified = self.shared.arrived.notified();
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {count} webhook deliveries; got {:?}",
                    self.requests()
                );
            }
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp").parse::<i64>().unwrap_or(0);
    let verified = verify(&id, timestamp, &header("webhook-signature"), &body)
        && header("content-type") == "application/json";
    let answered = shared
        .script
        .lock()
        .expect("receiver lock")
        .pop_front()
        .unwrap_or(200);
    let request = Request {
        id,
        timestamp,
        verified,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        answered,
    };
    shared.requests.lock().expect("receiver lock").push(request);
    shared.arrived.notify_waiters();
    StatusCode::from_u16(answered).expect("a status")
}

/// The receiver's side of the scheme, written from the specification: the
/// key is the base64 after `whsec_`; any of the space-separated `v1,`
/// signatures may match; the timestamp must be within five minutes.
fn verify(id: &str, timestamp: i64, signatures: &str, body: &[u8]) -> bool {
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("the test secret is base64");
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let fresh = i64::try_from(now).is_ok_and(|now| (now - timestamp).abs() <= 300);
    let matches = signatures.split(' ').any(|signature| {
        signature
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|given| bool::from(expected.as_slice().ct_eq(&given)))
    });
    fresh && !id.is_empty() && matches
}

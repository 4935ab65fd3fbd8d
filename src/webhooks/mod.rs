//! Webhooks: customer events for the help desk's other systems, delivered
//! at least once and signed the Standard Webhooks way.
//!
//! `registration` queues an event (`payload::customer_event`) for every
//! endpoint that wants it, in the transaction of the decision that caused
//! it; `worker` sends each endpoint's queue on its own (`sender` makes one
//! signed attempt, `signature` computes the `v1` HMAC); `operate` is the
//! command line's `registrar webhooks list|retry|test|secret`. `Wake` tells
//! the workers that something was queued.

pub mod operate;
pub mod payload;
pub mod sender;
pub mod signature;
pub mod worker;

use std::sync::Arc;
use tokio::sync::Notify;

/// Wakes every endpoint's worker after a commit that queued events; cheap
/// to clone. A process without workers (the command line) has none, and the
/// daemon's workers find those events at their next poll.
#[derive(Clone, Default)]
pub struct Wake(Arc<Vec<Arc<Notify>>>);

impl Wake {
    /// One notifier per endpoint, in the order of `settings.webhooks`.
    pub fn new(endpoints: usize) -> Self {
        Self(Arc::new(
            (0..endpoints).map(|_| Arc::new(Notify::new())).collect(),
        ))
    }

    /// The notifier of the endpoint at `index`.
    pub fn endpoint(&self, index: usize) -> Option<Arc<Notify>> {
        self.0.get(index).cloned()
    }

    /// Wakes every worker (a permit is kept for one that is busy).
    pub fn wake(&self) {
        for notify in self.0.iter() {
            notify.notify_one();
        }
    }
}

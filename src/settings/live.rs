//! `LiveSettings`: the settings a running daemon reads, of which the services
//! and their self-registration policies can be reloaded (SIGHUP) without a
//! restart. Everything else (listeners, store, outbound, limits) is fixed at
//! start-up: changing it needs a restart.
//!
//! Readers take a snapshot (`current`) and use it for one whole piece of
//! work, such as one SMTP session or one request, so a reload never mixes two
//! versions of a service within it.

use crate::settings::Settings;
use std::sync::{Arc, RwLock};

/// Shared, reloadable settings; cheap to clone.
#[derive(Clone)]
pub struct LiveSettings {
    current: Arc<RwLock<Arc<Settings>>>,
}

impl LiveSettings {
    pub fn new(settings: Settings) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(settings))),
        }
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Takes the services and their policies from `fresh`; every other key
    /// keeps the value it had at start-up. Returns the number of services now
    /// in force.
    pub fn reload_services(&self, fresh: Settings) -> usize {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut next = Settings::clone(&current);
        next.services = fresh.services;
        let count = next.services.len();
        *current = Arc::new(next);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Access;

    #[test]
    fn a_reload_changes_the_services_and_nothing_else() {
        let live = LiveSettings::new(super::super::load(None).expect("defaults"));
        let before = live.current();
        let mut fresh = super::super::load(None).expect("defaults");
        fresh.services[0].policy.access = Access::NoOne;
        fresh.smtp.max_sessions = 1;

        live.reload_services(fresh);

        let after = live.current();
        assert_eq!(after.services[0].policy.access, Access::NoOne);
        assert_eq!(
            after.smtp.max_sessions, before.smtp.max_sessions,
            "listener limits need a restart"
        );
        assert_eq!(
            before.services[0].policy.access,
            Access::Anyone,
            "a snapshot taken before stays as it was"
        );
    }
}

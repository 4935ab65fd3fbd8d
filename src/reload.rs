//! SIGHUP: reload the services and their self-registration policies (the
//! denylist, access mode, switches, limits, sender authentication) from the
//! same configuration, without a restart. Everything else — listeners, the
//! store, the outbound relay, SMTP and web limits — needs a restart and is
//! left as it was started.
//!
//! A configuration that does not validate is refused whole: the policy in
//! force stays, and the error names every bad key.

use crate::policy::SenderAuthMode;
use crate::settings::{self, LiveSettings, Settings};
use std::path::{Path, PathBuf};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The services in force now.
    Services(usize),
    /// Nothing changed; the reason.
    Refused(String),
}

/// Loads the configuration again and, if it is valid and needs no restart,
/// puts its services and policies in force.
pub fn reload(config: Option<&Path>, live: &LiveSettings) -> Reloaded {
    let fresh = match settings::load(config) {
        Ok(fresh) => fresh,
        Err(error) => return Reloaded::Refused(error.to_string()),
    };
    // DNS for in-process DMARC is set up at start-up, and only when a service
    // needs it.
    if uses_dmarc(&fresh) && !uses_dmarc(&live.current()) {
        return Reloaded::Refused(
            "a service now uses sender_auth = \"dmarc\", which needs DNS set up at start-up: restart instead".into(),
        );
    }
    Reloaded::Services(live.reload_services(fresh))
}

fn uses_dmarc(settings: &Settings) -> bool {
    settings
        .services
        .iter()
        .any(|service| service.policy.sender_auth == SenderAuthMode::Dmarc)
}

/// Catches SIGHUP from now on (call inside the runtime, before systemd hears
/// READY=1: an uncaught SIGHUP would end the process) and returns the loop
/// that reloads on each one, to be spawned.
///
/// # Errors
/// Fails when the handler cannot be installed.
pub fn on_hangup(
    config: Option<PathBuf>,
    live: LiveSettings,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup())?;
    Ok(reload_on_each(hangups, config, live))
}

async fn reload_on_each(
    mut hangups: tokio::signal::unix::Signal,
    config: Option<PathBuf>,
    live: LiveSettings,
) {
    while hangups.recv().await.is_some() {
        match reload(config.as_deref(), &live) {
            Reloaded::Services(count) => {
                tracing::info!(services = count, "SIGHUP: services and policies reloaded");
            }
            Reloaded::Refused(reason) => {
                tracing::error!(reason = %reason, "SIGHUP: reload refused; the policy in force stays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_configuration_is_refused_and_the_policy_stays() {
        let live = LiveSettings::new(settings::load(None).expect("defaults"));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[policy]\nself_registration = \"everybody\"\n").expect("write");

        let outcome = reload(Some(&file), &live);

        assert!(
            matches!(&outcome, Reloaded::Refused(reason) if reason.contains("self_registration")),
            "{outcome:?}"
        );
        assert_eq!(
            live.current().services[0].policy.access,
            crate::policy::Access::Anyone
        );
    }

    #[test]
    fn switching_a_service_to_dmarc_needs_a_restart() {
        let live = LiveSettings::new(settings::load(None).expect("defaults"));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dmarc.toml");
        std::fs::write(
            &file,
            "[[services]]\nid = \"demo\"\nname = \"Demo\"\nsupport_addresses = [\"support@helpdesk.example\"]\n",
        )
        .expect("write");

        assert!(
            matches!(reload(Some(&file), &live), Reloaded::Refused(reason) if reason.contains("restart"))
        );
    }
}

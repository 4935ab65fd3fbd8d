//! Validation: every key of `RawSettings` checked, all problems reported at
//! once, and the result converted into typed settings. One file per section
//! (`smtp`, `http`, `admin` with `api_tokens`, `store`, `outbound`,
//! `accounts`, `circuit_breaker`, `sender_auth`, `dkim`, `sign_in` for
//! `[oidc.google]` and `[ldap]`, `log`, `webhooks` for `[[webhooks]]` and
//! `[webhook_delivery]`, `services` with their `policy`); each checks its
//! own keys and converts them, and this file puts the sections together.

mod accounts;
mod admin;
mod api_tokens;
mod circuit_breaker;
mod dkim;
mod http;
mod log;
mod outbound;
mod policy;
mod sender_auth;
mod services;
mod sign_in;
mod smtp;
mod store;
mod webhooks;

use crate::settings::raw::RawSettings;
use crate::settings::{Settings, SettingsError};
use crate::wording::{EMBEDDED, Wording};
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;

impl RawSettings {
    /// Checks every key and converts to typed settings.
    ///
    /// # Errors
    /// `SettingsError::Invalid` naming every bad key.
    pub fn validate(self) -> Result<Settings, SettingsError> {
        let mut problems = Problems::default();
        let smtp = smtp::validate(self.smtp, &mut problems);
        let http = http::validate(self.http, &mut problems);
        let admin = admin::validate(&self.admin, &mut problems);
        let store = store::validate(self.store, &mut problems);
        let outbound = outbound::validate(self.outbound, &mut problems);
        let activation = accounts::activation(&self.activation, &mut problems);
        let password = accounts::password(&self.password, &mut problems);
        let session = accounts::session(&self.session, &mut problems);
        let rate_limits = accounts::rate_limits(&self.rate_limits, &mut problems);
        let circuit_breaker = circuit_breaker::validate(&self.circuit_breaker, &mut problems);
        let sender_auth = sender_auth::validate(&self.sender_auth, &mut problems);
        let dkim = dkim::validate(&self.dkim, "dkim", &mut problems);
        let service_ids: Vec<&str> = self.services.iter().map(|s| s.id.as_str()).collect();
        let templates_dir =
            Some(self.templates.dir.as_path()).filter(|d| !d.as_os_str().is_empty());
        let wording = match templates_dir {
            None => Some(Arc::clone(&EMBEDDED)),
            Some(dir) if !dir.is_dir() => {
                problems.push(format!("templates.dir: {} is not a folder", dir.display()));
                None
            }
            Some(dir) => problems
                .parse("templates.dir", Wording::load(Some(dir), &service_ids))
                .map(Arc::new),
        };
        let log = log::validate(&self.log, &mut problems);
        // The MTAs in front of us are also whose Authentication-Results a
        // service trusts, unless it names its own.
        let relays = smtp.as_ref().map_or(&[][..], |smtp| &smtp.relays[..]);
        let services = services::validate(&self.policy, &self.services, relays, &mut problems);
        let service_ids: Vec<&str> = self.services.iter().map(|s| s.id.as_str()).collect();
        let oidc = self
            .oidc
            .google
            .as_ref()
            .and_then(|raw| sign_in::oidc(raw, &service_ids, &mut problems));
        let ldap = self
            .ldap
            .as_ref()
            .and_then(|raw| sign_in::ldap(raw, &service_ids, &mut problems));
        let webhook_delivery = webhooks::delivery(&self.webhook_delivery, &mut problems);
        let webhooks = webhooks::endpoints(&self.webhooks, &mut problems);
        match (smtp, http, admin, outbound, webhook_delivery) {
            (Some(smtp), Some(http), Some(admin), Some(outbound), Some(webhook_delivery))
                if problems.0.is_empty() =>
            {
                Ok(Settings {
                    smtp,
                    http,
                    admin,
                    store,
                    outbound,
                    activation,
                    password,
                    session,
                    rate_limits,
                    circuit_breaker,
                    sender_auth,
                    dkim,
                    wording: wording.unwrap_or_else(|| Arc::clone(&EMBEDDED)),
                    log,
                    oidc,
                    ldap,
                    webhooks,
                    webhook_delivery,
                    services,
                })
            }
            _ => Err(SettingsError::Invalid(problems.0)),
        }
    }
}

/// The problems found so far, each naming its key.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    /// Notes `message` unless `ok`.
    fn check(&mut self, ok: bool, message: &str) {
        if !ok {
            self.0.push(message.to_owned());
        }
    }

    fn push(&mut self, message: String) {
        self.0.push(message);
    }

    /// The value, or `None` with the error noted under `key`.
    fn parse<T, E: Display>(&mut self, key: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.push(format!("{key}: {e}"))).ok()
    }

    /// An enum setting parsed by its `FromStr` (the names it accepts).
    fn choice<T: FromStr<Err = String>>(&mut self, key: &str, text: &str) -> Option<T> {
        self.parse(key, text.parse::<T>())
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

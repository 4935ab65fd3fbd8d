//! Validation: every key of `RawSettings` checked, all problems reported at
//! once, and the result converted into typed settings. One file per section
//! (`smtp`, `http`, `store`, `outbound`, `accounts`, `sender_auth`, `log`,
//! `services` with their `policy`); each checks its own keys and converts
//! them, and this file puts the sections together.

mod accounts;
mod http;
mod log;
mod outbound;
mod policy;
mod sender_auth;
mod services;
mod smtp;
mod store;

use crate::settings::raw::RawSettings;
use crate::settings::{Settings, SettingsError};
use std::fmt::Display;
use std::str::FromStr;

impl RawSettings {
    /// Checks every key and converts to typed settings.
    ///
    /// # Errors
    /// `SettingsError::Invalid` naming every bad key.
    pub fn validate(self) -> Result<Settings, SettingsError> {
        let mut problems = Problems::default();
        let smtp = smtp::validate(self.smtp, &mut problems);
        let http = http::validate(self.http, &mut problems);
        let store = store::validate(self.store, &mut problems);
        let outbound = outbound::validate(self.outbound, &mut problems);
        let activation = accounts::activation(&self.activation, &mut problems);
        let password = accounts::password(&self.password, &mut problems);
        let session = accounts::session(&self.session, &mut problems);
        let rate_limits = accounts::rate_limits(&self.rate_limits, &mut problems);
        let sender_auth = sender_auth::validate(&self.sender_auth, &mut problems);
        let log = log::validate(&self.log, &mut problems);
        let services = services::validate(&self.policy, &self.services, &mut problems);
        match (smtp, http, outbound) {
            (Some(smtp), Some(http), Some(outbound)) if problems.0.is_empty() => Ok(Settings {
                smtp,
                http,
                store,
                outbound,
                activation,
                password,
                session,
                rate_limits,
                sender_auth,
                log,
                services,
            }),
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

//! "Sign in with your company account": checks a login and password against
//! the directory (Active Directory or any LDAP server) with `ldap3`, the
//! only module that knows it.
//!
//! The steps are AD's usual ones: bind as the service account, search the
//! user under the base DN with the configured filter (the login escaped per
//! RFC 4515, so it cannot change the filter), check the required group
//! (`memberOf`), then bind as the user's DN with the password given, and
//! read the mail address and display name. An empty password is refused
//! before any bind: AD may treat a simple bind without a password as an
//! anonymous bind that "succeeds". Every operation runs under the configured
//! timeout, over LDAPS or StartTLS (rustls on aws-lc-rs, the CA from
//! `ca_file`) unless the URL is plain `ldap://` without StartTLS. Passwords
//! are never logged.

use crate::settings::{LdapSecurity, LdapSettings};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::{ExposeSecret as _, SecretString};
use std::sync::Arc;

/// Why the directory gave no identity.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DirectoryError {
    /// The directory cannot be reached, timed out, or refused our service
    /// account: nobody can sign in this way now.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// No such user, or the password is wrong (or empty).
    #[error("the login or password is not right")]
    InvalidCredentials,
    /// The user is not in the required group.
    #[error("the user is not in the required group")]
    NotInGroup,
    /// The user's entry has no usable mail address.
    #[error("the directory entry has no mail address")]
    NoMail,
}

/// A user the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub mail: String,
    pub name: Option<String>,
}

/// The directory, as configured.
pub struct Directory {
    settings: LdapSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Directory {
    /// Prepares the TLS configuration (reading `ca_file`); connects to
    /// nothing yet.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no certificate.
    pub fn new(settings: &LdapSettings) -> anyhow::Result<Self> {
        let tls = match settings.security {
            LdapSecurity::Plain => None,
            LdapSecurity::StartTls | LdapSecurity::Ldaps => Some(Arc::new(tls_config(settings)?)),
        };
        Ok(Self {
            settings: settings.clone(),
            tls,
        })
    }

    /// Checks `login` and `password` against the directory.
    ///
    /// # Errors
    /// See `DirectoryError`.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &SecretString,
    ) -> Result<DirectoryUser, DirectoryError> {
        let login = login.trim();
        if login.is_empty() || password.expose_secret().is_empty() {
            return Err(DirectoryError::InvalidCredentials);
        }
        let settings = &self.settings;
        let timeout = settings.timeout;
        let user = self.find(login).await?;
        // A fresh connection for the user's bind, so the service account's
        // session is never reused under another identity.
        let mut ldap = self.connect().await?;
        let bound = ldap
            .with_timeout(timeout)
            .simple_bind(&user.dn, password.expose_secret())
            .await
            .map_err(unavailable)?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => Ok(user),
            // invalidCredentials; unwillingToPerform (an empty or disabled
            // password on some servers).
            49 | 53 => Err(DirectoryError::InvalidCredentials),
            rc => Err(DirectoryError::Unavailable(format!(
                "the user bind answered {rc}"
            ))),
        }
    }

    /// Binds as the service account and finds the user's entry, checking the
    /// group and reading mail and name.
    async fn find(&self, login: &str) -> Result<DirectoryUser, DirectoryError> {
        let settings = &self.settings;
        let timeout = settings.timeout;
        let mut ldap = self.connect().await?;
        ldap.with_timeout(timeout)
            .simple_bind(&settings.bind_dn, settings.bind_password.expose_secret())
            .await
            .and_then(ldap3::LdapResult::success)
            .map_err(|e| {
                DirectoryError::Unavailable(format!("the service account bind failed: {e}"))
            })?;
        let filter = settings
            .user_filter
            .replace("{login}", &ldap3::ldap_escape(login));
        let attributes = [
            settings.mail_attribute.as_str(),
            settings.name_attribute.as_str(),
            "memberOf",
        ];
        let (entries, _) = ldap
            .with_timeout(timeout)
            .search(&settings.base_dn, Scope::Subtree, &filter, attributes)
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(unavailable)?;
        let _ = ldap.unbind().await;
        // None or several entries: nobody to sign in (several would be a
        // filter that does not identify one user).
        let [entry] =
            <[_; 1]>::try_from(entries).map_err(|_| DirectoryError::InvalidCredentials)?;
        let entry = SearchEntry::construct(entry);
        if let Some(group) = &settings.required_group {
            let member = entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("memberOf"))
                .is_some_and(|(_, groups)| groups.iter().any(|g| same_dn(g, group)));
            if !member {
                return Err(DirectoryError::NotInGroup);
            }
        }
        let first = |wanted: &str| {
            entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .and_then(|(_, values)| values.first())
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mail = first(&settings.mail_attribute).ok_or(DirectoryError::NoMail)?;
        Ok(DirectoryUser {
            dn: entry.dn,
            mail,
            name: first(&settings.name_attribute),
        })
    }

    /// A connection, TLS as configured, driven on its own task.
    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let settings = &self.settings;
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(settings.timeout)
            .set_starttls(settings.security == LdapSecurity::StartTls);
        if let Some(tls) = &self.tls {
            conn_settings = conn_settings.set_config(Arc::clone(tls));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(conn_settings, settings.url.as_str())
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        Ok(ldap)
    }
}

fn unavailable(error: ldap3::LdapError) -> DirectoryError {
    DirectoryError::Unavailable(error.to_string())
}

/// DNs compared as AD does for this purpose: case-insensitively, ignoring
/// spaces after commas.
fn same_dn(a: &str, b: &str) -> bool {
    let normal = |dn: &str| {
        dn.split(',')
            .map(|part| part.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    normal(a) == normal(b)
}

/// rustls on aws-lc-rs, trusting `ca_file` when given, else the public web
/// roots.
fn tls_config(settings: &LdapSettings) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            for certificate in CertificateDer::pem_file_iter(path)? {
                roots.add(certificate?)?;
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "ldap.ca_file: {} holds no certificate",
                path.display()
            );
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::same_dn;

    #[test]
    fn group_dns_compare_without_case_or_spaces() {
        assert!(same_dn(
            "CN=Portal Users, OU=Groups,DC=corp,DC=example",
            "cn=portal users,ou=groups,dc=corp,dc=example"
        ));
        assert!(!same_dn("cn=a,dc=example", "cn=b,dc=example"));
    }
}

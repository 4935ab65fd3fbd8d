//! STARTTLS: the server-side rustls configuration from PEM files.
//!
//! The aws-lc-rs provider is named explicitly instead of relying on a
//! process-wide default: the process links exactly one provider (lettre and
//! mailin-embedded use aws-lc-rs too), and enabling `ring` anywhere would
//! make the automatic choice panic.

use crate::settings::TlsFiles;
use anyhow::Context as _;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Loads the certificate chain and key into an acceptor.
///
/// # Errors
/// A file cannot be read or parsed, or the key does not fit the certificate.
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "failed to read the SMTP TLS certificate {}",
                files.certificate.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {}",
        files.certificate.display()
    );
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("failed to read the SMTP TLS key {}", files.key.display()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .context("failed to set TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the SMTP TLS key does not fit its certificate")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! STARTTLS: the verb, and the server-side rustls configuration from PEM
//! files.
//!
//! The aws-lc-rs provider is named explicitly instead of relying on a
//! process-wide default: the process links exactly one provider (lettre and
//! mailin-embedded use aws-lc-rs too), and enabling `ring` anywhere would
//! make the automatic choice panic.

use crate::settings::TlsFiles;
use crate::smtp::answer;
use crate::smtp::intake::Intake;
use crate::smtp::session::{End, Session};
use anyhow::Context as _;
use mailin_embedded::Action;
use std::sync::Arc;
use tokio::time::Instant;
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

impl<I: Intake> Session<I> {
    /// STARTTLS: refused by the engine when not offered or already active;
    /// otherwise the handshake, after which the session forgets everything
    /// it learned before (RFC 3207).
    pub(super) async fn starttls(&mut self, line: &[u8]) -> Result<(), End> {
        let Some(acceptor) = self.context.tls.clone().filter(|_| !self.tls_active) else {
            return self.engine_command(line).await;
        };
        // Plaintext sent after STARTTLS must never be read as if it came
        // through TLS (CVE-2011-0411): refuse and close.
        if self.conn.buffered() > 0 {
            return Err(End::Reply(answer::input_before_tls()));
        }
        let response = self.engine.process(line);
        if response.action != Action::UpgradeTls {
            return self.answer_engine(&response).await;
        }
        self.send(&answer::from_engine(&response)).await?;
        let deadline = (Instant::now() + self.timeouts().command).min(self.ends_at);
        if let Err(error) = self.conn.upgrade(&acceptor, deadline).await {
            tracing::info!(error.message = %error, "TLS handshake failed");
            return Err(End::Silent);
        }
        self.engine.tls_active();
        self.tls_active = true;
        self.pipelining = false;
        self.improper_pipelining = false;
        self.helo = String::new();
        self.transaction = None;
        Ok(())
    }
}

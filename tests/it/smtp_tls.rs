//! STARTTLS: off by default; with a configured certificate a client that
//! upgrades can register; plaintext pipelined after STARTTLS is refused.

use crate::support::app::SUPPORT;
use crate::support::assert_closed;
use crate::support::mail::person;
use crate::support::{SmtpClient, TestApp};
use lettre::AsyncTransport as _;
use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use registrar::settings::TlsFiles;
use tempfile::TempDir;

/// A self-signed certificate for `localhost`, written as PEM files.
struct TestCertificate {
    dir: TempDir,
    certificate_pem: String,
}

impl TestCertificate {
    fn generate() -> Self {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let certificate_pem = generated.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &certificate_pem).expect("write certificate");
        std::fs::write(
            dir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .expect("write key");
        Self {
            dir,
            certificate_pem,
        }
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            certificate: self.dir.path().join("cert.pem"),
            key: self.dir.path().join("key.pem"),
        }
    }
}

#[tokio::test]
async fn starttls_is_off_by_default() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;

    let extensions = client.ehlo_lines("client.test").await?;

    assert!(
        !extensions.iter().any(|e| e == "STARTTLS"),
        "{extensions:?}"
    );
    client.command("STARTTLS").await?.assert_code(503);
    Ok(())
}

#[tokio::test]
async fn a_client_that_upgrades_with_starttls_registers() {
    let certificate = TestCertificate::generate();
    let files = certificate.files();
    let app = TestApp::spawn_with(|s| s.smtp.tls = Some(files)).await;
    let tls = TlsParameters::builder("localhost".to_owned())
        .add_root_certificate(
            Certificate::from_pem(certificate.certificate_pem.as_bytes()).expect("root"),
        )
        .build_rustls()
        .expect("TLS parameters");
    let transport = AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp_addr.port())
        .tls(Tls::Required(tls))
        .build();
    let envelope = Envelope::new(
        Some("jane@example.com".parse().expect("address")),
        vec![SUPPORT.parse().expect("address")],
    )
    .expect("envelope");
    let message = person("Jane", "jane@example.com", SUPPORT, "tls@example.com");

    transport
        .send_raw(&envelope, &message)
        .await
        .expect("sent over STARTTLS");

    assert_eq!(app.count("customers"), 1);
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_refused_and_the_connection_closes()
-> anyhow::Result<()> {
    let certificate = TestCertificate::generate();
    let files = certificate.files();
    let app = TestApp::spawn_with(|s| s.smtp.tls = Some(files)).await;
    let (mut client, _) = SmtpClient::connect(app.smtp_addr).await?;
    let extensions = client.ehlo_lines("client.test").await?;
    assert!(extensions.iter().any(|e| e == "STARTTLS"), "{extensions:?}");

    client
        .send_raw(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
        .await?;

    let reply = client.next_reply().await?.expect("a reply");
    reply.assert_code(554);
    assert!(reply.text.starts_with("5.5.1"), "{}", reply.text);
    assert_closed(&mut client).await;
    Ok(())
}

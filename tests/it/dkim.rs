//! DKIM over real sockets: a reply signed by the daemon at send time, checked
//! by mail-auth against the record `registrar dkim-record` prints (served
//! from fixed DNS, as the sender-authentication tests do); a body changed on
//! the way fails; `check-config` warns about an unsigned production set-up.

use crate::support::TestApp;
use crate::support::mail::Mail;
use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use registrar::sender_auth::{Dns, DnsSource, FixedZone, verify_dkim};
use registrar::settings::DkimSettings;
use std::path::{Path, PathBuf};

/// Writes an Ed25519 key made for this test as PKCS#8 PEM.
fn ed25519_key(dir: &Path) -> PathBuf {
    let der = Ed25519Key::generate_pkcs8().expect("an ed25519 key");
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let path = dir.join("dkim-ed25519.pem");
    std::fs::write(
        &path,
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    )
    .expect("write the key");
    path
}

/// Writes an RSA-2048 key made for this test as PKCS#8 PEM.
fn rsa_key(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
    let path = dir.join("dkim-rsa.pem");
    std::fs::write(&path, key.serialize_pem()).expect("write the key");
    path
}

/// The record's name and value, from `registrar dkim-record`'s zone-file
/// line(s): `NAME IN TXT "…" ["…"]`, strings joined.
fn published(output: &str) -> (String, String) {
    let line = output
        .lines()
        .filter(|line| !line.starts_with(';'))
        .collect::<Vec<_>>()
        .join(" ");
    let name = line.split_whitespace().next().expect("a name").to_owned();
    let value: String = line
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    (name, value)
}

async fn dkim_of(name: &str, value: &str, raw: &[u8]) -> Vec<registrar::sender_auth::DkimCheck> {
    let dns = Dns::new(&DnsSource::Fixed(FixedZone::new().txt(name, value))).expect("fixed DNS");
    verify_dkim(&dns, raw).await
}

async fn signed_reply_verifies(key_file: PathBuf, k: &str) {
    let dkim = DkimSettings {
        selector: "mail2026".into(),
        key_file: key_file.clone(),
    };
    let app = TestApp::spawn_with(|s| s.dkim = Some(dkim)).await;

    app.mail_support("Jane Doe", "jane@example.com", "dkim-1@example.com")
        .await
        .assert_code(250);
    let sent = app.relay.wait_for(1).await.remove(0);
    let record = app
        .cli_with(
            &format!(
                "[dkim]\nselector = \"mail2026\"\nkey_file = {:?}\n",
                key_file.display().to_string()
            ),
            &["dkim-record"],
        )
        .await;

    assert!(record.success, "{}", record.stderr);
    let (name, value) = published(&record.stdout);
    assert_eq!(name, "mail2026._domainkey.registrar.localhost.");
    assert!(value.starts_with(&format!("v=DKIM1; k={k}; p=")), "{value}");
    let mail = Mail::parse(&sent.data);
    let signature = mail.header("DKIM-Signature").expect("a signature");
    assert!(signature.contains("d=registrar.localhost"), "{signature}");
    assert!(signature.contains("s=mail2026"), "{signature}");
    let checks = dkim_of(&name, &value, &sent.data).await;
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks[0].pass, "{checks:?}");
    assert_eq!(checks[0].domain, "registrar.localhost");

    // One changed character in the body: the signature no longer holds.
    let text = String::from_utf8(sent.data.clone()).expect("ascii mail");
    let tampered = text.replacen("activate?token=", "activate?token=X", 1);
    assert_ne!(tampered, text, "the body holds the link");
    let checks = dkim_of(&name, &value, tampered.as_bytes()).await;
    assert!(!checks.is_empty() && !checks[0].pass, "{checks:?}");
}

#[tokio::test]
async fn a_reply_signed_with_ed25519_verifies_against_the_published_key_and_a_changed_body_fails() {
    let keys = tempfile::tempdir().expect("temp dir");
    signed_reply_verifies(ed25519_key(keys.path()), "ed25519").await;
}

#[tokio::test]
async fn a_reply_signed_with_rsa_2048_verifies_against_the_published_key_and_a_changed_body_fails()
{
    let keys = tempfile::tempdir().expect("temp dir");
    signed_reply_verifies(rsa_key(keys.path()), "rsa").await;
}

#[tokio::test]
async fn without_a_key_replies_are_unsigned_and_check_config_warns_when_a_relay_is_set() {
    let app = TestApp::spawn().await;
    app.mail_support("Jane Doe", "jane@example.com", "dkim-2@example.com")
        .await
        .assert_code(250);
    let sent = app.relay.wait_for(1).await.remove(0);
    assert!(Mail::parse(&sent.data).header("DKIM-Signature").is_none());

    // The CLI's config names a relay: production-shaped.
    let unsigned = app.cli(&["check-config"]).await;
    let keys = tempfile::tempdir().expect("temp dir");
    let key = ed25519_key(keys.path());
    let signed = app
        .cli_with(
            &format!(
                "[dkim]\nselector = \"s1\"\nkey_file = {:?}\n",
                key.display().to_string()
            ),
            &["check-config"],
        )
        .await;
    let missing = app.cli(&["dkim-record"]).await;

    assert!(unsigned.success, "{}", unsigned.stderr);
    assert!(
        unsigned
            .stderr
            .contains("warning: service demo sends mail from no-reply@registrar.localhost without a DKIM signature"),
        "{}",
        unsigned.stderr
    );
    assert!(signed.success, "{}", signed.stderr);
    assert!(!signed.stderr.contains("warning"), "{}", signed.stderr);
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("no DKIM key is configured"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn a_key_file_that_holds_no_key_is_refused_with_the_settings() {
    let app = TestApp::spawn().await;
    let keys = tempfile::tempdir().expect("temp dir");
    let path = keys.path().join("not-a-key.pem");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");

    let out = app
        .cli_with(
            &format!(
                "[dkim]\nselector = \"s1\"\nkey_file = {:?}\n",
                path.display().to_string()
            ),
            &["check-config"],
        )
        .await;

    assert!(!out.success);
    assert!(out.stderr.contains("dkim.key_file"), "{}", out.stderr);
}

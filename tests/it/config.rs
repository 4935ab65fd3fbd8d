//! Settings as an operator meets them: the binary's check-config.

use std::process::Command;

fn registrar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_registrar"))
}

#[test]
fn check_config_prints_the_defaults_and_redacts_secrets() {
    let output = registrar()
        .arg("check-config")
        .env("REGISTRAR__OUTBOUND__PASSWORD", "hunter2-very-secret")
        .env("REGISTRAR__SMTP__LISTEN", "127.0.0.1:2626")
        .output()
        .expect("run registrar");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("listen = \"127.0.0.1:2626\""), "{stdout}");
    assert!(stdout.contains("[redacted]"));
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn credentials_in_the_relay_url_are_redacted_in_every_printout() {
    // Valid: printed redacted.
    let output = registrar()
        .arg("check-config")
        .env(
            "REGISTRAR__OUTBOUND__RELAY",
            "smtp://registrar:pa55-in-url@mail.example.com:587?tls=required",
        )
        .output()
        .expect("run registrar");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("mail.example.com:587"), "{stdout}");
    assert!(!stdout.contains("pa55-in-url"), "{stdout}");
    // Invalid elsewhere: the report names the problem, never the secret.
    let output = registrar()
        .arg("check-config")
        .env(
            "REGISTRAR__OUTBOUND__RELAY",
            "http://registrar:pa55-in-url@mail.example.com",
        )
        .output()
        .expect("run registrar");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success());
    assert!(all.contains("outbound.relay"), "{all}");
    assert!(!all.contains("pa55-in-url"), "{all}");
}

#[test]
fn plain_http_is_refused_for_a_public_host_unless_the_operator_insists() {
    let check = |url: &str, insist: bool| {
        let mut command = registrar();
        command
            .arg("check-config")
            .env("REGISTRAR__HTTP__PUBLIC_URL", url);
        if insist {
            command.env("REGISTRAR__HTTP__ALLOW_INSECURE_HTTP", "true");
        }
        let output = command.output().expect("run registrar");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check("http://portal.example.com", false);
    assert!(!ok);
    assert!(stderr.contains("allow_insecure_http"), "{stderr}");
    assert!(check("http://portal.example.com", true).0);
    assert!(check("https://portal.example.com", false).0);
    assert!(check("http://localhost:8080", false).0);
    assert!(check("http://[::1]:8080", false).0);
}

#[test]
fn invalid_settings_name_every_bad_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[smtp]\nlisten = \"nowhere\"\n[http]\npublic_url = \"ftp://x\"\n",
    )
    .expect("write config");
    let output = registrar()
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .expect("run registrar");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("smtp.listen") && stderr.contains("http.public_url"),
        "{stderr}"
    );
}

#[test]
fn the_sign_in_methods_are_configured_by_file_their_secrets_redacted_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("ldap-secret");
    std::fs::write(&secret, "directory-secret-from-file\n").expect("secret file");
    let file = dir.path().join("sign-in.toml");
    std::fs::write(
        &file,
        format!(
            "[oidc.google]\nclient_id = \"1234.apps.example\"\nclient_secret = \"google-secret-value\"\n\n\
             [ldap]\nurl = \"ldaps://dc1.corp.example:636\"\nbind_dn = \"cn=registrar,dc=corp,dc=example\"\n\
             bind_password_file = {:?}\nbase_dn = \"dc=corp,dc=example\"\n",
            secret.display().to_string()
        ),
    )
    .expect("write config");
    let output = registrar()
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .expect("run registrar");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[oidc.google]"), "{stdout}");
    assert!(
        stdout.contains("issuer = \"https://accounts.google.com\""),
        "the preset"
    );
    assert!(!stdout.contains("google-secret-value"), "{stdout}");
    assert!(!stdout.contains("directory-secret-from-file"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[oidc.google]\nclient_id = \"\"\nissuer = \"http://idp.example\"\n\n\
         [ldap]\nurl = \"http://dc1\"\nbind_dn = \"x\"\nbind_password = \"p\"\nbase_dn = \"dc=x\"\nuser_filter = \"uid=x\"\n",
    )
    .expect("write config");
    let output = registrar()
        .arg("--config")
        .arg(&bad)
        .arg("check-config")
        .output()
        .expect("run registrar");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for key in [
        "oidc.google.client_id",
        "oidc.google.client_secret",
        "oidc.google.issuer",
        "ldap.url",
        "ldap.user_filter",
    ] {
        assert!(stderr.contains(key), "{key} not reported in {stderr}");
    }
}

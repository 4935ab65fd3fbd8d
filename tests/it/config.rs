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

#[test]
fn webhook_endpoints_are_configured_their_secrets_redacted_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("portal-secret");
    std::fs::write(
        &secret_file,
        "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    )
    .expect("secret file");
    let file = dir.path().join("webhooks.toml");
    std::fs::write(
        &file,
        format!(
            "[[webhooks]]\nname = \"crm\"\nurl = \"https://crm.example/hooks\"\n\
             secret = \"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY\"\n\n\
             [[webhooks]]\nurl = \"https://portal.example/events\"\nsecret_file = {:?}\n\
             events = [\"customer.signed_in\"]\n",
            secret_file.display().to_string()
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
    assert!(stdout.contains("[[webhooks]]"), "{stdout}");
    assert!(stdout.contains("secret = \"[redacted]\""), "{stdout}");
    assert!(
        !stdout.contains("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[webhooks]]\nurl = \"http://crm.example/hooks\"\nsecret = \"hunter2\"\n\
         events = [\"customer.created\"]\n",
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
    for problem in [
        "webhooks[0].url: must be an https URL",
        "webhooks[0].secret: must start with whsec_",
        "webhooks[0].events: unknown event \"customer.created\"",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem} not reported in {stderr}"
        );
    }
    assert!(
        !stdout_of(&output).contains("hunter2"),
        "a bad secret is redacted too"
    );
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn api_tokens_are_digests_in_the_settings_or_tokens_in_a_file() {
    let made = registrar()
        .arg("api-token")
        .output()
        .expect("run registrar");
    assert!(made.status.success());
    let text = stdout_of(&made);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token:  "))
        .expect("a token");
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .expect("a digest");
    let mut tokens = registrar::domain::ApiTokens::default();
    tokens.add_digest(digest).expect("the printed digest");
    assert!(tokens.accepts(token), "the digest is the token's");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("api-tokens");
    std::fs::write(&file, "# the CRM's token\nshort\n").expect("token file");
    let config = dir.path().join("admin.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\napi_tokens = [\"{digest}\", \"sha256:beef\"]\napi_tokens_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .expect("write config");
    let output = registrar()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .expect("run registrar");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("admin.api_tokens[1]"), "{stderr}");
    assert!(
        stderr.contains("admin.api_tokens_file") && stderr.contains("shorter than 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("admin.api_tokens[0]"), "{stderr}");
}

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

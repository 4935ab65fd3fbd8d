//! The fixture corpus through the real SMTP listener: every `.eml` under
//! fixtures/ is replayed with the same machinery as `registrar replay --check`
//! and must match the expectation beside it.
//!
//! `UPDATE_FIXTURES=1 cargo nextest run replay` rewrites the expectations
//! instead (then review the diff with git).

use registrar::replay::{self, Mode, Options};
use std::path::PathBuf;

/// Below this many cases the corpus has lost files.
const MIN_CASES: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_matches_its_expectation_through_the_real_smtp_listener() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mode = if std::env::var_os("UPDATE_FIXTURES").is_some() {
        Mode::Update
    } else {
        Mode::Check
    };
    let mut options = Options::load(None).expect("the embedded settings load");
    options.base = Some(fixtures.clone());

    let summary = replay::run(&[fixtures], &options, mode)
        .await
        .expect("the corpus can be read");

    assert!(
        summary.results.len() >= MIN_CASES,
        "only {} cases in the corpus",
        summary.results.len()
    );
    let failures = summary.failures().count();
    assert!(
        failures == 0,
        "{failures} of {} fixtures do not match (UPDATE_FIXTURES=1 rewrites them):\n{}\n{}",
        summary.results.len(),
        summary.failure_report(),
        summary.table()
    );
}

/// A scratch folder holding a copy of one corpus case.
fn scratch_case(case: &str) -> (tempfile::TempDir, PathBuf) {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().expect("temp dir");
    let eml = dir.path().join("case.eml");
    std::fs::copy(fixtures.join(format!("{case}.eml")), &eml).expect("copy the message");
    std::fs::copy(
        fixtures.join(format!("{case}.expect.toml")),
        dir.path().join("case.expect.toml"),
    )
    .expect("copy the expectation");
    (dir, eml)
}

fn expectation(eml: &std::path::Path) -> PathBuf {
    eml.with_extension("expect.toml")
}

#[tokio::test]
async fn a_changed_expectation_fails_the_check_with_a_diff_naming_the_file() {
    let (_dir, eml) = scratch_case("register/plain_text");
    let path = expectation(&eml);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("reason = \"new_customer\"", "reason = \"wrong\""),
    )
    .expect("write");
    let options = Options::load(None).expect("settings");

    let summary = replay::run(std::slice::from_ref(&eml), &options, Mode::Check)
        .await
        .expect("runs");

    assert_eq!(summary.failures().count(), 1);
    let report = summary.failure_report();
    assert!(report.contains("case.eml"), "{report}");
    assert!(report.contains("-reason = \"wrong\""), "{report}");
    assert!(report.contains("+reason = \"new_customer\""), "{report}");
}

#[tokio::test]
async fn a_message_without_expectation_fails_the_check_and_update_records_one() {
    let (_dir, eml) = scratch_case("loops/gmail_vacation_responder");
    std::fs::remove_file(expectation(&eml)).expect("remove the expectation");
    let options = Options::load(None).expect("settings");

    let checked = replay::run(std::slice::from_ref(&eml), &options, Mode::Check)
        .await
        .expect("runs");
    assert!(matches!(
        checked.results[0].verdict,
        replay::Verdict::Missing
    ));

    let updated = replay::run(std::slice::from_ref(&eml), &options, Mode::Update)
        .await
        .expect("runs");
    assert!(matches!(
        updated.results[0].verdict,
        replay::Verdict::Updated
    ));
    let written = std::fs::read_to_string(expectation(&eml)).expect("written");
    assert!(written.contains("reason = \"auto_submitted\""), "{written}");
    assert!(
        written.contains("mail_from = \"jane.doe.replay@gmail.com\""),
        "the envelope comes from Return-Path: {written}"
    );

    let again = replay::run(&[eml], &options, Mode::Check)
        .await
        .expect("runs");
    assert_eq!(again.failures().count(), 0, "{}", again.failure_report());
}

#[test]
fn the_command_exits_non_zero_and_prints_the_diff_on_a_mismatch() {
    let (_dir, eml) = scratch_case("refuse/denied_address");
    let path = expectation(&eml);
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("code = 550", "code = 250")).expect("write");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_registrar"))
        .args(["replay", "--check"])
        .arg(&eml)
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs");

    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("denied") && stdout.contains("DIFFERS"),
        "{stdout}"
    );
    assert!(
        stderr.contains("-code = 250") && stderr.contains("+code = 550"),
        "{stderr}"
    );
}

#[test]
fn the_command_fills_the_envelope_from_its_options_for_a_bare_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let eml = dir.path().join("bare.eml");
    std::fs::write(
        &eml,
        "From: Jane <jane@example.com>\nTo: nobody@example.com\nSubject: hi\n\nhello\n",
    )
    .expect("write");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_registrar"))
        .args(["replay", "--envelope-from", "mallory@evil.example"])
        .arg(&eml)
        .env("RUST_LOG", "off")
        .output()
        .expect("the binary runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("sender_mismatch"), "{stdout}");
}

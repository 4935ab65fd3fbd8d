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

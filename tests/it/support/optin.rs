//! Tests that need software beyond Rust (Node.js and the npm packages,
//! Chromium, OpenLDAP's slapd) are `#[ignore]`d, so a plain `cargo nextest
//! run` reports them as skipped, never as passed. .ci/run installs that
//! software, sets each group's opt-in variable and runs the ignored tests
//! too; a test run without its variable fails and says what it needs.

/// Fails the test unless `variable` is set, naming what it `needs`.
pub fn require_server(variable: &str, needs: &str) {
    assert!(
        std::env::var_os(variable).is_some(),
        "set {variable}=1 to run this test: it needs {needs} (.ci/run installs it)"
    );
}

//! Tests that need software beyond Rust (Node.js and the npm packages,
//! Chromium, OpenLDAP's slapd) run when their opt-in variable is set, as
//! .ci/run sets it after installing them; otherwise they say loudly that
//! they were skipped, and pass.

/// True when `variable` is set; otherwise prints the skip notice.
pub fn opted_in(variable: &str, needs: &str) -> bool {
    if std::env::var_os(variable).is_some() {
        return true;
    }
    eprintln!("SKIPPED: set {variable}=1 to run this test (it needs {needs}; .ci/run installs it)");
    false
}

//! A customer in a real browser (headless Chromium driven by
//! tests/browser/activate.js): the activation form, Save, the portal, sign
//! out and in again. Catches what an HTTP client does not: cookies under
//! the browser's own rules, the Origin and Sec-Fetch-* headers it sends, and
//! our own Content-Security-Policy applied to our pages.
//!
//! It needs Chromium and `npm ci` in tests/browser, so it is `#[ignore]`d:
//! nextest reports it as skipped unless asked to run ignored tests. .ci/run
//! installs both, sets REGISTRAR_BROWSER_TESTS=1 and runs it; run by hand
//! without that variable, it fails and says what is missing.

use crate::support::{Mail, TestApp, activation_link};
use std::process::Command;

#[tokio::test]
#[ignore = "needs Chromium and `npm ci` in tests/browser (.ci/run installs them)"]
async fn a_customer_activates_signs_out_and_signs_in_with_a_real_browser() {
    assert!(
        std::env::var_os("REGISTRAR_BROWSER_TESTS").is_some(),
        "set REGISTRAR_BROWSER_TESTS=1 after `apt-get install chromium` and `npm ci` in tests/browser"
    );
    let app = TestApp::spawn().await;
    app.mail_support("Amy Pond", "amy@example.com", "amy@example.com.id")
        .await
        .assert_code(250);
    let link = activation_link(
        &Mail::parse(&app.relay.wait_for(1).await[0].data),
        app.http_addr,
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/activate.js");

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([
                link.as_str(),
                "Amy Pond-Williams",
                "raggedy doctor fish custard",
                "amy@example.com",
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("run node");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        r#""prefilledName":"Amy Pond""#,
        r#""shownEmail":"amy@example.com""#,
        r#""afterSave":"/portal""#,
        r#""greeting":"Welcome, Amy Pond-Williams""#,
        r#""afterSignOut":"/login""#,
        r#""afterSignIn":"/portal""#,
        r#""linkAgain":"This link no longer works""#,
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from {stdout}"
        );
    }
    assert_eq!(app.count("activation_tokens WHERE used_at IS NOT NULL"), 1);
}

//! A customer in a real browser (headless Chromium driven by
//! tests/browser/activate.js): the activation form, Save, the portal, sign
//! out and in again. Catches what an HTTP client does not: cookies under
//! the browser's own rules, the Origin and Sec-Fetch-* headers it sends, and
//! our own Content-Security-Policy applied to our pages.
//!
//! Also: "Sign in with Google" through the test's OpenID provider, a
//! forgotten password reset, and every page at 1280 and 375 pixels with a
//! screenshot each and axe-core's accessibility check.
//!
//! They need Chromium and `npm ci` in tests/browser, so they are
//! `#[ignore]`d: nextest reports them as skipped unless asked to run ignored
//! tests. .ci/run installs both, sets REGISTRAR_BROWSER_TESTS=1 (and
//! REGISTRAR_OIDC_TESTS=1) and runs them; run by hand without those
//! variables, they fail and say what is missing.

use crate::recovery::{NEW_PASSWORD, ask, link_in};
use crate::support::customer::{PASSWORD, active_customer, mail_number, register};
use crate::support::optin::require_server;
use crate::support::{Mail, TestApp, activation_link};
use std::process::Command;

#[tokio::test]
#[ignore = "needs Chromium and `npm ci` in tests/browser (.ci/run installs them)"]
async fn a_customer_activates_signs_out_and_signs_in_with_a_real_browser() {
    require_server(
        "REGISTRAR_BROWSER_TESTS",
        "Chromium and npm ci in tests/browser",
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

/// Runs a script of tests/browser with Node.js and returns what it printed;
/// fails the test when the script fails.
async fn node(script: &str, args: Vec<String>) -> String {
    let path = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let output =
        tokio::task::spawn_blocking(move || Command::new("node").arg(path).args(args).output())
            .await
            .expect("join")
            .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
#[ignore = "needs Chromium and npm ci in tests/browser and Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn a_customer_signs_in_with_google_in_a_real_browser() {
    require_server(
        "REGISTRAR_BROWSER_TESTS",
        "Chromium and npm ci in tests/browser",
    );
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = crate::google::setup(|_| {}).await;
    let seen = node(
        "google.js",
        vec![format!("http://{}", s.app.http_addr), "amy".into()],
    )
    .await;
    for expected in [r#""backAt":"/portal""#, r#""greeting":"Welcome, Amy Pond""#] {
        assert!(seen.contains(expected), "{expected} missing from {seen}");
    }
    assert_eq!(
        s.app
            .count("customers WHERE source = 'google' AND status = 'active'"),
        1
    );
    drop(s.provider);
}

#[tokio::test]
#[ignore = "needs Chromium and npm ci in tests/browser (.ci/run installs it)"]
async fn a_customer_resets_a_forgotten_password_in_a_real_browser() {
    require_server(
        "REGISTRAR_BROWSER_TESTS",
        "Chromium and npm ci in tests/browser",
    );
    let app = TestApp::spawn().await;
    let elsewhere = active_customer(&app, "Jane Doe", "jane@example.com").await;
    ask(&app, "/forgot", "jane@example.com").await;
    let (_, mail) = mail_number(&app, 3).await;
    let link = link_in(&mail, &app, "/reset?token=");
    let seen = node(
        "reset.js",
        vec![
            link,
            "jane@example.com".into(),
            PASSWORD.into(),
            NEW_PASSWORD.into(),
        ],
    )
    .await;
    for expected in [
        r#""heading":"Choose a new password""#,
        r#""afterSave":"/portal""#,
        r#""oldPassword":"The email or password is not right.""#,
        r#""newPassword":"/portal""#,
        r#""linkAgain":"This link no longer works""#,
    ] {
        assert!(seen.contains(expected), "{expected} missing from {seen}");
    }
    assert_eq!(
        elsewhere
            .get(app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        303,
        "the session in the other browser ended"
    );
}

#[tokio::test]
#[ignore = "needs Chromium and npm ci in tests/browser (.ci/run installs it)"]
async fn every_page_at_1280_and_375_pixels_has_a_screenshot_and_no_serious_accessibility_violation()
{
    require_server(
        "REGISTRAR_BROWSER_TESTS",
        "Chromium and npm ci in tests/browser",
    );
    let nowhere = format!("127.0.0.1:{}", crate::support::NOWHERE_PORT);
    let app = TestApp::spawn_with(|settings| {
        settings.services[0].policy.email_link = true;
        settings.oidc = Some(crate::google::oidc_settings(
            url::Url::parse(&format!("http://{nowhere}")).expect("issuer"),
        ));
        settings.ldap = Some(crate::directory::ldap_settings(
            &format!("ldap://{nowhere}"),
            registrar::settings::LdapSecurity::Plain,
            None,
        ));
    })
    .await;
    let _jane = active_customer(&app, "Jane Doe", "jane@example.com").await;
    register(&app, &app.http(), "Pat Pending", "pat@example.com").await;
    let (_, activation) = mail_number(&app, 3).await;
    let activation = activation_link(&activation, app.http_addr);
    ask(&app, "/forgot", "jane@example.com").await;
    let (_, reset) = mail_number(&app, 4).await;
    let reset = link_in(&reset, &app, "/reset?token=");
    ask(&app, "/login/email", "jane@example.com").await;
    let (_, sign_in) = mail_number(&app, 5).await;
    let sign_in = link_in(&sign_in, &app, "/login/link?token=");

    let base = format!("http://{}", app.http_addr);
    let url = |path: &str| format!("{base}{path}");
    let pages = [
        ("sign-in", url("/login")),
        ("register", url("/register")),
        ("activation", activation),
        ("activation-dead-link", url("/activate?token=no-such-token")),
        ("resend", url("/resend")),
        ("forgot-password", url("/forgot")),
        ("reset-password", reset),
        ("reset-dead-link", url("/reset?token=no-such-token")),
        ("email-link-request", url("/login/email")),
        ("email-link-sign-in", sign_in),
        ("company-account", url("/login/directory")),
        ("google-unavailable", url("/login/google")),
        (
            "google-refused",
            url("/login/google/callback?code=x&state=y"),
        ),
        ("not-found", url("/no-such-page")),
    ];
    let mut entries: Vec<String> = pages
        .iter()
        .map(|(name, url)| format!(r#"{{"name":"{name}","url":"{url}"}}"#))
        .collect();
    entries.push(format!(
        r#"{{"name":"portal","url":"{base}/portal","signIn":{{"base":"{base}","email":"jane@example.com","password":"{PASSWORD}"}}}}"#
    ));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let list = dir.join("pages.json");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    std::fs::write(&list, format!(r#"{{"pages":[{}]}}"#, entries.join(","))).expect("pages.json");

    let report = node(
        "pages.js",
        vec![dir.display().to_string(), list.display().to_string()],
    )
    .await;
    println!("screenshots in {}", dir.display());
    eprintln!("screenshots in {}\n{report}", dir.display());
    assert_eq!(
        report.matches(".png").count(),
        2 * (pages.len() + 1),
        "{report}"
    );
    for impact in [r#""impact":"serious""#, r#""impact":"critical""#] {
        assert!(!report.contains(impact), "axe found violations:\n{report}");
    }
}

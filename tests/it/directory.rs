//! "Sign in with your company account" against a real OpenLDAP `slapd`
//! started by the test on loopback ports with a seeded directory (see
//! support/ldap.rs): plain, StartTLS and LDAPS; a wrong password, a user
//! outside the required group, a disabled customer and a directory that is
//! down, each with nothing created.
//!
//! These need Debian's slapd; .ci/run installs it and sets
//! REGISTRAR_LDAP_TESTS=1. Without it they say they were skipped. The
//! directory-down test needs nothing and always runs.

use crate::support::ldap::{
    BASE_DN, CLARA_PASSWORD, GROUP_DN, RORY_PASSWORD, SERVICE_DN, SERVICE_PASSWORD, Slapd,
};
use crate::support::optin::require_server;
use crate::support::{NOWHERE_PORT, TestApp, form_page, hidden_field, scrape};
use registrar::settings::{LdapSecurity, LdapSettings};
use reqwest::StatusCode;
use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

pub(crate) fn ldap_settings(
    url: &str,
    security: LdapSecurity,
    ca_file: Option<PathBuf>,
) -> LdapSettings {
    LdapSettings {
        url: Url::parse(url).expect("url"),
        security,
        ca_file,
        bind_dn: SERVICE_DN.into(),
        bind_password: SecretString::from(SERVICE_PASSWORD),
        base_dn: BASE_DN.into(),
        user_filter: "(&(objectClass=person)(|(userPrincipalName={login})(mail={login})))".into(),
        required_group: Some(GROUP_DN.into()),
        mail_attribute: "mail".into(),
        name_attribute: "displayName".into(),
        timeout: Duration::from_secs(5),
        service: "demo".into(),
    }
}

/// Signs in on the company-account form.
async fn sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    login: &str,
    password: &str,
) -> reqwest::Response {
    let page = form_page(http, &app.url("/login/directory")).await;
    http.post(app.url("/login/directory"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("login", login),
            ("password", password),
        ])
        .send()
        .await
        .expect("POST /login/directory")
}

#[tokio::test]
#[ignore = "needs Debian's slapd (.ci/run installs it)"]
async fn the_first_directory_sign_in_creates_an_active_customer_and_later_ones_sign_in() {
    require_server("REGISTRAR_LDAP_TESTS", "Debian's slapd");
    let slapd = Slapd::start().await;
    let app = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(&slapd.ldap_url, LdapSecurity::Plain, None));
    })
    .await;
    let http = app.http();
    let login = form_page(&http, &app.url("/login")).await;
    assert!(
        login.contains("Sign in with your company account"),
        "{login}"
    );

    // By userPrincipalName, which is not the mail address.
    let answer = sign_in(&app, &http, "Rory.Williams@corp.example", RORY_PASSWORD).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/portal");
    let portal = form_page(&http, &app.url("/portal")).await;
    assert!(portal.contains("Welcome, Rory Williams"), "{portal}");
    assert!(
        portal.contains("rory@corp.example"),
        "the directory's mail address"
    );
    let row: (String, String, bool) = app
        .db()
        .query_row(
            "SELECT status, source, password_hash IS NULL FROM customers",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("one customer");
    assert_eq!(row, ("active".into(), "directory".into(), true));

    // Later, by mail, in another browser: the same customer.
    let again = sign_in(&app, &app.http(), "rory@corp.example", RORY_PASSWORD).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("customers"), 1);
    assert_eq!(
        app.count("decisions WHERE channel = 'directory' AND outcome = 'register'"),
        1
    );
    assert_eq!(
        app.count("decisions WHERE channel = 'directory' AND outcome = 'already_active'"),
        1
    );
    // Counted: two sign-ins by the directory, one of which registered.
    let scraped = scrape(&app).await;
    assert_eq!(
        scraped.value(
            "registrar_sign_ins_total",
            &[("method", "directory"), ("result", "signed_in")]
        ),
        2.0
    );
    assert_eq!(
        scraped.value("registrar_registrations_total", &[("channel", "directory")]),
        1.0
    );
}

#[tokio::test]
#[ignore = "needs Debian's slapd (.ci/run installs it)"]
async fn a_wrong_password_an_empty_one_and_a_user_outside_the_group_are_refused_creating_nothing() {
    require_server("REGISTRAR_LDAP_TESTS", "Debian's slapd");
    let slapd = Slapd::start().await;
    let app = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(&slapd.ldap_url, LdapSecurity::Plain, None));
    })
    .await;
    let http = app.http();
    let wrong = sign_in(&app, &http, "rory@corp.example", "not-the-password").await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().await.expect("body").contains("not right"));
    let empty = sign_in(&app, &http, "rory@corp.example", "").await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = sign_in(&app, &http, "nobody@corp.example", "whatever").await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A filter-injection attempt finds nobody.
    let injected = sign_in(&app, &http, "*)(mail=*", "whatever").await;
    assert_eq!(injected.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let outside = sign_in(&app, &http, "clara@corp.example", CLARA_PASSWORD).await;
    assert_eq!(outside.status(), StatusCode::FORBIDDEN);
    assert!(
        outside
            .text()
            .await
            .expect("body")
            .contains("not in the group allowed")
    );
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("sessions"), 0);
}

#[tokio::test]
#[ignore = "needs Debian's slapd (.ci/run installs it)"]
async fn a_disabled_customer_is_refused() {
    require_server("REGISTRAR_LDAP_TESTS", "Debian's slapd");
    let slapd = Slapd::start().await;
    let app = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(&slapd.ldap_url, LdapSecurity::Plain, None));
    })
    .await;
    let http = app.http();
    assert_eq!(
        sign_in(&app, &http, "rory@corp.example", RORY_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let disabled = app
        .cli(&["customers", "disable", "rory@corp.example"])
        .await;
    assert!(disabled.success, "{}", disabled.stderr);
    let refused = sign_in(&app, &app.http(), "rory@corp.example", RORY_PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("This account is disabled")
    );
    assert_eq!(
        app.count("sessions"),
        0,
        "disabling ended the first session"
    );
}

#[tokio::test]
#[ignore = "needs Debian's slapd (.ci/run installs it)"]
async fn starttls_and_ldaps_with_the_configured_ca_work_and_a_stopped_directory_is_try_again_later()
{
    require_server("REGISTRAR_LDAP_TESTS", "Debian's slapd");
    let mut slapd = Slapd::start().await;
    let ca = Some(slapd.ca_file.clone());
    let starttls = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(
            &slapd.ldap_url,
            LdapSecurity::StartTls,
            ca.clone(),
        ));
    })
    .await;
    assert_eq!(
        sign_in(
            &starttls,
            &starttls.http(),
            "rory@corp.example",
            RORY_PASSWORD
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let ldaps = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(
            &slapd.ldaps_url,
            LdapSecurity::Ldaps,
            ca.clone(),
        ));
    })
    .await;
    assert_eq!(
        sign_in(&ldaps, &ldaps.http(), "rory@corp.example", RORY_PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // LDAPS without our CA: the certificate is not trusted, so no sign-in.
    let untrusted = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(&slapd.ldaps_url, LdapSecurity::Ldaps, None));
    })
    .await;
    let refused = sign_in(
        &untrusted,
        &untrusted.http(),
        "rory@corp.example",
        RORY_PASSWORD,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(untrusted.count("customers"), 0);

    slapd.stop();
    let down = sign_in(&ldaps, &ldaps.http(), "rory@corp.example", RORY_PASSWORD).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.text().await.expect("body").contains("try again later"));
}

#[tokio::test]
async fn a_directory_that_is_down_is_a_clear_try_again_later_with_nothing_created() {
    let url = format!("ldap://127.0.0.1:{NOWHERE_PORT}");
    let app = TestApp::spawn_with(|settings| {
        settings.ldap = Some(ldap_settings(&url, LdapSecurity::Plain, None));
    })
    .await;
    let answer = sign_in(&app, &app.http(), "rory@corp.example", RORY_PASSWORD).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = answer.text().await.expect("body");
    assert!(page.contains("try again later"), "{page}");
    assert_eq!(app.count("customers"), 0);
    assert_eq!(app.count("decisions"), 0);
}

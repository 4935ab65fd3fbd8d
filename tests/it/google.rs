//! "Sign in with Google" against a real OpenID provider (npm oidc-provider,
//! started by the test with Node.js on loopback) standing in for Google:
//! the whole authorization code flow over real HTTP, and each refusal with
//! nothing created. The flow in Chromium is in browser.rs.
//!
//! These need Node.js and `npm ci` in tests/browser; .ci/run installs them
//! and sets REGISTRAR_OIDC_TESTS=1. Without it they say they were skipped.
//! The provider-down test needs nothing and always runs.

use crate::support::oidc::{AccountSpec, ClientSpec, Provider, through_provider};
use crate::support::optin::require_server;
use crate::support::{NOWHERE_PORT, TestApp, form_page, scrape};
use registrar::settings::{OidcSettings, Settings};
use reqwest::StatusCode;
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

const SECRET: &str = "registrar-test-client-secret";
const OTHER_REDIRECT: &str = "http://127.0.0.1:9/other/callback";

pub(crate) fn oidc_settings(issuer: Url) -> OidcSettings {
    OidcSettings {
        client_id: "registrar".into(),
        client_secret: SecretString::from(SECRET),
        issuer,
        service: "demo".into(),
        timeout: Duration::from_secs(5),
    }
}

pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) provider: Provider,
}

/// The daemon with `[oidc.google]` pointed at a provider started for it.
pub(crate) async fn setup(adjust: impl FnOnce(&mut Settings)) -> Setup {
    let mut provider = Provider::launch().await;
    let app = TestApp::spawn_with(|settings| {
        settings.oidc = Some(oidc_settings(provider.issuer()));
        adjust(settings);
    })
    .await;
    configure(&mut provider, &app.url("/login/google/callback")).await;
    Setup { app, provider }
}

/// Our client, another client and the test accounts, with a new signing key.
async fn configure(provider: &mut Provider, callback: &str) {
    provider
        .configure(
            &[
                ClientSpec {
                    id: "registrar",
                    secret: SECRET,
                    redirect: callback,
                },
                ClientSpec {
                    id: "other",
                    secret: "other-client-secret-value",
                    redirect: OTHER_REDIRECT,
                },
            ],
            &[
                AccountSpec {
                    id: "amy",
                    email: "amy@example.com",
                    verified: true,
                    name: "Amy Pond",
                },
                AccountSpec {
                    id: "nina",
                    email: "nina@example.com",
                    verified: false,
                    name: "Nina Unverified",
                },
                AccountSpec {
                    id: "mallory",
                    email: "mallory@blocked.example",
                    verified: true,
                    name: "Mallory",
                },
                AccountSpec {
                    id: "rory",
                    email: "rory@acme.example",
                    verified: true,
                    name: "Rory Williams",
                },
            ],
        )
        .await;
}

/// Walks the flow as `login` and returns the callback URL the provider sent
/// the browser to (not yet followed).
async fn callback_for(s: &Setup, http: &reqwest::Client, login: &str) -> String {
    through_provider(
        http,
        &s.app.url("/login/google"),
        login,
        &s.app.url("/login/google/callback"),
    )
    .await
}

async fn sign_in(s: &Setup, http: &reqwest::Client, login: &str) -> reqwest::Response {
    let back = callback_for(s, http, login).await;
    http.get(back).send().await.expect("GET the callback")
}

fn customers(app: &TestApp) -> Vec<(String, String, String, bool, Option<String>)> {
    let db = app.db();
    let mut statement = db
        .prepare(
            "SELECT email, status, source, password_hash IS NULL, name FROM customers ORDER BY id",
        )
        .expect("prepare");
    statement
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .map(|row| row.expect("row"))
        .collect()
}

fn decisions(app: &TestApp) -> Vec<(String, String, String)> {
    let db = app.db();
    let mut statement = db
        .prepare("SELECT channel, outcome, reason FROM decisions ORDER BY id")
        .expect("prepare");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .map(|row| row.expect("row"))
        .collect()
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn the_first_google_sign_in_creates_an_active_customer_and_later_ones_sign_in() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = setup(|_| {}).await;
    let http = s.app.http();
    let login = form_page(&http, &s.app.url("/login")).await;
    assert!(
        login.contains(r#"href="/login/google">Sign in with Google"#),
        "{login}"
    );
    let register = form_page(&http, &s.app.url("/register")).await;
    assert!(register.contains("Sign in with Google"));

    let answer = sign_in(&s, &http, "amy").await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/portal");
    let portal = form_page(&http, &s.app.url("/portal")).await;
    assert!(portal.contains("Welcome, Amy Pond"), "{portal}");
    assert!(portal.contains("get a link to set one"), "no password yet");
    assert_eq!(
        customers(&s.app),
        vec![(
            "amy@example.com".into(),
            "active".into(),
            "google".into(),
            true,
            Some("Amy Pond".into())
        )]
    );

    // Later: another browser, the same customer.
    let again = s.app.http();
    assert_eq!(
        sign_in(&s, &again, "amy").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(customers(&s.app).len(), 1);
    assert_eq!(
        decisions(&s.app),
        vec![
            ("google".into(), "register".into(), "new_customer".into()),
            (
                "google".into(),
                "already_active".into(),
                "active_customer".into()
            ),
        ]
    );
    // No mail: the provider proved the address.
    assert!(s.app.relay.mails().is_empty());
    // Counted: two sign-ins by Google, one of which registered.
    let scraped = scrape(&s.app).await;
    assert_eq!(
        scraped.value(
            "registrar_sign_ins_total",
            &[("method", "google"), ("result", "signed_in")]
        ),
        2.0
    );
    assert_eq!(
        scraped.value("registrar_registrations_total", &[("channel", "google")]),
        1.0
    );
    let shown = s.app.cli(&["customers", "show", "amy@example.com"]).await;
    assert!(shown.stdout.contains("google"), "{}", shown.stdout);
    drop(s.provider);
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn a_new_signing_key_of_the_provider_is_fetched_when_a_token_names_it() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let mut s = setup(|_| {}).await;
    assert_eq!(
        sign_in(&s, &s.app.http(), "amy").await.status(),
        StatusCode::SEE_OTHER
    );
    // The provider signs with a new key on the same issuer: the daemon
    // still holds the old key set and must fetch the new one.
    configure(&mut s.provider, &s.app.url("/login/google/callback")).await;
    assert_eq!(
        sign_in(&s, &s.app.http(), "amy").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn a_pending_customer_becomes_active_and_a_disabled_one_is_refused() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = setup(|_| {}).await;
    let http = s.app.http();
    crate::support::customer::register(&s.app, &http, "Amy", "amy@example.com").await;
    assert_eq!(customers(&s.app)[0].1, "pending");

    assert_eq!(
        sign_in(&s, &http, "amy").await.status(),
        StatusCode::SEE_OTHER
    );
    let rows = customers(&s.app);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str()),
        ("active", "portal")
    );
    assert_eq!(
        rows[0].4.as_deref(),
        Some("Amy"),
        "the name they gave is kept"
    );

    let disabled = s
        .app
        .cli(&["customers", "disable", "amy@example.com"])
        .await;
    assert!(disabled.success, "{}", disabled.stderr);
    let refused = sign_in(&s, &s.app.http(), "amy").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("This account is disabled")
    );
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn a_wrong_state_a_replayed_code_and_an_unverified_address_are_refused_creating_nothing() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = setup(|_| {}).await;

    // A wrong state.
    let http = s.app.http();
    let back = callback_for(&s, &http, "amy").await;
    let mut tampered = Url::parse(&back).expect("callback");
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = http.get(tampered).send().await.expect("GET");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .expect("body")
            .contains("This sign-in could not be completed")
    );
    assert!(customers(&s.app).is_empty());

    // An unverified address.
    let nina = sign_in(&s, &s.app.http(), "nina").await;
    assert_eq!(nina.status(), StatusCode::FORBIDDEN);
    assert!(nina.text().await.expect("body").contains("not verified"));
    assert!(customers(&s.app).is_empty());
    assert!(decisions(&s.app).is_empty(), "nothing was decided");

    // A code used once, presented again by another browser with a flow of
    // its own (so our state check passes and the provider must refuse).
    let first = s.app.http();
    let back = callback_for(&s, &first, "amy").await;
    assert_eq!(
        first.get(&back).send().await.expect("GET").status(),
        StatusCode::SEE_OTHER
    );
    let second = s.app.http();
    let started = second
        .get(s.app.url("/login/google"))
        .send()
        .await
        .expect("start");
    let to_provider = Url::parse(started.headers()["location"].to_str().expect("location"))
        .expect("provider URL");
    let state = to_provider
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let mut replay = Url::parse(&back).expect("callback");
    let code = replay
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    replay
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let replayed = second.get(replay).send().await.expect("GET");
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        second
            .get(s.app.url("/portal"))
            .send()
            .await
            .expect("GET")
            .status(),
        StatusCode::SEE_OTHER,
        "the replaying browser is not signed in"
    );
    assert_eq!(
        customers(&s.app).len(),
        1,
        "only the honest sign-in created one"
    );
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn a_denylisted_address_and_a_domain_outside_the_companies_are_refused_creating_nothing() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = setup(|settings| {
        let policy = &mut settings.services[0].policy;
        policy.denylist = registrar::policy::Denylist::parse(["blocked.example"]).expect("valid");
        policy.access = registrar::policy::Access::Companies(vec![registrar::policy::Company {
            name: "Acme".into(),
            domains: vec!["acme.example".into(), "blocked.example".into()],
        }]);
    })
    .await;
    let denied = sign_in(&s, &s.app.http(), "mallory").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(
        denied
            .text()
            .await
            .expect("body")
            .contains("may not use the portal")
    );
    let outside = sign_in(&s, &s.app.http(), "amy").await;
    assert_eq!(outside.status(), StatusCode::FORBIDDEN);
    assert!(
        outside
            .text()
            .await
            .expect("body")
            .contains("open only to the companies")
    );
    assert!(customers(&s.app).is_empty());
    assert_eq!(
        decisions(&s.app),
        vec![
            ("google".into(), "refuse".into(), "denied".into()),
            (
                "google".into(),
                "refuse".into(),
                "domain_not_allowed".into()
            ),
        ]
    );
    // A company address is admitted and joins the company.
    assert_eq!(
        sign_in(&s, &s.app.http(), "rory").await.status(),
        StatusCode::SEE_OTHER
    );
    let company: Option<String> = s
        .app
        .db()
        .query_row("SELECT company FROM customers", [], |r| r.get(0))
        .expect("one customer");
    assert_eq!(company.as_deref(), Some("Acme"));
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn the_switch_for_google_turns_it_off() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    let s = setup(|settings| settings.services[0].policy.google = false).await;
    let refused = sign_in(&s, &s.app.http(), "amy").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(customers(&s.app).is_empty());
}

#[tokio::test]
#[ignore = "needs Node.js and npm ci in tests/browser (.ci/run installs it)"]
async fn an_id_token_issued_for_another_client_is_refused() {
    require_server(
        "REGISTRAR_OIDC_TESTS",
        "Node.js and npm ci in tests/browser",
    );
    use base64::Engine as _;
    use sha2::Digest as _;
    let s = setup(|_| {}).await;
    // A real ID token from the provider, for the client "other".
    let verifier = "a-pkce-verifier-long-enough-for-the-provider-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut authorize = s.provider.issuer().join("/auth").expect("auth URL");
    authorize
        .query_pairs_mut()
        .append_pair("client_id", "other")
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email")
        .append_pair("redirect_uri", OTHER_REDIRECT)
        .append_pair("state", "other-state")
        .append_pair("nonce", "other-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let http = s.app.http();
    let back = through_provider(&http, authorize.as_str(), "amy", OTHER_REDIRECT).await;
    let code = Url::parse(&back)
        .expect("redirect")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens = http
        .post(s.provider.issuer().join("/token").expect("token URL"))
        .basic_auth("other", Some("other-client-secret-value"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", OTHER_REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token request")
        .text()
        .await
        .expect("body");
    let start = tokens.find(r#""id_token":""#).expect("an ID token") + 12;
    let id_token = tokens[start..].split('"').next().expect("token");

    let ours = registrar::oidc::OidcClient::new(
        s.app.settings.oidc.as_ref().expect("configured"),
        &Url::parse(&s.app.url("/login/google/callback")).expect("callback"),
    )
    .expect("client");
    let refused = ours.verify_raw(id_token, "other-nonce").await;
    match refused {
        Err(registrar::oidc::OidcError::InvalidToken(why)) => {
            assert!(why.to_lowercase().contains("audience"), "{why}");
        }
        other => panic!("a token for another client was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clear_try_again_later() {
    let issuer = Url::parse(&format!("http://127.0.0.1:{NOWHERE_PORT}")).expect("issuer");
    let app = TestApp::spawn_with(|settings| settings.oidc = Some(oidc_settings(issuer))).await;
    let answer = app
        .http()
        .get(app.url("/login/google"))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = answer.text().await.expect("body");
    assert!(page.contains("Please try again later"), "{page}");
    assert!(page.contains("cannot reach Google"), "{page}");
    assert_eq!(app.count("customers"), 0);
}

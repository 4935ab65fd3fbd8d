//! What a customer does on the web side, as test steps: create an account,
//! activate, sign in; and reading the mail that arrived for them.

use super::{Mail, TestApp, activation_link, form_page, hidden_field};
use reqwest::{Client, Response};

pub const PASSWORD: &str = "violet staple orbit canyon";

/// Fills in and sends "Create an account".
pub async fn register(app: &TestApp, http: &Client, name: &str, email: &str) -> Response {
    let page = form_page(http, &app.url("/register")).await;
    http.post(app.url("/register"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("service", &hidden_field(&page, "service")),
            ("name", name),
            ("email", email),
        ])
        .send()
        .await
        .expect("POST /register")
}

/// Opens an activation link and saves name and password.
pub async fn activate(app: &TestApp, http: &Client, link: &str, name: &str) -> Response {
    let page = form_page(http, link).await;
    http.post(app.url("/activate"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("token", &hidden_field(&page, "token")),
            ("name", name),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .send()
        .await
        .expect("POST /activate")
}

/// Signs in with `password`.
pub async fn login(app: &TestApp, http: &Client, email: &str, password: &str) -> Response {
    let page = form_page(http, &app.url("/login")).await;
    http.post(app.url("/login"))
        .form(&[
            ("csrf", hidden_field(&page, "csrf").as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("POST /login")
}

/// The `count`th mail at the relay (1-based), parsed, with its recipient.
pub async fn mail_number(app: &TestApp, count: usize) -> (String, Mail) {
    let mails = app.relay.wait_for(count).await;
    let mail = &mails[count - 1];
    (mail.rcpt_to.join(","), Mail::parse(&mail.data))
}

/// Registers on the portal, activates, and returns a signed-in client.
pub async fn active_customer(app: &TestApp, name: &str, email: &str) -> Client {
    let http = app.http();
    let before = app.relay.mails().len();
    assert_eq!(register(app, &http, name, email).await.status(), 200);
    let (_, mail) = mail_number(app, before + 1).await;
    let link = activation_link(&mail, app.http_addr);
    assert_eq!(activate(app, &http, &link, name).await.status(), 303);
    http
}

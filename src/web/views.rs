//! Pages: their templates' data (serialized into minijinja, which escapes
//! every value in HTML), the language each request is answered in, and the
//! render helper.
//!
//! The language of a page is chosen once per request (`page_language`): the
//! portal's service's setting, else the browser's `Accept-Language`, else
//! English; the request runs inside it, so `render` and `tr` (a string for
//! a handler's own message) need no arguments for it, and an error page
//! rendered on the way out speaks it too.

use crate::domain::Language;
use crate::web::AppState;
use crate::wording::{EMBEDDED, Wording};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{Html, Response};
use serde::Serialize;
use std::sync::Arc;

/// What a page is rendered with: the wording (with the portal service's
/// overrides) and the language.
#[derive(Clone)]
pub struct PageContext {
    pub wording: Arc<Wording>,
    /// The service whose template overrides apply (the portal's: the first).
    pub service: Option<String>,
    pub language: Language,
}

tokio::task_local! {
    static PAGE: PageContext;
}

/// Middleware: chooses the request's language and runs the request in it;
/// the answer says which (`Content-Language`, `Vary: Accept-Language`).
pub async fn page_language(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let settings = state.registrar.settings();
    let service = settings.services.first();
    let accepted = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .and_then(Language::negotiate);
    let language = service
        .and_then(|s| s.language)
        .or(accepted)
        .unwrap_or(Language::En);
    let context = PageContext {
        wording: Arc::clone(&settings.wording),
        service: service.map(|s| s.id.clone()),
        language,
    };
    let mut response = PAGE.scope(context, next.run(request)).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(language.code()),
    );
    headers.append(header::VARY, HeaderValue::from_static("Accept-Language"));
    response
}

/// The current request's page context; outside one (a page rendered by a
/// layer outside `page_language`), the embedded wording in English.
fn context() -> PageContext {
    PAGE.try_with(Clone::clone).unwrap_or_else(|_| PageContext {
        wording: Arc::clone(&EMBEDDED),
        service: None,
        language: Language::En,
    })
}

/// The language the current request is answered in.
pub fn language() -> Language {
    context().language
}

/// A string of the current request's language.
pub fn tr(key: &str) -> String {
    tr_with(key, &[])
}

/// `tr`, with `{name}` replaced by each value.
pub fn tr_with(key: &str, args: &[(&str, &str)]) -> String {
    let context = context();
    context
        .wording
        .text(context.service.as_deref(), context.language, key, args)
}

/// A page: its data and the template that shows it.
pub trait Page: Serialize {
    const TEMPLATE: &'static str;
}

/// Renders a page in the request's language; a failure (a bug in a
/// template, or an operator's template reading a value it is not given) is
/// logged and shown as a bare apology rather than a half page.
pub fn render<T: Page>(page: &T) -> Html<String> {
    let context = context();
    match context.wording.render(
        context.service.as_deref(),
        context.language,
        T::TEMPLATE,
        minijinja::Value::from(minijinja::value::Serde(page)),
    ) {
        Ok(html) => Html(html),
        Err(error) => {
            tracing::error!(error.message = %error, template = T::TEMPLATE, "template failed to render");
            Html("<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>".into())
        }
    }
}

#[derive(Serialize)]
pub struct Activate<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub error: Option<String>,
    pub min_length: usize,
    pub max_length: usize,
}

#[derive(Serialize)]
pub struct LinkInvalid<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub portal: bool,
}

#[derive(Serialize)]
pub struct Resend<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<String>,
}

/// The ways in a sign-in page offers besides a password.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ways {
    /// "Sign in with Google".
    pub google: bool,
    /// "Sign in with your company account".
    pub directory: bool,
    /// "Email me a sign-in link".
    pub email_link: bool,
}

#[derive(Serialize)]
pub struct Login<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<String>,
    pub portal: bool,
    pub ways: Ways,
}

#[derive(Serialize)]
pub struct Register<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub service: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub error: Option<String>,
    pub ways: Ways,
}

/// "Sign in with your company account".
#[derive(Serialize)]
pub struct Directory<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub login: &'a str,
    pub error: Option<String>,
}

/// A form that takes one email address ("Forgot your password?", "Email me
/// a sign-in link").
#[derive(Serialize)]
pub struct EmailRequest<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub heading: String,
    pub intro: String,
    pub action: &'a str,
    pub button: String,
    pub email: &'a str,
    pub error: Option<String>,
}

/// "Choose a new password", from a reset link.
#[derive(Serialize)]
pub struct Reset<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
    pub error: Option<String>,
    pub min_length: usize,
    pub max_length: usize,
}

/// The page an emailed sign-in link opens: one button, so a scanner's GET
/// signs nobody in.
#[derive(Serialize)]
pub struct LinkSignIn<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
}

#[derive(Serialize)]
pub struct Portal<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub company: Option<&'a str>,
    pub service: &'a str,
    /// Offer "set a password" to a customer who has none.
    pub has_password: bool,
}

#[derive(Serialize)]
pub struct Notice<'a> {
    pub brand: &'a str,
    pub heading: String,
    pub text: String,
    pub link: Option<(&'a str, String)>,
}

#[derive(Serialize)]
pub struct OptOut<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
}

impl Page for Activate<'_> {
    const TEMPLATE: &'static str = "web/activate.html";
}

impl Page for LinkInvalid<'_> {
    const TEMPLATE: &'static str = "web/link_invalid.html";
}

impl Page for Resend<'_> {
    const TEMPLATE: &'static str = "web/resend.html";
}

impl Page for Login<'_> {
    const TEMPLATE: &'static str = "web/login.html";
}

impl Page for Register<'_> {
    const TEMPLATE: &'static str = "web/register.html";
}

impl Page for Directory<'_> {
    const TEMPLATE: &'static str = "web/directory.html";
}

impl Page for EmailRequest<'_> {
    const TEMPLATE: &'static str = "web/email_request.html";
}

impl Page for Reset<'_> {
    const TEMPLATE: &'static str = "web/reset.html";
}

impl Page for LinkSignIn<'_> {
    const TEMPLATE: &'static str = "web/link_sign_in.html";
}

impl Page for Portal<'_> {
    const TEMPLATE: &'static str = "web/portal.html";
}

impl Page for Notice<'_> {
    const TEMPLATE: &'static str = "web/notice.html";
}

impl Page for OptOut<'_> {
    const TEMPLATE: &'static str = "web/opt_out.html";
}

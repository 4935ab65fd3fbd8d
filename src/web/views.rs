//! Page templates (askama, escaped by default) and their render helper.

use askama::Template;
use axum::response::Html;

/// Renders a template; a failure (which would be a bug in a template) is
/// logged and shown as a bare apology rather than a half page.
pub fn render<T: Template>(page: &T) -> Html<String> {
    match page.render() {
        Ok(html) => Html(html),
        Err(error) => {
            tracing::error!(error.message = %error, "template failed to render");
            Html("<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>".into())
        }
    }
}

#[derive(Template)]
#[template(path = "web/activate.html", config = "src/templates/askama.toml")]
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

#[derive(Template)]
#[template(path = "web/link_invalid.html", config = "src/templates/askama.toml")]
pub struct LinkInvalid<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub portal: bool,
}

#[derive(Template)]
#[template(path = "web/resend.html", config = "src/templates/askama.toml")]
pub struct Resend<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "web/login.html", config = "src/templates/askama.toml")]
pub struct Login<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub portal: bool,
}

#[derive(Template)]
#[template(path = "web/register.html", config = "src/templates/askama.toml")]
pub struct Register<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub service: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "web/portal.html", config = "src/templates/askama.toml")]
pub struct Portal<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    pub company: Option<&'a str>,
    pub service: &'a str,
}

#[derive(Template)]
#[template(path = "web/notice.html", config = "src/templates/askama.toml")]
pub struct Notice<'a> {
    pub brand: &'a str,
    pub heading: &'a str,
    pub text: &'a str,
    pub link: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "web/opt_out.html", config = "src/templates/askama.toml")]
pub struct OptOut<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
}

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

/// The ways in a sign-in page offers besides a password.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ways {
    /// "Sign in with Google".
    pub google: bool,
    /// "Sign in with your company account".
    pub directory: bool,
    /// "Email me a sign-in link".
    pub email_link: bool,
}

#[derive(Template)]
#[template(path = "web/login.html", config = "src/templates/askama.toml")]
pub struct Login<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub portal: bool,
    pub ways: Ways,
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
    pub ways: Ways,
}

/// "Sign in with your company account".
#[derive(Template)]
#[template(path = "web/directory.html", config = "src/templates/askama.toml")]
pub struct Directory<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub login: &'a str,
    pub error: Option<&'a str>,
}

/// A form that takes one email address ("Forgot your password?", "Email me
/// a sign-in link").
#[derive(Template)]
#[template(path = "web/email_request.html", config = "src/templates/askama.toml")]
pub struct EmailRequest<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub heading: &'a str,
    pub intro: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

/// "Choose a new password", from a reset link.
#[derive(Template)]
#[template(path = "web/reset.html", config = "src/templates/askama.toml")]
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
#[derive(Template)]
#[template(path = "web/link_sign_in.html", config = "src/templates/askama.toml")]
pub struct LinkSignIn<'a> {
    pub brand: &'a str,
    pub csrf: &'a str,
    pub token: &'a str,
    pub email: &'a str,
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
    /// Offer "set a password" to a customer who has none.
    pub has_password: bool,
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

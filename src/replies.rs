//! The wording of every mail we send, rendered from templates (text and HTML;
//! the HTML part is escaped), and the links inside them.
//!
//! Replies never echo the inbound subject, body or display name: everything
//! here comes from our settings and our own tokens.

use crate::domain::Token;
use askama::Template;
use url::Url;

/// Which mail this is; recorded in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Activation,
    AlreadyActive,
    Invitation,
    AccountActivated,
    PasswordReset,
    SignInLink,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::Activation => "activation",
            ReplyKind::AlreadyActive => "already_active",
            ReplyKind::Invitation => "invitation",
            ReplyKind::AccountActivated => "account_activated",
            ReplyKind::PasswordReset => "password_reset",
            ReplyKind::SignInLink => "sign_in_link",
        }
    }
}

/// A rendered reply: subject and both bodies.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The link that opens the activation page for a token.
pub fn activation_link(public_url: &Url, token: &Token) -> Url {
    let mut link = public_url
        .join("activate")
        .unwrap_or_else(|_| public_url.clone());
    link.query_pairs_mut()
        .clear()
        .append_pair("token", &token.expose());
    link
}

/// The "I did not ask for this" link of a mail: its page lets the owner of
/// the address stop all mail to it.
pub fn opt_out_link(public_url: &Url, token: &Token) -> Url {
    token_link(public_url, "not-me", token)
}

/// A link to one of our pages carrying a token (`reset`, `login/link`,
/// `not-me`).
pub fn token_link(public_url: &Url, path: &str, token: &Token) -> Url {
    let mut link = public_url.join(path).unwrap_or_else(|_| public_url.clone());
    link.query_pairs_mut()
        .clear()
        .append_pair("token", &token.expose());
    link
}

/// The portal's sign-in page.
pub fn login_link(public_url: &Url) -> Url {
    public_url
        .join("login")
        .unwrap_or_else(|_| public_url.clone())
}

/// The activation mail: a link to set name and password, and the "I did
/// not ask for this" link.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn activation(
    service: &str,
    link: &Url,
    opt_out: &Url,
    expires_at: i64,
    ttl_hours: u64,
) -> anyhow::Result<Reply> {
    let subject = format!("Activate your {service} account");
    let intro =
        format!("You asked to register for {service}. Your account is ready to be activated.");
    let expires = format_time(expires_at);
    let text = ActivationText {
        service,
        intro: &intro,
        link: link.as_str(),
        opt_out: opt_out.as_str(),
        expires: &expires,
        ttl_hours,
    }
    .render()?;
    let html = ActivationHtml {
        subject: &subject,
        service,
        intro: &intro,
        link: link.as_str(),
        opt_out: opt_out.as_str(),
        expires: &expires,
        ttl_hours,
    }
    .render()?;
    Ok(Reply {
        kind: ReplyKind::Activation,
        subject,
        text,
        html,
    })
}

/// The note to an already active customer: sign in instead.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn already_active(service: &str, login: &Url) -> anyhow::Result<Reply> {
    let subject = format!("You already have a {service} account");
    let text = AlreadyActiveText {
        service,
        link: login.as_str(),
    }
    .render()?;
    let html = AlreadyActiveHtml {
        subject: &subject,
        service,
        link: login.as_str(),
    }
    .render()?;
    Ok(Reply {
        kind: ReplyKind::AlreadyActive,
        subject,
        text,
        html,
    })
}

/// The invitation an operator sends: "you were invited by <service>", with
/// an activation link and the "I did not ask for this" link.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn invitation(
    service: &str,
    name: Option<&str>,
    link: &Url,
    opt_out: &Url,
    expires_at: i64,
    ttl_hours: u64,
) -> anyhow::Result<Reply> {
    let subject = format!("You were invited to the {service} customer portal");
    let expires = format_time(expires_at);
    let text = InvitationText {
        service,
        name,
        link: link.as_str(),
        opt_out: opt_out.as_str(),
        expires: &expires,
        ttl_hours,
    }
    .render()?;
    let html = InvitationHtml {
        subject: &subject,
        service,
        name,
        link: link.as_str(),
        opt_out: opt_out.as_str(),
        expires: &expires,
        ttl_hours,
    }
    .render()?;
    Ok(Reply {
        kind: ReplyKind::Invitation,
        subject,
        text,
        html,
    })
}

/// The notice sent once an account is activated, so an owner who did not
/// activate it hears about it.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn account_activated(service: &str, name: &str, login: &Url) -> anyhow::Result<Reply> {
    let subject = format!("Your {service} account is active");
    let text = AccountActivatedText {
        service,
        name,
        link: login.as_str(),
    }
    .render()?;
    let html = AccountActivatedHtml {
        subject: &subject,
        service,
        name,
        link: login.as_str(),
    }
    .render()?;
    Ok(Reply {
        kind: ReplyKind::AccountActivated,
        subject,
        text,
        html,
    })
}

/// "Forgot your password?": a single-use link to choose a new one.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn password_reset(service: &str, link: &Url, ttl_minutes: u64) -> anyhow::Result<Reply> {
    link_mail(
        ReplyKind::PasswordReset,
        service,
        &format!("Reset your {service} password"),
        "Someone, probably you, asked to reset the password of your account.",
        "To choose a new password, open this link",
        link,
        ttl_minutes,
    )
}

/// "Email me a sign-in link": a single-use link that signs the customer in.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn sign_in_link(service: &str, link: &Url, ttl_minutes: u64) -> anyhow::Result<Reply> {
    link_mail(
        ReplyKind::SignInLink,
        service,
        &format!("Your {service} sign-in link"),
        "Someone, probably you, asked for a link to sign in to your account.",
        "To sign in, open this link",
        link,
        ttl_minutes,
    )
}

/// A mail whose point is one single-use link.
fn link_mail(
    kind: ReplyKind,
    service: &str,
    subject: &str,
    intro: &str,
    action: &str,
    link: &Url,
    ttl_minutes: u64,
) -> anyhow::Result<Reply> {
    let text = LinkText {
        service,
        intro,
        action,
        link: link.as_str(),
        ttl_minutes,
    }
    .render()?;
    let html = LinkHtml {
        subject,
        service,
        intro,
        action,
        link: link.as_str(),
        ttl_minutes,
    }
    .render()?;
    Ok(Reply {
        kind,
        subject: subject.to_owned(),
        text,
        html,
    })
}

#[derive(Template)]
#[template(path = "mail/link.txt", config = "src/templates/askama.toml")]
struct LinkText<'a> {
    service: &'a str,
    intro: &'a str,
    action: &'a str,
    link: &'a str,
    ttl_minutes: u64,
}

#[derive(Template)]
#[template(path = "mail/link.html", config = "src/templates/askama.toml")]
struct LinkHtml<'a> {
    subject: &'a str,
    service: &'a str,
    intro: &'a str,
    action: &'a str,
    link: &'a str,
    ttl_minutes: u64,
}

/// A Unix time as `2026-11-30 14:05 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[derive(Template)]
#[template(path = "mail/activation.txt", config = "src/templates/askama.toml")]
struct ActivationText<'a> {
    service: &'a str,
    intro: &'a str,
    link: &'a str,
    opt_out: &'a str,
    expires: &'a str,
    ttl_hours: u64,
}

#[derive(Template)]
#[template(path = "mail/activation.html", config = "src/templates/askama.toml")]
struct ActivationHtml<'a> {
    subject: &'a str,
    service: &'a str,
    intro: &'a str,
    link: &'a str,
    opt_out: &'a str,
    expires: &'a str,
    ttl_hours: u64,
}

#[derive(Template)]
#[template(path = "mail/already_active.txt", config = "src/templates/askama.toml")]
struct AlreadyActiveText<'a> {
    service: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(
    path = "mail/already_active.html",
    config = "src/templates/askama.toml"
)]
struct AlreadyActiveHtml<'a> {
    subject: &'a str,
    service: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.txt", config = "src/templates/askama.toml")]
struct InvitationText<'a> {
    service: &'a str,
    name: Option<&'a str>,
    link: &'a str,
    opt_out: &'a str,
    expires: &'a str,
    ttl_hours: u64,
}

#[derive(Template)]
#[template(path = "mail/invitation.html", config = "src/templates/askama.toml")]
struct InvitationHtml<'a> {
    subject: &'a str,
    service: &'a str,
    name: Option<&'a str>,
    link: &'a str,
    opt_out: &'a str,
    expires: &'a str,
    ttl_hours: u64,
}

#[derive(Template)]
#[template(
    path = "mail/account_activated.txt",
    config = "src/templates/askama.toml"
)]
struct AccountActivatedText<'a> {
    service: &'a str,
    name: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(
    path = "mail/account_activated.html",
    config = "src/templates/askama.toml"
)]
struct AccountActivatedHtml<'a> {
    subject: &'a str,
    service: &'a str,
    name: &'a str,
    link: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_mail_carries_the_link_and_escapes_html() {
        let base = Url::parse("https://help.example/").expect("valid");
        let token = Token::generate();
        let link = activation_link(&base, &token);
        assert!(
            link.as_str()
                .starts_with("https://help.example/activate?token=")
        );
        let opt_out = opt_out_link(&base, &Token::generate());
        let reply = activation("<Acme & Co>", &link, &opt_out, 1_800_000_000, 72).expect("renders");
        assert!(reply.text.contains(opt_out.as_str()));
        assert!(reply.text.find(link.as_str()) < reply.text.find(opt_out.as_str()));
        assert!(reply.text.contains(link.as_str()));
        assert!(reply.text.contains("<Acme & Co>"), "text is not escaped");
        assert!(
            reply.html.contains("&#60;Acme &#38; Co&#62;")
                || reply.html.contains("&lt;Acme &amp; Co&gt;")
        );
        assert!(!reply.html.contains("<Acme"));
        assert!(reply.text.contains("2027-01-15 08:00 UTC"));
    }

    #[test]
    fn invitation_names_the_service_and_escapes_the_name() {
        let base = Url::parse("https://help.example/").expect("valid");
        let link = activation_link(&base, &Token::generate());
        let opt_out = opt_out_link(&base, &Token::generate());
        let reply = invitation(
            "Acme Help",
            Some("<b>Jo</b>"),
            &link,
            &opt_out,
            1_800_000_000,
            72,
        )
        .expect("renders");
        assert!(reply.text.contains(opt_out.as_str()));
        assert_eq!(reply.kind, ReplyKind::Invitation);
        assert!(reply.text.contains("You were invited by Acme Help"));
        assert!(reply.text.contains(link.as_str()));
        assert!(!reply.html.contains("<b>Jo</b>"), "the name is escaped");
    }

    #[test]
    fn activated_notice_links_to_sign_in() {
        let base = Url::parse("https://help.example/").expect("valid");
        let reply = account_activated("Acme Help", "Jo", &login_link(&base)).expect("renders");
        assert!(reply.text.contains("https://help.example/login"));
        assert!(reply.subject.contains("is active"));
    }
}

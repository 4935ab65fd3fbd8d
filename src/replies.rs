//! Every mail we send, rendered by `wording` from its templates (subject,
//! text and HTML; the HTML part is escaped) in the language chosen for it,
//! with the service's own templates where an operator gave some, and the
//! links inside them.
//!
//! Replies never echo the inbound subject, body or display name: everything
//! here comes from our settings, our templates and our own tokens (a name
//! given with a form is escaped like any value).

use crate::domain::{Language, Token};
use crate::wording::Wording;
use minijinja::Value;
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

/// Who a mail speaks for and in what language: the wording (with the
/// service's overrides), the service, and the language chosen.
#[derive(Debug, Clone, Copy)]
pub struct Voice<'a> {
    pub wording: &'a Wording,
    /// The service's id (whose template overrides apply).
    pub service_id: &'a str,
    /// Its display name, shown in the mail.
    pub service_name: &'a str,
    pub language: Language,
}

impl Voice<'_> {
    /// Renders the mail `kind` (`mail/KIND_subject.txt`, `.txt`, `.html`)
    /// with `context` plus the service's name.
    fn mail(&self, kind: ReplyKind, context: Value) -> anyhow::Result<Reply> {
        let context = minijinja::context! { service => self.service_name, ..context };
        let render = |suffix: &str| {
            self.wording.render(
                Some(self.service_id),
                self.language,
                &format!("mail/{}{suffix}", kind.as_str()),
                context.clone(),
            )
        };
        let subject = render("_subject.txt")?;
        // A subject is one line: a template's line breaks must not become
        // header folding or, worse, new headers.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = render(".txt")?;
        let html = self.wording.render(
            Some(self.service_id),
            self.language,
            &format!("mail/{}.html", kind.as_str()),
            minijinja::context! { subject => &subject, ..context },
        )?;
        Ok(Reply {
            kind,
            subject,
            text,
            html,
        })
    }
}

/// The activation mail: a link to set name and password, and the "I did
/// not ask for this" link.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn activation(
    voice: &Voice<'_>,
    link: &Url,
    opt_out: &Url,
    expires_at: i64,
    ttl_hours: u64,
) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::Activation,
        minijinja::context! {
            link => link.as_str(),
            opt_out => opt_out.as_str(),
            expires => format_time(expires_at),
            ttl_hours,
        },
    )
}

/// The note to an already active customer: sign in instead.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn already_active(voice: &Voice<'_>, login: &Url) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::AlreadyActive,
        minijinja::context! { link => login.as_str() },
    )
}

/// The invitation an operator sends: "you were invited by <service>", with
/// an activation link and the "I did not ask for this" link.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn invitation(
    voice: &Voice<'_>,
    name: Option<&str>,
    link: &Url,
    opt_out: &Url,
    expires_at: i64,
    ttl_hours: u64,
) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::Invitation,
        minijinja::context! {
            name,
            link => link.as_str(),
            opt_out => opt_out.as_str(),
            expires => format_time(expires_at),
            ttl_hours,
        },
    )
}

/// The notice sent once an account is activated, so an owner who did not
/// activate it hears about it.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn account_activated(voice: &Voice<'_>, name: &str, login: &Url) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::AccountActivated,
        minijinja::context! { name, link => login.as_str() },
    )
}

/// "Forgot your password?": a single-use link to choose a new one.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn password_reset(voice: &Voice<'_>, link: &Url, ttl_minutes: u64) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::PasswordReset,
        minijinja::context! { link => link.as_str(), ttl_minutes },
    )
}

/// "Email me a sign-in link": a single-use link that signs the customer in.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn sign_in_link(voice: &Voice<'_>, link: &Url, ttl_minutes: u64) -> anyhow::Result<Reply> {
    voice.mail(
        ReplyKind::SignInLink,
        minijinja::context! { link => link.as_str(), ttl_minutes },
    )
}

/// A Unix time as `2026-11-30 14:05 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wording::EMBEDDED;

    fn voice(name: &str, language: Language) -> Voice<'_> {
        Voice {
            wording: &EMBEDDED,
            service_id: "demo",
            service_name: name,
            language,
        }
    }

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
        let reply = activation(
            &voice("<Acme & Co>", Language::En),
            &link,
            &opt_out,
            1_800_000_000,
            72,
        )
        .expect("renders");
        assert!(reply.text.contains(opt_out.as_str()));
        assert!(reply.text.find(link.as_str()) < reply.text.find(opt_out.as_str()));
        assert!(reply.text.contains(link.as_str()));
        assert!(reply.text.contains("<Acme & Co>"), "text is not escaped");
        assert!(
            reply.html.contains("&lt;Acme &amp; Co&gt;"),
            "{}",
            reply.html
        );
        assert!(!reply.html.contains("<Acme"));
        assert!(reply.text.contains("2027-01-15 08:00 UTC"));
        assert_eq!(reply.subject, "Activate your <Acme & Co> account");
    }

    #[test]
    fn invitation_names_the_service_and_escapes_the_name() {
        let base = Url::parse("https://help.example/").expect("valid");
        let link = activation_link(&base, &Token::generate());
        let opt_out = opt_out_link(&base, &Token::generate());
        let reply = invitation(
            &voice("Acme Help", Language::En),
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
        let reply = account_activated(&voice("Acme Help", Language::En), "Jo", &login_link(&base))
            .expect("renders");
        assert!(reply.text.contains("https://help.example/login"));
        assert!(reply.subject.contains("is active"));
    }

    #[test]
    fn every_mail_renders_in_every_language() {
        let base = Url::parse("https://help.example/").expect("valid");
        let link = activation_link(&base, &Token::generate());
        for language in Language::ALL {
            let v = voice("Acme", language);
            let mails = [
                activation(&v, &link, &link, 1_800_000_000, 72),
                already_active(&v, &link),
                invitation(&v, Some("Jo"), &link, &link, 1_800_000_000, 72),
                invitation(&v, None, &link, &link, 1_800_000_000, 72),
                account_activated(&v, "Jo", &link),
                password_reset(&v, &link, 60),
                sign_in_link(&v, &link, 15),
            ];
            for mail in mails {
                let mail = mail.unwrap_or_else(|e| panic!("{}: {e:#}", language.code()));
                assert!(mail.text.contains(link.as_str()), "{}", language.code());
                assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'));
                assert!(mail.html.contains(&format!("lang=\"{}\"", language.code())));
            }
        }
    }
}

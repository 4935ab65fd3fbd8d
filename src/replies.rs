//! Every mail we send, rendered by `wording` from its templates (subject,
//! text and HTML; the HTML part is escaped) in the language chosen for it,
//! with the service's own templates where an operator gave some, and the
//! links inside them.
//!
//! Replies never echo the inbound subject, body or display name: everything
//! here comes from our settings, our templates and our own tokens (a name
//! given with a form is escaped like any value).

use crate::domain::{Language, Token};
use crate::mime::{self, AlternativeBody};
use crate::stencil::{Overlay, Stencil};
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

/// A rendered reply: subject and both bodies, and both bodies already
/// encoded as sent when a stencil made them (`encoded`; else `mailer`
/// encodes them).
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub encoded: Option<AlternativeBody>,
}

/// The activation page, under the public URL.
const ACTIVATION_PAGE: &str = "activate";
/// The "I did not ask for this" page, under the public URL.
const OPT_OUT_PAGE: &str = "not-me";

/// The link that opens the activation page for a token.
pub fn activation_link(public_url: &Url, token: &Token) -> Url {
    token_link(public_url, ACTIVATION_PAGE, token)
}

/// The "I did not ask for this" link of a mail: its page lets the owner of
/// the address stop all mail to it.
pub fn opt_out_link(public_url: &Url, token: &Token) -> Url {
    token_link(public_url, OPT_OUT_PAGE, token)
}

/// A link to one of our pages carrying a token (`reset`, `login/link`,
/// `not-me`).
pub fn token_link(public_url: &Url, path: &str, token: &Token) -> Url {
    link_with_token(public_url, path, &token.expose())
}

/// `public_url`'s page `path`, with `token` (as a link shows it) as its
/// only query.
fn link_with_token(public_url: &Url, path: &str, token: &str) -> Url {
    let mut link = public_url.join(path).unwrap_or_else(|_| public_url.clone());
    link.query_pairs_mut().clear().append_pair("token", token);
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
            encoded: None,
        })
    }
}

/// The activation mail: a link to set name and password (carrying `token`),
/// and the "I did not ask for this" link (carrying `opt_out`), both under
/// `public_url`.
///
/// The activation mails of one service, language and expiry minute differ
/// only by their two tokens, so the mail is rendered once with stand-ins,
/// cut into stencils (`stencil`), and filled with each mail's own tokens.
/// A template that does more with a link than print it fails the stencil's
/// proof and is rendered every time.
///
/// # Errors
/// Fails only if a template fails to render.
pub fn activation(
    voice: &Voice<'_>,
    public_url: &Url,
    token: &Token,
    opt_out: &Token,
    expires_at: i64,
    ttl_hours: u64,
) -> anyhow::Result<Reply> {
    let expires = format_time(expires_at);
    let render = |token: &str, opt_out: &str| {
        voice.mail(
            ReplyKind::Activation,
            minijinja::context! {
                link => link_with_token(public_url, ACTIVATION_PAGE, token).as_str(),
                opt_out => link_with_token(public_url, OPT_OUT_PAGE, opt_out).as_str(),
                expires => &expires,
                ttl_hours,
            },
        )
    };
    let key = format!(
        "{}|{}|{}",
        voice.service_id,
        voice.language.code(),
        ReplyKind::Activation.as_str()
    );
    let fingerprint = format!("{public_url}|{}|{expires}|{ttl_hours}", voice.service_name);
    let (token, opt_out) = (token.expose(), opt_out.expose());
    match voice
        .wording
        .stencils()
        .get_or_cut(&key, &fingerprint, || MailStencil::cut(&render))
    {
        Some(stencil) => Ok(stencil.fill(ReplyKind::Activation, &[&token, &opt_out])),
        None => render(&token, &opt_out),
    }
}

/// A mail whose links carry two tokens, cut for filling: its subject, text
/// and HTML as stencils, and its encoded body as an overlay (when the body
/// could be cut; otherwise each mail's body is encoded when composed).
struct MailStencil {
    parts: [Stencil; 3],
    body: Option<(String, Overlay)>,
}

impl MailStencil {
    /// Cut from a rendering with stand-in tokens, and kept only if it fills
    /// to exactly a second rendering with other stand-ins (and its body to
    /// exactly that rendering's encoded body).
    fn cut(render: &impl Fn(&str, &str) -> anyhow::Result<Reply>) -> Option<Self> {
        let stand_ins = || [Token::generate().expose(), Token::generate().expose()];
        let (first, second) = (stand_ins(), stand_ins());
        let cut_from = render(&first[0], &first[1]).ok()?;
        let proof = render(&second[0], &second[1]).ok()?;
        let parts = mail_parts(&cut_from).map(|part| Stencil::cut(part, &[&first[0], &first[1]]));
        let second = [second[0].as_str(), second[1].as_str()];
        let proven = parts
            .iter()
            .zip(mail_parts(&proof))
            .all(|(stencil, part)| stencil.fill(&second) == part);
        if !proven {
            return None;
        }
        let body = Self::cut_body(&parts, &proof, second);
        Some(Self { parts, body })
    }

    /// The overlay of the encoded body: encoded with each token a run of
    /// one character, then of another, and proven against the encoding of
    /// `proof` (rendered with the tokens `proof_tokens`).
    fn cut_body(
        parts: &[Stencil; 3],
        proof: &Reply,
        proof_tokens: [&str; 2],
    ) -> Option<(String, Overlay)> {
        let boundary = mime::new_boundary();
        let runs = |a: char, b: char| {
            [(a, proof_tokens[0]), (b, proof_tokens[1])]
                .map(|(c, token)| std::iter::repeat_n(c, token.len()).collect::<String>())
        };
        let (x, y) = (runs('A', 'C'), runs('B', 'D'));
        let encode = |values: &[String; 2]| {
            let values = [values[0].as_str(), values[1].as_str()];
            AlternativeBody::encode_between(
                &parts[1].fill(&values),
                &parts[2].fill(&values),
                boundary.clone(),
            )
        };
        let overlay = Overlay::cut(
            encode(&x).bytes(),
            encode(&y).bytes(),
            &[&x[0], &x[1]],
            &[&y[0], &y[1]],
        )?;
        let proven = AlternativeBody::encode_between(&proof.text, &proof.html, boundary.clone());
        (overlay.fill(&proof_tokens).as_deref() == Some(proven.bytes()))
            .then_some((boundary, overlay))
    }

    fn fill(&self, kind: ReplyKind, values: &[&str]) -> Reply {
        let [subject, text, html] = &self.parts;
        let encoded = self.body.as_ref().and_then(|(boundary, overlay)| {
            overlay
                .fill(values)
                .map(|bytes| AlternativeBody::from_encoded(boundary.clone(), bytes))
        });
        Reply {
            kind,
            subject: subject.fill(values),
            text: text.fill(values),
            html: html.fill(values),
            encoded,
        }
    }
}

fn mail_parts(reply: &Reply) -> [&str; 3] {
    [&reply.subject, &reply.text, &reply.html]
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
        let opt_out_token = Token::generate();
        let opt_out = opt_out_link(&base, &opt_out_token);
        let reply = activation(
            &voice("<Acme & Co>", Language::En),
            &base,
            &token,
            &opt_out_token,
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
        let token = Token::generate();
        let link = activation_link(&base, &token);
        for language in Language::ALL {
            let v = voice("Acme", language);
            let mails = [
                activation(&v, &base, &token, &token, 1_800_000_000, 72),
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

    /// The activation mail rendered in full, as before stencils.
    fn rendered_in_full(v: &Voice<'_>, base: &Url, token: &Token, opt_out: &Token) -> Reply {
        v.mail(
            ReplyKind::Activation,
            minijinja::context! {
                link => activation_link(base, token).as_str(),
                opt_out => opt_out_link(base, opt_out).as_str(),
                expires => format_time(1_800_000_000),
                ttl_hours => 72,
            },
        )
        .expect("renders")
    }

    #[test]
    fn a_stenciled_activation_mail_is_the_mail_rendered_in_full_with_its_own_tokens() {
        let base = Url::parse("https://help.example/desk/").expect("valid");
        let wording = Wording::load(None, &[]).expect("embedded wording");
        for language in Language::ALL {
            let v = Voice {
                wording: &wording,
                service_id: "demo",
                service_name: "<Acme & Co>",
                language,
            };
            let mut earlier: Vec<String> = Vec::new();
            for _ in 0..3 {
                let (token, opt_out) = (Token::generate(), Token::generate());
                let mail =
                    activation(&v, &base, &token, &opt_out, 1_800_000_000, 72).expect("renders");
                let full = rendered_in_full(&v, &base, &token, &opt_out);
                assert_eq!(mail.subject, full.subject);
                assert_eq!(mail.text, full.text);
                assert_eq!(mail.html, full.html);
                let encoded = mail
                    .encoded
                    .as_ref()
                    .expect("the body was filled from an overlay");
                let in_full = AlternativeBody::encode_between(
                    &full.text,
                    &full.html,
                    encoded.boundary().to_owned(),
                );
                assert_eq!(encoded.bytes(), in_full.bytes(), "{}", language.code());
                for other in &earlier {
                    assert!(
                        !mail.text.contains(other.as_str()) && !mail.html.contains(other.as_str())
                    );
                }
                earlier.extend([token.expose(), opt_out.expose()]);
            }
        }
    }

    #[test]
    fn a_template_that_transforms_a_link_is_rendered_for_every_mail() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("mail")).expect("folder");
        std::fs::write(
            dir.path().join("mail/activation.txt"),
            "{{ link|upper }} {{ opt_out|length }}",
        )
        .expect("template");
        let wording = Wording::load(Some(dir.path()), &[]).expect("wording");
        let v = Voice {
            wording: &wording,
            service_id: "demo",
            service_name: "Acme",
            language: Language::En,
        };
        let base = Url::parse("https://help.example/").expect("valid");
        for _ in 0..2 {
            let (token, opt_out) = (Token::generate(), Token::generate());
            let mail = activation(&v, &base, &token, &opt_out, 1_800_000_000, 72).expect("renders");
            assert_eq!(
                mail.text,
                rendered_in_full(&v, &base, &token, &opt_out).text
            );
            assert!(mail.text.contains(&token.expose().to_uppercase()));
        }
    }
}

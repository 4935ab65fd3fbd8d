//! The words of every mail and page: templates rendered by minijinja (HTML
//! templates escape every value; text templates are mail's plain part) and
//! string catalogs, one per language, that the templates read with
//! `t("key", name=value)`.
//!
//! Embedded templates and the four shipped catalogs (English, German,
//! French, Spanish) are compiled in (`src/templates/`). An operator can
//! override any of them from a folder (`[templates] dir`): `DIR/NAME`
//! replaces a template for every service, `DIR/SERVICE/NAME` for one
//! service; `DIR/lang/de.toml` and `DIR/SERVICE/lang/de.toml` override
//! strings key by key. A string missing in a language falls back to
//! English; `missing_strings` lists such gaps of the shipped catalogs (a
//! test keeps them empty). A catalog's string is plain text: `{name}` is
//! replaced by the value given, and nothing in it is markup, so it is
//! escaped like any value.
//!
//! Rendering knows nothing about where the words go: `replies` builds mail
//! from it and `web` pages.

use crate::domain::Language;
use crate::stencil::Stencils;
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

macro_rules! embed {
    ($name:literal) => {
        ($name, include_str!(concat!("templates/", $name)))
    };
}

/// Every embedded template, by name: mail (`mail/KIND.txt`, `.html`, and
/// `_subject.txt`) and pages (`web/…`).
pub const TEMPLATES: &[(&str, &str)] = &[
    embed!("mail/activation.txt"),
    embed!("mail/activation.html"),
    embed!("mail/activation_subject.txt"),
    embed!("mail/already_active.txt"),
    embed!("mail/already_active.html"),
    embed!("mail/already_active_subject.txt"),
    embed!("mail/invitation.txt"),
    embed!("mail/invitation.html"),
    embed!("mail/invitation_subject.txt"),
    embed!("mail/account_activated.txt"),
    embed!("mail/account_activated.html"),
    embed!("mail/account_activated_subject.txt"),
    embed!("mail/password_reset.txt"),
    embed!("mail/password_reset.html"),
    embed!("mail/password_reset_subject.txt"),
    embed!("mail/sign_in_link.txt"),
    embed!("mail/sign_in_link.html"),
    embed!("mail/sign_in_link_subject.txt"),
    embed!("mail/layout.html"),
    embed!("web/base.html"),
    embed!("web/activate.html"),
    embed!("web/directory.html"),
    embed!("web/email_request.html"),
    embed!("web/link_invalid.html"),
    embed!("web/link_sign_in.html"),
    embed!("web/login.html"),
    embed!("web/notice.html"),
    embed!("web/opt_out.html"),
    embed!("web/portal.html"),
    embed!("web/register.html"),
    embed!("web/resend.html"),
    embed!("web/reset.html"),
];

/// The shipped catalogs.
const CATALOGS: &[(Language, &str)] = &[
    (Language::En, include_str!("templates/lang/en.toml")),
    (Language::De, include_str!("templates/lang/de.toml")),
    (Language::Fr, include_str!("templates/lang/fr.toml")),
    (Language::Es, include_str!("templates/lang/es.toml")),
];

/// One catalog: key to string.
type Catalog = HashMap<String, String>;

/// The strings of one scope, per language.
#[derive(Clone, Default)]
struct Catalogs(HashMap<Language, Catalog>);

impl Catalogs {
    /// The string for `key` in `language`, else in English.
    fn get(&self, language: Language, key: &str) -> Option<&str> {
        [language, Language::En]
            .into_iter()
            .find_map(|l| self.0.get(&l).and_then(|c| c.get(key)))
            .map(String::as_str)
    }

    /// Lays `other` over these, key by key.
    fn overlay(&mut self, other: Catalogs) {
        for (language, catalog) in other.0 {
            self.0.entry(language).or_default().extend(catalog);
        }
    }
}

/// Templates and strings for every service, ready to render.
pub struct Wording {
    /// The scope every service uses, and the scopes of services with
    /// overrides of their own.
    common: Scope,
    by_service: HashMap<String, Scope>,
    /// Mails cut once and filled per recipient (`replies`); a reload makes
    /// a new `Wording`, and so forgets them.
    stencils: Stencils,
}

struct Scope {
    env: Environment<'static>,
    catalogs: Arc<Catalogs>,
}

impl std::fmt::Debug for Wording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wording")
            .field("services_with_overrides", &self.by_service.keys())
            .finish_non_exhaustive()
    }
}

/// The embedded wording alone, for what renders without settings.
pub static EMBEDDED: LazyLock<Arc<Wording>> = LazyLock::new(|| {
    Arc::new(Wording::load(None, &[]).expect("the embedded templates and catalogs are valid"))
});

impl Wording {
    /// The embedded templates and catalogs, with the operator's folder laid
    /// over them (for every service, then for each of `services` that has a
    /// folder of its own).
    ///
    /// # Errors
    /// A template that does not parse, a catalog that is not TOML, or a
    /// folder that cannot be read; each names its file.
    pub fn load(dir: Option<&Path>, services: &[&str]) -> Result<Self, String> {
        let mut templates: Vec<(String, String)> = TEMPLATES
            .iter()
            .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
            .collect();
        let mut catalogs = Catalogs::default();
        for (language, text) in CATALOGS {
            catalogs
                .0
                .insert(*language, parse_catalog(text, language.code())?);
        }
        if let Some(dir) = dir {
            overlay_folder(dir, &mut templates, &mut catalogs)?;
        }
        let common = Scope::new(&templates, catalogs.clone())?;
        let mut by_service = HashMap::new();
        for service in services {
            let Some(dir) = dir.map(|dir| dir.join(service)).filter(|d| d.is_dir()) else {
                continue;
            };
            let mut own_templates = templates.clone();
            let mut own_catalogs = catalogs.clone();
            overlay_folder(&dir, &mut own_templates, &mut own_catalogs)?;
            by_service.insert(
                (*service).to_owned(),
                Scope::new(&own_templates, own_catalogs)?,
            );
        }
        Ok(Self {
            common,
            by_service,
            stencils: Stencils::default(),
        })
    }

    /// The mails already cut into stencils with these templates.
    pub fn stencils(&self) -> &Stencils {
        &self.stencils
    }

    fn scope(&self, service: Option<&str>) -> &Scope {
        service
            .and_then(|id| self.by_service.get(id))
            .unwrap_or(&self.common)
    }

    /// Renders template `name` for `service` in `language`; `context` is
    /// what it reads besides `lang` and `t`.
    ///
    /// # Errors
    /// The template is unknown, reads a value it was not given, or asks for
    /// a string no catalog has.
    pub fn render(
        &self,
        service: Option<&str>,
        language: Language,
        name: &str,
        context: Value,
    ) -> Result<String, Error> {
        let context = minijinja::context! { lang => language.code(), ..context };
        self.scope(service).env.get_template(name)?.render(context)
    }

    /// One string, `{name}` replaced by each value of `args`; the key itself
    /// when no catalog has it (and an error is logged).
    pub fn text(
        &self,
        service: Option<&str>,
        language: Language,
        key: &str,
        args: &[(&str, &str)],
    ) -> String {
        match self.scope(service).catalogs.get(language, key) {
            Some(text) => fill(text, args.iter().map(|(k, v)| (*k, (*v).to_owned()))),
            None => {
                tracing::error!(key, "no catalog has this string");
                key.to_owned()
            }
        }
    }
}

/// The keys of the English catalog that `language`'s shipped catalog lacks
/// (they fall back to English), and the keys it has that English does not.
pub fn missing_strings(language: Language) -> (Vec<String>, Vec<String>) {
    let catalog = |l: Language| {
        CATALOGS
            .iter()
            .find(|(c, _)| *c == l)
            .map(|(_, text)| parse_catalog(text, l.code()).unwrap_or_default())
            .unwrap_or_default()
    };
    let english = catalog(Language::En);
    let other = catalog(language);
    let mut missing: Vec<String> = english
        .keys()
        .filter(|k| !other.contains_key(*k))
        .cloned()
        .collect();
    let mut extra: Vec<String> = other
        .keys()
        .filter(|k| !english.contains_key(*k))
        .cloned()
        .collect();
    missing.sort();
    extra.sort();
    (missing, extra)
}

impl Scope {
    fn new(templates: &[(String, String)], catalogs: Catalogs) -> Result<Self, String> {
        let catalogs = Arc::new(catalogs);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, source) in templates {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        let strings = Arc::clone(&catalogs);
        env.add_function(
            "t",
            move |state: &State, key: &str, kwargs: Kwargs| -> Result<String, Error> {
                let language = state
                    .lookup("lang")
                    .and_then(|l| l.as_str().and_then(Language::from_tag))
                    .unwrap_or(Language::En);
                let text = strings.get(language, key).ok_or_else(|| {
                    Error::new(ErrorKind::UndefinedError, format!("no string {key:?}"))
                })?;
                let mut args = Vec::new();
                for name in kwargs.args() {
                    let value: Value = kwargs.get(name)?;
                    args.push((name, value.to_string()));
                }
                kwargs.assert_all_used()?;
                Ok(fill(text, args.into_iter()))
            },
        );
        Ok(Self { env, catalogs })
    }
}

/// `text` with each `{name}` replaced by its value.
fn fill<'a>(text: &str, args: impl Iterator<Item = (&'a str, String)>) -> String {
    let mut out = text.to_owned();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

/// A catalog file: TOML tables of strings, flattened to dotted keys.
fn parse_catalog(text: &str, name: &str) -> Result<Catalog, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("strings {name}: {e}"))?;
    let mut catalog = Catalog::new();
    flatten("", &table, &mut catalog);
    Ok(catalog)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Catalog) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(text) => {
                out.insert(path, text.clone());
            }
            toml::Value::Table(inner) => flatten(&path, inner, out),
            _ => {}
        }
    }
}

/// Lays the templates and catalogs found in `dir` over the given ones:
/// every embedded template name that exists as a file, and `lang/CODE.toml`.
fn overlay_folder(
    dir: &Path,
    templates: &mut [(String, String)],
    catalogs: &mut Catalogs,
) -> Result<(), String> {
    for (name, source) in templates.iter_mut() {
        let path = dir.join(name.as_str());
        if path.is_file() {
            *source = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        }
    }
    let mut found = Catalogs::default();
    for language in Language::ALL {
        let path = dir.join("lang").join(format!("{}.toml", language.code()));
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            found
                .0
                .insert(language, parse_catalog(&text, &path.display().to_string())?);
        }
    }
    catalogs.overlay(found);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_language_has_every_string() {
        for language in Language::ALL {
            let (missing, extra) = missing_strings(language);
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, not in English {extra:?}",
                language.code()
            );
        }
    }

    #[test]
    fn a_missing_string_falls_back_to_english_and_values_are_escaped_in_html() {
        let mut catalogs = Catalogs::default();
        catalogs.0.insert(
            Language::En,
            Catalog::from([("hello".into(), "Hello {name}".into())]),
        );
        catalogs.0.insert(Language::De, Catalog::new());
        let templates = vec![(
            "x.html".to_owned(),
            "<p>{{ t(\"hello\", name=who) }}</p>".to_owned(),
        )];
        let scope = Scope::new(&templates, catalogs).expect("valid");
        let wording = Wording {
            common: scope,
            by_service: HashMap::new(),
            stencils: Stencils::default(),
        };
        let html = wording
            .render(
                None,
                Language::De,
                "x.html",
                minijinja::context! { who => "<b>Jo</b>" },
            )
            .expect("renders");
        assert_eq!(html, "<p>Hello &lt;b&gt;Jo&lt;&#x2f;b&gt;</p>");
    }
}

#[cfg(test)]
mod every_page {
    use super::*;

    /// Every value any page reads, with the optional parts switched on.
    fn everything() -> Value {
        minijinja::context! {
            brand => "Acme Help",
            csrf => "c",
            token => "t",
            email => "jane@example.com",
            name => "Jane",
            login => "jane",
            error => "e",
            min_length => 15,
            max_length => 1024,
            portal => true,
            ways => minijinja::context! { google => true, directory => true, email_link => true },
            heading => "h",
            intro => "i",
            action => "/forgot",
            button => "b",
            company => "Acme",
            service => "Acme Help",
            has_password => false,
            text => "x",
            link => ("/login", "l"),
        }
    }

    #[test]
    fn every_page_renders_in_every_language_without_a_missing_string() {
        for language in Language::ALL {
            for (name, _) in TEMPLATES.iter().filter(|(n, _)| n.starts_with("web/")) {
                let html = EMBEDDED
                    .render(None, language, name, everything())
                    .unwrap_or_else(|e| panic!("{name} in {}: {e:#}", language.code()));
                assert!(
                    html.contains(&format!("<html lang=\"{}\">", language.code())),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_german_sign_in_page_is_german() {
        let html = EMBEDDED
            .render(None, Language::De, "web/login.html", everything())
            .expect("renders");
        assert!(html.contains("Passwort vergessen?"), "{html}");
        assert!(!html.contains("Forgot your password?"));
    }
}

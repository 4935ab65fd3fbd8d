//! `RelayUrl`: the outbound relay's URL, which may carry credentials
//! (`smtp://user:secret@host:587`). It never prints them: `Display` and
//! `Debug` show the URL with the user name and password replaced, so a log
//! line, an error message or `check-config` cannot leak them. Only the
//! mailer asks for the URL as written (`expose`).

use std::fmt;
use url::Url;

/// What a redacted secret reads as.
pub const REDACTED: &str = "[redacted]";

/// A relay URL that keeps its credentials out of every printout.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayUrl(Url);

impl RelayUrl {
    pub fn new(url: Url) -> Self {
        Self(url)
    }

    /// The URL as configured, credentials included: for the transport only.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(redact_url(&self.0).as_str())
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayUrl({self})")
    }
}

/// `url` with any user name and password replaced by `[redacted]`.
pub fn redact_url(url: &Url) -> Url {
    let mut copy = url.clone();
    if !copy.username().is_empty() {
        // Only fails for URLs that cannot carry credentials at all.
        let _ = copy.set_username(REDACTED);
    }
    if copy.password().is_some() {
        let _ = copy.set_password(Some(REDACTED));
    }
    copy
}

/// `redact_url` for a URL as written in the settings; text that does not
/// parse as a URL is redacted whole when it looks like it holds credentials.
pub fn redact_url_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) => redact_url(&url).to_string(),
        Err(_) if text.contains('@') => REDACTED.to_owned(),
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let url =
            Url::parse("smtp://registrar:s3cret@mail.example.com:587?tls=required").expect("a URL");
        let relay = RelayUrl::new(url.clone());
        for shown in [
            relay.to_string(),
            format!("{relay:?}"),
            redact_url_text(url.as_str()),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("registrar"), "{shown}");
            assert!(shown.contains("mail.example.com:587"), "{shown}");
        }
        assert_eq!(relay.expose(), &url);
        assert_eq!(
            redact_url_text("smtp://mail.example.com:25"),
            "smtp://mail.example.com:25"
        );
        assert_eq!(redact_url_text("not a url but@secret"), REDACTED);
    }
}

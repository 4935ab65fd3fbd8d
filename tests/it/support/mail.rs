//! Building test messages and reading the mail we sent.

use mail_parser::MessageParser;

/// A simple inbound message from a person.
pub fn person(from_name: &str, from: &str, to: &str, message_id: &str) -> Vec<u8> {
    format!(
        "From: {from_name} <{from}>\r\nTo: {to}\r\nSubject: Please register me\r\n\
         Message-ID: <{message_id}>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello, I would like an account.\r\n"
    )
    .into_bytes()
}

/// A sent mail, parsed.
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub headers: Vec<(String, String)>,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Self {
        let message = MessageParser::default()
            .parse(raw)
            .expect("our mail parses");
        Self {
            subject: message.subject().unwrap_or_default().to_owned(),
            text: message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            html: message
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            headers: message
                .headers_raw()
                .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
                .collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The activation link in a mail's text part; asserts it points at `http_addr`.
pub fn activation_link(mail: &Mail, http_addr: std::net::SocketAddr) -> String {
    let start = mail.text.find("http://").expect("a link in the mail");
    let link: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let url = url::Url::parse(&link).expect("the link is a URL");
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert_eq!(url.port(), Some(http_addr.port()));
    assert_eq!(url.path(), "/activate");
    link
}

/// The finished `.eml` files in the outbound folder, oldest name first (a
/// file being written has a hidden `.partial` name until it is complete).
pub fn mail_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

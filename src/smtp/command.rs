//! Reading command lines before the engine sees them: which command a line
//! is, and the envelope commands `MAIL` and `RCPT` parsed in full.
//!
//! mailin's own parser answers a bare `500` to the null sender `<>`, to a
//! space after the colon (`MAIL FROM: <x>`) and to every parameter but
//! `BODY=`, so the session parses these two commands here and hands the
//! engine a canonical line. Nothing here decides whether an address may
//! register; that is policy's job.

use super::reply::SmtpReply;

/// The command a line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    StartTls,
    Other,
}

impl Verb {
    /// Reads the command word of `line`.
    pub fn of(line: &[u8]) -> Self {
        let word = line
            .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default();
        let known = [
            (&b"EHLO"[..], Verb::Ehlo),
            (b"HELO", Verb::Helo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Vrfy),
            (b"EXPN", Verb::Expn),
            (b"STARTTLS", Verb::StartTls),
        ];
        known
            .iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map_or(Verb::Other, |(_, verb)| *verb)
    }

    /// Whether RFC 2920 lets this command stand anywhere but last in a
    /// pipelined group. EHLO, DATA, VRFY, EXPN, QUIT, NOOP and STARTTLS
    /// change what the client must do next, so the client must wait for
    /// their reply before sending more.
    pub fn may_be_followed_in_a_group(self) -> bool {
        matches!(self, Verb::Mail | Verb::Rcpt | Verb::Rset | Verb::Other)
    }
}

/// `MAIL FROM`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path without brackets; empty for the null sender.
    pub sender: String,
    /// `SIZE=` as declared by the client.
    pub declared_size: Option<u64>,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
}

impl MailFrom {
    pub fn is_null_sender(&self) -> bool {
        self.sender.is_empty()
    }

    /// The line mailin's parser accepts for this command. The null sender
    /// gets a stand-in path, because mailin cannot parse `<>`; the handler
    /// takes the real sender from the session, never from this line.
    pub fn engine_line(&self) -> Vec<u8> {
        let path = if self.is_null_sender() {
            "null-sender"
        } else {
            &self.sender
        };
        let body = if self.eight_bit { " BODY=8BITMIME" } else { "" };
        format!("MAIL FROM:<{path}>{body}\r\n").into_bytes()
    }
}

/// Parses `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]`.
///
/// # Errors
/// The reply for a line that cannot be accepted as written.
pub fn parse_mail(line: &[u8]) -> Result<MailFrom, SmtpReply> {
    let (sender, parameters) = split_path(line, b"MAIL FROM:").ok_or_else(|| SmtpReply {
        code: 501,
        text: "5.5.4 syntax: MAIL FROM:<address>".into(),
    })?;
    let sender = check_path(sender).ok_or_else(|| SmtpReply {
        code: 501,
        text: "5.1.7 bad sender address syntax".into(),
    })?;
    let mut mail = MailFrom {
        sender,
        declared_size: None,
        eight_bit: false,
    };
    for parameter in parameters.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if key.eq_ignore_ascii_case("SIZE") {
            let size = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()));
            mail.declared_size = Some(size.ok_or_else(|| SmtpReply {
                code: 501,
                text: "5.5.4 SIZE needs a number of bytes".into(),
            })?);
        } else if key.eq_ignore_ascii_case("BODY") && value.eq_ignore_ascii_case("8BITMIME") {
            mail.eight_bit = true;
        } else if !(key.eq_ignore_ascii_case("BODY") && value.eq_ignore_ascii_case("7BIT")) {
            return Err(unsupported_parameter());
        }
    }
    Ok(mail)
}

/// Parses `RCPT TO:<path>` and returns the path.
///
/// # Errors
/// The reply for a line that cannot be accepted as written.
pub fn parse_rcpt(line: &[u8]) -> Result<String, SmtpReply> {
    let (path, parameters) = split_path(line, b"RCPT TO:").ok_or_else(|| SmtpReply {
        code: 501,
        text: "5.5.4 syntax: RCPT TO:<address>".into(),
    })?;
    if !parameters.trim().is_empty() {
        return Err(unsupported_parameter());
    }
    check_path(path)
        .filter(|path| !path.is_empty())
        .ok_or_else(|| SmtpReply {
            code: 501,
            text: "5.1.3 bad recipient address syntax".into(),
        })
}

/// The line mailin's parser accepts for a recipient.
pub fn rcpt_engine_line(path: &str) -> Vec<u8> {
    format!("RCPT TO:<{path}>\r\n").into_bytes()
}

fn unsupported_parameter() -> SmtpReply {
    SmtpReply {
        code: 555,
        text: "5.5.4 unsupported parameter".into(),
    }
}

/// Splits `<prefix> [spaces] <path> [parameters]` (prefix matched without
/// regard to case); brackets around the path may be left out, as Postfix
/// allows.
fn split_path<'a>(line: &'a [u8], prefix: &[u8]) -> Option<(&'a str, &'a str)> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix("\r\n").unwrap_or(line);
    let head = line.get(..prefix.len())?;
    if !head.as_bytes().eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start_matches(' ');
    if let Some(inner) = rest.strip_prefix('<') {
        let close = inner.find('>')?;
        let after = &inner[close + 1..];
        if !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        Some((&inner[..close], after))
    } else {
        let end = rest.find(' ').unwrap_or(rest.len());
        (end > 0).then(|| (&rest[..end], &rest[end..]))
    }
}

/// A path may hold no spaces, brackets or control characters.
fn check_path(path: &str) -> Option<String> {
    let clean = !path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>');
    clean.then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_from_is_read_in_every_accepted_spelling() {
        let cases: [(&[u8], &str, Option<u64>); 5] = [
            (
                b"MAIL FROM:<jane@example.com>\r\n",
                "jane@example.com",
                None,
            ),
            (
                b"mail from: <jane@example.com>\r\n",
                "jane@example.com",
                None,
            ),
            (b"MAIL FROM:<>\r\n", "", None),
            (
                b"MAIL FROM:<jane@example.com> SIZE=100 BODY=8BITMIME\r\n",
                "jane@example.com",
                Some(100),
            ),
            (b"MAIL FROM:jane@example.com\r\n", "jane@example.com", None),
        ];
        for (line, sender, size) in cases {
            let mail = parse_mail(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            assert_eq!(mail.sender, sender, "{line:?}");
            assert_eq!(mail.declared_size, size, "{line:?}");
        }
    }

    #[test]
    fn bad_mail_from_lines_get_their_own_codes() {
        let cases: [(&[u8], u16); 5] = [
            (b"MAIL FROM:<a b@example.com>\r\n", 501),
            (b"MAIL FROM:<jane@example.com\r\n", 501),
            (b"MAIL FROM:<jane@example.com> SIZE=big\r\n", 501),
            (b"MAIL FROM:<jane@example.com> SMTPUTF8\r\n", 555),
            (b"MAIL TO:<jane@example.com>\r\n", 501),
        ];
        for (line, code) in cases {
            let reply = parse_mail(line).expect_err("refused");
            assert_eq!(reply.code, code, "{line:?}");
        }
    }

    #[test]
    fn the_engine_sees_a_line_it_can_parse_for_the_null_sender() {
        let mail = parse_mail(b"MAIL FROM:<>\r\n").expect("null sender");
        assert!(mail.is_null_sender());
        assert_eq!(mail.engine_line(), b"MAIL FROM:<null-sender>\r\n");
    }

    #[test]
    fn rcpt_to_refuses_empty_paths_and_parameters() {
        assert_eq!(
            parse_rcpt(b"RCPT TO: <support@example.com>\r\n").expect("space"),
            "support@example.com"
        );
        assert_eq!(parse_rcpt(b"RCPT TO:<>\r\n").expect_err("empty").code, 501);
        assert_eq!(
            parse_rcpt(b"RCPT TO:<a@example.com> NOTIFY=NEVER\r\n")
                .expect_err("parameter")
                .code,
            555
        );
    }

    #[test]
    fn verbs_are_read_without_regard_to_case() {
        assert_eq!(Verb::of(b"ehlo x\r\n"), Verb::Ehlo);
        assert_eq!(Verb::of(b"StartTLS\r\n"), Verb::StartTls);
        assert_eq!(Verb::of(b"MAILFROM\r\n"), Verb::Other);
    }
}

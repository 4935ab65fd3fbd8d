//! Reading a command line before anything else does: which verb it is (and
//! whether it may be pipelined), and the path syntax `MAIL` and `RCPT`
//! share. Each verb's own parsing lives in its file (`mail`, `rcpt`).

/// The command a line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ehlo,
    Helo,
    Xforward,
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
            (b"XFORWARD", Verb::Xforward),
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
    /// their reply before sending more. XFORWARD may be pipelined (Postfix's
    /// XFORWARD_README), and Postfix sends it in one group with MAIL, RCPT
    /// and DATA.
    pub fn may_be_followed_in_a_group(self) -> bool {
        matches!(
            self,
            Verb::Xforward | Verb::Mail | Verb::Rcpt | Verb::Rset | Verb::Other
        )
    }
}

/// Splits `<prefix> [spaces] <path> [parameters]` (prefix matched without
/// regard to case); brackets around the path may be left out, as Postfix
/// allows.
pub fn split_path<'a>(line: &'a [u8], prefix: &[u8]) -> Option<(&'a str, &'a str)> {
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
pub fn check_path(path: &str) -> Option<String> {
    let clean = !path
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>');
    clean.then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_read_without_regard_to_case() {
        assert_eq!(Verb::of(b"ehlo x\r\n"), Verb::Ehlo);
        assert_eq!(Verb::of(b"StartTLS\r\n"), Verb::StartTls);
        assert_eq!(Verb::of(b"MAILFROM\r\n"), Verb::Other);
    }
}

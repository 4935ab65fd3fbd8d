//! `MessageBody`: the DATA phase of one transaction, fed piece by piece.
//!
//! It finds the end of the message (only `CRLF.CRLF`: a `.` line that
//! follows a CRLF and ends in CRLF), undoes dot-stuffing, counts the message
//! and its header section against their caps, and reports any bare CR or LF
//! at once. Past a cap it keeps counting but stops keeping bytes, so the
//! message is read to its end and answered `552` with memory bounded.
//! It decides nothing about the message itself.

/// What one piece did to the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The message goes on.
    More,
    /// The piece was the terminating `.` line.
    End,
    /// A bare CR or LF: the SMTP-smuggling pattern; the session must close.
    BareLineEnding,
}

/// Why a message read to its end is still refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Oversize {
    Message,
    HeaderSection,
}

pub struct MessageBody {
    max_bytes: usize,
    max_header_bytes: usize,
    /// The message, while it is within the caps.
    bytes: Vec<u8>,
    size: usize,
    header_bytes: usize,
    /// The last piece ended in CRLF (true at the start: the DATA line did).
    at_line_start: bool,
    in_header_section: bool,
    oversize: Option<Oversize>,
}

impl MessageBody {
    pub fn new(max_bytes: usize, max_header_bytes: usize) -> Self {
        Self {
            max_bytes,
            max_header_bytes,
            bytes: Vec::new(),
            size: 0,
            header_bytes: 0,
            at_line_start: true,
            in_header_section: true,
            oversize: None,
        }
    }

    /// Takes the next piece of input: a line ending in LF, or part of a long
    /// line (never ending between CR and LF).
    pub fn feed(&mut self, piece: &[u8]) -> Fed {
        if super::connection::has_bare_line_ending(piece) {
            return Fed::BareLineEnding;
        }
        let starts_line = self.at_line_start;
        self.at_line_start = piece.ends_with(b"\r\n");
        if starts_line && piece == b".\r\n" {
            return Fed::End;
        }
        let content = match piece.strip_prefix(b".") {
            Some(unstuffed) if starts_line => unstuffed,
            _ => piece,
        };
        if self.in_header_section {
            if starts_line && content == b"\r\n" {
                self.in_header_section = false;
            } else {
                self.header_bytes += content.len();
                if self.header_bytes > self.max_header_bytes && self.oversize.is_none() {
                    self.refuse(Oversize::HeaderSection);
                }
            }
        }
        self.size += content.len();
        if self.size > self.max_bytes && self.oversize.is_none() {
            self.refuse(Oversize::Message);
        }
        if self.oversize.is_none() {
            self.bytes.extend_from_slice(content);
        }
        Fed::More
    }

    /// Message bytes received so far (dot-unstuffed), kept or not.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The whole message, or why it is refused.
    ///
    /// # Errors
    /// The message or its header section went over its cap.
    pub fn finish(self) -> Result<Vec<u8>, Oversize> {
        match self.oversize {
            Some(reason) => Err(reason),
            None => Ok(self.bytes),
        }
    }

    fn refuse(&mut self, reason: Oversize) {
        self.oversize = Some(reason);
        self.bytes = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(body: &mut MessageBody, pieces: &[&[u8]]) -> Vec<Fed> {
        pieces.iter().map(|piece| body.feed(piece)).collect()
    }

    #[test]
    fn only_a_dot_line_after_crlf_ends_the_message_and_dots_are_unstuffed() {
        let mut body = MessageBody::new(1024, 1024);
        let fed = feed_all(
            &mut body,
            &[b"Subject: x\r\n", b"\r\n", b"..leading dot\r\n", b".\r\n"],
        );
        assert_eq!(fed, [Fed::More, Fed::More, Fed::More, Fed::End]);
        assert_eq!(
            body.finish().expect("within the caps"),
            b"Subject: x\r\n\r\n.leading dot\r\n"
        );
    }

    #[test]
    fn a_dot_line_continuing_a_long_line_does_not_end_the_message() {
        let mut body = MessageBody::new(1024, 1024);
        assert_eq!(body.feed(b"long line without end"), Fed::More);
        assert_eq!(body.feed(b".\r\n"), Fed::More);
        assert_eq!(body.feed(b".\r\n"), Fed::End);
    }

    #[test]
    fn every_smuggling_ending_is_a_bare_line_ending() {
        let endings: [&[u8]; 6] = [b"\n", b"x\n", b"x\r", b"\r", b".\r", b"\r.\r\n"];
        for ending in endings {
            let mut body = MessageBody::new(1024, 1024);
            assert_eq!(body.feed(ending), Fed::BareLineEnding, "{ending:?}");
        }
    }

    #[test]
    fn a_message_over_the_cap_is_read_to_the_end_and_refused() {
        let mut body = MessageBody::new(10, 10);
        let fed = feed_all(
            &mut body,
            &[b"A: 1\r\n", b"\r\n", b"0123456789\r\n", b".\r\n"],
        );
        assert_eq!(fed.last(), Some(&Fed::End));
        assert_eq!(body.finish(), Err(Oversize::Message));
    }

    #[test]
    fn a_header_section_over_its_cap_is_refused() {
        let mut body = MessageBody::new(1000, 10);
        feed_all(&mut body, &[b"Subject: 0123456789\r\n", b"\r\n", b".\r\n"]);
        assert_eq!(body.finish(), Err(Oversize::HeaderSection));
    }
}

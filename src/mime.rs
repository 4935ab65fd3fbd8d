//! A reply's body as it is sent: its plain-text and HTML parts as a
//! `multipart/alternative` body (lettre encodes each part: 7bit,
//! quoted-printable or base64, whichever fits), between lines of its
//! boundary. `mailer` puts it under the message's header.

use lettre::message::{MultiPart, SinglePart};

/// An encoded `multipart/alternative` body and the boundary it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeBody {
    boundary: String,
    bytes: Vec<u8>,
}

impl AlternativeBody {
    /// Encodes `text` and `html` between lines of a fresh boundary.
    pub fn encode(text: &str, html: &str) -> Self {
        Self::encode_between(text, html, new_boundary())
    }

    /// Encodes `text` and `html` between lines of `boundary`.
    pub fn encode_between(text: &str, html: &str, boundary: String) -> Self {
        let formatted = MultiPart::alternative()
            .boundary(boundary.clone())
            .singlepart(SinglePart::plain(text.to_owned()))
            .singlepart(SinglePart::html(html.to_owned()))
            .formatted();
        // The multipart's own header (its Content-Type) ends at the first
        // empty line; the message's header carries it instead.
        let body = formatted
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map_or(&formatted[..], |at| &formatted[at + 4..]);
        Self {
            boundary,
            bytes: body.to_vec(),
        }
    }

    /// A body encoded earlier, between lines of `boundary` (an overlay's
    /// fill: `stencil::Overlay`).
    pub fn from_encoded(boundary: String, bytes: Vec<u8>) -> Self {
        Self { boundary, bytes }
    }

    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A boundary no encoded part can contain: quoted-printable writes `=`
/// only before two hex digits or a line break, base64 only at its end, and
/// 7bit text would have to hold these 32 random hex digits.
pub fn new_boundary() -> String {
    let mut bytes = [0u8; 16];
    // Without a working OS random source no token can be safe either.
    getrandom::fill(&mut bytes).expect("the OS random source must be available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("=_{hex}")
}

#[cfg(test)]
mod tests {
    use super::{AlternativeBody, new_boundary};

    #[test]
    fn a_body_has_both_parts_between_its_boundary_lines_and_no_header_of_its_own() {
        let body = AlternativeBody::encode("plain words", "<p>html words</p>");
        let text = String::from_utf8(body.bytes().to_vec()).expect("ascii");
        let line = format!("--{}\r\n", body.boundary());
        assert!(text.starts_with(&line), "{text}");
        assert_eq!(text.matches(&line).count(), 2);
        assert!(text.ends_with(&format!("--{}--\r\n", body.boundary())));
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8"));
        assert!(text.contains("plain words") && text.contains("<p>html words</p>"));
        assert!(!text.contains("multipart/alternative"));
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(new_boundary(), new_boundary());
    }
}

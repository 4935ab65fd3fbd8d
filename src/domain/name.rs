//! `CustomerName`: a display name safe to show on a page or put in a form.

use std::fmt;

/// Longest name kept, in characters.
const MAX_NAME_CHARS: usize = 100;

/// A customer's name: trimmed, without control or bidirectional-override
/// characters, at most 100 characters, never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerName(String);

impl CustomerName {
    /// Cleans a name typed by a customer; `None` when nothing is left.
    pub fn parse(input: &str) -> Option<Self> {
        let cleaned: String = input
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|c| !c.is_control() && !is_bidi_control(*c))
            .collect();
        let collapsed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
        let capped: String = collapsed.chars().take(MAX_NAME_CHARS).collect();
        let capped = capped.trim_end();
        (!capped.is_empty()).then(|| Self(capped.to_owned()))
    }
}

/// Characters that reorder text and can disguise what a name says.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

impl AsRef<str> for CustomerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CustomerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        let cases = [
            ("  Jane   Doe ", Some("Jane Doe")),
            ("Jane\r\nBcc: x", Some("Jane Bcc: x")),
            ("Ev\u{202E}il", Some("Evil")),
            ("\u{0007}", None),
            ("   ", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                CustomerName::parse(input).as_ref().map(AsRef::as_ref),
                expected,
                "input {input:?}"
            );
        }
        assert_eq!(
            CustomerName::parse(&"é".repeat(300)).map(|n| n.0.chars().count()),
            Some(100)
        );
    }
}

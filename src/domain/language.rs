//! The languages our mail and pages are written in, and how one is chosen
//! from what a customer's software says it prefers (`Accept-Language` of a
//! browser, `Content-Language` of a message).

/// A language we ship every mail and page in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    En,
    De,
    Fr,
    Es,
}

impl Language {
    /// Every shipped language; English, the fallback, first.
    pub const ALL: [Language; 4] = [Language::En, Language::De, Language::Fr, Language::Es];

    /// The ISO 639-1 code (`lang="…"`, the catalog's file name).
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Fr => "fr",
            Language::Es => "es",
        }
    }

    /// The language of a BCP 47 tag (`de`, `de-CH`, `FR_ca`), when shipped.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Language::ALL
            .into_iter()
            .find(|language| language.code() == primary)
    }

    /// The shipped language a client prefers most, from a header such as
    /// `Accept-Language: fr-CH, fr;q=0.9, en;q=0.8` or
    /// `Content-Language: de-DE`. Ties keep the header's order; `q=0` means
    /// "not this one".
    pub fn negotiate(header: &str) -> Option<Self> {
        let mut best: Option<(u16, Language)> = None;
        for item in header.split(',').take(32) {
            let mut parts = item.split(';');
            let Some(language) = parts.next().and_then(Language::from_tag) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| {
                    q.trim()
                        .parse::<f32>()
                        .map_or(0, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                });
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, language));
            }
        }
        best.map(|(_, language)| language)
    }
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Language::from_tag(text).ok_or_else(|| {
            let known: Vec<&str> = Language::ALL.iter().map(|l| l.code()).collect();
            format!("{text:?} is not a shipped language ({})", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_shipped_language_wins() {
        let cases = [
            ("de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", Some(Language::De)),
            ("it-IT, fr;q=0.5, es;q=0.7", Some(Language::Es)),
            ("en;q=0, fr", Some(Language::Fr)),
            ("*", None),
            ("", None),
            ("ES", Some(Language::Es)),
        ];
        for (header, expected) in cases {
            assert_eq!(Language::negotiate(header), expected, "{header}");
        }
    }
}

//! Rendered text with holes: a mail whose words differ from one recipient to
//! the next only by a few opaque values (the tokens in its links) is
//! rendered once with stand-ins for them, cut where they stood, and then
//! filled for each recipient, instead of running its templates again.
//!
//! An encoded body, whose values a line break may split, is overlaid
//! instead: the same bytes with the values' characters put in at the places
//! they were found (`Overlay`).
//!
//! A cut is trusted only once it has proven itself: the caller renders a
//! second time with other stand-ins, and a stencil that does not fill to
//! exactly that second rendering is never used (a template that inspects or
//! transforms the values is then rendered every time, as before).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Text cut at the places where given values stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stencil {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Where the value of this index goes.
    Hole(usize),
}

impl Stencil {
    /// Cuts `rendered` at every occurrence of each of `values` (the first
    /// value found wins where two could start at one place; empty values
    /// are never holes).
    pub fn cut(rendered: &str, values: &[&str]) -> Self {
        let mut pieces = Vec::new();
        let mut rest = rendered;
        loop {
            let next = values
                .iter()
                .enumerate()
                .filter(|(_, value)| !value.is_empty())
                .filter_map(|(index, value)| rest.find(value).map(|at| (at, index, value.len())))
                .min_by_key(|&(at, index, _)| (at, index));
            let Some((at, index, len)) = next else {
                break;
            };
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_owned()));
            }
            pieces.push(Piece::Hole(index));
            rest = &rest[at + len..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Self { pieces }
    }

    /// The text with `values` in its holes (a hole without a value stays
    /// empty).
    pub fn fill(&self, values: &[&str]) -> String {
        let len = self
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.len(),
                Piece::Hole(index) => values.get(*index).map_or(0, |v| v.len()),
            })
            .sum();
        let mut out = String::with_capacity(len);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Hole(index) => out.push_str(values.get(*index).copied().unwrap_or("")),
            }
        }
        out
    }
}

/// Bytes to be copied with some of them replaced: an encoded body whose
/// values may be broken across lines (quoted-printable inserts soft line
/// breaks wherever a line grows too long), so that they cannot be found as
/// whole strings. The places are found by encoding twice, with each value
/// a run of one character and then of another: every byte that differs is
/// one character of one value, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    bytes: Vec<u8>,
    holes: Vec<OverlayHole>,
    /// The length each value had, and must have to fill.
    lengths: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OverlayHole {
    at: usize,
    value: usize,
    index: usize,
}

impl Overlay {
    /// The overlay of `first` (encoded with `first_values`) against `second`
    /// (encoded with `second_values`): each pair of values must be runs of
    /// one ASCII character each, of one length, different characters, and
    /// every byte where the two encodings differ must be one of them. `None`
    /// otherwise (say the encoder transformed them).
    pub fn cut(
        first: &[u8],
        second: &[u8],
        first_values: &[&str],
        second_values: &[&str],
    ) -> Option<Self> {
        if first.len() != second.len() || first_values.len() != second_values.len() {
            return None;
        }
        let runs = first_values
            .iter()
            .zip(second_values)
            .map(|(a, b)| {
                let (a_char, b_char) = (run_of_one(a)?, run_of_one(b)?);
                (a_char != b_char && a.len() == b.len()).then_some((a_char, b_char, a.len()))
            })
            .collect::<Option<Vec<_>>>()?;
        let mut seen = vec![0usize; runs.len()];
        let mut holes = Vec::new();
        for (at, (x, y)) in first.iter().zip(second).enumerate() {
            if x == y {
                continue;
            }
            let value = runs.iter().position(|&(a, b, _)| a == *x && b == *y)?;
            holes.push(OverlayHole {
                at,
                value,
                index: seen[value] % runs[value].2,
            });
            seen[value] += 1;
        }
        // Each value appears whole, however often.
        if seen
            .iter()
            .zip(&runs)
            .any(|(count, run)| count % run.2 != 0)
        {
            return None;
        }
        Some(Self {
            bytes: first.to_vec(),
            holes,
            lengths: runs.iter().map(|run| run.2).collect(),
        })
    }

    /// The bytes with `values` in place; `None` when a value's length is not
    /// the one the overlay was cut for.
    pub fn fill(&self, values: &[&str]) -> Option<Vec<u8>> {
        if values.len() != self.lengths.len()
            || values
                .iter()
                .zip(&self.lengths)
                .any(|(v, len)| v.len() != *len)
        {
            return None;
        }
        let mut bytes = self.bytes.clone();
        for hole in &self.holes {
            bytes[hole.at] = values[hole.value].as_bytes()[hole.index];
        }
        Some(bytes)
    }
}

/// The one ASCII character `value` repeats, if it is such a run.
fn run_of_one(value: &str) -> Option<u8> {
    let first = *value.as_bytes().first()?;
    (first.is_ascii() && value.bytes().all(|b| b == first)).then_some(first)
}

/// Proven stencils (of any type a caller cuts), one per key (a service,
/// language and kind of mail), each good for one fingerprint of everything
/// else the mail says (its expiry, the service's name, …). A new
/// fingerprint replaces the old entry, so the map holds at most one entry
/// per key; keys come from the configured services, and the map is emptied
/// should it ever pass `MAX_KEYS`.
#[derive(Debug, Default)]
pub struct Stencils {
    cuts: Mutex<HashMap<String, Arc<Cut>>>,
}

/// A bound that configured services and languages never reach.
const MAX_KEYS: usize = 4096;

/// One key's stencils for one fingerprint; `None` when the mail could not
/// be cut (it is rendered every time).
#[derive(Debug)]
struct Cut {
    fingerprint: String,
    stencils: Option<Arc<dyn Any + Send + Sync>>,
}

impl Stencils {
    /// The stencils for `key` at `fingerprint`: those already proven, or
    /// the ones `cut` proves now (`None` from it, or from an earlier try at
    /// the same fingerprint, means this mail cannot be stenciled).
    pub fn get_or_cut<T: Any + Send + Sync>(
        &self,
        key: &str,
        fingerprint: &str,
        cut: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        if let Some(known) = self.lock().get(key)
            && known.fingerprint == fingerprint
        {
            return known.stencils.clone().and_then(|any| any.downcast().ok());
        }
        // Cut outside the lock: two callers may both cut the same key once,
        // and the later one's (equal) stencils win.
        let stencils = cut().map(Arc::new);
        let mut cuts = self.lock();
        if cuts.len() >= MAX_KEYS && !cuts.contains_key(key) {
            cuts.clear();
        }
        cuts.insert(
            key.to_owned(),
            Arc::new(Cut {
                fingerprint: fingerprint.to_owned(),
                stencils: stencils
                    .clone()
                    .map(|stencils| stencils as Arc<dyn Any + Send + Sync>),
            }),
        );
        stencils
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Cut>>> {
        // The map holds no invariant a panic could break half-way.
        self.cuts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::{Overlay, Stencil, Stencils};
    use std::cell::Cell;

    #[test]
    fn a_stencil_fills_every_place_each_value_stood() {
        let rendered =
            "Hi!\nopen https://x/activate?token=AAA or AAA; stop: https://x/not-me?token=BBB.";
        let stencil = Stencil::cut(rendered, &["AAA", "BBB"]);
        assert_eq!(
            stencil.fill(&["t1", "t2"]),
            "Hi!\nopen https://x/activate?token=t1 or t1; stop: https://x/not-me?token=t2."
        );
        assert_eq!(stencil.fill(&["AAA", "BBB"]), rendered);
    }

    #[test]
    fn values_at_either_end_or_side_by_side_are_holes_too() {
        let stencil = Stencil::cut("AAABBBmiddleAAA", &["AAA", "BBB"]);
        assert_eq!(stencil.fill(&["1", "2"]), "12middle1");
        let untouched = Stencil::cut("no values here", &["AAA", ""]);
        assert_eq!(untouched.fill(&["1", "2"]), "no values here");
    }

    #[test]
    fn a_key_is_cut_once_per_fingerprint_and_a_failed_cut_is_remembered() {
        let stencils = Stencils::default();
        let cuts = Cell::new(0);
        let cut = |text: &'static str| {
            cuts.set(cuts.get() + 1);
            Some(vec![Stencil::cut(text, &["V"])])
        };
        let first = stencils.get_or_cut("svc|en|activation", "12:00", || cut("a V"));
        let again = stencils.get_or_cut("svc|en|activation", "12:00", || cut("other V"));
        assert_eq!(first, again);
        assert_eq!(cuts.get(), 1);
        let later = stencils.get_or_cut("svc|en|activation", "12:01", || cut("b V"));
        assert_eq!(cuts.get(), 2);
        assert_eq!(later.expect("proven")[0].fill(&["x"]), "b x");

        assert!(
            stencils
                .get_or_cut("svc|de|activation", "12:01", || None::<Vec<Stencil>>)
                .is_none()
        );
        let retried = stencils.get_or_cut("svc|de|activation", "12:01", || cut("c V"));
        assert!(
            retried.is_none(),
            "the failed cut stands for its fingerprint"
        );
        assert_eq!(cuts.get(), 2);
    }

    #[test]
    fn an_overlay_puts_values_back_where_a_line_break_split_them() {
        // As quoted-printable might have it: the first value is split by a
        // soft line break, the second appears twice.
        let encode = |a: &str, b: &str| {
            format!("go ?t={}=\r\n{} or {} and {}\r\n", &a[..2], &a[2..], b, b).into_bytes()
        };
        let overlay = Overlay::cut(
            &encode("AAAA", "CCC"),
            &encode("BBBB", "DDD"),
            &["AAAA", "CCC"],
            &["BBBB", "DDD"],
        )
        .expect("cuts");
        assert_eq!(overlay.fill(&["wx_y", "z-9"]), Some(encode("wx_y", "z-9")));
        assert_eq!(overlay.fill(&["short", "z-9"]), None, "lengths are fixed");
    }

    #[test]
    fn an_overlay_is_refused_when_the_encodings_differ_elsewhere() {
        let first = b"token AAAA boundary 1".to_vec();
        let second = b"token BBBB boundary 2".to_vec();
        assert!(Overlay::cut(&first, &second, &["AAAA"], &["BBBB"]).is_none());
        let split_value = b"AA".to_vec();
        let other = b"BB".to_vec();
        assert!(
            Overlay::cut(&split_value, &other, &["AAAA"], &["BBBB"]).is_none(),
            "half a value"
        );
        assert!(
            Overlay::cut(b"AB", b"AB", &["AB"], &["CD"]).is_none(),
            "not runs"
        );
    }
}

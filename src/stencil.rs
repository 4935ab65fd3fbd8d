//! Rendered text with holes: a mail whose words differ from one recipient to
//! the next only by a few opaque values (the tokens in its links) is
//! rendered once with stand-ins for them, cut where they stood, and then
//! filled for each recipient, instead of running its templates again.
//!
//! A cut is trusted only once it has proven itself: the caller renders a
//! second time with other stand-ins, and a stencil that does not fill to
//! exactly that second rendering is never used (a template that inspects or
//! transforms the values is then rendered every time, as before).

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

/// Proven stencils, one set per key (a service, language and kind of mail),
/// each good for one fingerprint of everything else the mail says (its
/// expiry, the service's name, …). A new fingerprint replaces the old set,
/// so the map holds at most one entry per key; keys come from the
/// configured services, and the map is emptied should it ever pass
/// `MAX_KEYS`.
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
    stencils: Option<Arc<[Stencil]>>,
}

impl Stencils {
    /// The stencils for `key` at `fingerprint`: those already proven, or
    /// the ones `cut` proves now (`None` from it, or from an earlier try at
    /// the same fingerprint, means this mail cannot be stenciled).
    pub fn get_or_cut(
        &self,
        key: &str,
        fingerprint: &str,
        cut: impl FnOnce() -> Option<Vec<Stencil>>,
    ) -> Option<Arc<[Stencil]>> {
        if let Some(known) = self.lock().get(key)
            && known.fingerprint == fingerprint
        {
            return known.stencils.clone();
        }
        // Cut outside the lock: two callers may both cut the same key once,
        // and the later one's (equal) stencils win.
        let stencils = cut().map(Arc::from);
        let mut cuts = self.lock();
        if cuts.len() >= MAX_KEYS && !cuts.contains_key(key) {
            cuts.clear();
        }
        cuts.insert(
            key.to_owned(),
            Arc::new(Cut {
                fingerprint: fingerprint.to_owned(),
                stencils: stencils.clone(),
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
    use super::{Stencil, Stencils};
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
        assert_eq!(first.as_deref(), again.as_deref());
        assert_eq!(cuts.get(), 1);
        let later = stencils.get_or_cut("svc|en|activation", "12:01", || cut("b V"));
        assert_eq!(cuts.get(), 2);
        assert_eq!(later.expect("proven")[0].fill(&["x"]), "b x");

        assert!(
            stencils
                .get_or_cut("svc|de|activation", "12:01", || None)
                .is_none()
        );
        let retried = stencils.get_or_cut("svc|de|activation", "12:01", || cut("c V"));
        assert!(
            retried.is_none(),
            "the failed cut stands for its fingerprint"
        );
        assert_eq!(cuts.get(), 2);
    }
}

//! What a replay run reports: one row per case with its verdict, the table
//! the command prints, and a readable diff for every case that does not match
//! its expectation.

use crate::replay::case::{Case, Outcome};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How a case compares with its expectation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Replayed without comparing.
    Shown,
    /// The outcome equals the expectation.
    Matches,
    /// The outcome differs; a unified diff, expected against observed.
    Differs(String),
    /// There is no expectation to compare with.
    Missing,
    /// The expectation file was written.
    Updated,
    /// The case could not be run.
    Failed(String),
}

impl Verdict {
    /// True for verdicts that make `--check` fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::Differs(_) | Verdict::Missing | Verdict::Failed(_)
        )
    }

    fn label(&self) -> &'static str {
        match self {
            Verdict::Shown => "",
            Verdict::Matches => "ok",
            Verdict::Differs(_) => "DIFFERS",
            Verdict::Missing => "MISSING",
            Verdict::Updated => "updated",
            Verdict::Failed(_) => "FAILED",
        }
    }
}

/// One replayed case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: Case,
    /// The observed outcome, when the case ran.
    pub outcome: Option<Outcome>,
    pub verdict: Verdict,
}

/// Every case of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub results: Vec<CaseResult>,
    /// Paths in the table are shown relative to this folder.
    pub base: Option<PathBuf>,
}

impl Summary {
    /// Cases that make `--check` fail.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().filter(|r| r.verdict.is_failure())
    }

    /// The table: file, decision, reason, reply code, mails sent, verdict.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "file".to_owned(),
            "decision".to_owned(),
            "reason".to_owned(),
            "code".to_owned(),
            "mails".to_owned(),
            "check".to_owned(),
        ]];
        for result in &self.results {
            let file = self.show(&result.case.eml);
            let row = match &result.outcome {
                Some(outcome) => [
                    file,
                    outcome.decision.clone().unwrap_or_else(|| "-".into()),
                    outcome.reason.clone().unwrap_or_else(|| "-".into()),
                    format!("{} ({})", outcome.code, outcome.stage),
                    mails_cell(outcome),
                    result.verdict.label().to_owned(),
                ],
                None => [
                    file,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    result.verdict.label().to_owned(),
                ],
            };
            rows.push(row);
        }
        let widths: Vec<usize> = (0..6)
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// A readable account of every failing case: its file and the diff or
    /// the error.
    pub fn failure_report(&self) -> String {
        let mut out = String::new();
        for result in self.failures() {
            let file = self.show(&result.case.eml);
            let _ = match &result.verdict {
                Verdict::Differs(diff) => writeln!(
                    out,
                    "\n{file}: the outcome differs from {}\n{diff}",
                    self.show(&result.case.expect_path)
                ),
                Verdict::Missing => writeln!(
                    out,
                    "\n{file}: no expectation in {} (run with --update to record one)",
                    self.show(&result.case.expect_path)
                ),
                Verdict::Failed(error) => writeln!(out, "\n{file}: could not be replayed: {error}"),
                _ => Ok(()),
            };
        }
        out
    }

    fn show(&self, path: &Path) -> String {
        self.base
            .as_deref()
            .and_then(|base| path.strip_prefix(base).ok())
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn mails_cell(outcome: &Outcome) -> String {
    if outcome.mails.is_empty() {
        return "0".into();
    }
    let recipients: Vec<&str> = outcome.mails.iter().map(|m| m.to.as_str()).collect();
    format!("{} to {}", outcome.mails.len(), recipients.join(", "))
}

/// A unified diff of two outcomes as they read in an expectation file.
pub fn diff(expected: &Outcome, observed: &Outcome) -> String {
    let expected = expected.to_toml();
    let observed = observed.to_toml();
    similar::TextDiff::from_lines(&expected, &observed)
        .unified_diff()
        .context_radius(3)
        .header("expected", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_names_the_changed_keys() {
        let expected = Outcome {
            stage: "message".into(),
            code: 250,
            reply: "ok".into(),
            decision: Some("register".into()),
            reason: Some("new_customer".into()),
            customer: "pending".into(),
            ..Outcome::default()
        };
        let observed = Outcome {
            decision: Some("suppress".into()),
            reason: Some("auto_submitted".into()),
            customer: "none".into(),
            ..expected.clone()
        };
        let text = diff(&expected, &observed);
        assert!(text.contains("-decision = \"register\""), "{text}");
        assert!(text.contains("+decision = \"suppress\""), "{text}");
        assert!(text.contains("+customer = \"none\""), "{text}");
        assert!(!text.contains("-code"), "{text}");
    }
}

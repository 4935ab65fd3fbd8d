//! Replay: run `.eml` files through the real pipeline and report what the
//! daemon did with each, optionally checking or rewriting the expectation
//! file beside each message.
//!
//! Every case gets a real `Application` (listeners on port 0, a fresh SQLite
//! file unless a shared one is given, outbound mail written to a folder
//! instead of a relay), the message goes over the real SMTP listener, and the
//! outcome is read back once the outbox has settled. The `registrar replay`
//! command and the integration test both call `run`, so they cannot drift.
//!
//! Replay decides nothing itself and never writes rows directly, except to
//! disable an account for the "disabled" precondition, as an operator would.

mod case;
mod pipeline;
mod report;
pub mod smtp_client;
mod web_client;

pub use case::{Case, CaseFile, Envelope, EnvelopeSpec, Given, Outcome, SenderGiven, SentMail};
pub use pipeline::EnvelopeDefaults;
pub use report::{CaseResult, Summary, Verdict};

use crate::replay::pipeline::Pipeline;
use crate::settings::{self, RawSettings};
use anyhow::Context as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What to do with each case's expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replay and show; expectation files are not read for comparison.
    Show,
    /// Compare with the expectation; a difference or a missing file fails.
    Check,
    /// Rewrite the `[expect]` table (and record the envelope used).
    Update,
}

/// How to run the cases.
#[derive(Debug, Clone)]
pub struct Options {
    /// The loaded settings: embedded defaults, `--config`, environment.
    pub settings: RawSettings,
    /// One database for every case instead of a fresh one each.
    pub db: Option<PathBuf>,
    /// The envelope where a case does not record one.
    pub defaults: EnvelopeDefaults,
    /// Show paths relative to this folder.
    pub base: Option<PathBuf>,
}

impl Options {
    /// Options with the settings an operator would run with: embedded
    /// defaults, then `config`, then the environment.
    ///
    /// # Errors
    /// The settings cannot be read.
    pub fn load(config: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            settings: settings::load_raw(config)?,
            db: None,
            defaults: EnvelopeDefaults::default(),
            base: None,
        })
    }
}

/// Replays every `.eml` file under `paths` (folders recursively) and
/// compares or records expectations according to `mode`. A case that cannot
/// be run is reported as `Verdict::Failed`; the run goes on.
///
/// # Errors
/// A path cannot be read, an expectation file is not valid, or an
/// expectation cannot be written.
pub async fn run(paths: &[PathBuf], options: &Options, mode: Mode) -> anyhow::Result<Summary> {
    let cases = case::discover(paths)?;
    let mut pipeline = Pipeline::new(
        options.settings.clone(),
        options.db.clone(),
        options.defaults.clone(),
    )?;
    let mut summary = Summary {
        results: Vec::with_capacity(cases.len()),
        base: options.base.clone(),
    };
    for case in cases {
        let observed = pipeline.run(&case).await;
        let result = match observed {
            Err(error) => CaseResult {
                case,
                outcome: None,
                verdict: Verdict::Failed(format!("{error:#}")),
            },
            Ok(observed) => {
                let verdict = judge(&case, &observed, mode)?;
                CaseResult {
                    case,
                    outcome: Some(observed.outcome),
                    verdict,
                }
            }
        };
        summary.results.push(result);
    }
    Ok(summary)
}

fn judge(case: &Case, observed: &pipeline::Observed, mode: Mode) -> anyhow::Result<Verdict> {
    let expected = case.file.as_ref().and_then(|file| file.expect.as_ref());
    Ok(match mode {
        Mode::Show => Verdict::Shown,
        Mode::Check => match expected {
            None => Verdict::Missing,
            Some(expected) if *expected == observed.outcome => Verdict::Matches,
            Some(expected) => Verdict::Differs(report::diff(expected, &observed.outcome)),
        },
        Mode::Update => {
            if expected == Some(&observed.outcome) {
                Verdict::Matches
            } else {
                let mut file = case.file.clone().unwrap_or_default();
                file.envelope = Some(EnvelopeSpec::from(&observed.envelope));
                file.expect = Some(observed.outcome.clone());
                case::write_case_file(&case.expect_path, &file)?;
                Verdict::Updated
            }
        }
    })
}

/// `registrar replay`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// `.eml` files or folders (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Compare with each `<case>.expect.toml`; fail on any difference or a
    /// missing file.
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
    /// Rewrite the expectation of every case from what happened.
    #[arg(long)]
    pub update: bool,
    /// Use this SQLite file for every case instead of a fresh one each
    /// (state carries over from case to case).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// MAIL FROM for messages whose case records no envelope (default: the
    /// Return-Path or From header).
    #[arg(long, value_name = "ADDRESS")]
    pub envelope_from: Option<String>,
    /// Client address for messages whose case records none; only loopback
    /// addresses can be presented to the listener as such.
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<IpAddr>,
}

/// Runs `registrar replay`: prints the table, and with `--check` the diff of
/// every case that does not match.
///
/// # Errors
/// The settings or paths cannot be read, or (with `--check`) a case does not
/// match its expectation.
pub fn command(config: Option<&Path>, args: Args) -> anyhow::Result<()> {
    let mut options = Options::load(config)?;
    options.db = args.db;
    options.defaults = EnvelopeDefaults {
        mail_from: args.envelope_from,
        client_ip: args.client_ip,
    };
    let mode = if args.check {
        Mode::Check
    } else if args.update {
        Mode::Update
    } else {
        Mode::Show
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registrar-replay")
        .build()
        .context("failed to start the async runtime")?;
    let summary = runtime.block_on(run(&args.paths, &options, mode))?;
    print!("{}", summary.table());
    let failures = summary.failures().count();
    if failures > 0 {
        eprint!("{}", summary.failure_report());
        anyhow::bail!("{failures} of {} cases failed", summary.results.len());
    }
    Ok(())
}

//! # Machine-readable results of model runs
//!
//! `fastzap verify` runs the loom and shuttle lanes by driving `cargo` and
//! sets [`RESULTS_DIR_VAR`] (`FASTZAP_RESULTS_DIR`) to a directory of its
//! report. Every model run of the test files then writes one [`ModelResult`]
//! there, as one JSON line in `<lane>-<model>.json`: the lane, the scenario,
//! the invariants it checks, the executions it ran, its time, its verdict and,
//! when an execution failed, the [`Counterexample`] file (events, violations,
//! timeline, Mermaid source, shuttle schedule). `verify` parses those files;
//! the tests' exit codes alone are not enough for it.
//!
//! Without the variable (plain `cargo loom`, `cargo shuttle`) no result is
//! written, and counterexamples go to `target/counterexamples/` as before.
//!
//! The module is split by idea, one file each under `results/`: the result
//! record and its file (here), how a run's failure becomes a [`Verdict`]
//! (`verdict.rs`), running a model and writing its result ([`record`],
//! `run.rs`), and the [`Counterexample`] and [`ReplayFile`] files
//! (`counterexample.rs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::timeline;

mod counterexample;
mod run;
mod verdict;

pub use counterexample::{Counterexample, ReplayFile, TraceEvent, TraceViolation};
pub use run::{panic_text, record, record_bounded, test_name};
pub use verdict::{Verdict, conclude, first_detected_is_expected, reported_in};

/// The environment variable naming the results directory.
pub const RESULTS_DIR_VAR: &str = "FASTZAP_RESULTS_DIR";

/// The results directory, if `verify` (or a user) set one.
pub fn results_dir() -> Option<PathBuf> {
    std::env::var_os(RESULTS_DIR_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where counterexamples are written: `<results>/counterexamples` under
/// `verify`, `target/counterexamples` otherwise.
pub fn counterexample_dir() -> PathBuf {
    match results_dir() {
        Some(dir) => dir.join("counterexamples"),
        None => timeline::counterexample_dir(),
    }
}
/// One model run: one line of a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// `loom` or `shuttle`.
    pub lane: String,
    /// The test function that ran it (libtest's thread name), if known.
    pub test: String,
    /// The model's key: scenario, reclamation, mutant.
    pub model: String,
    /// The scenario (`s1`...; `ebr` and `reclaim` for the reclamation models).
    pub scenario: String,
    /// The mutant, if any (`Debug` name).
    pub mutant: Option<String>,
    /// The invariants the scenario asserts (every execution also runs the
    /// full audit of every invariant).
    pub invariants: Vec<String>,
    /// For a mutant: the reports that count as catching it.
    pub expected: Vec<String>,
    /// Executions run (until the failing one, included).
    pub executions: u64,
    /// The fewest executions a complete run of this model explores at these
    /// settings (the floor its test asserts; 0 for a mutant, which may be
    /// caught at once, or when the settings shrink the model below the
    /// floor's). `verify` reports a run under its floor as UNDER-CHECKED.
    #[serde(default)]
    pub floor: u64,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// The checker's settings (preemption bound, schedulers and iterations).
    pub settings: String,
    /// The conclusion.
    pub verdict: Verdict,
    /// The invariant (or checker report) the failing execution named first.
    pub reported: Option<String>,
    /// The failure's first line.
    pub message: Option<String>,
    /// The counterexample file, if an execution failed.
    pub counterexample: Option<PathBuf>,
}

impl ModelResult {
    /// Writes this result as one JSON line to `<dir>/<lane>-<model>.json`,
    /// if [`results_dir`] is set. Errors are printed, not raised: a result
    /// that cannot be written shows in `verify` as a missing one.
    pub fn write(&self) {
        let Some(dir) = results_dir() else {
            return;
        };
        let path = dir.join(format!("{}-{}.json", self.lane, file_name(&self.model)));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let mut line = serde_json::to_string(self).map_err(std::io::Error::other)?;
            line.push('\n');
            std::fs::write(&path, line)
        });
        if let Err(e) = written {
            eprintln!("could not write {}: {e}", path.display());
        }
    }

    /// Reads every result in `dir`.
    pub fn read_all(dir: &Path) -> Vec<ModelResult> {
        let mut results = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return results;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str(line) {
                    Ok(result) => results.push(result),
                    Err(e) => eprintln!("{}: not a model result: {e}", path.display()),
                }
            }
        }
        results
    }
}

/// What a model is, for its result.
#[derive(Debug, Clone)]
pub struct Info {
    /// The model's key (unique in the lane).
    pub key: String,
    /// Its scenario.
    pub scenario: String,
    /// Its mutant, if any.
    pub mutant: Option<String>,
    /// The invariants it asserts.
    pub invariants: Vec<String>,
    /// For a mutant: the reports that count as catching it (empty for a
    /// pinned finding, a mutant the model is known not to see).
    pub expected: Vec<String>,
    /// The fewest executions a complete run explores (the floor the test
    /// asserts; 0 for a mutant twin). Carried into [`ModelResult::floor`].
    pub floor: u64,
}
/// `name` with everything but letters, digits, `-` and `_` replaced by `_`.
pub fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_round_trips_through_json() {
        let r = ModelResult {
            lane: "loom".into(),
            test: "s1".into(),
            model: "s1".into(),
            scenario: "s1".into(),
            mutant: None,
            invariants: vec!["I5 obsolete never reused".into()],
            expected: vec![],
            executions: 3,
            floor: 2,
            seconds: 0.5,
            settings: "preemption bound 2".into(),
            verdict: Verdict::Pass,
            reported: None,
            message: None,
            counterexample: None,
        };
        let line = serde_json::to_string(&r).expect("serialize");
        assert!(line.contains("\"verdict\":\"pass\""));
        assert_eq!(
            serde_json::from_str::<ModelResult>(&line).expect("parse"),
            r
        );
    }
}

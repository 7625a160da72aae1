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

// The result files are written outside the model: std types.
#![allow(clippy::disallowed_types)]

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fastzap::check::{Event, Invariant, Violation};
use serde::{Deserialize, Serialize};

use crate::tally::Tally;
use crate::timeline;

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

/// What a model run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The correct protocol passed every execution.
    Pass,
    /// The correct protocol failed: a real bug, or a model that broke.
    Fail,
    /// A mutant was caught, and the invariant it breaks was reported.
    Caught,
    /// A mutant failed, but for another reason than the expected invariant.
    WrongInvariant,
    /// A mutant passed every execution.
    Escaped,
    /// No execution failed, but the exploration was cut short by a bound
    /// (`LOOM_MAX_PERMUTATIONS` reached, `LOOM_MAX_DURATION` elapsed): the
    /// model was not checked, so this is never a pass.
    Bounded,
}

impl Verdict {
    /// Whether this verdict is what the test wanted.
    pub fn is_good(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Caught)
    }

    /// The verdict's name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Caught => "caught",
            Verdict::WrongInvariant => "WRONG INVARIANT",
            Verdict::Escaped => "ESCAPED",
            Verdict::Bounded => "BOUNDED",
        }
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

/// Runs `explore` (one model's whole exploration in `lane`, with `settings`),
/// writes its [`ModelResult`], and returns how it ended: `Ok(seconds)` when
/// every execution passed, `Err(message)` with the failing execution's report
/// otherwise. A correct model that fails is recorded as [`Verdict::Fail`] and
/// its panic re-raised; a mutant's verdict is [`Verdict::Caught`],
/// [`Verdict::WrongInvariant`] or [`Verdict::Escaped`], and the caller
/// asserts on it. The report is the harness's last failure message when there
/// is one (shuttle replaces a task's panic payload by its own), else the
/// panic's text.
pub fn record(
    lane: &str,
    info: &Info,
    tally: &Tally,
    settings: String,
    explore: impl FnOnce(),
) -> Result<f64, String> {
    record_bounded(lane, info, tally, settings, &|_, _| None, explore)
}

/// [`record`] for a checker that can stop early: `cut_short(executions,
/// seconds)` says why the exploration may have ended on a bound rather than
/// by exhausting the model (`None` when it cannot have). A run with no
/// failing execution that was cut short is [`Verdict::Bounded`]; a failure
/// found before the bound counts as usual.
pub fn record_bounded(
    lane: &str,
    info: &Info,
    tally: &Tally,
    settings: String,
    cut_short: &dyn Fn(u64, f64) -> Option<String>,
    explore: impl FnOnce(),
) -> Result<f64, String> {
    let started = Instant::now();
    set_last_counterexample(None);
    let _ = crate::harness::take_last_failure();
    let outcome = catch_unwind(AssertUnwindSafe(explore));
    let seconds = started.elapsed().as_secs_f64();
    let message = outcome
        .as_ref()
        .err()
        .map(|p| crate::harness::take_last_failure().unwrap_or_else(|| panic_text(&**p)));
    let reported = message.as_deref().and_then(reported_in);
    let executions = tally.executions() as u64;
    let bounded = if message.is_none() {
        cut_short(executions, seconds)
    } else {
        None
    };
    let pinned = info.mutant.is_some() && info.expected.is_empty();
    let verdict = conclude(info, message.as_deref(), bounded.is_some());
    ModelResult {
        lane: lane.to_string(),
        test: test_name(&info.key),
        model: info.key.clone(),
        scenario: info.scenario.clone(),
        mutant: info.mutant.clone(),
        invariants: info.invariants.clone(),
        expected: info.expected.clone(),
        executions,
        floor: info.floor,
        seconds,
        settings,
        verdict,
        reported,
        message: message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(str::to_string)
            .or(bounded),
        counterexample: take_last_counterexample(),
    }
    .write();
    match outcome {
        Ok(()) => Ok(seconds),
        Err(panic) if info.mutant.is_none() || pinned => resume_unwind(panic),
        Err(_) => Err(message.unwrap_or_default()),
    }
}

/// The verdict of a model run: `message` is the failing execution's report
/// (`None` when every execution passed), `cut_short` whether the exploration
/// may have ended on a bound.
pub fn conclude(info: &Info, message: Option<&str>, cut_short: bool) -> Verdict {
    // A mutant with no expected report is a pinned finding: a mutant the
    // model is known not to see (a masked bug), expected to pass.
    let pinned = info.mutant.is_some() && info.expected.is_empty();
    match (&info.mutant, message) {
        // Nothing failed, but not everything was explored.
        (_, None) if cut_short => Verdict::Bounded,
        (None, None) => Verdict::Pass,
        (None, Some(_)) => Verdict::Fail,
        (Some(_), None) if pinned => Verdict::Pass,
        (Some(_), Some(_)) if pinned => Verdict::Fail,
        (Some(_), None) => Verdict::Escaped,
        (Some(_), Some(m))
            if first_detected_is_expected(reported_in(m).as_deref(), &info.expected) =>
        {
            Verdict::Caught
        }
        (Some(_), Some(_)) => Verdict::WrongInvariant,
    }
}

/// The name of the running test (libtest names each test's thread after it;
/// with one test thread it runs on `main`, and `fallback` is used).
pub fn test_name(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => fallback.to_string(),
    }
}

/// What `message` reports first: the invariant on its
/// [`FIRST_DETECTED`](fastzap::check::FIRST_DETECTED) line (the harness lists an
/// execution's violations in detection order and names the first there:
/// the first the ghost recorded during the execution, else the end audit's
/// first); without that line, the invariant name that appears first in the
/// text (a report of one violation: a litmus model's panic, a native
/// child's `CAUGHT` line); else the checker's own report (`loom causality`,
/// `deadlock`...); else its first line.
pub fn reported_in(message: &str) -> Option<String> {
    let first_detected = message
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(fastzap::check::FIRST_DETECTED));
    let text = first_detected.unwrap_or(message);
    let first = Invariant::ALL
        .iter()
        .filter_map(|i| text.find(i.name()).map(|at| (at, i.name())))
        .min();
    if let Some((_, name)) = first {
        return Some(name.to_string());
    }
    let own = [
        ("Causality violation", "loom causality violation"),
        ("deadlock", "deadlock"),
        (
            "Model exceeded maximum number of branches",
            "loom branch limit",
        ),
    ];
    for (needle, name) in own {
        if message.contains(needle) {
            return Some(name.to_string());
        }
    }
    message
        .lines()
        .next()
        .map(|l| l.chars().take(120).collect())
}

/// Whether the first report, `reported` ([`reported_in`]), is one of
/// `expected` (each an invariant's name or a checker's own report, such as
/// loom's "Causality violation"): a mutant is caught only when the first
/// violation detected is the one it must break, not when that invariant is
/// named anywhere in the failure.
pub fn first_detected_is_expected(reported: Option<&str>, expected: &[String]) -> bool {
    let Some(reported) = reported else {
        return false;
    };
    expected
        .iter()
        .any(|e| reported_in(e).as_deref() == Some(reported))
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

/// One event of a counterexample, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Global order.
    pub seq: u64,
    /// The actor (`vcpu0`, `zapper`...).
    pub actor: String,
    /// The event's kind: the variant of [`fastzap::check::What`] (`Lock`,
    /// `GenBump`, `Request`...), or `EmptySection` for a collapsed
    /// lock/unlock pair.
    pub kind: String,
    /// What happened.
    pub text: String,
}

/// One violation of a counterexample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceViolation {
    /// The invariant's name (`I3 page lifetime`).
    pub invariant: String,
    /// What was seen.
    pub detail: String,
    /// The event at which the check first saw it, if it was seen during the
    /// execution (otherwise the final audit found it, after the last event).
    pub at: Option<u64>,
}

/// A failing execution, for the report: what `verify` draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    /// `<scenario>-<lane>-<mutant>`.
    pub name: String,
    /// The lane.
    pub lane: String,
    /// The scenario.
    pub scenario: String,
    /// The mutant, if any.
    pub mutant: Option<String>,
    /// The actors, in column order.
    pub actors: Vec<String>,
    /// The events, empty critical sections collapsed.
    pub events: Vec<TraceEvent>,
    /// What broke.
    pub violations: Vec<TraceViolation>,
    /// The per-actor text timeline.
    pub timeline: String,
    /// The Mermaid source.
    pub mermaid: String,
    /// The shuttle schedule that replays it (filled in by the shuttle
    /// runner once shuttle has written it).
    pub schedule: Option<String>,
}

impl Counterexample {
    /// The counterexample of a failed execution.
    pub fn new(
        name: &str,
        scenario: &str,
        mutant: Option<String>,
        events: &[Event],
        violations: &[Violation],
    ) -> Counterexample {
        let collapsed = timeline::collapse_empty_sections(events);
        let at = timeline::first_seen(events, violations);
        Counterexample {
            name: name.to_string(),
            lane: fastzap::checking::sync::LANE.to_string(),
            scenario: scenario.to_string(),
            mutant,
            actors: timeline::actors(events)
                .iter()
                .map(|a| a.to_string())
                .collect(),
            events: collapsed
                .iter()
                .map(|e| TraceEvent {
                    seq: e.seq,
                    actor: e.actor.to_string(),
                    kind: timeline::kind(e),
                    text: e.what.to_string(),
                })
                .collect(),
            violations: violations
                .iter()
                .zip(at)
                .map(|(v, at)| TraceViolation {
                    invariant: v.invariant.name().to_string(),
                    detail: v.detail.clone(),
                    at,
                })
                .collect(),
            timeline: timeline::render_columns(events, violations),
            mermaid: timeline::render_mermaid(name, events, violations),
            schedule: None,
        }
    }

    /// Writes it to `<dir>/<name>.json` and returns the path.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", file_name(&self.name)));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Reads one from `path`.
    pub fn read(path: &Path) -> Result<Counterexample, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds the shuttle schedule to the file at `path`.
    pub fn attach_schedule(path: &Path, schedule: &str) {
        if let Ok(mut cx) = Counterexample::read(path) {
            cx.schedule = Some(schedule.to_string());
            if let Some(dir) = path.parent() {
                let _ = cx.write(dir);
            }
        }
    }
}

/// A shuttle replay file: the test target, the model's key and the schedule,
/// one `name: value` line each. `fastzap verify --replay FILE` runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFile {
    /// The test target (`shuttle_scenarios`).
    pub target: String,
    /// The model's key in the target's table.
    pub model: String,
    /// shuttle's schedule string.
    pub schedule: String,
}

impl ReplayFile {
    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "# fastzap shuttle replay: fastzap verify --replay <this file>\ntarget: {}\nmodel: {}\nschedule: {}\n",
            self.target, self.model, self.schedule
        )
    }

    /// Parses a replay file's text.
    pub fn parse(text: &str) -> Result<ReplayFile, String> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("not a fastzap replay file: no `{name}:` line"))
        };
        Ok(ReplayFile {
            target: field("target")?,
            model: field("model")?,
            schedule: field("schedule")?,
        })
    }
}

std::thread_local! {
    static LAST_COUNTEREXAMPLE: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Records the counterexample file of this thread's last failed execution.
pub fn set_last_counterexample(path: Option<PathBuf>) {
    LAST_COUNTEREXAMPLE.with(|slot| *slot.borrow_mut() = path);
}

/// Takes the counterexample file of this thread's last failed execution.
pub fn take_last_counterexample() -> Option<PathBuf> {
    LAST_COUNTEREXAMPLE.with(|slot| slot.borrow_mut().take())
}

/// The counterexample file of this thread's last failed execution, left in
/// place.
pub fn last_counterexample() -> Option<PathBuf> {
    LAST_COUNTEREXAMPLE.with(|slot| slot.borrow().clone())
}

/// The text of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_detected_is_reported_not_the_lowest_numbered() {
        let report = "I1 rmap integrity violated in s4 (shuttle lane)\n\
                      first detected: I6 progress: zap #0 by zapper prepared sp#3 twice\n\
                      in detection order:\n  - I6 progress: ...\n  - I1 rmap integrity: ...\n";
        assert_eq!(reported_in(report).as_deref(), Some("I6 progress"));
        let expected = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let reported = reported_in(report);
        assert!(first_detected_is_expected(
            reported.as_deref(),
            &expected(&["I6 progress"])
        ));
        // Named in the text, but not detected first: a wrong invariant.
        assert!(!first_detected_is_expected(
            reported.as_deref(),
            &expected(&["I1 rmap integrity"])
        ));
        // Loom's own report counts where a row lists it.
        let race = reported_in("Causality violation: Concurrent write");
        assert!(first_detected_is_expected(
            race.as_deref(),
            &expected(&["I3 page lifetime", "Causality violation"])
        ));
        assert!(!first_detected_is_expected(
            None,
            &expected(&["I6 progress"])
        ));
    }

    #[test]
    fn the_first_invariant_named_is_reported() {
        assert_eq!(
            reported_in("I5 obsolete never reused violated in s1 ... I1 rmap integrity").as_deref(),
            Some("I5 obsolete never reused")
        );
        assert_eq!(
            reported_in("Causality violation: Concurrent write").as_deref(),
            Some("loom causality violation")
        );
    }

    #[test]
    fn a_run_cut_short_is_bounded_never_a_pass() {
        let correct = Info {
            key: "s2".into(),
            scenario: "s2".into(),
            mutant: None,
            invariants: vec![],
            expected: vec![],
            floor: 5_000,
        };
        assert_eq!(conclude(&correct, None, false), Verdict::Pass);
        assert_eq!(conclude(&correct, None, true), Verdict::Bounded);
        assert!(!Verdict::Bounded.is_good());
        // A failure found before the bound is a failure all the same.
        assert_eq!(
            conclude(&correct, Some("I3 page lifetime"), true),
            Verdict::Fail
        );
        let mutant = Info {
            mutant: Some("NoFenceInPin".into()),
            expected: vec!["I3 page lifetime".into()],
            floor: 0,
            ..correct
        };
        assert_eq!(
            conclude(&mutant, Some("I3 page lifetime"), true),
            Verdict::Caught
        );
        assert_eq!(conclude(&mutant, None, true), Verdict::Bounded);
        assert_eq!(conclude(&mutant, None, false), Verdict::Escaped);
    }

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

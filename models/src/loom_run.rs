//! # Running a model under loom
//!
//! [`builder`] is the one loom configuration of the loom tests: preemption
//! bound 2 (crossbeam's and tokio's CI choice) and at most 100,000 branches
//! per execution, unless the environment says otherwise. loom's own variables
//! are respected when they are set:
//!
//! | variable | effect |
//! |---|---|
//! | `LOOM_MAX_PREEMPTIONS` | the preemption bound (the code's value: 2) |
//! | `LOOM_MAX_BRANCHES` | branches per execution (the code's value: 100,000) |
//! | `LOOM_MAX_PERMUTATIONS`, `LOOM_MAX_DURATION` | stop early (never set by the code). loom tests these bounds only every `LOOM_CHECKPOINT_INTERVAL` executions; when either is set, [`builder`] sets that interval to 1 (unless the variable is set) so that the bound means what it says. A run that may have stopped on the bound is recorded as [`results::Verdict::Bounded`], never as a pass ([`cut_short`]) |
//! | `LOOM_CHECKPOINT_FILE`, `LOOM_CHECKPOINT_INTERVAL` | save the exploration every interval (20,000 executions by default) to the file and resume from it on the next run; use it with one test at a time (`cargo loom -- s8_generation_wrap --exact`), since every model would share the file |
//! | `LOOM_LOG`, `LOOM_LOCATION` | loom's own diagnostics |
//!
//! When any variable that changes the exploration is set ([`user_bounded`]),
//! the tests print a note and do not assert their execution floors, which were
//! measured with the code's values (a resumed checkpoint also counts only the
//! executions of its own process). The result still carries the floor, for
//! `verify` to hold the run to, unless the settings shrink the model itself
//! ([`floor_applies`]: a lower preemption bound, a resumed checkpoint); a
//! model that completes within a permutation or time bound is a complete
//! exploration and is held to its floor.
//!
//! [`run`] explores one model and writes its result for `verify`.

// Timing and the result files live outside the model: std types.
#![allow(clippy::disallowed_types)]

use crate::results;
pub use crate::results::Info;
use crate::tally::Tally;

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set.
pub const PREEMPTIONS: usize = 2;

/// The branch limit when `LOOM_MAX_BRANCHES` is not set.
pub const MAX_BRANCHES: usize = 100_000;

const EXPLORATION_VARS: [&str; 5] = [
    "LOOM_MAX_PREEMPTIONS",
    "LOOM_MAX_BRANCHES",
    "LOOM_MAX_PERMUTATIONS",
    "LOOM_MAX_DURATION",
    "LOOM_CHECKPOINT_FILE",
];

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

fn number(var: &str) -> Option<u64> {
    std::env::var(var).ok().and_then(|v| v.trim().parse().ok())
}

/// Whether the model's floor (measured at the code's preemption bound, in
/// one process) holds at these settings: no lower `LOOM_MAX_PREEMPTIONS`,
/// no `LOOM_CHECKPOINT_FILE`.
pub fn floor_applies() -> bool {
    let preemptions = number("LOOM_MAX_PREEMPTIONS").unwrap_or(PREEMPTIONS as u64);
    preemptions >= PREEMPTIONS as u64 && !is_set("LOOM_CHECKPOINT_FILE")
}

/// Why a run of `executions` executions in `seconds` may have stopped on a
/// bound rather than by exhausting the model, if it may have: loom (with
/// [`builder`]'s interval of 1) stops before execution `n` once
/// `n >= LOOM_MAX_PERMUTATIONS`, so after `LOOM_MAX_PERMUTATIONS - 1`
/// executions, and before any execution once `LOOM_MAX_DURATION` seconds
/// have passed. A run that ends exactly on the bound cannot be told from one
/// the bound cut, and counts as cut.
pub fn cut_short(executions: u64, seconds: f64) -> Option<String> {
    cut_short_at(
        number("LOOM_MAX_PERMUTATIONS"),
        number("LOOM_MAX_DURATION"),
        executions,
        seconds,
    )
}

fn cut_short_at(
    permutations: Option<u64>,
    duration: Option<u64>,
    executions: u64,
    seconds: f64,
) -> Option<String> {
    if let Some(p) = permutations
        && executions + 1 >= p
    {
        return Some(format!(
            "LOOM_MAX_PERMUTATIONS={p} reached after {executions} executions"
        ));
    }
    if let Some(d) = duration
        && seconds >= d as f64
    {
        return Some(format!(
            "LOOM_MAX_DURATION={d} s elapsed after {executions} executions ({seconds:.1} s)"
        ));
    }
    None
}

/// Whether a `LOOM_*` variable that changes the exploration is set.
pub fn user_bounded() -> bool {
    EXPLORATION_VARS.iter().any(|v| is_set(v))
}

/// The loom builder: loom's environment first, the code's values for what
/// it leaves unset.
pub fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if !is_set("LOOM_MAX_PREEMPTIONS") {
        builder.preemption_bound = Some(PREEMPTIONS);
    }
    if !is_set("LOOM_MAX_BRANCHES") {
        builder.max_branches = MAX_BRANCHES;
    }
    if (builder.max_permutations.is_some() || builder.max_duration.is_some())
        && !is_set("LOOM_CHECKPOINT_INTERVAL")
    {
        // loom tests its bounds only every checkpoint interval (20,000
        // executions by default): without this a bound would not stop a
        // smaller model at all.
        builder.checkpoint_interval = 1;
    }
    builder
}

/// The settings of [`builder`], as text for the results.
pub fn settings() -> String {
    let b = builder();
    let mut text = format!(
        "preemption bound {}, max branches {}",
        b.preemption_bound
            .map_or("none".to_string(), |p| p.to_string()),
        b.max_branches
    );
    if let Some(p) = b.max_permutations {
        text.push_str(&format!(", max permutations {p}"));
    }
    if let Some(d) = b.max_duration {
        text.push_str(&format!(", max duration {d:?}"));
    }
    if let Some(f) = &b.checkpoint_file {
        text.push_str(&format!(", checkpoint {}", f.display()));
    }
    text
}

/// Explores `model` with [`builder`] and writes its result (see
/// [`results::record_bounded`]): a run [`cut_short`] is
/// [`results::Verdict::Bounded`]; the floor is recorded where it
/// [`floor_applies`].
pub fn run<F>(info: &Info, tally: &'static Tally, model: F) -> Result<f64, String>
where
    F: Fn() + Sync + Send + 'static,
{
    let info = Info {
        floor: if floor_applies() { info.floor } else { 0 },
        ..info.clone()
    };
    results::record_bounded("loom", &info, tally, settings(), &cut_short, || {
        builder().check(model)
    })
}

#[cfg(test)]
mod tests {
    use super::cut_short_at;

    #[test]
    fn a_run_that_reaches_its_bound_is_cut_short() {
        assert!(cut_short_at(None, None, 10, 100.0).is_none());
        // LOOM_MAX_PERMUTATIONS=100 stops after 99 executions.
        assert!(cut_short_at(Some(100), None, 99, 0.1).is_some());
        // A model of 40 executions completes within that bound.
        assert!(cut_short_at(Some(100), None, 40, 0.1).is_none());
        assert!(cut_short_at(None, Some(1), 5_000, 1.02).is_some());
        assert!(cut_short_at(None, Some(1), 400, 0.2).is_none());
    }
}

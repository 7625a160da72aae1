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
//! | `LOOM_MAX_PERMUTATIONS`, `LOOM_MAX_DURATION` | stop early (never set by the code: a model cut short reports success without having been checked) |
//! | `LOOM_CHECKPOINT_FILE`, `LOOM_CHECKPOINT_INTERVAL` | save the exploration every interval (20,000 executions by default) to the file and resume from it on the next run; use it with one test at a time (`cargo loom -- s8_generation_wrap --exact`), since every model would share the file |
//! | `LOOM_LOG`, `LOOM_LOCATION` | loom's own diagnostics |
//!
//! When any variable that changes the exploration is set ([`user_bounded`]),
//! the tests print a note and do not assert their execution floors, which were
//! measured with the code's values (a resumed checkpoint also counts only the
//! executions of its own process).
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
/// [`results::record`]).
pub fn run<F>(info: &Info, tally: &'static Tally, model: F) -> Result<f64, String>
where
    F: Fn() + Sync + Send + 'static,
{
    results::record("loom", info, tally, settings(), || builder().check(model))
}

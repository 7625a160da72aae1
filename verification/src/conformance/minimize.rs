//! A failing case made 1-minimal: [`minimize`] removes single transitions
//! and opening slots while the case still fails; [`Shrunk`] says how far the
//! failure shrank.

use super::driver::run_case;
use super::ops::Case;

/// The most runs [`minimize`] spends (4096).
pub const MINIMIZE_RUNS: u64 = 4096;

/// Makes a failing case 1-minimal: removes single transitions (from the back)
/// and single opening slots while the case still fails, until no single removal
/// keeps it failing or [`MINIMIZE_RUNS`] runs were spent. proptest-state-machine
/// deletes each transition once, from the back, before it simplifies them, so a
/// transition that became removable only later stays; this pass removes it.
/// Returns the case and its failure.
pub fn minimize(mut case: Case, mut why: String, shrunk: &mut Shrunk) -> (Case, String) {
    let mut budget = MINIMIZE_RUNS;
    let mut removed = true;
    while removed && budget > 0 {
        removed = false;
        // Back to front, so that a removal leaves the indices still to try
        // in place: transitions, then opening slots.
        let removals: Vec<(bool, usize)> = (0..case.steps.len())
            .rev()
            .map(|i| (true, i))
            .chain((0..case.setup.opening.len()).rev().map(|i| (false, i)))
            .collect();
        for (transition, i) in removals {
            if budget == 0 {
                break;
            }
            let mut candidate = case.clone();
            if transition {
                candidate.steps.remove(i);
            } else {
                candidate.setup.opening.remove(i);
            }
            budget -= 1;
            shrunk.runs += 1;
            if let Err(w) = run_case(&candidate) {
                shrunk.failing_runs += 1;
                case = candidate;
                why = w;
                removed = true;
            }
        }
    }
    (case, why)
}

/// How a failure shrank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shrunk {
    /// Transitions of the first failing case.
    pub from: usize,
    /// Transitions after proptest-state-machine's shrinking.
    pub by_proptest: usize,
    /// Transitions of the minimal failing case, after [`minimize`].
    pub to: usize,
    /// Failing runs while shrinking, the first included.
    pub failing_runs: u64,
    /// Runs while shrinking, the first failing run included.
    pub runs: u64,
}

//! # From a failed execution's report to a model run's verdict
//!
//! A mutant is caught only when the first violation detected is the one it
//! must break ([`first_detected_is_expected`]); a run cut short by a bound is
//! never a pass ([`conclude`]).

use fastzap::check::Invariant;
use serde::{Deserialize, Serialize};

use super::Info;

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
}

//! # What a verdict rests on
//!
//! A PASS needs evidence: every selected lane ran something, every model ran
//! at least its floor of executions and explored its whole space, the quick
//! loom list ran whole, the memory check of the long stress judged. This
//! module finds what is missing ([`Verdict::gaps`]) and names every knob
//! that made the run smaller than the full defaults ([`knobs`]): such a run
//! is `reduced`, and says so in the headline, the report and the exit line.

use fastzap_models::results::Verdict as ModelVerdict;

use crate::lanes::{MiriStatus, ModelLane};
use crate::report::{Options, Verdict};
use crate::run::QUICK_LOOM;

/// Shuttle executions per scheduler of a full run (the tests' default when
/// `FASTZAP_SHUTTLE_ITERS` is unset).
pub const FULL_SHUTTLE_ITERS: u64 = 2_500;

/// loom's preemption bound in a full run (`fastzap_models::loom_run`).
pub const FULL_PREEMPTIONS: u64 = 2;

/// What the command line selected, as given (for [`knobs`]).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--quick`.
    pub quick: bool,
    /// `--lane`, as given (empty: every lane).
    pub lanes: Vec<String>,
    /// `--scenario`.
    pub scenario: Option<String>,
    /// `--mutant`.
    pub mutant: Option<String>,
    /// `--cases` or `PROPTEST_CASES`, as given, with the name of its source.
    pub cases: Option<(&'static str, u32)>,
    /// `--stress-ops`.
    pub stress_ops: Option<u64>,
    /// `--stress-secs`.
    pub stress_secs: Option<u64>,
    /// Why Miri does not run, when it does not.
    pub miri_skipped: Option<String>,
}

/// Every knob that shrinks the run below the full defaults, as text
/// (`--stress-ops 1`, `LOOM_MAX_DURATION=1`); empty for a full run. `env`
/// reads the environment (a parameter, for the tests).
pub fn knobs(
    sel: &Selection,
    options: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let full = Options::full();
    let mut k = Vec::new();
    if sel.quick {
        k.push("--quick".to_string());
    }
    if !sel.lanes.is_empty() {
        k.push(format!("--lane {}", sel.lanes.join(",")));
    }
    if let Some(s) = &sel.scenario {
        k.push(format!("--scenario {s}"));
    }
    if let Some(m) = &sel.mutant {
        k.push(format!("--mutant {m}"));
    }
    if let Some(n) = sel.stress_ops.filter(|n| *n < full.stress_ops) {
        k.push(format!("--stress-ops {n}"));
    }
    if let Some(s) = sel.stress_secs.filter(|s| *s < full.stress_wall.as_secs()) {
        k.push(format!("--stress-secs {s}"));
    }
    if let Some((source, n)) = sel.cases.filter(|(_, n)| *n < full.cases) {
        k.push(match source {
            "--cases" => format!("--cases {n}"),
            _ => format!("{source}={n}"),
        });
    }
    for only in &options.only {
        k.push(format!("--only {only}"));
    }
    // One MMU's native checks are less than every MMU's.
    if fastzap::Mmu::ALL.iter().any(|m| !options.mmus.contains(m)) {
        let names: Vec<&str> = options.mmus.iter().map(|m| m.name()).collect();
        k.push(format!("--mmu {}", names.join(",")));
    }
    let number = |var: &str| env(var).and_then(|v| v.trim().parse::<u64>().ok());
    for var in [
        "LOOM_MAX_DURATION",
        "LOOM_MAX_PERMUTATIONS",
        "LOOM_CHECKPOINT_FILE",
    ] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            k.push(format!("{var}={v}"));
        }
    }
    if let Some(p) = number("LOOM_MAX_PREEMPTIONS").filter(|p| *p < FULL_PREEMPTIONS) {
        k.push(format!("LOOM_MAX_PREEMPTIONS={p}"));
    }
    if let Some(n) = number("FASTZAP_SHUTTLE_ITERS").filter(|n| *n < FULL_SHUTTLE_ITERS) {
        k.push(format!("FASTZAP_SHUTTLE_ITERS={n}"));
    }
    if let Some(why) = &sel.miri_skipped {
        k.push(format!("Miri skipped ({why})"));
    }
    k
}

/// What keeps a verdict from being a PASS although nothing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// A selected lane (or the zoo selection) ran nothing.
    NothingRun,
    /// A model ran fewer executions than its floor.
    UnderChecked,
    /// A model was cut short by a bound.
    Bounded,
    /// A check could not judge (too few memory samples).
    NotJudged,
    /// A model of the quick loom list did not run.
    Missing,
}

impl Gap {
    /// The word in the headline.
    pub fn name(self) -> &'static str {
        match self {
            Gap::NothingRun => "NOTHING RUN",
            Gap::UnderChecked => "UNDER-CHECKED",
            Gap::Bounded => "BOUNDED",
            Gap::NotJudged => "NOT JUDGED",
            Gap::Missing => "QUICK MODEL NOT RUN",
        }
    }
}

/// The quick loom models that did not run in a lane that ran `tests`.
pub fn quick_missing<'a>(list: &[&'a str], tests: &[String]) -> Vec<&'a str> {
    list.iter()
        .copied()
        .filter(|name| !tests.iter().any(|t| t == name))
        .collect()
}

impl Verdict {
    /// `full`, or `reduced` when a knob shrank the run.
    pub fn mode(&self) -> &'static str {
        if self.plan.knobs.is_empty() {
            "full"
        } else {
            "reduced"
        }
    }

    /// Every gap in the evidence, with what it concerns. With
    /// `--allow-bounded`, bounded models are listed by [`Verdict::allowed`]
    /// instead; in a reduced run, so are unjudged checks.
    pub fn gaps(&self) -> Vec<(Gap, String)> {
        self.all_gaps()
            .into_iter()
            .filter(|(g, _)| !self.gap_allowed(*g))
            .collect()
    }

    /// The gaps this run allows (bounded models with `--allow-bounded`,
    /// unjudged checks in a reduced run): listed, not failed.
    pub fn allowed(&self) -> Vec<(Gap, String)> {
        self.all_gaps()
            .into_iter()
            .filter(|(g, _)| self.gap_allowed(*g))
            .collect()
    }

    fn gap_allowed(&self, gap: Gap) -> bool {
        match gap {
            Gap::Bounded => self.plan.allow_bounded,
            Gap::NotJudged => self.mode() == "reduced",
            _ => false,
        }
    }

    fn all_gaps(&self) -> Vec<(Gap, String)> {
        let mut gaps = Vec::new();
        let mut nothing = |what: String| gaps.push((Gap::NothingRun, what));
        if self.plan.native && self.native.as_ref().is_none_or(|n| n.rows.is_empty()) {
            nothing("native: no check ran".to_string());
        }
        for lane in [ModelLane::Loom, ModelLane::Shuttle] {
            let selected = match lane {
                ModelLane::Loom => self.plan.loom,
                ModelLane::Shuttle => self.plan.shuttle,
            };
            let run = self.lanes.iter().find(|l| l.lane == lane);
            if selected && run.is_none_or(|r| r.tests.is_empty()) {
                nothing(format!("{}: no test ran", lane.name()));
            }
        }
        if self.plan.zoo && self.plan.mutant.is_none() && self.zoo.is_empty() {
            nothing("zoo: the selection is empty".to_string());
        }
        if self.plan.miri && self.miri.as_ref().is_none_or(|m| m.passed == 0) {
            nothing("miri: no test ran".to_string());
        }
        for r in self.lanes.iter().flat_map(|l| &l.results) {
            if r.verdict == ModelVerdict::Bounded {
                gaps.push((
                    Gap::Bounded,
                    format!(
                        "{} {}: {}",
                        r.lane,
                        r.model,
                        r.message.as_deref().unwrap_or("cut short by a bound")
                    ),
                ));
            } else if r.verdict.is_good() && r.executions < r.floor {
                gaps.push((
                    Gap::UnderChecked,
                    format!(
                        "{} {}: {} executions, floor {}",
                        r.lane, r.model, r.executions, r.floor
                    ),
                ));
            }
        }
        if self.plan.options.quick
            && self.plan.loom
            && self.plan.scenario.is_none()
            && let Some(run) = self.lanes.iter().find(|l| l.lane == ModelLane::Loom)
        {
            let tests: Vec<String> = run.tests.iter().map(|t| t.name.clone()).collect();
            for name in quick_missing(QUICK_LOOM, &tests) {
                gaps.push((Gap::Missing, format!("loom {name} (listed in QUICK_LOOM)")));
            }
        }
        if let Some(native) = &self.native {
            for row in &native.rows {
                if let Some(why) = &row.outcome.unjudged {
                    gaps.push((Gap::NotJudged, format!("{}: {why}", row.label())));
                }
            }
        }
        gaps
    }

    /// `full`, or `reduced (--stress-ops 1, ...)`.
    pub fn mode_text(&self) -> String {
        if self.plan.knobs.is_empty() {
            self.mode().to_string()
        } else {
            format!("{} ({})", self.mode(), self.plan.knobs.join(", "))
        }
    }

    /// The gaps in the evidence and what the run allowed, one line each.
    pub fn gap_lines(&self) -> Vec<String> {
        let gaps = self
            .gaps()
            .into_iter()
            .map(|(g, w)| format!("{}: {w}", g.name()));
        let allowed = self
            .allowed()
            .into_iter()
            .map(|(g, w)| format!("{} (allowed in this run): {w}", g.name()));
        gaps.chain(allowed).collect()
    }

    /// The Miri lane's row, as text.
    pub fn miri_text(&self) -> Option<String> {
        self.miri.as_ref().map(|m| {
            format!(
                "{} tests passed, {}; {:.1} s with the build; `{}`",
                m.passed,
                match m.status {
                    crate::lanes::MiriStatus::Passed => "no UB",
                    crate::lanes::MiriStatus::Ub => "UNDEFINED BEHAVIOUR",
                    crate::lanes::MiriStatus::Failed => "FAILED",
                },
                m.time.as_secs_f64(),
                m.summary
            )
        })
    }

    /// Whether Miri, when it ran, found the boundary clean.
    pub fn miri_passed(&self) -> bool {
        self.miri
            .as_ref()
            .is_none_or(|m| m.status == MiriStatus::Passed)
    }

    /// The verdict's words: `PASS`, `FAIL`, with the gaps' names
    /// (`FAIL: NOTHING RUN`), then the mode (`reduced: --stress-ops 1`) and
    /// what was allowed (`BOUNDED allowed`).
    pub fn status_words(&self) -> String {
        let mut text = if self.passed() { "PASS" } else { "FAIL" }.to_string();
        let mut names: Vec<&str> = self.gaps().iter().map(|(g, _)| g.name()).collect();
        names.dedup();
        if !names.is_empty() {
            text.push_str(": ");
            text.push_str(&names.join(", "));
        }
        text.push_str(&format!(" [{}", self.mode()));
        if !self.plan.knobs.is_empty() {
            text.push_str(": ");
            text.push_str(&self.plan.knobs.join(", "));
        }
        text.push(']');
        let mut allowed: Vec<&str> = self.allowed().iter().map(|(g, _)| g.name()).collect();
        allowed.dedup();
        if !allowed.is_empty() {
            text.push_str(&format!(" ({} allowed)", allowed.join(", ")));
        }
        text
    }
}

/// The scenario names `--scenario` accepts (lower case): the models'
/// scenarios and the zoo's.
pub fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = fastzap_models::scenarios::ALL
        .iter()
        .chain([&fastzap_models::scenarios::S9F])
        .map(|s| s.name.to_string())
        .chain(
            crate::zoo::ZOO
                .iter()
                .filter_map(|r| crate::zoo::scenario_of(r))
                .map(str::to_string),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The zoo row names `--mutant` accepts.
pub fn mutant_names() -> Vec<String> {
    crate::zoo::ZOO.iter().map(|r| r.subject.name()).collect()
}

/// Checks `--scenario` and `--mutant` against what exists: `Err` with the
/// valid names when either matches nothing (bad usage).
pub fn check_names(scenario: Option<&str>, mutant: Option<&str>) -> Result<(), String> {
    if let Some(s) = scenario {
        let names = scenario_names();
        if !names.iter().any(|n| n.eq_ignore_ascii_case(s)) {
            return Err(format!(
                "no scenario named {s:?}; valid scenarios: {}",
                names.join(", ")
            ));
        }
    }
    if let Some(m) = mutant
        && crate::zoo::select(None, Some(m)).is_empty()
    {
        return Err(format!(
            "no zoo row named {m:?}; valid names: {}",
            mutant_names().join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

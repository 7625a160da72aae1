//! What a run found: the [`Verdict`], with one [`ZooOutcome`] per zoo row.
//! Whether it passed also needs the evidence a PASS rests on
//! ([`Verdict::gaps`], in [`crate::evidence`]).

use std::path::PathBuf;
use std::time::Duration;

use fastzap_models::results::{ModelResult, Verdict as ModelVerdict};

use super::{Plan, Report};
use crate::lanes::{LaneRun, MiriRun};
use crate::zoo::ZooRow;

/// One zoo row as run.
#[derive(Debug, Clone)]
pub struct ZooOutcome {
    /// The row.
    pub row: ZooRow,
    /// The invariant (or checker report) named by the failing run.
    pub reported: Option<String>,
    /// Executions (model lanes), cases or operations (native) until detection.
    pub amount: Option<u64>,
    /// What `amount` counts.
    pub unit: &'static str,
    /// Time to detect.
    pub seconds: Option<f64>,
    /// The checker's settings.
    pub settings: String,
    /// `caught`, `ESCAPED`, `WRONG INVARIANT`, `NOT RUN`.
    pub verdict: &'static str,
    /// The counterexample file, if any.
    pub counterexample: Option<PathBuf>,
    /// One line of detail.
    pub detail: String,
}

impl ZooOutcome {
    /// Whether the row was caught naming the expected invariant.
    pub fn caught(&self) -> bool {
        self.verdict == "caught"
    }
}

/// Everything one run found.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The plan.
    pub plan: Plan,
    /// The native checks.
    pub native: Option<Report>,
    /// The model lane runs.
    pub lanes: Vec<LaneRun>,
    /// Problems running a lane (cargo could not start...).
    pub lane_errors: Vec<String>,
    /// The Miri lane, if it ran.
    pub miri: Option<MiriRun>,
    /// The zoo.
    pub zoo: Vec<ZooOutcome>,
    /// Wall time.
    pub total: Duration,
}

impl Verdict {
    /// The model results of every lane run, failed ones first.
    pub fn model_results(&self) -> Vec<&ModelResult> {
        let mut all: Vec<&ModelResult> = self.lanes.iter().flat_map(|l| &l.results).collect();
        all.sort_by_key(|r| (r.verdict.is_good(), r.lane.clone(), r.model.clone()));
        all
    }

    /// Whether everything passed: native checks, every lane test and model
    /// result, every zoo row caught with its invariant, Miri, and no gap in
    /// the evidence ([`Verdict::gaps`]: nothing run, under a floor,
    /// bounded...).
    pub fn passed(&self) -> bool {
        let native = self.native.as_ref().is_none_or(Report::passed);
        let lanes = self.lanes.iter().all(|l| {
            l.success
                && l.failed().is_empty()
                && l.results
                    .iter()
                    .all(|r| r.verdict.is_good() || r.verdict == ModelVerdict::Bounded)
        });
        let zoo = self.zoo.iter().all(ZooOutcome::caught);
        native
            && lanes
            && zoo
            && self.lane_errors.is_empty()
            && self.miri_passed()
            && self.gaps().is_empty()
    }

    /// The median and the largest time to detect over the zoo rows that ran.
    pub fn detection_times(&self) -> Option<(f64, f64)> {
        let mut times: Vec<f64> = self.zoo.iter().filter_map(|z| z.seconds).collect();
        if times.is_empty() {
            return None;
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        Some((median, times[n - 1]))
    }
}

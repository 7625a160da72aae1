//! The native checks' rows: a [`Check`] has a name, a [`Lane`], a sentence
//! saying what it checks, and a run function that returns a typed
//! [`CheckOutcome`]. [`run_checks`] runs a list of them, printing progress on
//! stderr; a panic inside a check is caught and reported as a failure. The
//! [`Report`] holds one [`Row`] per check that ran.

use std::time::{Duration, Instant};

use fastzap::Mmu;

use super::Options;

/// Where a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Real threads or plain sequential code, native build.
    Native,
    /// Against the sequential reference model.
    Reference,
    /// The bug zoo: a mutant must be caught.
    Zoo,
}

impl Lane {
    /// The lane's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Native => "native",
            Lane::Reference => "reference",
            Lane::Zoo => "zoo",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether it passed.
    pub passed: bool,
    /// How much was checked, in `unit`s (measured, not configured).
    pub amount: u64,
    /// What `amount` counts: operations, cases, executions, steps.
    pub unit: &'static str,
    /// One line of detail (the failure's first lines when it failed).
    pub detail: String,
    /// Why part of the check could not judge, if it could not (too few
    /// samples...): a full run fails on it, a reduced one lists it.
    pub unjudged: Option<String>,
}

impl CheckOutcome {
    /// A passing outcome.
    pub fn pass(amount: u64, unit: &'static str, detail: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            passed: true,
            amount,
            unit,
            detail: detail.into(),
            unjudged: None,
        }
    }

    /// A failing outcome.
    pub fn fail(amount: u64, unit: &'static str, detail: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            passed: false,
            amount,
            unit,
            detail: detail.into(),
            unjudged: None,
        }
    }
}

/// The run function of a check.
pub type RunFn = Box<dyn Fn(&Options) -> CheckOutcome>;

/// One row of the report.
pub struct Check {
    /// A short name, unique together with `mmu`.
    pub name: &'static str,
    /// The MMU its VMs run (every row that builds a `Vm` names one).
    pub mmu: Option<Mmu>,
    /// Its lane.
    pub lane: Lane,
    /// What it checks, in one sentence.
    pub what: &'static str,
    /// Runs it.
    pub run: RunFn,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("mmu", &self.mmu)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

/// A check that ran.
#[derive(Debug, Clone)]
pub struct Row {
    /// The check's name.
    pub name: &'static str,
    /// The MMU its VMs ran.
    pub mmu: Option<Mmu>,
    /// Its lane.
    pub lane: Lane,
    /// What it checks.
    pub what: &'static str,
    /// What it found.
    pub outcome: CheckOutcome,
    /// How long it took.
    pub time: Duration,
}

/// Every row of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The rows, in run order.
    pub rows: Vec<Row>,
    /// Total time.
    pub total: Duration,
}

/// The name of an MMU column's cell: `-` for a row that builds no VM.
pub fn mmu_name(mmu: Option<Mmu>) -> &'static str {
    mmu.map_or("-", Mmu::name)
}

impl Row {
    /// The row's name and MMU, `native-stress [tdp]`: unique in a report.
    pub fn label(&self) -> String {
        match self.mmu {
            Some(m) => format!("{} [{}]", self.name, m.name()),
            None => self.name.to_string(),
        }
    }
}

impl Report {
    /// Whether every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.outcome.passed)
    }
}

/// Runs `checks` in order (those `options.only` selects, on the MMUs of
/// `options.mmus`), with progress on `bar`.
pub fn run_checks(checks: &[Check], options: &Options, bar: &crate::progress::Bar) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let checks: Vec<&Check> = checks
        .iter()
        .filter(|c| {
            (options.only.is_empty() || options.only.iter().any(|o| c.name.contains(o.as_str())))
                && c.mmu.is_none_or(|m| options.mmus.contains(&m))
        })
        .collect();
    for (i, check) in checks.iter().enumerate() {
        bar.running(&format!(
            "[{}/{}] {} ({}, {}): {}",
            i + 1,
            checks.len(),
            check.name,
            check.lane.name(),
            mmu_name(check.mmu),
            check.what
        ));
        let t = Instant::now();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.run)(options)))
                .unwrap_or_else(|panic| {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".to_string());
                    CheckOutcome::fail(0, "-", format!("panicked: {why}"))
                });
        let time = t.elapsed();
        bar.done(&format!(
            "{} [{}] {} in {:.2}s: {} {}; {}",
            check.name,
            mmu_name(check.mmu),
            if outcome.passed { "PASS" } else { "FAIL" },
            time.as_secs_f64(),
            outcome.amount,
            outcome.unit,
            outcome
                .detail
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect::<String>()
        ));
        report.rows.push(Row {
            name: check.name,
            mmu: check.mmu,
            lane: check.lane,
            what: check.what,
            outcome,
            time,
        });
    }
    report.total = started.elapsed();
    report
}

//! # The verify report: one row per check
//!
//! A [`Check`] has a name, a [`Lane`], a sentence saying what it checks, and a
//! run function that returns a typed [`CheckOutcome`]. [`run_checks`] runs a
//! list of them, printing progress on stderr. A panic inside a check is caught
//! and reported as a failure. The [`Report`] renders as a table for the
//! terminal and as markdown for the report directory's `report.md`. New lanes (loom,
//! shuttle, the bug zoo) add rows by adding `Check`s, not by changing this
//! module.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

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

/// The options of one `verify` run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A short run.
    pub quick: bool,
    /// Operations for the native stress.
    pub stress_ops: u64,
    /// The stress's wall-clock bound.
    pub stress_wall: Duration,
    /// Conformance cases.
    pub cases: u32,
    /// The seed for everything random.
    pub seed: u64,
    /// Run only the checks whose name contains one of these (all if empty).
    pub only: Vec<String>,
}

impl Options {
    /// The full run: 1,000,000 operations per stress (each bounded by 120 s)
    /// and 10,000 conformance cases.
    pub fn full() -> Options {
        Options {
            quick: false,
            stress_ops: 1_000_000,
            stress_wall: Duration::from_secs(120),
            cases: 10_000,
            seed: 0x5eed,
            only: Vec::new(),
        }
    }

    /// The quick run: 100,000 stress operations and 300 conformance cases.
    pub fn quick() -> Options {
        Options {
            quick: true,
            stress_ops: 100_000,
            stress_wall: Duration::from_secs(60),
            cases: 300,
            ..Options::full()
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
    /// A short unique name.
    pub name: &'static str,
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
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}

/// A check that ran.
#[derive(Debug, Clone)]
pub struct Row {
    /// The check's name.
    pub name: &'static str,
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

impl Report {
    /// Whether every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.outcome.passed)
    }

    /// The report as a markdown table.
    pub fn markdown(&self, options: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# fastzap verify\n");
        let _ = writeln!(
            out,
            "Mode: {}; seed {:#x}; stress {} ops (bound {} s); conformance {} cases; {} build.\n",
            if options.quick { "quick" } else { "full" },
            options.seed,
            options.stress_ops,
            options.stress_wall.as_secs(),
            options.cases,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        let _ = writeln!(out, "| check | lane | what | amount | time | result |");
        let _ = writeln!(out, "|---|---|---|---:|---:|---|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} {} | {:.2} s | {} |",
                r.name,
                r.lane.name(),
                r.what,
                r.outcome.amount,
                r.outcome.unit,
                r.time.as_secs_f64(),
                if r.outcome.passed { "PASS" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "\nTotal {:.2} s: {}.\n",
            self.total.as_secs_f64(),
            if self.passed() {
                "all checks passed"
            } else {
                "SOME CHECKS FAILED"
            }
        );
        let _ = writeln!(out, "## Details\n");
        for r in &self.rows {
            let detail = r.outcome.detail.replace('\n', "\n    ");
            let _ = writeln!(out, "- **{}**: {}", r.name, detail);
        }
        out
    }

    /// The report as a plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:>22} {:>9}  result",
            "check", "lane", "amount", "time"
        );
        for r in &self.rows {
            let amount = format!("{} {}", r.outcome.amount, r.outcome.unit);
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:>22} {:>8.2}s  {}",
                r.name,
                r.lane.name(),
                amount,
                r.time.as_secs_f64(),
                if r.outcome.passed { "PASS" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "total {:.2}s: {}",
            self.total.as_secs_f64(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }
}

/// Runs `checks` in order (those `options.only` selects), with progress on
/// `bar`.
pub fn run_checks(checks: &[Check], options: &Options, bar: &crate::progress::Bar) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let checks: Vec<&Check> = checks
        .iter()
        .filter(|c| {
            options.only.is_empty() || options.only.iter().any(|o| c.name.contains(o.as_str()))
        })
        .collect();
    for (i, check) in checks.iter().enumerate() {
        bar.running(&format!(
            "[{}/{}] {} ({}): {}",
            i + 1,
            checks.len(),
            check.name,
            check.lane.name(),
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
            "{} {} in {:.2}s: {} {}; {}",
            check.name,
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
            lane: check.lane,
            what: check.what,
            outcome,
            time,
        });
    }
    report.total = started.elapsed();
    report
}

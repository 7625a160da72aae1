//! Many cases from a seed: [`run_many`] drives the strategy with a seeded
//! [`TestRunner`], counts what the passing cases did, and shrinks the first
//! failure (proptest-state-machine's shrinking, then [`minimize`]).

use std::cell::RefCell;
use std::ops::RangeInclusive;

use fastzap::Mmu;
use fastzap::checking::Mutant;
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

use super::driver::run_sequence;
use super::machine::{self, TRANSITIONS};
use super::minimize::{Shrunk, minimize};
use super::ops::{Case, describe};
use super::stats::CaseStats;

/// The result of [`run_many`].
#[derive(Debug, Clone, Default)]
pub struct ConformanceReport {
    /// Cases that passed before the first failure (all of them if none).
    pub cases: u32,
    /// Totals over those cases.
    pub stats: CaseStats,
    /// The first failure, shrunk, with its minimal sequence, if any.
    pub failure: Option<String>,
    /// The minimal failing case, if any.
    pub counterexample: Option<Case>,
    /// How the failure shrank, if any.
    pub shrunk: Option<Shrunk>,
}

/// Runs `cases` generated cases from `seed`, shrinking the first failure.
pub fn run_many(cases: u32, seed: u64) -> ConformanceReport {
    run_many_with(cases, seed, None)
}

/// [`run_many`] with every case's VM built with `mutant`.
pub fn run_many_with(cases: u32, seed: u64, mutant: Option<Mutant>) -> ConformanceReport {
    run_many_sized(cases, seed, mutant, TRANSITIONS)
}

/// [`run_many`] on `mmu` (`Config::mmu`): the same cases, against the same
/// reference, their deletions drawn from those `mmu` has.
pub fn run_many_on(mmu: Mmu, cases: u32, seed: u64) -> ConformanceReport {
    run_many_sized_on(mmu, cases, seed, None, TRANSITIONS)
}

/// [`run_many_with`] with `transitions` transitions per case.
pub fn run_many_sized(
    cases: u32,
    seed: u64,
    mutant: Option<Mutant>,
    transitions: RangeInclusive<usize>,
) -> ConformanceReport {
    run_many_sized_on(Mmu::Shadow, cases, seed, mutant, transitions)
}

/// [`run_many_sized`] on `mmu`.
pub fn run_many_sized_on(
    mmu: Mmu,
    cases: u32,
    seed: u64,
    mutant: Option<Mutant>,
    transitions: RangeInclusive<usize>,
) -> ConformanceReport {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let totals = RefCell::new(ConformanceReport::default());
    let shrunk = RefCell::new(None::<Shrunk>);
    let strategy = machine::sequential_on(mmu, transitions, mutant);
    let result = runner.run(&strategy, |(model, steps, seen)| {
        let len = steps.len();
        let result = run_sequence(model, steps, seen);
        let mut shrunk = shrunk.borrow_mut();
        if let Some(s) = shrunk.as_mut() {
            s.runs += 1;
            s.failing_runs += u64::from(result.is_err());
        }
        match result {
            Ok(stats) => {
                if shrunk.is_none() {
                    let mut t = totals.borrow_mut();
                    t.cases += 1;
                    t.stats += stats;
                }
                Ok(())
            }
            Err(why) => {
                shrunk.get_or_insert(Shrunk {
                    from: len,
                    by_proptest: len,
                    to: len,
                    failing_runs: 1,
                    runs: 1,
                });
                Err(TestCaseError::fail(why))
            }
        }
    });
    let mut report = totals.into_inner();
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (model, steps, _))) => {
            let mut shrunk = shrunk.into_inner().unwrap_or_default();
            shrunk.by_proptest = steps.len();
            let (case, why) = minimize(
                Case {
                    setup: model.setup,
                    steps,
                },
                why.to_string(),
                &mut shrunk,
            );
            shrunk.to = case.steps.len();
            report.failure = Some(format!(
                "{why}\nminimal failing case ({} transitions, shrunk from {} in {} runs; proptest's shrinking left {}):\n{}",
                shrunk.to,
                shrunk.from,
                shrunk.runs,
                shrunk.by_proptest,
                describe(&case)
            ));
            report.counterexample = Some(case);
            report.shrunk = Some(shrunk);
        }
        Err(TestError::Abort(why)) => report.failure = Some(format!("aborted: {why}")),
    }
    report
}

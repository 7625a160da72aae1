//! The scenarios under shuttle, wide (more actors and operations): random
//! scheduling plus PCT at depths 1, 2 and 3, at least 10^4 executions per
//! scenario by default (`FASTZAP_SHUTTLE_ITERS` sets the executions per
//! scheduler). A failure prints the schedule on one line and the command that
//! replays it with the `replay` test below.
#![cfg(feature = "shuttle")]

use std::panic::{AssertUnwindSafe, catch_unwind};

use fastzap::Mutant;
use fastzap_models::harness::{Params, small, take_last_failure};
use fastzap_models::scenarios::{self, Scenario};
use fastzap_models::shuttle_run::{explore, replay as replay_schedule};
use fastzap_models::tally::Tally;

/// The small EBR with one slot per actor and one to spare.
const WIDE: Params = Params::wide(small(5));

/// Every model this file runs, by the key the replay command names.
const MODELS: &[(&str, Scenario, Params)] = &[
    ("s1", scenarios::S1, WIDE),
    (
        "s1-ReloadOutsideLock",
        scenarios::S1,
        WIDE.with_mutant(Mutant::ReloadOutsideLock),
    ),
    ("s2", scenarios::S2, WIDE),
];

fn lookup(key: &str) -> (Scenario, Params) {
    MODELS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, s, p)| (*s, *p))
        .unwrap_or_else(|| panic!("no model named {key:?}"))
}

/// Executions per scheduler (random, PCT depth 1, 2, 3): 2,500 each by default,
/// so 10^4 per scenario.
fn iterations() -> usize {
    std::env::var("FASTZAP_SHUTTLE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_500)
}

/// Explores the model `key` and asserts that the tally saw every execution,
/// that the floor was reached, and that every coverage mark was hit.
fn run(key: &'static str) -> &'static Tally {
    let (scenario, params) = lookup(key);
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let iterations = iterations();
    let explored = explore(key, iterations, move || (scenario.run)(&params, tally));
    println!("shuttle {key}: {explored}");
    for (index, mark) in scenario.marks.iter().enumerate() {
        println!(
            "  mark {index} '{mark}': {} executions",
            tally.marked(index)
        );
    }
    assert_eq!(
        tally.executions(),
        explored.total(),
        "{key}: tally and runner disagree"
    );
    assert!(
        explored.total() >= 4 * iterations,
        "{key}: {} executions, expected {}",
        explored.total(),
        4 * iterations
    );
    for (index, mark) in scenario.marks.iter().enumerate() {
        assert!(
            tally.marked(index) > 0,
            "{key}: no execution reached '{mark}': the race is not modelled"
        );
    }
    tally
}

/// A mutant twin: a short exploration that must fail with `expected` (the
/// violated invariant's name) in the failing execution's report.
fn twin(key: &'static str, expected: &str) {
    let (scenario, params) = lookup(key);
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let _ = take_last_failure();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        explore(key, 1_000, move || (scenario.run)(&params, tally))
    }));
    assert!(
        outcome.is_err(),
        "{key}: the mutant was not caught in {} executions",
        tally.executions()
    );
    let report = take_last_failure().unwrap_or_default();
    println!("{key} caught after {} executions", tally.executions());
    assert!(
        report.contains(expected),
        "{key}: expected {expected:?}, the failing execution reported: {report}"
    );
}

#[test]
fn s1_fault_vs_invalidate_all() {
    run("s1");
}

#[test]
fn s1_mutant_reload_outside_lock() {
    twin("s1-ReloadOutsideLock", "I5 obsolete never reused");
}

#[test]
fn s2_translate_vs_reclaim() {
    run("s2");
}

/// Replays a failing schedule printed by a failed run:
/// `FASTZAP_REPLAY=<key> FASTZAP_SCHEDULE=<schedule> cargo shuttle --test
/// shuttle_scenarios -- replay --exact --nocapture --include-ignored`.
#[test]
#[ignore = "set FASTZAP_REPLAY and FASTZAP_SCHEDULE"]
fn replay() {
    let key = std::env::var("FASTZAP_REPLAY").expect("FASTZAP_REPLAY names the model");
    let schedule = std::env::var("FASTZAP_SCHEDULE").expect("FASTZAP_SCHEDULE holds the schedule");
    let (scenario, params) = lookup(&key);
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    replay_schedule(move || (scenario.run)(&params, tally), &schedule);
}

//! The litmus models under loom: each fence pair of the protocol by itself
//! (`fastzap_models::litmus`, `SPEC.md` "Litmus models"), with no preemption
//! bound, so that loom explores every interleaving and every weak-memory
//! outcome its model allows. The correct protocol must pass and explore more
//! than one execution, reaching every allowed outcome; each twin removes or
//! weakens one fence or ordering (a `Mutant::WEAK_MEMORY` mutant) and must
//! fail with the invariant the forbidden outcome breaks.
//!
//! Run: `cargo loom -- litmus_ --nocapture`.
#![cfg(loom)]

use fastzap::check::Invariant;
use fastzap::checking::Mutant;
use fastzap_models::litmus::{self, L1_MARKS, L2_MARKS, L2B_MARKS, L3_MARKS};
use fastzap_models::results::{self, Info};
use fastzap_models::tally::Tally;

/// The settings the results record: every litmus model is explored whole.
const SETTINGS: &str = "no preemption bound (exhaustive), max branches 100000";

type Model = fn(Option<Mutant>, &'static Tally);

fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    // Small models: explore them exhaustively.
    builder.preemption_bound = None;
    builder.max_branches = 100_000;
    // A model cut short by these limits reports success without having been
    // checked: never set them.
    builder.max_permutations = None;
    builder.max_duration = None;
    builder
}

/// Explores the correct protocol: asserts the execution floor (more than one
/// execution) and that every allowed outcome in `marks` was reached.
fn explore(name: &str, model: Model, marks: &[&str], floor: usize) {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let info = Info {
        key: name.to_string(),
        scenario: "litmus".to_string(),
        mutant: None,
        invariants: Vec::new(),
        expected: Vec::new(),
        floor: floor.max(2) as u64,
    };
    let seconds = results::record("loom", &info, tally, SETTINGS.to_string(), || {
        builder().check(move || model(None, tally))
    })
    .expect("a correct model's failure is re-raised");
    let executions = tally.executions();
    println!("loom litmus {name}: {executions} executions in {seconds:.2}s");
    for (index, mark) in marks.iter().enumerate() {
        println!("  mark {index} '{mark}': {}", tally.marked(index));
    }
    assert!(
        executions > 1 && executions >= floor,
        "{name}: only {executions} executions, floor {floor}"
    );
    for (index, mark) in marks.iter().enumerate() {
        assert!(
            tally.marked(index) > 0,
            "{name}: no execution reached '{mark}': the pair is not exercised"
        );
    }
}

/// Runs a twin; it must fail, and its report must name `invariant`. Where the
/// forbidden outcome is a read of memory the reader is not ordered with, loom
/// itself reports it first (a causality violation, before the read returns);
/// `race_is` says which invariant that read breaks in this model, and the
/// report is rendered with its name.
fn expect_failure(
    name: &str,
    model: Model,
    mutant: Mutant,
    invariant: Invariant,
    race_is: Option<Invariant>,
) -> String {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let mut expected = vec![invariant.name().to_string()];
    if race_is == Some(invariant) {
        expected.push("Causality violation".to_string());
    }
    let info = Info {
        key: format!("{name}-{mutant:?}"),
        scenario: "litmus".to_string(),
        mutant: Some(format!("{mutant:?}")),
        invariants: vec![invariant.name().to_string()],
        expected,
        floor: 0,
    };
    let outcome = results::record("loom", &info, tally, SETTINGS.to_string(), || {
        builder().check(move || model(Some(mutant), tally))
    });
    let Err(message) = outcome else {
        panic!(
            "{name} with {mutant:?}: the twin was not caught in {} executions",
            tally.executions()
        );
    };
    let report = match race_is {
        Some(race) if message.contains("Causality violation") => {
            format!("{}: {name}: loom: {message}", race.name())
        }
        _ => message,
    };
    println!(
        "loom litmus {name} with {mutant:?} caught after {} executions:\n  {report}",
        tally.executions()
    );
    assert!(
        report.starts_with(invariant.name()),
        "{name} with {mutant:?}: expected {}, got: {report}",
        invariant.name()
    );
    report
}

// ----- L1: the request and vcpu->mode (Dekker) ----------------------------------

#[test]
fn litmus_l1_request_vs_walk() {
    explore(
        "L1 request vs walk",
        litmus::l1_request_vs_walk,
        L1_MARKS,
        2,
    );
}

/// The class the bug hunt found escaping every lane.
#[test]
fn litmus_l1_mutant_request_without_fence() {
    expect_failure(
        "L1 request vs walk",
        litmus::l1_request_vs_walk,
        Mutant::RequestWithoutFence,
        Invariant::I3,
        None,
    );
}

#[test]
fn litmus_l1_mutant_request_fence_acq_rel() {
    expect_failure(
        "L1 request vs walk",
        litmus::l1_request_vs_walk,
        Mutant::RequestFenceAcqRel,
        Invariant::I3,
        None,
    );
}

#[test]
fn litmus_l1_mutant_walk_begin_without_fence() {
    expect_failure(
        "L1 request vs walk",
        litmus::l1_request_vs_walk,
        Mutant::WalkBeginWithoutFence,
        Invariant::I3,
        None,
    );
}

// ----- L2: root publication -----------------------------------------------------

#[test]
fn litmus_l2_root_publication() {
    explore(
        "L2 root publication",
        litmus::l2_root_publication,
        L2_MARKS,
        2,
    );
}

#[test]
fn litmus_l2_mutant_root_store_relaxed() {
    expect_failure(
        "L2 root publication",
        litmus::l2_root_publication,
        Mutant::RootStoreRelaxed,
        Invariant::I3,
        Some(Invariant::I3),
    );
}

#[test]
fn litmus_l2_mutant_root_load_relaxed() {
    expect_failure(
        "L2 root publication",
        litmus::l2_root_publication,
        Mutant::RootLoadRelaxed,
        Invariant::I3,
        Some(Invariant::I3),
    );
}

// ----- L2b: child page publication -----------------------------------------------

#[test]
fn litmus_l2b_child_publication() {
    explore(
        "L2b child publication",
        litmus::l2b_child_publication,
        L2B_MARKS,
        28,
    );
}

#[test]
fn litmus_l2b_mutant_walk_spte_load_relaxed() {
    expect_failure(
        "L2b child publication",
        litmus::l2b_child_publication,
        Mutant::WalkSpteLoadRelaxed,
        Invariant::I3,
        Some(Invariant::I3),
    );
}

// ----- L3: the memslots' in-flux flag, carried by the wrap's reload --------------

#[test]
fn litmus_l3_in_flux_vs_reload() {
    explore(
        "L3 in flux vs reload",
        litmus::l3_in_flux_vs_reload,
        L3_MARKS,
        2,
    );
}

#[test]
fn litmus_l3_mutant_request_bit_relaxed() {
    expect_failure(
        "L3 in flux vs reload",
        litmus::l3_in_flux_vs_reload,
        Mutant::RequestBitRelaxed,
        Invariant::I7,
        None,
    );
}

#[test]
fn litmus_l3_mutant_take_requests_relaxed() {
    expect_failure(
        "L3 in flux vs reload",
        litmus::l3_in_flux_vs_reload,
        Mutant::TakeRequestsRelaxed,
        Invariant::I7,
        None,
    );
}

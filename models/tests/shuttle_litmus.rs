//! The litmus models under shuttle, for what shuttle can say about them.
//! Shuttle is sequentially consistent: every load returns the latest store, so
//! the weak-memory outcomes the twins re-introduce cannot happen here. The
//! correct models must pass and reach every allowed outcome; each twin must
//! pass as well, which is recorded (not hidden): only loom
//! (`tests/loom_litmus.rs`) can catch them.
//!
//! Run: `cargo shuttle -- litmus_ --nocapture`.
#![cfg(shuttle)]

use fastzap::checking::Mutant;
use fastzap_models::litmus::{self, L1_MARKS, L2_MARKS, L2B_MARKS, L3_MARKS};
use fastzap_models::shuttle_run::explore;
use fastzap_models::tally::Tally;

type Model = fn(Option<Mutant>, &'static Tally);

/// Random plus PCT at depths 1 to 3, this many executions each.
const ITERATIONS: usize = 500;

fn run(name: &str, model: Model, mutant: Option<Mutant>, marks: &[&str]) {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let explored = explore(name, ITERATIONS, move || model(mutant, tally));
    println!("shuttle litmus {name} with {mutant:?}: {explored}");
    for (index, mark) in marks.iter().enumerate() {
        println!("  mark {index} '{mark}': {}", tally.marked(index));
    }
    assert_eq!(tally.executions(), 4 * ITERATIONS);
    for (index, mark) in marks.iter().enumerate() {
        assert!(
            tally.marked(index) > 0,
            "{name}: no execution reached '{mark}'"
        );
    }
}

#[test]
fn litmus_l1_request_vs_walk() {
    run("L1", litmus::l1_request_vs_walk, None, L1_MARKS);
}

#[test]
fn litmus_l2_root_publication() {
    run("L2", litmus::l2_root_publication, None, L2_MARKS);
}

#[test]
fn litmus_l2b_child_publication() {
    run("L2b", litmus::l2b_child_publication, None, L2B_MARKS);
}

#[test]
fn litmus_l3_in_flux_vs_reload() {
    run("L3", litmus::l3_in_flux_vs_reload, None, L3_MARKS);
}

/// Every weak-memory twin passes under shuttle (sequential consistency masks
/// it). Asserted, so that this stays known.
#[test]
fn litmus_weak_memory_twins_are_masked_under_shuttle() {
    for mutant in Mutant::WEAK_MEMORY {
        let model: Model = match mutant {
            Mutant::RequestWithoutFence
            | Mutant::RequestFenceAcqRel
            | Mutant::WalkBeginWithoutFence => litmus::l1_request_vs_walk,
            Mutant::RootStoreRelaxed | Mutant::RootLoadRelaxed => litmus::l2_root_publication,
            Mutant::WalkSpteLoadRelaxed => litmus::l2b_child_publication,
            Mutant::RequestBitRelaxed | Mutant::TakeRequestsRelaxed => litmus::l3_in_flux_vs_reload,
            other => panic!("{other:?} is not a litmus twin"),
        };
        run(&format!("{mutant:?}"), model, Some(mutant), &[]);
    }
}

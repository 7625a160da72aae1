//! Forced failures on the reclamation facade, in the style of srcu-cbmc's
//! injected bugs (Liang, McKenney et al.): small loom models that use only
//! the facade's public API (`Reclaimer::pin`, `Reclaimer::synchronize`) the
//! way the protocol does, `synchronize_srcu` then free, each with one
//! deliberate mistake in how it is used:
//!
//! - a read-side critical section split in two (the pointer is loaded in one
//!   section and dereferenced in the next);
//! - no grace period at all (the updater frees right after unpublishing);
//! - a reader that never pins.
//!
//! The updater unpublishes an object, waits for a grace period and "frees"
//! it by poisoning its body (the memory itself is released after the
//! execution, so the bug is observable and never undefined). Each forced
//! failure must be caught (the reader reads the poison: I3, or loom reports
//! the free racing the read), and the correct use passes the same model with
//! the same bounds.
#![cfg(loom)]

use fastzap::ReclaimBackend;
use fastzap::checking::poison::{LIVE, object, poison, read, release};
use fastzap::checking::sync::{Arc, AtomicUsize, Ordering, Reclaimer, spawn};
use fastzap_models::loom_run::{self, Info};
use fastzap_models::tally::Tally;

/// How the model uses the facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// One read-side section around the load and the read; the updater
    /// synchronizes before it frees.
    Correct,
    /// The reader loads in one section and reads in a second one.
    SectionSplit,
    /// The updater frees without waiting for a grace period.
    NoGracePeriod,
    /// The reader loads and reads without pinning.
    ReaderNeverPins,
}

impl Use {
    fn name(self) -> &'static str {
        match self {
            Use::Correct => "correct",
            Use::SectionSplit => "read_section_split",
            Use::NoGracePeriod => "no_grace_period",
            Use::ReaderNeverPins => "reader_never_pins",
        }
    }
}

fn model(how: Use, tally: &'static Tally) {
    tally.execution();
    let reclaim = Arc::new(Reclaimer::new(ReclaimBackend::small(3)).expect("small EBR"));
    let first = object();
    let second = object();
    let shared = Arc::new(AtomicUsize::new(first));
    let reader = {
        let (reclaim, shared) = (reclaim.clone(), shared.clone());
        spawn(move || {
            let value = match how {
                Use::Correct | Use::NoGracePeriod => {
                    let _guard = reclaim.pin();
                    let addr = shared.load(Ordering::Acquire);
                    // SAFETY: loaded while pinned; released after the execution.
                    unsafe { read(addr) }
                }
                Use::SectionSplit => {
                    let addr = {
                        let _guard = reclaim.pin();
                        shared.load(Ordering::Acquire)
                    };
                    let _guard = reclaim.pin();
                    // SAFETY: released after the execution (the bug is that
                    // this pin does not cover the load above).
                    unsafe { read(addr) }
                }
                Use::ReaderNeverPins => {
                    let addr = shared.load(Ordering::Acquire);
                    // SAFETY: released after the execution (the bug is the
                    // missing pin).
                    unsafe { read(addr) }
                }
            };
            assert_eq!(
                value, LIVE,
                "I3 page lifetime: the reader read an object freed inside its grace period"
            );
        })
    };
    let updater = {
        let (reclaim, shared) = (reclaim.clone(), shared.clone());
        spawn(move || {
            let old = shared.swap(second, Ordering::AcqRel);
            if how != Use::NoGracePeriod {
                reclaim.synchronize();
            }
            // SAFETY: unpublished above; released after the execution.
            unsafe { poison(old) };
        })
    };
    reader.join().expect("reader");
    updater.join().expect("updater");
    drop(reclaim);
    // SAFETY: both threads are gone: nobody holds either object.
    unsafe {
        release(first);
        release(second);
    }
}

fn info(how: Use) -> Info {
    Info {
        key: format!("reclaim-{}", how.name()),
        scenario: "reclaim".to_string(),
        mutant: (how != Use::Correct).then(|| how.name().to_string()),
        invariants: vec!["I3 page lifetime".to_string()],
        expected: vec![
            "I3 page lifetime".to_string(),
            "Causality violation".to_string(),
        ],
        // The correct use explores more than one execution (asserted below).
        floor: if how == Use::Correct { 2 } else { 0 },
    }
}

fn forced(how: Use) {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let outcome = loom_run::run(&info(how), tally, move || model(how, tally));
    let Err(message) = outcome else {
        panic!(
            "{}: not caught in {} executions",
            how.name(),
            tally.executions()
        );
    };
    println!(
        "{} caught after {} executions: {message}",
        how.name(),
        tally.executions()
    );
    assert!(
        message.contains("I3 page lifetime") || message.contains("Causality violation"),
        "{}: failed for another reason: {message}",
        how.name()
    );
}

/// The facade used correctly passes the model the forced failures fail.
#[test]
fn reclaim_used_correctly_passes() {
    let tally: &'static Tally = Box::leak(Box::new(Tally::new()));
    let seconds = loom_run::run(&info(Use::Correct), tally, move || {
        model(Use::Correct, tally)
    })
    .expect("a correct model's failure is re-raised");
    println!(
        "reclaim correct: {} executions in {seconds:.2}s",
        tally.executions()
    );
    assert!(tally.executions() > 1, "the model explored one execution");
}

#[test]
fn forced_read_section_split_in_two() {
    forced(Use::SectionSplit);
}

#[test]
fn forced_no_grace_period() {
    forced(Use::NoGracePeriod);
}

#[test]
fn forced_reader_never_pins() {
    forced(Use::ReaderNeverPins);
}

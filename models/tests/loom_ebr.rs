//! The facade's small EBR (`fastzap::checking::sync::ebr`) under loom: the reclamation the
//! shuttle lane and the three-actor loom models rely on is itself checked here.
//!
//! A reader pins, loads a shared pointer and reads the object's body; a writer
//! swaps in a new object, retires the old one through the EBR (the deferred
//! function poisons the body: the memory itself is released only after the
//! execution, so an injected bug is observable and never undefined), and
//! flushes. The grace period holds when the reader never reads a poisoned body
//! and loom sees no unordered access to it. Both EBR mutants must be caught, and
//! some executions must reclaim while the reader is still running (a model in
//! which nothing is freed early checks nothing).
//!
//! The grace period (`Ebr::synchronize`, which waits for readers and runs no
//! deferred function) has its own model: the writer unlinks, synchronizes and
//! poisons the old object itself. It must wait for a reader that pinned and
//! read the old object, and both mutants must be caught there too.
#![cfg(loom)]

use fastzap::checking::poison::{LIVE, object, poison, read, release};
use fastzap::checking::sync::ebr::{Ebr, EbrMutant};
use fastzap::checking::sync::{Arc, AtomicUsize, Ordering, spawn};
use fastzap_models::loom_run::{self, Info};
use fastzap_models::tally::{Flag, Tally};

/// One slot per thread.
const TWO_SLOTS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(2).unwrap();

/// Reader: pin, load, read. Writer: swap, retire, flush three times.
/// Mark 0: the old object was poisoned before the reader finished.
fn model(mutant: EbrMutant, tally: &'static Tally) {
    tally.execution();
    let ebr = Arc::new(Ebr::new(TWO_SLOTS, mutant));
    let first = object();
    let shared = Arc::new(AtomicUsize::new(first));
    let reader_done = Arc::new(Flag::default());
    let freed = Arc::new(Flag::default());
    let reader = {
        let (ebr, shared, done) = (ebr.clone(), shared.clone(), reader_done.clone());
        spawn(move || {
            let guard = ebr.pin();
            let addr = shared.load(Ordering::Acquire);
            // SAFETY: loaded while pinned; released only after the execution.
            let value = unsafe { read(addr) };
            assert_eq!(
                value, LIVE,
                "I3 page lifetime: the reader read a poisoned object, freed inside its grace period"
            );
            drop(guard);
            done.raise();
        })
    };
    let second = object();
    let writer = {
        let (ebr, shared, done, freed) = (
            ebr.clone(),
            shared.clone(),
            reader_done.clone(),
            freed.clone(),
        );
        spawn(move || {
            let old = shared.swap(second, Ordering::AcqRel);
            {
                let guard = ebr.pin();
                let freed = freed.clone();
                guard.defer(move || {
                    // SAFETY: unlinked above; released after the execution.
                    unsafe { poison(old) };
                    freed.raise();
                });
            }
            for _ in 0..3 {
                ebr.flush();
            }
            if freed.is_up() && !done.is_up() {
                tally.mark(0);
            }
        })
    };
    reader.join().expect("reader");
    writer.join().expect("writer");
    drop(ebr);
    assert!(freed.is_up(), "the retired object was never reclaimed");
    // SAFETY: both threads are gone and the EBR is dropped: nobody holds either.
    unsafe {
        release(first);
        release(second);
    }
}

/// Reader: pin, load, read. Writer: swap, `synchronize`, poison the old
/// object itself. Mark 0: the reader held the old object (synchronize had to
/// wait for it); mark 1: it held the new one.
fn sync_model(mutant: EbrMutant, tally: &'static Tally) {
    tally.execution();
    let ebr = Arc::new(Ebr::new(TWO_SLOTS, mutant));
    let first = object();
    let second = object();
    let shared = Arc::new(AtomicUsize::new(first));
    let reader = {
        let (ebr, shared) = (ebr.clone(), shared.clone());
        spawn(move || {
            let guard = ebr.pin();
            let addr = shared.load(Ordering::Acquire);
            // SAFETY: loaded while pinned; released only after the execution.
            let value = unsafe { read(addr) };
            assert_eq!(
                value, LIVE,
                "I3 page lifetime: the reader read a poisoned object: synchronize returned inside its grace period"
            );
            drop(guard);
            tally.mark(if addr == first { 0 } else { 1 });
        })
    };
    let writer = {
        let (ebr, shared) = (ebr.clone(), shared.clone());
        spawn(move || {
            let old = shared.swap(second, Ordering::AcqRel);
            ebr.synchronize();
            // SAFETY: unlinked, and a grace period has passed since; released
            // after the execution.
            unsafe { poison(old) };
            assert_eq!(ebr.pending(), 0, "synchronize queued garbage");
        })
    };
    reader.join().expect("reader");
    writer.join().expect("writer");
    drop(ebr);
    // SAFETY: both threads are gone and the EBR is dropped: nobody holds either.
    unsafe {
        release(first);
        release(second);
    }
}

/// The model's result key and what catches a mutant.
fn info(mutant: EbrMutant) -> Info {
    info_for("ebr", mutant)
}

/// [`info`] for the model named `scenario` (`ebr`, or `ebr-sync` for the
/// grace period's own model).
fn info_for(scenario: &str, mutant: EbrMutant) -> Info {
    Info {
        key: match mutant {
            EbrMutant::None => scenario.to_string(),
            m => format!("{scenario}-{m:?}"),
        },
        scenario: scenario.to_string(),
        mutant: (mutant != EbrMutant::None).then(|| format!("{mutant:?}")),
        invariants: vec!["I3 page lifetime".to_string()],
        expected: vec![
            "I3 page lifetime".to_string(),
            "Causality violation".to_string(),
        ],
        floor: 0,
    }
}

#[test]
fn ebr_grace_period_is_respected() {
    static TALLY: Tally = Tally::new();
    let info = Info {
        floor: 400,
        ..info(EbrMutant::None)
    };
    let seconds = loom_run::run(&info, &TALLY, || model(EbrMutant::None, &TALLY))
        .expect("a correct model's failure is re-raised");
    println!(
        "loom ebr: {} executions in {seconds:.2}s, {} reclaimed while the reader ran",
        TALLY.executions(),
        TALLY.marked(0)
    );
    assert!(
        loom_run::user_bounded() || TALLY.executions() >= 400,
        "the model shrank"
    );
    assert!(TALLY.marked(0) > 0, "nothing was ever reclaimed early");
}

fn expect_caught(mutant: EbrMutant, tally: &'static Tally) {
    expect_caught_in("ebr", mutant, tally, model);
}

fn expect_caught_in(
    scenario: &str,
    mutant: EbrMutant,
    tally: &'static Tally,
    model: fn(EbrMutant, &'static Tally),
) {
    let outcome = loom_run::run(&info_for(scenario, mutant), tally, move || {
        model(mutant, tally)
    });
    let Err(message) = outcome else {
        panic!(
            "{mutant:?} was not caught in {} executions",
            tally.executions()
        );
    };
    println!(
        "loom ebr {mutant:?} caught after {} executions: {message}",
        tally.executions()
    );
    assert!(
        message.contains("poisoned") || message.contains("Causality violation"),
        "{mutant:?} failed for another reason: {message}"
    );
}

#[test]
fn ebr_mutant_free_after_one_epoch_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught(EbrMutant::FreeAfterOneEpoch, &TALLY);
}

#[test]
fn ebr_mutant_no_fence_in_pin_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught(EbrMutant::NoFenceInPin, &TALLY);
}

#[test]
fn ebr_synchronize_waits_for_readers() {
    static TALLY: Tally = Tally::new();
    let info = Info {
        floor: 100,
        ..info_for("ebr-sync", EbrMutant::None)
    };
    let seconds = loom_run::run(&info, &TALLY, || sync_model(EbrMutant::None, &TALLY))
        .expect("a correct model's failure is re-raised");
    println!(
        "loom ebr synchronize: {} executions in {seconds:.2}s, reader held the old object in {}, the new in {}",
        TALLY.executions(),
        TALLY.marked(0),
        TALLY.marked(1)
    );
    assert!(
        loom_run::user_bounded() || TALLY.executions() >= 100,
        "the model shrank"
    );
    assert!(TALLY.marked(0) > 0, "the reader never held the old object");
    assert!(TALLY.marked(1) > 0, "the reader never held the new object");
}

#[test]
fn ebr_synchronize_mutant_free_after_one_epoch_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught_in("ebr-sync", EbrMutant::FreeAfterOneEpoch, &TALLY, sync_model);
}

#[test]
fn ebr_synchronize_mutant_no_fence_in_pin_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught_in("ebr-sync", EbrMutant::NoFenceInPin, &TALLY, sync_model);
}

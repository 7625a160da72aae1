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

use std::panic::{AssertUnwindSafe, catch_unwind};

use fastzap::checking::sync::ebr::{Ebr, EbrMutant};
use fastzap::checking::sync::{Arc, AtomicUsize, Ordering, UnsafeCell, spawn};
use fastzap_models::tally::{Flag, Tally};

const LIVE: u64 = 7;
const POISON: u64 = 0xdead;

struct Object {
    body: UnsafeCell<u64>,
}

fn object() -> usize {
    Box::into_raw(Box::new(Object {
        body: UnsafeCell::new(LIVE),
    })) as usize
}

/// # Safety
/// `addr` came from [`object`] and has not been released.
unsafe fn read(addr: usize) -> u64 {
    // SAFETY: the caller's contract; the memory is released only after the
    // execution, so only the poison (and loom's causality check) can tell.
    let object = unsafe { &*(addr as *const Object) };
    object.body.with(|body| {
        // SAFETY: the body is written only by `poison`; loom checks the order.
        unsafe { *body }
    })
}

/// # Safety
/// As for [`read`].
unsafe fn poison(addr: usize) {
    // SAFETY: as above.
    let object = unsafe { &*(addr as *const Object) };
    object.body.with_mut(|body| {
        // SAFETY: the retire path runs this once, after the grace period.
        unsafe { *body = POISON }
    });
}

/// # Safety
/// `addr` came from [`object`], is released once, and nobody uses it after.
unsafe fn release(addr: usize) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(addr as *mut Object) });
}

/// Reader: pin, load, read. Writer: swap, retire, flush three times.
/// Mark 0: the old object was poisoned before the reader finished.
fn model(mutant: EbrMutant, tally: &'static Tally) {
    tally.execution();
    let ebr = Arc::new(Ebr::new(2, mutant));
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
                "the reader read a poisoned object: freed inside its grace period"
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
    let ebr = Arc::new(Ebr::new(2, mutant));
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
                "the reader read a poisoned object: synchronize returned inside its grace period"
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

fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.max_permutations = None;
    builder.max_duration = None;
    builder
}

#[test]
fn ebr_grace_period_is_respected() {
    static TALLY: Tally = Tally::new();
    let started = std::time::Instant::now();
    builder().check(|| model(EbrMutant::None, &TALLY));
    println!(
        "loom ebr: {} executions in {:.2?}, {} reclaimed while the reader ran",
        TALLY.executions(),
        started.elapsed(),
        TALLY.marked(0)
    );
    // Measured: 421 executions (0.07 s), 113 of them reclaimed early.
    assert!(TALLY.executions() >= 400, "the model shrank");
    assert!(TALLY.marked(0) > 0, "nothing was ever reclaimed early");
}

#[test]
fn ebr_synchronize_waits_for_readers() {
    static TALLY: Tally = Tally::new();
    let started = std::time::Instant::now();
    builder().check(|| sync_model(EbrMutant::None, &TALLY));
    println!(
        "loom ebr synchronize: {} executions in {:.2?}, reader held the old object in {}, the new in {}",
        TALLY.executions(),
        started.elapsed(),
        TALLY.marked(0),
        TALLY.marked(1)
    );
    assert!(TALLY.executions() >= 100, "the model shrank");
    assert!(TALLY.marked(0) > 0, "the reader never held the old object");
    assert!(TALLY.marked(1) > 0, "the reader never held the new object");
}

fn expect_caught(mutant: EbrMutant, tally: &'static Tally) {
    expect_caught_in(mutant, tally, model);
}

fn expect_caught_in(
    mutant: EbrMutant,
    tally: &'static Tally,
    model: fn(EbrMutant, &'static Tally),
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        builder().check(move || model(mutant, tally))
    }));
    let Err(panic) = outcome else {
        panic!(
            "{mutant:?} was not caught in {} executions",
            tally.executions()
        );
    };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
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
fn ebr_synchronize_mutant_free_after_one_epoch_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught_in(EbrMutant::FreeAfterOneEpoch, &TALLY, sync_model);
}

#[test]
fn ebr_synchronize_mutant_no_fence_in_pin_is_caught() {
    static TALLY: Tally = Tally::new();
    expect_caught_in(EbrMutant::NoFenceInPin, &TALLY, sync_model);
}

#![cfg(loom)]
//! # The reclamation facade keeps SRCU's contract: LKMM litmus shapes under loom
//!
//! Each test ports the *shape* of a Linux-kernel memory model (LKMM) litmus test
//! about RCU or SRCU to the reclamation facade ([`Reclaimer`]), and runs it under
//! loom with the real crossbeam-epoch (`ReclaimBackend::Crossbeam`) and, where it
//! is cheap, with the facade's small EBR. The translation:
//!
//! | LKMM | facade |
//! |---|---|
//! | `srcu_read_lock(s)` / `srcu_read_unlock(s, idx)` | `let g = rec.pin()` / `drop(g)` |
//! | `synchronize_srcu(s)` | `rec.synchronize()` |
//! | `call_srcu(s, head, free)` | `rec.pin().defer(free)`, then `rec.flush()` |
//! | `READ_ONCE` / `WRITE_ONCE` | `load` / `store` with `Ordering::Relaxed` |
//! | `rcu_dereference` / `rcu_assign_pointer` | `load(Acquire)` / `store(Release)` |
//! | an object and its free | `fastzap::checking::poison`: a body in the facade's `UnsafeCell`; the free writes poison with `with_mut` |
//!
//! Every test states the LKMM verdict of its `exists` clause. A "Never" outcome
//! is asserted inside the model, so loom fails if any explored execution shows
//! it (a read of a freed body also fails as a loom "Causality violation"). A
//! "Sometimes" outcome is counted in std atomics outside the model and asserted
//! to have been witnessed after `check` returns; every test also asserts a floor
//! on its executions and that the interesting allowed outcomes were reached, so
//! that no test passes vacuously. The mutant tests prove the shapes can fail.
//!
//! Two tests go around the facade on purpose: under loom the facade registers a
//! fresh crossbeam participant per pin, while natively it pins through a cached
//! handle, so the `*_cached_handles` tests check that native pin path directly
//! against crossbeam-epoch.
//!
//! See `LITMUS.md` next to this file for the table, the mutant matrix, and the
//! cases that the facade cannot express.
//!
//! Run: `cargo loom --test loom_litmus` (preemption bounds set in code per
//! test). The `#[ignore]`d tests are slow or only print; no lane runs them.
//! With `FASTZAP_LITMUS_RESULTS=<absolute path>` every model that runs appends
//! one JSON line to that file ([`record`]): the test, the model, its bound,
//! executions, time, whether loom failed it, and how often each named outcome
//! was witnessed. `fastzap publish --litmus <file>` turns those lines into
//! `verification/results/litmus.json` and LITMUS.md's counts.

// The counters are ghost state: plain std atomics so that they add no
// scheduling points to the models they measure.
#![allow(clippy::disallowed_types)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool as GhostFlag, AtomicUsize as Counter, Ordering::Relaxed};
use std::time::Instant;

use fastzap::checking::poison::{POISON, object, poison, read, release};
use fastzap::checking::sync::ebr::EbrMutant;
use fastzap::checking::sync::{Arc, AtomicU64, AtomicUsize, Ordering, Reclaimer, spawn};

// ---------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------

const MARKS: usize = 8;
const GHOSTS: usize = 4;

/// Per-test counters (outside the model) and per-execution ghost flags (reset
/// at the start of every execution; loom runs executions one after another).
struct Tally {
    executions: Counter,
    marks: [Counter; MARKS],
    ghosts: [GhostFlag; GHOSTS],
}

impl Tally {
    fn leak() -> &'static Tally {
        Box::leak(Box::new(Tally {
            executions: Counter::new(0),
            marks: [const { Counter::new(0) }; MARKS],
            ghosts: [const { GhostFlag::new(false) }; GHOSTS],
        }))
    }

    fn begin(&self) {
        self.executions.fetch_add(1, Relaxed);
        for ghost in &self.ghosts {
            ghost.store(false, Relaxed);
        }
    }

    fn mark(&self, index: usize) {
        self.marks[index].fetch_add(1, Relaxed);
    }

    fn marked(&self, index: usize) -> usize {
        self.marks[index].load(Relaxed)
    }

    fn executions(&self) -> usize {
        self.executions.load(Relaxed)
    }

    fn raise(&self, ghost: usize) {
        self.ghosts[ghost].store(true, Relaxed);
    }

    fn is_up(&self, ghost: usize) -> bool {
        self.ghosts[ghost].load(Relaxed)
    }
}

/// A string as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What one model run measured, for [`record`].
struct Measured<'a> {
    model: &'a str,
    /// `explored`, `caught` or `matrix`.
    kind: &'a str,
    mutant: Option<String>,
    bound: usize,
    seconds: f64,
    caught: bool,
    marks: &'a [&'a str],
}

/// Appends `m` and `tally`'s counts as one JSON line to the file that
/// `FASTZAP_LITMUS_RESULTS` names (nothing when it is unset). The test's name
/// is its thread's, as the test harness names it.
fn record(m: &Measured<'_>, tally: &Tally) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("FASTZAP_LITMUS_RESULTS") else {
        return;
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or(m.model);
    let test = test.rsplit("::").next().unwrap_or(test);
    let outcomes: Vec<String> = m
        .marks
        .iter()
        .enumerate()
        .map(|(i, mark)| {
            format!(
                "{{\"outcome\":{},\"count\":{}}}",
                json_string(mark),
                tally.marked(i)
            )
        })
        .collect();
    let line = format!(
        "{{\"test\":{},\"model\":{},\"kind\":{},\"mutant\":{},\"bound\":{},\"executions\":{},\"seconds\":{:.6},\"caught\":{},\"outcomes\":[{}]}}\n",
        json_string(test),
        json_string(m.model),
        json_string(m.kind),
        m.mutant.as_deref().map_or("null".to_string(), json_string),
        m.bound,
        tally.executions(),
        m.seconds,
        m.caught,
        outcomes.join(",")
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap_or_else(|e| panic!("FASTZAP_LITMUS_RESULTS={}: {e}", path.display()));
}

/// Ghost flags.
const SYNC_BEGUN: usize = 0;
const SYNC_DONE: usize = 1;
const FREED: usize = 2;

fn builder(bound: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    // synchronize() spins (flush, yield) until its grace period ends.
    builder.max_branches = 100_000;
    // A model cut short by these limits reports success unchecked: never set.
    builder.max_permutations = None;
    builder.max_duration = None;
    builder
}

/// Explores `model` to completion and returns its tally, after checking the
/// execution floor and that every named mark (an allowed outcome, or the
/// witnessed "Sometimes") was reached at least once.
fn explore(
    name: &str,
    bound: usize,
    floor: usize,
    marks: &[&str],
    model: impl Fn(&'static Tally) + Send + Sync + 'static,
) -> &'static Tally {
    let tally = measure(name, bound, marks, model);
    let executions = tally.executions();
    assert!(
        executions >= floor,
        "{name}: {executions} executions, floor {floor}: the model shrank"
    );
    for (index, mark) in marks.iter().enumerate() {
        assert!(
            tally.marked(index) > 0,
            "{name}: '{mark}' was never witnessed: the test would pass vacuously"
        );
    }
    tally
}

/// Explores `model` to completion, prints and [`record`]s its counts, and
/// returns its tally (no assertion).
fn measure(
    name: &str,
    bound: usize,
    marks: &[&str],
    model: impl Fn(&'static Tally) + Send + Sync + 'static,
) -> &'static Tally {
    let tally = Tally::leak();
    let started = Instant::now();
    builder(bound).check(move || model(tally));
    let elapsed = started.elapsed();
    println!(
        "litmus {name}: {} executions in {elapsed:.2?} (preemption bound {bound})",
        tally.executions()
    );
    for (index, mark) in marks.iter().enumerate() {
        println!("  [{index}] {mark}: {}", tally.marked(index));
    }
    let m = Measured {
        model: name,
        kind: "explored",
        mutant: None,
        bound,
        seconds: elapsed.as_secs_f64(),
        caught: false,
        marks,
    };
    record(&m, tally);
    tally
}

/// Runs `model` under loom, expecting loom to report a failure; returns the
/// message after checking that it names a poisoned read or a loom race report.
fn expect_caught(
    name: &str,
    bound: usize,
    model: impl Fn(&'static Tally) + Send + Sync + 'static,
) -> String {
    let tally = Tally::leak();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        builder(bound).check(move || model(tally))
    }));
    let Err(panic) = outcome else {
        panic!(
            "{name}: the mutant was NOT caught in {} executions",
            tally.executions()
        );
    };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let elapsed = started.elapsed();
    println!(
        "litmus {name}: caught after {} executions in {elapsed:.2?}: {message}",
        tally.executions()
    );
    let m = Measured {
        model: name,
        kind: "caught",
        mutant: None,
        bound,
        seconds: elapsed.as_secs_f64(),
        caught: true,
        marks: &[],
    };
    record(&m, tally);
    assert!(
        message.contains("Never") || message.contains("Causality violation"),
        "{name}: failed for another reason: {message}"
    );
    message
}

// ---------------------------------------------------------------------------
// Observable objects
// ---------------------------------------------------------------------------
//
// An object, its read and its free (poison) are `fastzap::checking::poison`'s,
// shared with the models' reclamation tests: the memory is released only
// after the execution, so a broken grace period shows up as a poisoned read
// or a loom causality violation, never as UB.

/// A backend of `fastzap::ReclaimBackend`, or the small EBR with one of its
/// deliberate bugs (which only the hidden `Reclaimer::small_mutant` builds).
#[derive(Clone, Copy)]
enum Backend {
    Crossbeam,
    Small(usize),
    SmallMutant(usize, EbrMutant),
}

impl Backend {
    const fn small(slots: usize) -> Backend {
        Backend::Small(slots)
    }

    const fn small_mutant(slots: usize, mutant: EbrMutant) -> Backend {
        Backend::SmallMutant(slots, mutant)
    }
}

fn reclaimer(backend: Backend) -> Arc<Reclaimer> {
    let reclaimer = match backend {
        Backend::Crossbeam => Reclaimer::new(fastzap::ReclaimBackend::Crossbeam),
        Backend::Small(slots) => Reclaimer::new(fastzap::ReclaimBackend::small(slots)),
        Backend::SmallMutant(slots, mutant) => Reclaimer::small_mutant(slots, mutant),
    };
    Arc::new(reclaimer.expect("backend available in the loom lane"))
}

const CROSSBEAM: Backend = Backend::Crossbeam;

// ---------------------------------------------------------------------------
// RCU+sync+free (Documentation/litmus-tests/rcu/RCU+sync+free.litmus)
// ---------------------------------------------------------------------------
//
//   { int x = 1; int *y = &x; int z = 1; }
//   P0: rcu_read_lock(); r0 = rcu_dereference(*y); r1 = READ_ONCE(*r0);
//       rcu_read_unlock();
//   P1: rcu_assign_pointer(*y, z); synchronize_rcu(); WRITE_ONCE(*x, 0);
//   exists (0:r0=x /\ 0:r1=0)        Result: Never
//
// Here x and z are objects with a cell body, WRITE_ONCE(*x, 0) is the free's
// poison (with_mut), and READ_ONCE(*r0) is a `with` read, so a reader that is
// not ordered before the free is also a loom causality violation.

const FREE_MARKS: &[&str] = &[
    "Sometimes: r0=x, r1=1 (old object, intact)",
    "Sometimes: r0=z (new object)",
    "Sometimes: r0=x read while synchronize was running (the grace period waited)",
];

fn rcu_sync_free(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    // P1, the updater, on a spawned thread.
    let p1 = {
        let (rec, y) = (rec.clone(), y.clone());
        spawn(move || {
            y.store(z, Ordering::Release);
            tally.raise(SYNC_BEGUN);
            rec.synchronize();
            tally.raise(SYNC_DONE);
            // SAFETY: released only after the execution.
            unsafe { poison(x) };
        })
    };
    // P0, the reader, on the main thread: it runs first without a preemption.
    let guard = rec.pin();
    let r0 = y.load(Ordering::Acquire);
    // SAFETY: released only after the execution.
    let r1 = unsafe { read(r0) };
    let during = tally.is_up(SYNC_BEGUN) && !tally.is_up(SYNC_DONE);
    drop(guard);
    assert!(
        !(r0 == x && r1 == POISON),
        "Never (RCU+sync+free): the reader read the old object after its free"
    );
    p1.join().expect("P1");
    if r0 == x {
        tally.mark(0);
        if during {
            tally.mark(2);
        }
    } else {
        tally.mark(1);
    }
    drop(rec);
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

#[test]
fn rcu_sync_free_crossbeam() {
    explore("RCU+sync+free, crossbeam", 2, 30_000, FREE_MARKS, |t| {
        rcu_sync_free(CROSSBEAM, t)
    });
}

#[test]
fn rcu_sync_free_small_ebr() {
    explore("RCU+sync+free, small EBR", 3, 40, FREE_MARKS, |t| {
        rcu_sync_free(Backend::small(2), t)
    });
}

#[test]
fn rcu_sync_free_mutant_free_after_one_epoch_is_caught() {
    expect_caught("RCU+sync+free, EBR FreeAfterOneEpoch", 3, |t| {
        rcu_sync_free(Backend::small_mutant(2, EbrMutant::FreeAfterOneEpoch), t)
    });
}

#[test]
fn rcu_sync_free_mutant_no_fence_in_pin_is_caught() {
    expect_caught("RCU+sync+free, EBR NoFenceInPin", 3, |t| {
        rcu_sync_free(Backend::small_mutant(2, EbrMutant::NoFenceInPin), t)
    });
}

// ---------------------------------------------------------------------------
// RCU+sync+free with call_srcu in place of synchronize_srcu
// ---------------------------------------------------------------------------
//
// The same shape, but P1 unlinks and hands the free to `call_srcu` (here
// `Guard::defer`), then pushes reclamation with two `flush()` calls (a model
// without flushes frees only when the reclaimer drops, and checks nothing).
//   P1: old = xchg(y, z); call_srcu(free old); flush(); flush();
//   exists (0:r0=x /\ 0:r1=0)        Never
// Sometimes witnessed: the free ran while P0 was still in its read section
// (the reader had loaded z): reclamation is early, yet never too early.

const CALL_MARKS: &[&str] = &[
    "Sometimes: r0=x, r1=1 (old object, intact)",
    "Sometimes: r0=z (new object)",
    "Sometimes: old object freed while the reader was still pinned",
    "Sometimes: old object freed before the reclaimer was dropped",
];

fn call_srcu_free(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    // P1, the updater, on a spawned thread.
    let p1 = {
        let (rec, y) = (rec.clone(), y.clone());
        spawn(move || {
            let old = y.swap(z, Ordering::AcqRel);
            {
                let guard = rec.pin();
                guard.defer(move || {
                    // SAFETY: unlinked above; released only after the execution.
                    unsafe { poison(old) };
                    tally.raise(FREED);
                });
            }
            rec.flush();
            rec.flush();
            tally.is_up(FREED)
        })
    };
    // P0, the reader, on the main thread.
    let guard = rec.pin();
    let r0 = y.load(Ordering::Acquire);
    // SAFETY: released only after the execution.
    let r1 = unsafe { read(r0) };
    let freed_inside = tally.is_up(FREED);
    drop(guard);
    assert!(
        !(r0 == x && r1 == POISON),
        "Never (RCU+sync+free via call_srcu): the reader read the old object after its free"
    );
    let freed_early = p1.join().expect("P1");
    if r0 == x {
        tally.mark(0);
    } else {
        tally.mark(1);
    }
    if freed_inside {
        tally.mark(2);
    }
    if freed_early {
        tally.mark(3);
    }
    drop(rec);
    assert!(tally.is_up(FREED), "the deferred free never ran");
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

#[test]
fn call_srcu_free_crossbeam() {
    explore(
        "RCU+sync+free via call_srcu, crossbeam",
        2,
        100_000,
        CALL_MARKS,
        |t| call_srcu_free(CROSSBEAM, t),
    );
}

#[test]
fn call_srcu_free_small_ebr() {
    explore(
        "RCU+sync+free via call_srcu, small EBR",
        3,
        45,
        CALL_MARKS,
        |t| call_srcu_free(Backend::small(2), t),
    );
}

#[test]
fn call_srcu_free_mutant_free_after_one_epoch_is_caught() {
    expect_caught("call_srcu free, EBR FreeAfterOneEpoch", 3, |t| {
        call_srcu_free(Backend::small_mutant(2, EbrMutant::FreeAfterOneEpoch), t)
    });
}

#[test]
fn call_srcu_free_mutant_no_fence_in_pin_is_caught() {
    expect_caught("call_srcu free, EBR NoFenceInPin", 3, |t| {
        call_srcu_free(Backend::small_mutant(2, EbrMutant::NoFenceInPin), t)
    });
}

// ---------------------------------------------------------------------------
// RCU+sync+read (Documentation/litmus-tests/rcu/RCU+sync+read.litmus)
// ---------------------------------------------------------------------------
//
//   { int x = 0; int y = 0; }
//   P0: rcu_read_lock(); WRITE_ONCE(*x, 1); WRITE_ONCE(*y, 1); rcu_read_unlock();
//   P1: r0 = READ_ONCE(*x); synchronize_rcu(); r1 = READ_ONCE(*y);
//   exists (1:r0=1 /\ 1:r1=0)        Result: Never
//
// After a grace period the updater sees every store of a read section that it
// had seen a part of before the grace period.

const READ_MARKS: &[&str] = &[
    "Sometimes: r0=0, r1=0",
    "Sometimes: r0=0, r1=1",
    "Sometimes: r0=1, r1=1",
];

fn rcu_sync_read(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    // P1 (the updater) spawned, P0 (the reader section) on the main thread.
    let p1 = {
        let (rec, x, y) = (rec.clone(), x.clone(), y.clone());
        spawn(move || {
            let r0 = x.load(Ordering::Relaxed);
            rec.synchronize();
            let r1 = y.load(Ordering::Relaxed);
            (r0, r1)
        })
    };
    let guard = rec.pin();
    x.store(1, Ordering::Relaxed);
    y.store(1, Ordering::Relaxed);
    drop(guard);
    let (r0, r1) = p1.join().expect("P1");
    assert!(
        !(r0 == 1 && r1 == 0),
        "Never (RCU+sync+read): the updater saw x=1 before the grace period but y=0 after"
    );
    match (r0, r1) {
        (0, 0) => tally.mark(0),
        (0, 1) => tally.mark(1),
        _ => tally.mark(2),
    }
}

#[test]
fn rcu_sync_read_crossbeam() {
    explore("RCU+sync+read, crossbeam", 2, 40_000, READ_MARKS, |t| {
        rcu_sync_read(CROSSBEAM, t)
    });
}

#[test]
fn rcu_sync_read_small_ebr() {
    explore("RCU+sync+read, small EBR", 3, 50, READ_MARKS, |t| {
        rcu_sync_read(Backend::small(2), t)
    });
}

// ---------------------------------------------------------------------------
// C-srcu-nest-1 (paulmckrcu/litmus manual/kernel): two sections in a row
// ---------------------------------------------------------------------------
//
//   P0: i = srcu_read_lock(s); r1 = READ_ONCE(*x); srcu_read_unlock(s, i);
//       i = srcu_read_lock(s); r2 = READ_ONCE(*y); srcu_read_unlock(s, i);
//   P1: WRITE_ONCE(*y, 1); synchronize_srcu(s); WRITE_ONCE(*x, 1);
//   exists (0:r1=1 /\ 0:r2=0)        Result: Never
//
// This is the "message passing through a grace period" reading of
// RCU+sync+free: a reader that saw the updater's second write (after the grace
// period) must see its first (before it), here even across two sections.

const NEST1_MARKS: &[&str] = &[
    "Sometimes: r1=0, r2=0",
    "Sometimes: r1=0, r2=1",
    "Sometimes: r1=1, r2=1",
];

/// `updater_on_main` picks which actor runs on loom's main thread: under a
/// preemption bound the layout decides which outcomes are reachable cheaply
/// (crossbeam's synchronize finishes without a yield when no reader is pinned,
/// so the "r1=1" outcomes need the updater to run first).
fn srcu_nest_1(backend: Backend, updater_on_main: bool, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let updater = {
        let (rec, x, y) = (rec.clone(), x.clone(), y.clone());
        move || {
            y.store(1, Ordering::Relaxed);
            rec.synchronize();
            x.store(1, Ordering::Relaxed);
        }
    };
    let reader = {
        let (rec, x, y) = (rec.clone(), x.clone(), y.clone());
        move || {
            let guard = rec.pin();
            let r1 = x.load(Ordering::Relaxed);
            drop(guard);
            let guard = rec.pin();
            let r2 = y.load(Ordering::Relaxed);
            drop(guard);
            (r1, r2)
        }
    };
    let (r1, r2) = if updater_on_main {
        let p0 = spawn(reader);
        updater();
        p0.join().expect("P0")
    } else {
        let p1 = spawn(updater);
        let result = reader();
        p1.join().expect("P1");
        result
    };
    assert!(
        !(r1 == 1 && r2 == 0),
        "Never (C-srcu-nest-1): the reader saw the post-grace-period write but not the pre one"
    );
    match (r1, r2) {
        (0, 0) => tally.mark(0),
        (0, 1) => tally.mark(1),
        _ => tally.mark(2),
    }
}

#[test]
fn srcu_nest_1_crossbeam() {
    explore("C-srcu-nest-1, crossbeam", 1, 30_000, NEST1_MARKS, |t| {
        srcu_nest_1(CROSSBEAM, true, t)
    });
}

#[test]
fn srcu_nest_1_small_ebr() {
    explore("C-srcu-nest-1, small EBR", 4, 540, NEST1_MARKS, |t| {
        srcu_nest_1(Backend::small(2), false, t)
    });
}

// ---------------------------------------------------------------------------
// Nesting: C-srcu-nest-2 (properly nested sections) with objects
// ---------------------------------------------------------------------------
//
//   C-srcu-nest-2: P0: a = lock; r1 = READ_ONCE(*x); b = lock; r2 = READ_ONCE(*y);
//                      unlock(b); unlock(a);
//                  P1: WRITE_ONCE(*y, 1); synchronize_srcu(s); WRITE_ONCE(*x, 1);
//                  exists (0:r1=1 /\ 0:r2=0)        Never (the outer section spans both)
//
// Ported with objects, so that what matters is the facade's nesting: the object
// is loaded in the outer section, read inside the inner one, and read again
// after the inner guard is dropped. Dropping the inner guard must not end the
// outer section.
//   P0: a = pin; r0 = rcu_dereference(*y); b = pin; r1 = *r0; drop(b); r2 = *r0; drop(a)
//   P1: rcu_assign_pointer(*y, z); synchronize; free(x)
//   exists (0:r0=x /\ (0:r1=0 \/ 0:r2=0))        Never

const NEST_MARKS: &[&str] = &[
    "Sometimes: r0=x, intact",
    "Sometimes: r0=z",
    "Sometimes: r0=x re-read after the inner drop while synchronize was running",
];

fn srcu_nested(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    let p1 = updater_sync_free(&rec, &y, x, z, tally);
    let outer = rec.pin();
    let r0 = y.load(Ordering::Acquire);
    let inner = rec.pin();
    // SAFETY: released only after the execution.
    let r1 = unsafe { read(r0) };
    drop(inner);
    // SAFETY: as above.
    let r2 = unsafe { read(r0) };
    let during = tally.is_up(SYNC_BEGUN) && !tally.is_up(SYNC_DONE);
    drop(outer);
    assert!(
        !(r0 == x && (r1 == POISON || r2 == POISON)),
        "Never (nested sections): the old object was freed inside the outer section"
    );
    p1.join().expect("P1");
    if r0 == x {
        tally.mark(0);
        if during {
            tally.mark(2);
        }
    } else {
        tally.mark(1);
    }
    drop(rec);
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

/// P1 of the object shapes, spawned: `rcu_assign_pointer(*y, z);
/// synchronize_srcu(); free(x)`, with ghost flags around the grace period.
fn updater_sync_free(
    rec: &Arc<Reclaimer>,
    y: &Arc<AtomicUsize>,
    x: usize,
    z: usize,
    tally: &'static Tally,
) -> fastzap::checking::sync::JoinHandle<()> {
    let (rec, y) = (rec.clone(), y.clone());
    spawn(move || {
        y.store(z, Ordering::Release);
        tally.raise(SYNC_BEGUN);
        rec.synchronize();
        tally.raise(SYNC_DONE);
        // SAFETY: released only after the execution.
        unsafe { poison(x) };
    })
}

#[test]
fn srcu_nested_crossbeam() {
    explore(
        "SRCU nested (C-srcu-nest-2 shape), crossbeam",
        1,
        6_000,
        NEST_MARKS,
        |t| srcu_nested(CROSSBEAM, t),
    );
}

#[test]
fn srcu_nested_small_ebr() {
    explore(
        "SRCU nested (C-srcu-nest-2 shape), small EBR",
        3,
        520,
        NEST_MARKS,
        |t| srcu_nested(Backend::small(3), t),
    );
}

// ---------------------------------------------------------------------------
// Overlap in one thread: C-srcu-nest-5 (Sometimes) and its protected twin
// ---------------------------------------------------------------------------
//
// SRCU sections, unlike RCU's, need not nest: `a = lock; b = lock; unlock(a);
// unlock(b)` is legal, and so is dropping guards out of order.
//
//   C-srcu-nest-5:
//   P0: a = lock; r2 = READ_ONCE(*y); b = lock; unlock(a); r1 = READ_ONCE(*x); unlock(b);
//   P1: WRITE_ONCE(*y, 1); synchronize_srcu(s); WRITE_ONCE(*x, 1);
//   exists (0:r1=1 /\ 0:r2=0)        Result: Sometimes
//
// Neither section holds both reads, so the grace period need not order them:
// section b may begin after the grace period began and is not waited for. The
// small EBR behaves the same (it waits only for guards pinned before the
// epoch moved), and there the outcome must be witnessed. crossbeam is stronger
// in both lanes, for different reasons (allowed: Sometimes is not a duty);
// see `srcu_nest_5_handoff_crossbeam_is_masked_under_loom` and
// `srcu_nest_5_crossbeam_cached_handles_is_masked`. Ported with atomics, as in
// the litmus test: with a cell body the same outcome is a use-after-free,
// reported by loom as a causality violation
// (`srcu_handoff_object_is_a_use_after_free_small_ebr`).

const NEST5_MARKS: &[&str] = &[
    "Sometimes (the exists clause): r1=1, r2=0",
    "Sometimes: r1=0, r2=0",
    "Sometimes: r1=1, r2=1",
];

fn srcu_nest_5(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let p1 = {
        let (rec, x, y) = (rec.clone(), x.clone(), y.clone());
        spawn(move || {
            y.store(1, Ordering::Relaxed);
            rec.synchronize();
            x.store(1, Ordering::Relaxed);
        })
    };
    let a = rec.pin();
    let r2 = y.load(Ordering::Relaxed);
    let b = rec.pin();
    drop(a);
    let r1 = x.load(Ordering::Relaxed);
    drop(b);
    p1.join().expect("P1");
    match (r1, r2) {
        (1, 0) => tally.mark(0),
        (0, 0) => tally.mark(1),
        (1, 1) => tally.mark(2),
        _ => {}
    }
}

/// A finding, not the LKMM verdict: under loom the crossbeam backend does not
/// show C-srcu-nest-5's Sometimes outcome. The facade's loom `pin` registers a
/// fresh crossbeam participant per pin, and crossbeam collects (so tries to
/// advance the epoch) on a participant's first pin: synchronize's own pin
/// advances the epoch before its deferred flag is sealed into a bag, so the
/// grace period also waits for guards pinned after that advance, such as `b`.
/// Natively the handle is cached and the flag is sealed before the advance, as
/// in the small EBR, which does show the outcome (`srcu_nest_5_handoff_small_ebr`).
/// Too slow for the default run, and no lane runs it: `-- --ignored` re-checks
/// the finding by hand.
#[test]
#[ignore = "slow on real crossbeam-epoch at preemption bound 2; documents a masked Sometimes"]
fn srcu_nest_5_handoff_crossbeam_is_masked_under_loom() {
    let tally = Tally::leak();
    let started = Instant::now();
    builder(2).check(move || srcu_nest_5(CROSSBEAM, tally));
    println!(
        "litmus C-srcu-nest-5, crossbeam (masked): {} executions in {:.2?} (preemption bound 2)",
        tally.executions(),
        started.elapsed()
    );
    for (index, mark) in NEST5_MARKS.iter().enumerate() {
        println!("  [{index}] {mark}: {}", tally.marked(index));
    }
    assert!(tally.executions() >= 100_000, "the model shrank");
    assert!(tally.marked(1) > 0 && tally.marked(2) > 0);
    assert_eq!(
        tally.marked(0),
        0,
        "C-srcu-nest-5's outcome is now visible with crossbeam under loom: \
         update LITMUS.md and make this a Sometimes test"
    );
}

#[test]
fn srcu_nest_5_handoff_small_ebr() {
    explore(
        "C-srcu-nest-5 (Sometimes), small EBR",
        3,
        720,
        NEST5_MARKS,
        |t| srcu_nest_5(Backend::small(3), t),
    );
}

/// C-srcu-nest-5 with an object: load under `a`, read under `b` after `a` is
/// dropped. The Sometimes outcome of the litmus test is here a read of a freed
/// object, which loom must report: the facade does not extend protection to an
/// object loaded in a section that has ended, even if another guard is held.
fn srcu_handoff_object(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    let p1 = updater_sync_free(&rec, &y, x, z, tally);
    let a = rec.pin();
    let r0 = y.load(Ordering::Acquire);
    let b = rec.pin();
    drop(a);
    // SAFETY: released only after the execution.
    let r1 = unsafe { read(r0) };
    drop(b);
    assert!(
        !(r0 == x && r1 == POISON),
        "Never would be wrong here (C-srcu-nest-5 is Sometimes): freed object read"
    );
    p1.join().expect("P1");
    drop(rec);
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

#[test]
fn srcu_handoff_object_is_a_use_after_free_small_ebr() {
    expect_caught("C-srcu-nest-5 with an object, small EBR", 3, |t| {
        srcu_handoff_object(Backend::small(3), t)
    });
}

/// The protected twin of C-srcu-nest-5: both guards taken, the first dropped,
/// and only then the object loaded and read under the second. Never: the second
/// section alone spans the load and the read.
///   P0: a = pin; b = pin; drop(a); r0 = rcu_dereference(*y); r1 = *r0; drop(b)
///   exists (0:r0=x /\ 0:r1=0)        Never
fn srcu_overlap_protected(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    let p1 = updater_sync_free(&rec, &y, x, z, tally);
    let a = rec.pin();
    let b = rec.pin();
    drop(a);
    let r0 = y.load(Ordering::Acquire);
    // SAFETY: released only after the execution.
    let r1 = unsafe { read(r0) };
    let during = tally.is_up(SYNC_BEGUN) && !tally.is_up(SYNC_DONE);
    drop(b);
    assert!(
        !(r0 == x && r1 == POISON),
        "Never (overlap): dropping the first guard ended the second's protection"
    );
    p1.join().expect("P1");
    if r0 == x {
        tally.mark(0);
        if during {
            tally.mark(2);
        }
    } else {
        tally.mark(1);
    }
    drop(rec);
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

#[test]
fn srcu_overlap_protected_crossbeam() {
    explore(
        "SRCU overlap, protected twin, crossbeam",
        1,
        6_500,
        FREE_MARKS,
        |t| srcu_overlap_protected(CROSSBEAM, t),
    );
}

#[test]
fn srcu_overlap_protected_small_ebr() {
    explore(
        "SRCU overlap, protected twin, small EBR",
        3,
        420,
        FREE_MARKS,
        |t| srcu_overlap_protected(Backend::small(3), t),
    );
}

// ---------------------------------------------------------------------------
// Store buffering with a grace period
// ---------------------------------------------------------------------------
//
// tools/memory-model/litmus-tests/SB+poonceonces.litmus is Sometimes, and
// SB+fencembonceonces.litmus (smp_mb() on both sides) is Never. With a read
// section on one side and a grace period on the other (the "RW-C + RW-G" shape
// of the RCU requirements), one grace period is enough:
//   P0: rcu_read_lock(); WRITE_ONCE(*x, 1); r0 = READ_ONCE(*y); rcu_read_unlock();
//   P1: WRITE_ONCE(*y, 1); synchronize_rcu(); r1 = READ_ONCE(*x);
//   exists (0:r0=0 /\ 1:r1=0)        Never
// Control (SB+poonceonces with P0 in a read section and no grace period):
//   P1: WRITE_ONCE(*y, 1); r1 = READ_ONCE(*x);
//   exists (0:r0=0 /\ 1:r1=0)        Sometimes, must be witnessed (so loom does
//   explore store buffering here, and the Never above is not vacuous).

const SB_MARKS: &[&str] = &[
    "Sometimes: r0=0, r1=1",
    "Sometimes: r0=1, r1=0",
    "Sometimes: r0=1, r1=1",
];

fn sb_grace_period(backend: Backend, grace_period: bool, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let p1 = {
        let (rec, x, y) = (rec.clone(), x.clone(), y.clone());
        spawn(move || {
            y.store(1, Ordering::Relaxed);
            if grace_period {
                rec.synchronize();
            }
            x.load(Ordering::Relaxed)
        })
    };
    let guard = rec.pin();
    x.store(1, Ordering::Relaxed);
    let r0 = y.load(Ordering::Relaxed);
    drop(guard);
    let r1 = p1.join().expect("P1");
    if grace_period {
        assert!(
            !(r0 == 0 && r1 == 0),
            "Never (SB with a grace period): both threads read 0"
        );
    }
    match (r0, r1) {
        (0, 1) => tally.mark(0),
        (1, 0) => tally.mark(1),
        (1, 1) => tally.mark(2),
        _ => tally.mark(3),
    }
}

#[test]
fn sb_grace_period_crossbeam() {
    explore("SB + grace period, crossbeam", 2, 30_000, SB_MARKS, |t| {
        sb_grace_period(CROSSBEAM, true, t)
    });
}

#[test]
fn sb_grace_period_small_ebr() {
    explore("SB + grace period, small EBR", 3, 45, SB_MARKS, |t| {
        sb_grace_period(Backend::small(2), true, t)
    });
}

#[test]
fn sb_without_grace_period_is_sometimes() {
    let marks = [SB_MARKS, &["Sometimes (the exists clause): r0=0, r1=0"]].concat();
    explore(
        "SB, no grace period (control), crossbeam",
        2,
        20,
        &marks,
        |t| sb_grace_period(CROSSBEAM, false, t),
    );
}

#[test]
fn sb_grace_period_mutant_no_fence_in_pin_is_caught() {
    expect_caught("SB + grace period, EBR NoFenceInPin", 3, |t| {
        sb_grace_period(Backend::small_mutant(2, EbrMutant::NoFenceInPin), true, t)
    });
}

// ---------------------------------------------------------------------------
// Two overlapping readers against one synchronize
// ---------------------------------------------------------------------------
//
// RCU+sync+free with two readers whose sections overlap each other and the
// grace period:
//   P0, P1: lock; r0 = rcu_dereference(*y); r1 = READ_ONCE(*r0); unlock
//   P2:     rcu_assign_pointer(*y, z); synchronize; WRITE_ONCE(*x, 0)
//   exists ((0:r0=x /\ 0:r1=0) \/ (1:r0=x /\ 1:r1=0))        Never
// Sometimes witnessed: both readers held the old object at once while
// synchronize was running (the grace period waited for two overlapping readers).
// Three threads: the small EBR at bound 2, crossbeam at bound 1.

const TWO_READER_MARKS: &[&str] = &[
    "Sometimes: a reader read the old object intact",
    "Sometimes: a reader read the new object",
    "Sometimes: both readers held the old object when synchronize began",
];

fn two_readers(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let (x, z) = (object(), object());
    let y = Arc::new(AtomicUsize::new(x));
    // Ghost: how many readers hold the old object right now; the updater reads
    // it when its synchronize begins.
    let holding = std::sync::Arc::new(Counter::new(0));
    let reader = {
        let (rec, y) = (rec.clone(), y.clone());
        let holding = holding.clone();
        move || {
            let guard = rec.pin();
            let r0 = y.load(Ordering::Acquire);
            let old = r0 == x;
            if old {
                holding.fetch_add(1, Relaxed);
            }
            // SAFETY: released only after the execution.
            let r1 = unsafe { read(r0) };
            drop(guard);
            // After the unpin (a scheduling point): "holding" spans the section.
            if old {
                holding.fetch_sub(1, Relaxed);
            }
            assert!(
                !(r0 == x && r1 == POISON),
                "Never (two readers): a reader read the old object after its free"
            );
            r0 == x
        }
    };
    let p1 = spawn(reader.clone());
    let p2 = {
        let (rec, y, holding) = (rec.clone(), y.clone(), holding.clone());
        spawn(move || {
            y.store(z, Ordering::Release);
            tally.raise(SYNC_BEGUN);
            let held = holding.load(Relaxed);
            rec.synchronize();
            tally.raise(SYNC_DONE);
            // SAFETY: released only after the execution.
            unsafe { poison(x) };
            held
        })
    };
    let saw_old = [reader(), p1.join().expect("P1")];
    let held_at_start = p2.join().expect("P2");
    drop(reader);
    for old in saw_old {
        tally.mark(if old { 0 } else { 1 });
    }
    if held_at_start == 2 {
        tally.mark(2);
    }

    drop(rec);
    // SAFETY: every thread is joined and the reclaimer is gone.
    unsafe {
        release(x);
        release(z);
    }
}

#[test]
fn two_readers_vs_synchronize_small_ebr() {
    explore(
        "two readers vs synchronize, small EBR",
        3,
        10_000,
        TWO_READER_MARKS,
        |t| two_readers(Backend::small(3), t),
    );
}

/// Three threads on crossbeam under loom: too slow even at preemption bound 1.
/// No lane runs it; run it by hand with `-- --ignored`.
#[test]
#[ignore = "3 threads on real crossbeam-epoch: too slow at preemption bound 1"]
fn two_readers_vs_synchronize_crossbeam() {
    explore(
        "two readers vs synchronize, crossbeam",
        1,
        100,
        TWO_READER_MARKS,
        |t| two_readers(CROSSBEAM, t),
    );
}

// ---------------------------------------------------------------------------
// Which shape catches which EBR mutant
// ---------------------------------------------------------------------------
//
// Every Never shape on the small EBR with each deliberate bug. The required
// ones (RCU+sync+free with both mutants) have tests of their own above; this
// matrix records the rest, and asserts the measured verdicts so that a shape
// that stops catching a mutant (or starts) is noticed. "Not caught" is not a
// weakness of the facade: the mutant's race does not fit in that shape.

type Shape = fn(Backend, &'static Tally);

fn shapes() -> [(&'static str, usize, usize, Shape); 7] {
    [
        ("RCU+sync+free", 2, 3, rcu_sync_free),
        ("RCU+sync+free via call_srcu", 2, 3, call_srcu_free),
        ("RCU+sync+read", 2, 3, rcu_sync_read),
        ("C-srcu-nest-1", 2, 4, |b, t| srcu_nest_1(b, false, t)),
        ("nested (C-srcu-nest-2 shape)", 3, 3, srcu_nested),
        ("overlap, protected twin", 3, 3, srcu_overlap_protected),
        ("SB + grace period", 2, 3, |b, t| {
            sb_grace_period(b, true, t)
        }),
    ]
}

/// Runs every shape with `mutant`; returns, per shape, whether loom failed it.
fn mutant_matrix(mutant: EbrMutant) -> Vec<(&'static str, bool)> {
    shapes()
        .into_iter()
        .map(|(name, slots, bound, shape)| {
            let tally = Tally::leak();
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                builder(bound).check(move || shape(Backend::small_mutant(slots, mutant), tally))
            }));
            let seconds = started.elapsed().as_secs_f64();
            let caught = match outcome {
                Ok(()) => false,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    assert!(
                        message.contains("Never") || message.contains("Causality violation"),
                        "{name} with {mutant:?} failed for another reason: {message}"
                    );
                    true
                }
            };
            println!(
                "litmus matrix {mutant:?} x {name}: {} after {} executions",
                if caught { "CAUGHT" } else { "not caught" },
                tally.executions()
            );
            let m = Measured {
                model: name,
                kind: "matrix",
                mutant: Some(format!("{mutant:?}")),
                bound,
                seconds,
                caught,
                marks: &[],
            };
            record(&m, tally);
            (name, caught)
        })
        .collect()
}

fn assert_matrix(mutant: EbrMutant, expected: &[(&str, bool)]) {
    let found = mutant_matrix(mutant);
    assert_eq!(
        found, expected,
        "{mutant:?}: the shapes that catch it changed; update LITMUS.md"
    );
}

/// FreeAfterOneEpoch is caught by every shape whose violation needs the grace
/// period itself, and not by C-srcu-nest-1: there the forbidden outcome is
/// already excluded by the SeqCst fences of the reader's second pin and of
/// synchronize (the reader's read of the post-grace-period x synchronises the
/// updater's fence with the pin's), however short the grace period is.
#[test]
fn mutant_matrix_free_after_one_epoch() {
    assert_matrix(
        EbrMutant::FreeAfterOneEpoch,
        &[
            ("RCU+sync+free", true),
            ("RCU+sync+free via call_srcu", true),
            ("RCU+sync+read", true),
            ("C-srcu-nest-1", false),
            ("nested (C-srcu-nest-2 shape)", true),
            ("overlap, protected twin", true),
            ("SB + grace period", true),
        ],
    );
}

/// NoFenceInPin is caught by every shape. (While `synchronize` pinned, deferred
/// a flag and flushed, it was not caught by RCU+sync+read nor by
/// C-srcu-nest-1: synchronize's own pins swept the reader's slot with
/// compare-and-swaps, and loom makes every read-modify-write read the newest
/// value of the slot, which masked the missing fence. `Ebr::synchronize` no
/// longer pins, so only the fence orders the reader's claim.)
#[test]
fn mutant_matrix_no_fence_in_pin() {
    assert_matrix(
        EbrMutant::NoFenceInPin,
        &[
            ("RCU+sync+free", true),
            ("RCU+sync+free via call_srcu", true),
            ("RCU+sync+read", true),
            ("C-srcu-nest-1", true),
            ("nested (C-srcu-nest-2 shape)", true),
            ("overlap, protected twin", true),
            ("SB + grace period", true),
        ],
    );
}

// ---------------------------------------------------------------------------
// The native pin path: one cached crossbeam handle per thread
// ---------------------------------------------------------------------------
//
// Under loom the facade registers a fresh crossbeam participant for every pin,
// and crossbeam runs `collect` (hence `try_advance` and its `fence(SeqCst)`) on
// a participant's first pin. Natively the facade pins through a cached handle,
// whose pins do not collect (127 in 128), and on x86-64 crossbeam's pin then
// publishes the epoch with a SeqCst compare-and-swap instead of a fence. This
// shape checks that native path directly against crossbeam-epoch: SB with a
// grace period, each thread pinning through one handle whose first pin is
// spent before the litmus body. Never, as above.

fn sb_grace_period_cached_handles(tally: &'static Tally) {
    tally.begin();
    let collector = crossbeam_epoch::Collector::new();
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let done = Arc::new(fastzap::checking::sync::AtomicBool::new(false));
    let p1 = {
        let (collector, x, y, done) = (collector.clone(), x.clone(), y.clone(), done.clone());
        spawn(move || {
            let handle = collector.register();
            drop(handle.pin());
            y.store(1, Ordering::Relaxed);
            // Reclaimer::synchronize, as the facade writes it, on the cached handle.
            {
                let guard = handle.pin();
                let flag = done.clone();
                guard.defer(move || flag.store(true, Ordering::Release));
            }
            while !done.load(Ordering::Acquire) {
                handle.pin().flush();
                if done.load(Ordering::Acquire) {
                    break;
                }
                fastzap::checking::sync::yield_now();
            }
            x.load(Ordering::Relaxed)
        })
    };
    let handle = collector.register();
    drop(handle.pin());
    let guard = handle.pin();
    x.store(1, Ordering::Relaxed);
    let r0 = y.load(Ordering::Relaxed);
    drop(guard);
    let r1 = p1.join().expect("P1");
    assert!(
        !(r0 == 0 && r1 == 0),
        "Never (SB with a grace period, cached handles): both threads read 0"
    );
    match (r0, r1) {
        (0, 1) => tally.mark(0),
        (1, 0) => tally.mark(1),
        _ => tally.mark(2),
    }
}

#[test]
fn sb_grace_period_crossbeam_cached_handles() {
    explore(
        "SB + grace period, crossbeam with cached handles (native pin path)",
        3,
        12_000,
        SB_MARKS,
        sb_grace_period_cached_handles,
    );
}

/// C-srcu-nest-5 on the native pin path: one cached handle per thread. A second
/// pin on a handle that is already pinned only counts a guard (crossbeam's
/// `guard_count`) and keeps the first pin's epoch, so `b` inherits `a`'s epoch
/// and the grace period waits for `b`: the Sometimes outcome cannot occur with
/// crossbeam natively either (it is allowed, not required). Asserted, so that
/// LITMUS.md stays true.
fn srcu_nest_5_cached_handles(tally: &'static Tally) {
    tally.begin();
    let collector = crossbeam_epoch::Collector::new();
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let done = Arc::new(fastzap::checking::sync::AtomicBool::new(false));
    let p1 = {
        let (collector, x, y, done) = (collector.clone(), x.clone(), y.clone(), done.clone());
        spawn(move || {
            let handle = collector.register();
            drop(handle.pin());
            y.store(1, Ordering::Relaxed);
            {
                let guard = handle.pin();
                let flag = done.clone();
                guard.defer(move || flag.store(true, Ordering::Release));
            }
            while !done.load(Ordering::Acquire) {
                handle.pin().flush();
                if done.load(Ordering::Acquire) {
                    break;
                }
                fastzap::checking::sync::yield_now();
            }
            x.store(1, Ordering::Relaxed);
        })
    };
    let handle = collector.register();
    drop(handle.pin());
    let a = handle.pin();
    let r2 = y.load(Ordering::Relaxed);
    let b = handle.pin();
    drop(a);
    let r1 = x.load(Ordering::Relaxed);
    drop(b);
    p1.join().expect("P1");
    match (r1, r2) {
        (1, 0) => tally.mark(0),
        (0, 0) => tally.mark(1),
        (1, 1) => tally.mark(2),
        _ => {}
    }
}

#[test]
fn srcu_nest_5_crossbeam_cached_handles_is_masked() {
    let tally = measure(
        "C-srcu-nest-5, crossbeam with cached handles (native pin path)",
        3,
        NEST5_MARKS,
        srcu_nest_5_cached_handles,
    );
    assert!(tally.executions() >= 10_000, "the model shrank");
    assert!(tally.marked(1) > 0, "r1=0, r2=0 never witnessed");
    assert_eq!(
        tally.marked(0),
        0,
        "C-srcu-nest-5's outcome is visible on the native crossbeam path: update LITMUS.md"
    );
}

// ---------------------------------------------------------------------------
// C-srcu-nest-8 (paulmckrcu/litmus manual/kernel): verdict unresolved
// ---------------------------------------------------------------------------
//
//   P0: a = lock; WRITE_ONCE(*x, 1); b = lock; WRITE_ONCE(*z, 1); unlock(a);
//       WRITE_ONCE(*y, 1); unlock(b);
//   P1: r1 = READ_ONCE(*x); r3 = READ_ONCE(*z); synchronize_srcu(s);
//       r4 = READ_ONCE(*z); r2 = READ_ONCE(*y);
//   exists (1:r1=1 /\ 1:r2=0)        file header: "Result: Never"
//
// The small EBR shows the exists clause: section b may pin after the epoch
// moved and is not waited for, and y is written in b only. Reading Tree SRCU
// the same way (b may take the flipped index, and SCAN2 waits only for the old
// one), the kernel would allow it too, which contradicts the header; without
// herd7 here the verdict is not settled. This test therefore asserts no
// verdict: it prints the outcomes (see LITMUS.md) and is ignored.

const NEST8_MARKS: &[&str] = &[
    "exists clause: r1=1, r2=0",
    "r1=0, r2=0",
    "r1=1, r2=1",
    "r1=0, r2=1",
];

fn srcu_nest_8(backend: Backend, tally: &'static Tally) {
    tally.begin();
    let rec = reclaimer(backend);
    let x = Arc::new(AtomicU64::new(0));
    let y = Arc::new(AtomicU64::new(0));
    let z = Arc::new(AtomicU64::new(0));
    let p1 = {
        let (rec, x, y, z) = (rec.clone(), x.clone(), y.clone(), z.clone());
        spawn(move || {
            let r1 = x.load(Ordering::Relaxed);
            let _r3 = z.load(Ordering::Relaxed);
            rec.synchronize();
            let _r4 = z.load(Ordering::Relaxed);
            let r2 = y.load(Ordering::Relaxed);
            (r1, r2)
        })
    };
    let a = rec.pin();
    x.store(1, Ordering::Relaxed);
    let b = rec.pin();
    z.store(1, Ordering::Relaxed);
    drop(a);
    y.store(1, Ordering::Relaxed);
    drop(b);
    let (r1, r2) = p1.join().expect("P1");
    match (r1, r2) {
        (1, 0) => tally.mark(0),
        (0, 0) => tally.mark(1),
        (1, 1) => tally.mark(2),
        _ => tally.mark(3),
    }
}

/// Prints how often the small EBR shows the exists clause; asserts nothing,
/// and no lane runs it (LITMUS.md: the verdict is unresolved).
#[test]
#[ignore = "C-srcu-nest-8: verdict unresolved (header says Never, the small EBR shows it); prints only"]
fn srcu_nest_8_small_ebr_observed() {
    let tally = Tally::leak();
    let started = Instant::now();
    builder(4).check(move || srcu_nest_8(Backend::small(3), tally));
    println!(
        "litmus C-srcu-nest-8, small EBR: {} executions in {:.2?} (preemption bound 4)",
        tally.executions(),
        started.elapsed()
    );
    for (index, mark) in NEST8_MARKS.iter().enumerate() {
        println!("  [{index}] {mark}: {}", tally.marked(index));
    }
}

#![cfg(not(any(loom, shuttle)))]
//! The reclaimer's contract (core/src/sync/reclaim.rs), on every backend:
//!
//! - `synchronize` (`synchronize_srcu_expedited`): every guard pinned when the
//!   call began has been dropped when it returns. The check can fail: a
//!   `synchronize` that returns at once fails it.
//! - `barrier` (`srcu_barrier`): one call, and every function deferred before
//!   it has run, with nothing pending afterwards. `drain(rounds)` calls
//!   `barrier` several times, which would hide a barrier that runs its garbage
//!   one round late; these tests call it once. The check can fail: a
//!   small-EBR barrier one round late (collect, then wait for the grace
//!   period, so that what it waited for is run only by the next call), built
//!   here from the EBR's own public steps, fails it.

use std::num::NonZeroUsize;
use std::time::Duration;

use fastzap::checking::sync::ebr::{Ebr, EbrMutant};
use fastzap::checking::sync::{Arc, AtomicBool, AtomicUsize, Ordering};
use fastzap::reclaim::{ReclaimBackend, Reclaimer};

fn slots(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("at least one slot")
}

/// What the contract needs from a backend.
trait Barrier: Sync {
    /// Pins once, defers every function from that guard, and unpins.
    fn defer_from_one_guard(&self, fs: Vec<Box<dyn FnOnce() + Send>>);
    /// The barrier under test.
    fn barrier(&self);
    /// Deferred functions not yet run, where the backend can tell.
    fn pending(&self) -> Option<usize>;
}

impl Barrier for Reclaimer {
    fn defer_from_one_guard(&self, fs: Vec<Box<dyn FnOnce() + Send>>) {
        let guard = self.pin();
        for f in fs {
            guard.defer(f);
        }
    }
    fn barrier(&self) {
        Reclaimer::barrier(self);
    }
    fn pending(&self) -> Option<usize> {
        Reclaimer::pending(self)
    }
}

impl Barrier for Ebr {
    fn defer_from_one_guard(&self, fs: Vec<Box<dyn FnOnce() + Send>>) {
        let guard = self.pin();
        for f in fs {
            guard.defer(f);
        }
    }
    fn barrier(&self) {
        Ebr::barrier(self);
    }
    fn pending(&self) -> Option<usize> {
        Some(Ebr::pending(self))
    }
}

/// A barrier one round late: it runs what was ready when it began and only
/// then waits for the grace period, so the functions it waited for run at
/// the next call.
struct OneRoundLate(Ebr);

impl Barrier for OneRoundLate {
    fn defer_from_one_guard(&self, fs: Vec<Box<dyn FnOnce() + Send>>) {
        self.0.defer_from_one_guard(fs);
    }
    fn barrier(&self) {
        self.0.collect();
        self.0.synchronize();
    }
    fn pending(&self) -> Option<usize> {
        Some(self.0.pending())
    }
}

/// `n` functions that count their runs in `ran`.
fn counted(n: usize, ran: &Arc<AtomicUsize>) -> Vec<Box<dyn FnOnce() + Send>> {
    (0..n)
        .map(|_| {
            let ran = ran.clone();
            Box::new(move || {
                ran.fetch_add(1, Ordering::Relaxed);
            }) as Box<dyn FnOnce() + Send>
        })
        .collect()
}

/// The contract, over `rounds` rounds: defer `per_round` functions from one
/// guard (from a thread that then exits, if `other_thread`), drop the guard,
/// call `barrier` once; every function deferred so far has run and nothing
/// is pending.
fn barrier_contract<B: Barrier>(
    backend: &B,
    rounds: usize,
    per_round: usize,
    other_thread: bool,
) -> Result<(), String> {
    let ran = Arc::new(AtomicUsize::new(0));
    for round in 1..=rounds {
        let fs = counted(per_round, &ran);
        if other_thread {
            // Joined explicitly: the end of a scope waits for the closure,
            // not for the thread's thread-local destructors, which is where
            // crossbeam hands a thread's bag to the shared queue.
            std::thread::scope(|s| {
                s.spawn(|| backend.defer_from_one_guard(fs))
                    .join()
                    .expect("deferring thread");
            });
        } else {
            backend.defer_from_one_guard(fs);
        }
        backend.barrier();
        let (ran, deferred) = (ran.load(Ordering::Relaxed), round * per_round);
        if ran != deferred {
            return Err(format!(
                "round {round}: {ran} of {deferred} deferred functions ran after one barrier"
            ));
        }
        if let Some(pending) = backend.pending().filter(|p| *p != 0) {
            return Err(format!(
                "round {round}: {pending} pending after one barrier"
            ));
        }
    }
    Ok(())
}

fn backends() -> Vec<(&'static str, Reclaimer)> {
    vec![
        (
            "crossbeam",
            Reclaimer::new(ReclaimBackend::Crossbeam).expect("native lane"),
        ),
        (
            "small(1)",
            Reclaimer::new(ReclaimBackend::small(1)).expect("ebr"),
        ),
        (
            "small(8)",
            Reclaimer::new(ReclaimBackend::small(8)).expect("ebr"),
        ),
    ]
}

#[test]
fn one_barrier_runs_everything_deferred_before_it_on_every_backend() {
    for (name, reclaimer) in backends() {
        // Fewer than the small EBR's automatic collection (1,024) and more
        // than one crossbeam bag (64 functions), over several rounds, so that
        // garbage of different epochs is queued.
        for per_round in [1, 5, 200] {
            barrier_contract(&reclaimer, 4, per_round, false)
                .unwrap_or_else(|e| panic!("{name}, {per_round} per round: {e}"));
        }
        assert_eq!(
            reclaimer.pending().unwrap_or(0),
            0,
            "{name}: pending after the rounds"
        );
    }
}

/// The functions were deferred on a thread that has since exited: its
/// garbage (crossbeam: its handle's bag) is the barrier's to run too.
#[test]
fn one_barrier_runs_what_an_exited_thread_deferred() {
    for (name, reclaimer) in backends() {
        barrier_contract(&reclaimer, 3, 10, true)
            .unwrap_or_else(|e| panic!("{name}, deferred on an exited thread: {e}"));
    }
}

/// The small EBR on its own, with its one-epoch mutant too (whose barrier
/// waits one epoch and collects at the same distance: consistent, so the
/// contract holds).
#[test]
fn the_small_ebr_barrier_keeps_the_contract() {
    for mutant in [EbrMutant::None, EbrMutant::FreeAfterOneEpoch] {
        let ebr = Ebr::new(slots(4), mutant);
        barrier_contract(&ebr, 4, 7, false).unwrap_or_else(|e| panic!("{mutant:?}: {e}"));
    }
}

/// The check fails on a barrier one round late, and says why: after one call
/// the functions it waited for are still pending; a second call runs them
/// (so `drain(2)` would have hidden it).
#[test]
fn a_barrier_one_round_late_fails_the_contract() {
    let late = OneRoundLate(Ebr::new(slots(4), EbrMutant::None));
    let error = barrier_contract(&late, 1, 5, false).expect_err("the late barrier passed");
    assert!(
        error.contains("0 of 5 deferred functions ran"),
        "unexpected report: {error}"
    );
    assert_eq!(late.pending(), Some(5));
    late.barrier();
    assert_eq!(late.pending(), Some(0), "the next call runs them");
}

/// The same over the EBR's epochs: functions deferred in epoch `e` are ready
/// at `e + 2`; one barrier moves the epoch there before it collects, while
/// the late one collects at `e` and only then moves it.
#[test]
fn one_barrier_collects_after_the_epoch_reaches_the_stamp_plus_two() {
    let ebr = Ebr::new(slots(2), EbrMutant::None);
    let ran = Arc::new(AtomicUsize::new(0));
    let stamp = ebr.epoch();
    ebr.defer_from_one_guard(counted(3, &ran));
    ebr.barrier();
    assert!(
        ebr.epoch() >= stamp + 2,
        "epoch {} after one barrier",
        ebr.epoch()
    );
    assert_eq!((ran.load(Ordering::Relaxed), ebr.pending()), (3, 0));

    let late = Ebr::new(slots(2), EbrMutant::None);
    let stamp = late.epoch();
    late.defer_from_one_guard(counted(3, &ran));
    late.collect();
    assert_eq!(
        late.epoch(),
        stamp,
        "nothing moved the epoch before the collect"
    );
    assert_eq!(late.pending(), 3, "garbage of epoch e ran at epoch e");
}

/// Functions deferred on a thread that is still running: the small EBR's
/// barrier runs them (its garbage is shared); crossbeam's does not, because
/// they sit in that thread's local bag, which only that thread (or its exit)
/// pushes to the shared queue, and crossbeam-epoch's public API cannot reach
/// it. Pinned down here, as `Reclaimer::barrier` documents it: a change in
/// either shows up.
#[test]
fn a_live_threads_deferred_functions_small_ebr_runs_them_crossbeam_does_not() {
    for (name, reclaimer) in backends() {
        let ran = Arc::new(AtomicUsize::new(0));
        let (deferred_tx, deferred_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let after_barrier = std::thread::scope(|s| {
            let (reclaimer, fs) = (&reclaimer, counted(5, &ran));
            s.spawn(move || {
                reclaimer.defer_from_one_guard(fs);
                deferred_tx.send(()).expect("send");
                // Stay alive (with its handle) until the barrier returned.
                let _ = release_rx.recv();
            });
            deferred_rx.recv().expect("deferred");
            reclaimer.barrier();
            let after = ran.load(Ordering::Relaxed);
            release_tx.send(()).expect("release");
            after
        });
        if name == "crossbeam" {
            assert!(
                after_barrier < 5,
                "crossbeam's barrier now runs a live thread's bag: update Reclaimer::barrier's \
                 documentation and this test"
            );
        } else {
            assert_eq!(
                after_barrier, 5,
                "{name}: a live thread's deferred functions"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// synchronize
// ---------------------------------------------------------------------------

/// How long the reader stays pinned after `synchronize` began (or would have).
const READER_HOLDS: Duration = Duration::from_millis(50);

/// The grace-period contract, once: a reader on another thread pins, and only
/// then does `synchronize` begin; the reader sleeps, raises `dropping`, and
/// drops its guard. `synchronize` must not return before the reader's guard
/// is dropped, so `dropping` is raised when it returns.
fn synchronize_contract(
    reclaimer: &Reclaimer,
    synchronize: impl Fn(&Reclaimer),
) -> Result<(), String> {
    let dropping = AtomicBool::new(false);
    let pinned = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let guard = reclaimer.pin();
            pinned.wait();
            std::thread::sleep(READER_HOLDS);
            dropping.store(true, Ordering::Release);
            drop(guard);
        });
        pinned.wait();
        synchronize(reclaimer);
        let dropped = dropping.load(Ordering::Acquire);
        reader.join().expect("reader");
        if dropped {
            Ok(())
        } else {
            Err("synchronize returned while a guard pinned before it was still pinned".into())
        }
    })
}

#[test]
fn synchronize_waits_for_a_guard_pinned_before_it_on_every_backend() {
    for (name, reclaimer) in backends() {
        // Three times: with garbage queued too, which crossbeam's
        // synchronize waits behind and the small EBR's does not.
        for round in 0..3 {
            reclaimer.pin().defer(|| {});
            synchronize_contract(&reclaimer, Reclaimer::synchronize)
                .unwrap_or_else(|e| panic!("{name}, round {round}: {e}"));
        }
    }
}

/// `barrier` is a grace period too.
#[test]
fn barrier_waits_for_a_guard_pinned_before_it_on_every_backend() {
    for (name, reclaimer) in backends() {
        synchronize_contract(&reclaimer, Reclaimer::barrier)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The check fails on a `synchronize` that returns at once, on every backend.
#[test]
fn a_synchronize_that_does_not_wait_fails_the_contract() {
    for (name, reclaimer) in backends() {
        let error = synchronize_contract(&reclaimer, |_| {}).expect_err(&format!(
            "{name}: the check passed a synchronize that does not wait"
        ));
        assert!(error.contains("still pinned"), "{name}: {error}");
    }
}

/// A deferred function may still be pending when `synchronize` returns: the
/// contract promises nothing about them. The small EBR runs none: pinned
/// down here, so that a change shows up in `Reclaimer::synchronize`'s
/// documentation too.
#[test]
fn the_small_ebr_synchronize_runs_no_deferred_function() {
    let reclaimer = Reclaimer::new(ReclaimBackend::small(2)).expect("ebr");
    let ran = Arc::new(AtomicUsize::new(0));
    reclaimer.defer_from_one_guard(counted(3, &ran));
    reclaimer.synchronize();
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(reclaimer.pending(), Some(3));
    reclaimer.barrier();
    assert_eq!(ran.load(Ordering::Relaxed), 3);
}

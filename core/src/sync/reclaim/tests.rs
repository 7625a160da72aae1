//! The reclaimer's unit tests: the crossbeam handle cache and the small EBR
//! through the facade.

use super::crossbeam::{HANDLES, LAST};
use super::*;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on its own thread and fails (instead of hanging) if it does not
/// finish within a minute.
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => worker.join().expect("worker"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The worker panicked: report its panic.
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish in 60 s"),
    }
}

/// Regression: crossbeam runs deferred functions inside `pin`; one that pins
/// found the thread-local handle cache borrowed ("RefCell already borrowed").
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch is not Miri-clean (SPEC: What the checkers cannot see); .ci/miri runs the small EBR"
)]
fn crossbeam_deferred_function_may_pin() {
    let r: &'static Reclaimer = Box::leak(Box::new(
        Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam"),
    ));
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..1000 {
        let ran = ran.clone();
        r.pin().defer(move || {
            let _g = r.pin();
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    for _ in 0..100_000 {
        drop(r.pin());
    }
    r.drain(4);
    assert!(
        ran.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no deferred function ran, so none pinned: the test checked nothing"
    );
}

/// Regression: with one slot, `drain` pinned and then ran deferred functions,
/// and a deferred function that pins waited for that slot forever.
#[test]
#[cfg_attr(
    miri,
    ignore = "leaks a &'static Reclaimer on purpose (its deferred functions pin it), which Miri's leak check reports"
)]
fn small_one_slot_drain_with_pinning_deferred_function() {
    bounded("drain of a one-slot EBR", || {
        let r: &'static Reclaimer = Box::leak(Box::new(
            Reclaimer::new(ReclaimBackend::small(1)).expect("ebr"),
        ));
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..100 {
            let ran = ran.clone();
            r.pin().defer(move || {
                let _g = r.pin();
                ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
        r.drain(4);
        r.flush();
        r.synchronize();
        assert_eq!(ran.load(std::sync::atomic::Ordering::Relaxed), 100);
    });
}

/// A grace period of the small EBR waits for a reader pinned before it, and
/// not for the garbage queued before it.
#[test]
fn small_synchronize_waits_for_readers_not_garbage() {
    bounded("synchronize", || {
        let r = std::sync::Arc::new(Reclaimer::new(ReclaimBackend::small(8)).expect("ebr"));
        let Backend::Small(ebr) = &r.backend else {
            unreachable!()
        };
        // Fewer than the automatic collection's threshold.
        for _ in 0..1000 {
            r.pin().defer(|| {});
        }
        r.synchronize();
        assert_eq!(ebr.pending(), 1000, "synchronize ran garbage");
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (r, released) = (r.clone(), released.clone());
            std::thread::spawn(move || {
                let guard = r.pin();
                pinned_tx.send(()).expect("send");
                std::thread::sleep(Duration::from_millis(50));
                released.store(true, std::sync::atomic::Ordering::SeqCst);
                drop(guard);
            })
        };
        pinned_rx.recv().expect("reader pinned");
        r.synchronize();
        assert!(
            released.load(std::sync::atomic::Ordering::SeqCst),
            "synchronize returned while a reader pinned before it was still pinned"
        );
        reader.join().expect("reader");
        r.barrier();
        assert_eq!(ebr.pending(), 0, "barrier left garbage queued before it");
    });
}

/// The last-used fast path names the reclaimer pinned last, switches when
/// another is pinned, and forgets a dropped reclaimer's handle. (Its
/// thread-exit path: [`crossbeam_pin_from_a_destructor_run_after_the_handles`].)
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch is not Miri-clean (SPEC: What the checkers cannot see); .ci/miri runs the small EBR"
)]
fn crossbeam_last_used_handle() {
    std::thread::spawn(move || {
        let a = Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam");
        drop(a.pin());
        assert_eq!(
            LAST.get().0,
            crossbeam_id(&a),
            "the fast path does not name a"
        );
        let b = Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam");
        let (a_id, b_id) = (crossbeam_id(&a), crossbeam_id(&b));
        drop(a);
        let g = b.pin();
        assert_eq!(LAST.get().0, b_id, "the fast path does not name b");
        assert!(
            HANDLES.with(|h| !h.borrow().by_id.contains_key(&a_id)),
            "a's handle outlived a"
        );
        drop(g);
        drop(b.pin());
    })
    .join()
    .expect("the fast path");
}

fn crossbeam_id(r: &Reclaimer) -> u64 {
    match &r.backend {
        Backend::Crossbeam(cb) => cb.id,
        Backend::Small(_) => unreachable!(),
    }
}

/// What the exiting thread's last destructor saw.
#[derive(Debug)]
struct SeenOnExit {
    /// `HANDLES` was already destroyed: the path under test was reached.
    handles_gone: bool,
    /// The function the destructor deferred ran after its pin.
    deferred_ran: bool,
}

/// Pins `reclaimer` (and defers through that pin) when the thread's
/// thread-locals are destroyed, and reports what it saw.
struct PinsOnExit {
    reclaimer: &'static Reclaimer,
    report: mpsc::Sender<SeenOnExit>,
}

impl Drop for PinsOnExit {
    fn drop(&mut self) {
        let handles_gone = HANDLES.try_with(|_| ()).is_err();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let guard = self.reclaimer.pin();
            let ran = ran.clone();
            guard.defer(move || ran.store(true, std::sync::atomic::Ordering::SeqCst));
        }
        self.reclaimer.barrier();
        let _ = self.report.send(SeenOnExit {
            handles_gone,
            deferred_ran: ran.load(std::sync::atomic::Ordering::SeqCst),
        });
    }
}

thread_local! {
    static ON_EXIT: std::cell::RefCell<Option<PinsOnExit>> =
        const { std::cell::RefCell::new(None) };
}

/// The cache's thread-exit path: a thread-local destructor that runs after
/// `HANDLES`'s pins the reclaimer the thread pinned last. Thread-local
/// destructors run in the reverse order of their registration, so `ON_EXIT`
/// is registered before the thread's first pin (which registers `HANDLES`):
/// its destructor then runs last. `Handles::drop` must have cleared `LAST`;
/// if it had not, this pin would go through the handle `LAST` names, freed
/// with the map: a use after free that passes natively (the freed memory is
/// still mapped) and that valgrind reports (`.ci/valgrind` runs this test
/// under it). The destructor's view is checked here: it ran after `HANDLES`
/// was destroyed, and its pin worked.
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch is not Miri-clean (SPEC: What the checkers cannot see); .ci/miri runs the small EBR"
)]
fn crossbeam_pin_from_a_destructor_run_after_the_handles() {
    let reclaimer: &'static Reclaimer = Box::leak(Box::new(
        Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam"),
    ));
    let (report, seen) = mpsc::channel();
    std::thread::spawn(move || {
        // First: ON_EXIT's destructor is registered before HANDLES's.
        ON_EXIT.with(|e| *e.borrow_mut() = Some(PinsOnExit { reclaimer, report }));
        drop(reclaimer.pin());
        assert_eq!(
            LAST.get().0,
            crossbeam_id(reclaimer),
            "the fast path does not name the reclaimer"
        );
    })
    .join()
    .expect("the exiting thread");
    let seen = seen
        .recv_timeout(Duration::from_secs(60))
        .expect("the destructor reported");
    assert!(
        seen.handles_gone,
        "the destructor ran while HANDLES was alive: the thread-exit path was not reached ({seen:?})"
    );
    assert!(
        seen.deferred_ran,
        "the destructor's pin did not work: {seen:?}"
    );
}

/// Pinning many reclaimers from one thread, over and over, keeps one handle
/// each and forgets those of dropped reclaimers.
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch is not Miri-clean (SPEC: What the checkers cannot see); .ci/miri runs the small EBR"
)]
fn crossbeam_many_reclaimers_per_thread() {
    let reclaimers: Vec<Reclaimer> = (0..64)
        .map(|_| Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam"))
        .collect();
    for _ in 0..10 {
        for r in &reclaimers {
            let g = r.pin();
            g.defer(|| {});
        }
    }
    let ids: Vec<u64> = reclaimers
        .iter()
        .map(|r| match &r.backend {
            Backend::Crossbeam(cb) => cb.id,
            Backend::Small(_) => unreachable!(),
        })
        .collect();
    let held = || HANDLES.with(|h| h.borrow().by_id.len());
    assert_eq!(held(), 64);
    drop(reclaimers);
    let fresh = Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam");
    drop(fresh.pin());
    assert_eq!(held(), 1, "handles of dropped reclaimers were kept");
    assert!(HANDLES.with(|h| ids.iter().all(|id| !h.borrow().by_id.contains_key(id))));
}

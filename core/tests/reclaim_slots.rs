#![cfg(not(any(loom, shuttle)))]
//! When `Reclaimer::pin` waits, as `ReclaimBackend::small` documents it
//! (core/src/sync/reclaim.rs):
//!
//! - with the small EBR, a pin waits while all `slots` guards are held by
//!   other pinners, and returns once one of them is dropped; with more slots,
//!   or with crossbeam-epoch, it does not wait (so the observation can fail);
//! - a thread that holds every slot and pins again never returns;
//! - fastzap's protocol holds at most one guard per thread: every operation of
//!   a VM with one slot, all on one thread, returns.

use fastzap::checking::sync::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use fastzap::reclaim::{ReclaimBackend, Reclaimer};
use fastzap::{Config, DeletionStrategy, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};

/// How long a pin that should wait is watched before the guard it waits for
/// is dropped.
const WATCH: Duration = Duration::from_millis(100);

/// What thread B's pin did while thread A held one guard.
#[derive(Debug, PartialEq, Eq)]
enum Observed {
    /// B's pin had returned before A dropped its guard.
    ReturnedWhileHeld,
    /// B's pin had not returned after [`WATCH`]; it returned after A dropped.
    WaitedThenReturned,
}

/// Thread A pins and holds its guard; thread B then pins and raises
/// `b_pinned` when its pin returns. Watched for [`WATCH`] while A holds the
/// guard, then A drops it and B must return within a minute.
fn observe_second_pin(backend: ReclaimBackend) -> Observed {
    let reclaimer = Reclaimer::new(backend).expect("backend");
    let b_pinned = AtomicBool::new(false);
    let (a_pinned_tx, a_pinned) = mpsc::channel::<()>();
    let (release_tx, release) = mpsc::channel::<()>();
    let (b_done_tx, b_done) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let reclaimer = &reclaimer;
        s.spawn(move || {
            let guard = reclaimer.pin();
            a_pinned_tx.send(()).expect("send");
            release.recv().expect("release");
            drop(guard);
        });
        a_pinned.recv().expect("A pinned");
        let b_pinned = &b_pinned;
        s.spawn(move || {
            let guard = reclaimer.pin();
            b_pinned.store(true, Ordering::Release);
            drop(guard);
            b_done_tx.send(()).expect("send");
        });
        std::thread::sleep(WATCH);
        let returned_while_held = b_pinned.load(Ordering::Acquire);
        release_tx.send(()).expect("send");
        b_done
            .recv_timeout(Duration::from_secs(60))
            .expect("B's pin did not return after A dropped its guard");
        assert!(b_pinned.load(Ordering::Acquire));
        if returned_while_held {
            Observed::ReturnedWhileHeld
        } else {
            Observed::WaitedThenReturned
        }
    })
}

#[test]
fn with_one_slot_a_pin_waits_while_another_thread_holds_the_guard() {
    assert_eq!(
        observe_second_pin(ReclaimBackend::small(1)),
        Observed::WaitedThenReturned
    );
}

/// The observation can fail: with a free slot, or with crossbeam-epoch, the
/// second pin returns at once.
#[test]
fn with_a_free_slot_or_crossbeam_the_second_pin_does_not_wait() {
    for backend in [ReclaimBackend::small(2), ReclaimBackend::Crossbeam] {
        assert_eq!(
            observe_second_pin(backend),
            Observed::ReturnedWhileHeld,
            "{backend:?}"
        );
    }
}

/// A thread that holds the only slot and pins again waits for itself: its
/// second pin has not returned after [`WATCH`]. The thread is left behind,
/// spinning, until the test binary exits: nothing can free its slot.
#[test]
#[cfg_attr(miri, ignore = "leaves a thread spinning")]
fn a_nested_pin_with_every_slot_held_by_its_own_thread_never_returns() {
    let reclaimer: &'static Reclaimer = Box::leak(Box::new(
        Reclaimer::new(ReclaimBackend::small(1)).expect("ebr"),
    ));
    let nested_returned: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let (outer_tx, outer) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _outer = reclaimer.pin();
        outer_tx.send(()).expect("send");
        let _inner = reclaimer.pin();
        nested_returned.store(true, Ordering::Release);
    });
    outer.recv().expect("outer pin");
    std::thread::sleep(WATCH);
    assert!(!nested_returned.load(Ordering::Acquire));
}

/// Runs `f` on its own thread; fails instead of hanging if it does not
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
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish in 60 s"),
    }
}

/// The protocol pins at most one guard per thread at a time, and no function
/// it defers pins: with one slot, every operation, each deletion strategy
/// included, returns when one thread runs them all (a nested pin would wait
/// for its own thread forever). The checking build runs its audit points
/// too, which pin as well.
#[test]
fn every_operation_returns_with_one_slot_on_one_thread() {
    for strategy in [
        DeletionStrategy::Merged311,
        DeletionStrategy::SeedV3,
        DeletionStrategy::SeedV3Deferred,
    ] {
        bounded(&format!("the operations, {strategy:?}"), move || {
            let mut config = Config::model();
            config.reclaim = ReclaimBackend::small(1);
            let vm = Vm::new(config).expect("valid");
            let base = Hva(0x100_0000);
            for id in 0..2 {
                vm.create_memslot(SlotSpec {
                    id: SlotId(id),
                    base_gfn: Gfn(2 * id as u64),
                    npages: 2,
                    userspace_addr: Hva(base.0 + 0x10_0000 * id as u64),
                })
                .expect("fits");
            }
            let vcpu = VcpuId(0);
            for round in 0..3 {
                vm.handle_requests(vcpu).expect("vcpu");
                for gfn in 0..4 {
                    vm.page_fault(vcpu, Gfn(gfn), gfn % 2 == 0).expect("fault");
                    vm.translate(vcpu, Gfn(gfn)).expect("translate");
                }
                let mut out = Vec::new();
                vm.translate_run(vcpu, &[Gfn(0), Gfn(1)], &mut out)
                    .expect("translate_run");
                vm.clear_flush_young(base, Hva(base.0 + 0x2000))
                    .expect("age");
                vm.test_young(base, Hva(base.0 + 0x2000)).expect("age");
                vm.change_pte(base).expect("change_pte");
                vm.invalidate_range(base, Hva(base.0 + 0x1000))
                    .expect("invalidate_range");
                vm.invalidate_zap_all_pages().expect("invalidate all");
                vm.handle_requests(vcpu).expect("vcpu");
                vm.page_fault(vcpu, Gfn(3), true).expect("fault");
                vm.shrink(1).expect("shrink");
                vm.zap_all().expect("zap_all");
                if round == 0 {
                    vm.move_memslot(SlotId(1), Gfn(2)).expect("move in place");
                }
                vm.flush_reclaim();
            }
            vm.delete_memslot_with(SlotId(1), strategy).expect("delete");
            vm.handle_requests(vcpu).expect("vcpu");
            vm.invalidate_zap_all_pages().expect("invalidate all");
            vm.delete_memslot_with(SlotId(0), strategy).expect("delete");
        });
    }
}

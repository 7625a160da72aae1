#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! I6 from the ghost's watch of each zap, under a real race: bug 7
//! (`ZapFromHead`, 002c5f73c508) restarts every pass of
//! `zap_obsolete_pages` from the head of the active list, where a vCPU
//! faulting during the zap's lock breaks adds new pages, so each pass
//! examines every page added so far. The ghost counts the pages the walk
//! examined and its passes itself; it must report the zap past its step
//! bound as it happens, and the correct protocol under the same race must
//! report nothing.

mod common;

use fastzap::checking::sync::{AtomicBool, Ordering};

use common::*;
use fastzap::check::*;
use fastzap::checking::Mutant;
use fastzap::*;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// Up to `rounds` zaps of a populated VM, each raced by a vCPU that faults
/// gfns in during the zap's lock breaks (batch 1). Returns the VM and the
/// I6 violations the ghost recorded at run time.
fn zap_while_faulting(mutant: Option<Mutant>, rounds: usize) -> (Vm, Vec<Violation>) {
    let mut cfg = Config::model();
    cfg.mutant = mutant;
    cfg.levels = 7; // 128 gfns
    cfg.batch = 1;
    cfg.events = false;
    let gfns = 128;
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, gfns)).expect("the slot fits");
    let mut found = Vec::new();
    for _ in 0..rounds {
        enter_all(&vm);
        for gfn in 0..gfns {
            vm.page_fault(V0, Gfn(gfn), false).expect("maps");
        }
        let zapping = AtomicBool::new(true);
        std::thread::scope(|s| {
            s.spawn(|| {
                let result = vm.invalidate_zap_all_pages();
                zapping.store(false, Ordering::Release);
                // The mutant's livelock ends the zap with an error; the
                // correct one returns.
                if mutant.is_none() {
                    result.expect("the correct zap finishes");
                }
            });
            s.spawn(|| {
                let mut gfn = 0;
                while zapping.load(Ordering::Acquire) {
                    let _ = vm.handle_requests(V1);
                    let _ = vm.page_fault(V1, Gfn(gfn), false);
                    gfn = (gfn + 1) % gfns;
                }
            });
        });
        found = vm
            .runtime_violations()
            .into_iter()
            .filter(|v| v.invariant == Invariant::I6)
            .collect();
        if !found.is_empty() {
            break;
        }
    }
    (vm, found)
}

#[test]
fn the_ghost_sees_a_zap_that_restarts_from_the_head() {
    let (_vm, found) = zap_while_faulting(Some(Mutant::ZapFromHead), 50);
    assert!(
        found.iter().any(|v| v
            .detail
            .contains("steps (pages examined plus passes, counted by the ghost)")),
        "the ghost's own step count must pass the bound: {found:#?}"
    );
}

#[test]
fn the_correct_zap_stays_within_what_the_ghost_counts() {
    let (vm, found) = zap_while_faulting(None, 4);
    assert!(found.is_empty(), "{found:#?}");
    enter_all(&vm);
    assert_audit(&vm);
    assert_drains(&vm);
}

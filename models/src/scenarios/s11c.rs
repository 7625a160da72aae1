//! # S11c: a fault versus `change_pte` and the aging notifiers
//!
//! S11's sibling (a separate model, so that loom's exploration of each stays
//! small): the notifier that takes a host page away is `change_pte` (KSM,
//! copy-on-write) rather than `invalidate_range`, followed by
//! `clear_flush_young` (and, wide, `test_young`), while the vCPU write-faults
//! the page (and, wide, then touches it).

use fastzap::check::Invariant;
use fastzap::checking::sync::{Arc, spawn};
use fastzap::{Fault, Gfn, Hva, RetryReason};

use super::{Scenario, V0};
use crate::harness::{Params, config, finish, slot, world};
use crate::tally::{Flag, Tally};

/// S11c: a fault versus `change_pte` and the aging notifiers.
pub const S11C: Scenario = Scenario {
    name: "s11c",
    race: "a write fault reads a pfn while change_pte replaces the host page, and the notifier then ages it",
    invariants: &[Invariant::I4],
    marks: &[
        "fault retried for mmu_notifier_retry (change_pte)",
        "fault upgraded the spte change_pte had pointed at the new pfn",
        "fault upgraded the old pfn before change_pte replaced it",
        "clear_flush_young ran while the fault was in flight",
    ],
    run: s11c_fault_vs_change_pte_and_aging,
};

/// S11c (I4, at the source). Gfn 0 is mapped read-only to the host page's
/// pfn. vCPU 0 write-faults gfn 0: the fault snapshots `mmu_notifier_seq`,
/// reads the pfn, takes `mmu_lock` and makes the spte writable if it still
/// maps that pfn. Meanwhile the notifier runs `change_pte` on the page: the
/// host replaces it (a new pfn), and under `mmu_lock`, with
/// `mmu_notifier_count` raised, the spte is pointed at the new pfn,
/// read-only; then `clear_flush_young` on the page. A fault that read the old
/// pfn and takes `mmu_lock` after `change_pte` must retry: otherwise it
/// replaces the new mapping with the pfn the host took away, which the ghost
/// reports where it installs (I4). Wide: the vCPU faults again after a retry
/// and then touches the page (`translate` sets the accessed bit that
/// `clear_flush_young` clears), and the notifier also runs `test_young`.
///
/// The narrow model (loom) has no `translate`: its lockless compare-and-swap
/// of the accessed bit racing `change_pte`'s store under `mmu_lock` meets
/// loom's modification-order bug (tokio-rs/loom#282: a compare-and-swap
/// succeeds on a value a racing store already replaced), which writes the
/// old pfn back in executions no hardware has.
pub fn s11c_fault_vs_change_pte_and_aging(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 1, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    let hva = crate::harness::slot_hva(0);
    let old_pfn = vm.hva_to_pfn(Hva(hva)).expect("a slot's hva");
    let mapped = vm.page_fault(V0, Gfn(0), false).expect("fault");
    assert_eq!(mapped, Fault::Mapped { pfn: old_pfn }, "setup");
    // Ghost flags: clear_flush_young began, ended.
    let aging: Arc<[Flag; 2]> = Arc::new(Default::default());
    let vcpu = {
        let (w, aging) = (w.clone(), aging.clone());
        let wide = params.wide;
        spawn(move || {
            for _ in 0..if wide { 2 } else { 1 } {
                let aged_before = aging[1].is_up();
                let fault = w.vm.page_fault(V0, Gfn(0), true).expect("fault");
                if aging[0].is_up() && !aged_before {
                    w.flags[3].raise();
                }
                match fault {
                    Fault::Retry(RetryReason::NotifierRace) => w.flags[0].raise(),
                    Fault::Mapped { pfn } => {
                        w.flags[if pfn == old_pfn { 2 } else { 1 }].raise();
                        break;
                    }
                    _ => {}
                }
            }
            if wide {
                w.vm.translate(V0, Gfn(0)).expect("translate");
            }
        })
    };
    let notifier = {
        let (w, aging) = (w.clone(), aging.clone());
        let wide = params.wide;
        spawn(move || {
            w.vm.change_pte(Hva(hva)).expect("change_pte");
            aging[0].raise();
            w.vm.clear_flush_young(Hva(hva), Hva(hva + 4096))
                .expect("clear_flush_young");
            aging[1].raise();
            if wide {
                w.vm.test_young(Hva(hva), Hva(hva + 4096))
                    .expect("test_young");
            }
        })
    };
    vcpu.join().expect("vcpu");
    notifier.join().expect("notifier");
    for mark in 0..4 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S11C.name, params);
}

//! # The MMU notifiers: S4, S11
//!
//! `invalidate_range` at the zap's lock break (S4) and against a fault that
//! reads the pfn it takes away (S11). S11c, its sibling with `change_pte`, is
//! in `s11c.rs`.

use fastzap::check::{Actor, Invariant};
use fastzap::checking::sync::spawn;
use fastzap::{Fault, Gfn, Hva, RetryReason, VcpuId};

use super::{Scenario, V0, V1, locked_inside_lock_break, spawn_fast_zapper};
use crate::harness::{Params, config, finish, slot, world};
use crate::tally::Tally;

/// S4: `invalidate_range` during `zap_obsolete_pages`' lock break.
pub const S4: Scenario = Scenario {
    name: "s4",
    race: "mmu-notifier invalidate_range during zap_obsolete_pages' lock break",
    invariants: &[Invariant::I4],
    marks: &["notifier took mmu_lock inside a lock break of the zap"],
    run: s4_notifier_in_lock_break,
};

/// S11: a fault versus an `invalidate_range` of the page it is reading.
pub const S11: Scenario = Scenario {
    name: "s11",
    race: "a fault reads a pfn while invalidate_range takes the host page away",
    invariants: &[Invariant::I4],
    marks: &[
        "fault retried for mmu_notifier_retry",
        "fault mapped the gfn",
    ],
    run: s11_fault_vs_invalidate_range,
};

/// S4 (I4). One batch is one page, so the zap breaks `mmu_lock` after every
/// page; the notifier invalidates gfn 2's host page. Right after
/// `invalidate_range` returns, no spte of any page, obsolete and invalid ones
/// included, may map the old pfn (the notifier must reach pages the zap has not
/// got to yet, and in-use roots it has marked invalid). Wide: two vCPUs and a
/// fault racing too.
pub fn s4_notifier_in_lock_break(params: &Params, tally: &Tally) {
    tally.execution();
    let vcpus = if params.wide { 2 } else { 1 };
    let mut cfg = config(params, vcpus, 1);
    cfg.batch = 1;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in 0..vcpus {
        vm.handle_requests(VcpuId(v)).expect("handle");
    }
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    vm.page_fault(V0, Gfn(2), true).expect("fault");
    let hva = crate::harness::slot_hva(0) + 2 * 4096;
    let zapper = spawn_fast_zapper(&w);
    let notifier = {
        let w = w.clone();
        spawn(move || {
            w.vm.invalidate_range(Hva(hva), Hva(hva + 4096))
                .expect("invalidate_range");
            // Under loom this probe is skipped: its load of an spte the notifier
            // has just swapped to 0 can be answered with the older value, loom's
            // modification-order bug with swaps (tokio-rs/loom#389, #282). The
            // core's own check inside invalidate_range (no spte of the range left
            // on any rmap) still runs there.
            if !cfg!(loom) {
                for violation in fastzap::checking::check_notifier_reach(&w.vm) {
                    w.seen.push_always(violation);
                }
            }
        })
    };
    let vcpu = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            w.vm.page_fault(V1, Gfn(3), true).expect("fault");
        })
    });
    zapper.join().expect("zapper");
    notifier.join().expect("notifier");
    if let Some(v) = vcpu {
        v.join().expect("vcpu");
    }
    if locked_inside_lock_break(&vm.events(), Actor::Notifier) {
        tally.mark(0);
    }
    finish(&w, S4.name, params);
}

/// S11 (I4, at the source). vCPU 0 write-faults gfn 0 while the notifier
/// invalidates its host page (the host then remaps it to a new pfn). The
/// fault snapshots `mmu_notifier_seq`, reads the pfn, and takes `mmu_lock`;
/// if an invalidation began or ended since the snapshot it must retry, or it
/// would install a pfn the host has taken away. The ghost checks this where
/// the fault installs (I4): no invalidation of the hva may overlap the span
/// from the snapshot to the install. Wide: the vCPU faults again after a
/// retry, and a second notifier ages the page.
pub fn s11_fault_vs_invalidate_range(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 1, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    let hva = crate::harness::slot_hva(0);
    let vcpu = {
        let w = w.clone();
        let rounds = if params.wide { 2 } else { 1 };
        spawn(move || {
            for _ in 0..rounds {
                match w.vm.page_fault(V0, Gfn(0), true).expect("fault") {
                    Fault::Retry(RetryReason::NotifierRace) => w.flags[0].raise(),
                    Fault::Mapped { .. } => {
                        w.flags[1].raise();
                        break;
                    }
                    _ => {}
                }
            }
        })
    };
    let notifier = {
        let w = w.clone();
        spawn(move || {
            w.vm.invalidate_range(Hva(hva), Hva(hva + 4096))
                .expect("invalidate_range");
        })
    };
    let ager = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            w.vm.clear_flush_young(Hva(hva), Hva(hva + 4096))
                .expect("clear_flush_young");
        })
    });
    vcpu.join().expect("vcpu");
    notifier.join().expect("notifier");
    if let Some(ager) = ager {
        ager.join().expect("ager");
    }
    for (index, flag) in w.flags.iter().take(2).enumerate() {
        if flag.is_up() {
            tally.mark(index);
        }
    }
    finish(&w, S11.name, params);
}

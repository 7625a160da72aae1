//! # Memslot deletes: S3, S3s, S10
//!
//! A memslot deleted while faults, notifiers and the shrinker use its rmap:
//! the seed's v3 delete (S3, S3s) and the Linux 3.11 delete (S10).

use fastzap::check::{Actor, Event, Invariant, What};
use fastzap::checking::sync::{Arc, JoinHandle, spawn};
use fastzap::{Fault, Gfn, Hva, RetryReason};

use super::{Scenario, V0, V1, during, op_checked};
use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

/// S3: the seed's v3 memslot delete versus a fault and the aging notifiers.
pub const S3: Scenario = Scenario {
    name: "s3",
    race: "seed v3 memslot delete versus a vCPU fault versus clear_flush_young and change_pte",
    invariants: &[Invariant::I1, Invariant::I2, Invariant::I3],
    marks: &[
        "notifier took mmu_lock after the delete's bump (remove-only rmap)",
        "fault began after the slot was unpublished, before the delete ended",
    ],
    run: s3_seed_v3_delete_vs_fault_and_aging,
};

/// S3s: the seed's v3 memslot delete versus the shrinker.
pub const S3S: Scenario = Scenario {
    name: "s3s",
    race: "seed v3 memslot delete (its out-of-lock unmapper) versus the shrinker",
    invariants: &[Invariant::I3, Invariant::I2, Invariant::I1],
    marks: &["the shrinker committed pages after the delete unpublished the slot, before it ended"],
    run: s3s_seed_v3_delete_vs_shrinker,
};

/// S10: the Linux 3.11 delete versus a fault and a notifier.
pub const S10: Scenario = Scenario {
    name: "s10",
    race: "Linux 3.11 memslot delete (INVALID copy, wait, zap, publish, wait, free) versus a fault and a notifier",
    invariants: &[Invariant::I1, Invariant::I2, Invariant::I3, Invariant::I4],
    marks: &[
        "fault saw the slot INVALID",
        "notifier took mmu_lock between the INVALID copy and the delete's end",
    ],
    run: s10_merged_delete_vs_fault_and_notifier,
};

/// S3 (I1, I2, I3). Two address spaces, so gfn 0 is mapped twice and its head
/// on slot 0's rmap holds a descriptor. The memslot thread deletes slot 0 the
/// seed's way (unpublish, bump and make the rmap remove-only in one hold, zap,
/// unmap the rmap outside `mmu_lock`, wait, free), while the notifier ages the
/// slot's host range (clear_flush_young; wide: change_pte and test_young too)
/// and vCPU 0 faults on the slot. The rmap must stay remove-only (no add, no
/// resurrected spte), its descriptors readable until the grace period, and no
/// page or descriptor freed early.
pub fn s3_seed_v3_delete_vs_fault_and_aging(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 2, 2));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.create_memslot(slot(1, 2, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.handle_requests(V1).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    vm.page_fault(V0, Gfn(1), false).expect("fault");
    vm.page_fault(V1, Gfn(0), false).expect("fault");
    vm.page_fault(V0, Gfn(2), false).expect("fault");
    // The guest touches gfn 0 again, so that its sptes are young.
    vm.translate(V0, Gfn(0)).expect("translate");
    let hva = crate::harness::slot_hva(0);
    let memslot = spawn_seed_v3_delete(&w);
    let notifier = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            w.vm.clear_flush_young(Hva(hva), Hva(hva + 2 * 4096))
                .expect("clear_flush_young");
            if wide {
                w.vm.change_pte(Hva(hva)).expect("change_pte");
                w.vm.test_young(Hva(hva), Hva(hva + 2 * 4096))
                    .expect("test_young");
            }
        })
    };
    let vcpu = {
        let w = w.clone();
        spawn(move || {
            let fault = w.vm.page_fault(V0, Gfn(1), true).expect("fault");
            if matches!(fault, Fault::Retry(RetryReason::NoRoot)) {
                w.vm.handle_requests(V0).expect("handle");
            }
        })
    };
    memslot.join().expect("memslot");
    notifier.join().expect("notifier");
    vcpu.join().expect("vcpu");
    // Setup published generations 1 and 2; the delete publishes 3 and bumps
    // mmu_valid_gen (making slot 0's rmap remove-only) right after.
    let events = vm.events();
    let bump = |e: &Event| e.actor == Actor::Memslot && matches!(e.what, What::GenBump { .. });
    if during(&events, bump, Actor::Memslot, |e| {
        e.actor == Actor::Notifier && e.what == What::Lock
    }) {
        tally.mark(0);
    }
    let unpublished =
        |e: &Event| e.actor == Actor::Memslot && e.what == What::Publish { generation: 3 };
    if during(&events, unpublished, Actor::Memslot, |e| {
        e.actor == Actor::Vcpu(0) && matches!(e.what, What::Fault { .. })
    }) {
        tally.mark(1);
    }
    finish(&w, S3.name, params);
}

/// The memslot thread of S3 and S3s: slot 0 deleted the seed's way, checked.
fn spawn_seed_v3_delete(w: &Arc<World>) -> JoinHandle<()> {
    let w = w.clone();
    spawn(move || {
        op_checked(
            &w,
            "seed v3 delete",
            w.vm.delete_memslot_with(fastzap::SlotId(0), fastzap::DeletionStrategy::SeedV3),
        );
    })
}

/// S3s (I3, I2, I1). The reader no request reaches: the seed's out-of-lock
/// unmapper is not a vCPU, so `commit_zap_page`'s remote flush does not wait
/// for it, and only its epoch pin keeps the pages it reaches through the
/// rmap. Two address spaces map gfn 0 twice (a descriptor on slot 0's rmap).
/// The memslot thread deletes slot 0 the seed's way while the shrinker zaps
/// the oldest pages under `mmu_lock`, removing rmap entries in place and
/// committing the pages. Wide: vCPU 0 also faults on the slot and reloads.
pub fn s3s_seed_v3_delete_vs_shrinker(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 2, 2));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.handle_requests(V1).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    vm.page_fault(V0, Gfn(1), false).expect("fault");
    vm.page_fault(V1, Gfn(0), false).expect("fault");
    let memslot = spawn_seed_v3_delete(&w);
    let shrinker = {
        let w = w.clone();
        spawn(move || {
            w.vm.shrink(8).expect("shrink");
        })
    };
    let vcpu = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            w.vm.page_fault(V0, Gfn(1), true).expect("fault");
            w.vm.handle_requests(V0).expect("handle");
        })
    });
    memslot.join().expect("memslot");
    shrinker.join().expect("shrinker");
    if let Some(vcpu) = vcpu {
        vcpu.join().expect("vcpu");
    }
    // Setup published generation 1; the delete unpublishes with 2.
    let events = vm.events();
    let unpublished =
        |e: &Event| e.actor == Actor::Memslot && e.what == What::Publish { generation: 2 };
    if during(&events, unpublished, Actor::Memslot, |e| {
        e.actor == Actor::Shrinker && matches!(e.what, What::CommitZap { .. })
    }) {
        tally.mark(0);
    }
    finish(&w, S3S.name, params);
}

/// S10 (I1 to I4). vCPU 0 has mapped gfns 0, 1 (slot 0) and 2 (slot 1). The
/// memslot thread deletes slot 0 the 3.11 way: publish a copy with the slot
/// INVALID, wait for readers, zap all, publish the final slots, wait, free the
/// rmap. vCPU 0 faults on gfn 0 meanwhile (it must retry while the slot is
/// INVALID, never install anything for it: a fault that returns MMIO for a gfn
/// of a published slot is an I7 violation seen by the vCPU itself), and the
/// notifier invalidates slot 0's host range.
pub fn s10_merged_delete_vs_fault_and_notifier(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 1, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.create_memslot(slot(1, 2, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    for gfn in 0..3 {
        vm.page_fault(V0, Gfn(gfn), true).expect("fault");
    }
    let hva = crate::harness::slot_hva(0);
    let memslot = {
        let w = w.clone();
        spawn(move || {
            op_checked(
                &w,
                "3.11 delete",
                w.vm.delete_memslot_with(fastzap::SlotId(0), fastzap::DeletionStrategy::Merged311),
            );
        })
    };
    let vcpu = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            for gfn in if wide { &[0u64, 1][..] } else { &[0u64][..] } {
                let before = w.vm.memslots();
                let fault = w.vm.page_fault(V0, Gfn(*gfn), true).expect("fault");
                let after = w.vm.memslots();
                if fault == Fault::Retry(RetryReason::InvalidSlot) {
                    w.flags[0].raise();
                }
                if fault == Fault::Mmio
                    && before.generation() == after.generation()
                    && before.lookup(Gfn(*gfn)).is_some()
                {
                    w.violate(
                        Invariant::I7,
                        format!(
                            "vcpu0: fault on gfn {gfn} installed MMIO while slots gen {} maps it",
                            before.generation()
                        ),
                    );
                }
                if matches!(fault, Fault::Retry(_)) {
                    w.vm.handle_requests(V0).expect("handle");
                }
            }
        })
    };
    let notifier = {
        let w = w.clone();
        spawn(move || {
            w.vm.invalidate_range(Hva(hva), Hva(hva + 2 * 4096))
                .expect("invalidate_range");
        })
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    notifier.join().expect("notifier");
    // Setup published generations 1 and 2; the delete's INVALID copy is 3.
    let events = vm.events();
    let invalid_copy =
        |e: &Event| e.actor == Actor::Memslot && e.what == What::Publish { generation: 3 };
    if during(&events, invalid_copy, Actor::Memslot, |e| {
        e.actor == Actor::Notifier && e.what == What::Lock
    }) {
        tally.mark(1);
    }
    if w.flags[0].is_up() {
        tally.mark(0);
    }
    finish(&w, S10.name, params);
}

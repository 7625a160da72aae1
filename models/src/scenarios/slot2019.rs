//! # The 2019 slot-only DELETE, in the shape of the report that reverted it
//!
//! 4e103134b862 (Linux 5.1) made a memslot DELETE zap only what belonged to
//! the slot; a guest with an assigned GPU then glitched and hung, and the
//! commit was reverted (d012a06ab1d2) with its cause unknown. These models
//! put the slot-only strategies of `core/src/memslot_zap.rs` in that shape,
//! shrunk to the model's 4 gfns (2 sptes per page, 2 levels):
//!
//! - slot 0 at gfn 0 and the deleted slot 1 at gfns 1..3: slot 1 shares the
//!   last-level page keyed by gfn 0 with slot 0, so the 2019 hash walk, which
//!   looks pages up by the slot's own gfns, misses it (the second
//!   explanation offered on the kvm list);
//! - gfn 3 is in no slot (userspace MMIO) and shares the page keyed by gfn 2
//!   with slot 1, which that walk does zap, MMIO spte included (the first);
//! - vCPU 0 keeps faulting and translating slot 0's gfn, the MMIO gfn and the
//!   deleted slot's gfn, handling its requests as a vCPU does, while another
//!   thread deletes slot 1 with one of the slot-only strategies; with the
//!   model's `batch` of 2 gfns per hold, the rmap pass breaks `mmu_lock` once
//!   (without a flush in 4e103134b862: the third explanation).
//!
//! The checks: the ghost's I4 (no translation of a mapping a DELETE killed)
//! and the full audit, and, once the DELETE returned and vCPU 0 handled its
//! requests, the deleted slot's gfns translate to `Miss` or `Mmio`.

use fastzap::check::{Actor, Event, Invariant};
use fastzap::checking::sync::spawn;
use fastzap::{DeletionStrategy, Fault, Gfn, SlotId, Translation};

use super::{Scenario, V0, locked_inside_lock_break, op_checked};
use crate::harness::{Params, config, finish, slot, world};
use crate::tally::Tally;

const MARKS: &[&str] = &[
    "vcpu0 took mmu_lock inside a lock break of the delete",
    "vcpu0's fault on the deleted slot's gfn did not map it",
];

/// The 2019 slot-only DELETE (4e103134b862 as merged).
pub const S2019: Scenario = Scenario {
    name: "s2019",
    race: "a vCPU faults and translates while a 2019 slot-only delete (rmap pass without lock-break flushes) zaps its slot",
    invariants: &[Invariant::I4],
    marks: MARKS,
    run: s2019_slot_only_delete_vs_vcpu,
};

/// The June 2020 proposal: the rmap pass flushes at its lock breaks.
pub const S2019F: Scenario = Scenario {
    name: "s2019f",
    race: "a vCPU faults and translates while a slot-only delete whose rmap pass flushes at lock breaks zaps its slot",
    invariants: &[Invariant::I4],
    marks: MARKS,
    run: s2019f_flushing_delete_vs_vcpu,
};

/// Today's quirk-off DELETE (aa8d1f48d353, fcd1ec9cb59c).
pub const S2019Q: Scenario = Scenario {
    name: "s2019q",
    race: "a vCPU faults and translates while today's quirk-off delete zaps its slot's leaves",
    invariants: &[Invariant::I4],
    marks: MARKS,
    run: s2019q_quirk_off_delete_vs_vcpu,
};

/// [`S2019`]'s body.
pub fn s2019_slot_only_delete_vs_vcpu(params: &Params, tally: &Tally) {
    slot_only_delete_vs_vcpu(params, tally, DeletionStrategy::SlotOnly2019, S2019.name);
}

/// [`S2019F`]'s body.
pub fn s2019f_flushing_delete_vs_vcpu(params: &Params, tally: &Tally) {
    slot_only_delete_vs_vcpu(
        params,
        tally,
        DeletionStrategy::SlotOnlyFlushing2020,
        S2019F.name,
    );
}

/// [`S2019Q`]'s body.
pub fn s2019q_quirk_off_delete_vs_vcpu(params: &Params, tally: &Tally) {
    slot_only_delete_vs_vcpu(
        params,
        tally,
        DeletionStrategy::SlotOnlyQuirkOff,
        S2019Q.name,
    );
}

/// One execution: the geometry of the module documentation, vCPU 0 against
/// a DELETE of slot 1 with `strategy`. Narrow (loom): the vCPU faults the
/// deleted slot's gfn 1, then faults and translates slot 0's gfn 0. Wide (shuttle): twice
/// over gfns 1, 0 and 3, each a fault then a translate, handling requests
/// when a translate says they are pending.
fn slot_only_delete_vs_vcpu(
    params: &Params,
    tally: &Tally,
    strategy: DeletionStrategy,
    name: &str,
) {
    tally.execution();
    let mut config = config(params, 1, 1);
    // Four publishes must not wrap the MMIO generation, whose invalidation
    // would zap everything and hide the slot-only zap.
    config.mmio_gen_bits = 3;
    let w = world(config);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 1)).expect("slot");
    vm.create_memslot(slot(1, 1, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    for gfn in 0..4 {
        vm.page_fault(V0, Gfn(gfn), true).expect("fault");
    }
    let memslot = {
        let w = w.clone();
        spawn(move || {
            op_checked(
                &w,
                "slot-only delete",
                w.vm.delete_memslot_with(SlotId(1), strategy),
            );
        })
    };
    let vcpu = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            let (rounds, gfns): (usize, &[u64]) = if wide { (2, &[1, 0, 3]) } else { (1, &[1, 0]) };
            for _ in 0..rounds {
                for &gfn in gfns {
                    let fault = w.vm.page_fault(V0, Gfn(gfn), false).expect("fault");
                    if gfn == 1 && !matches!(fault, Fault::Mapped { .. }) {
                        w.flags[1].raise();
                    }
                    if gfn != 1 || wide {
                        let t = w.vm.translate(V0, Gfn(gfn)).expect("translate");
                        if t == Translation::RequestPending {
                            w.vm.handle_requests(V0).expect("handle");
                        }
                    }
                }
            }
        })
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    // The DELETE returned; once vCPU 0 handled its requests, the deleted
    // slot's gfns must not translate to a mapping.
    vm.handle_requests(V0).expect("handle");
    for gfn in [1, 2] {
        let t = vm.translate(V0, Gfn(gfn)).expect("translate");
        if matches!(t, Translation::Mapped { .. }) {
            w.violate(
                Invariant::I4,
                format!("vcpu0: gfn {gfn} of the deleted slot 1 translates to {t:?} after the delete and a request check"),
            );
        }
    }
    let events: Vec<Event> = vm.events();
    if locked_inside_lock_break(&events, Actor::Vcpu(0)) {
        tally.mark(0);
    }
    if w.flags[1].is_up() {
        tally.mark(1);
    }
    finish(&w, name, params);
}

//! # The MMIO generation: S9, S9w, S9f
//!
//! An MMIO spte carries the memslots generation it was built from: a slot
//! update while a vCPU faults (S9), the generation's wrap (S9w), and a fault
//! during the wrap (S9f, a finding).

use fastzap::check::Invariant;
use fastzap::checking::sync::spawn;
use fastzap::{Fault, Gfn, Translation};

use super::{Scenario, V0, op_checked};
use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

/// S9: an MMIO spte built while the memslots generation changes.
pub const S9: Scenario = Scenario {
    name: "s9",
    race: "an MMIO spte built while the memslots generation changes, and its wrap",
    invariants: &[Invariant::I7],
    marks: &[
        "MMIO fault raced a memslot update",
        "translate trusted an MMIO spte",
    ],
    run: s9_mmio_generation,
};

/// S9w: the wrap of the MMIO generation, with an MMIO spte from the first cycle.
pub const S9W: Scenario = Scenario {
    name: "s9w",
    race: "the MMIO generation wraps while a vCPU translates through an MMIO spte of the previous cycle",
    invariants: &[Invariant::I7],
    marks: &["translate ran while the wrapping update was in flight"],
    run: s9w_mmio_generation_wrap,
};

/// S9f: a fault during the wrap of the MMIO generation (fails on the correct protocol: a
/// finding, see [`s9f_fault_between_wrap_zap_and_publish`]).
pub const S9F: Scenario = Scenario {
    name: "s9f",
    race: "an MMIO spte built between the wrap's zap and the publish of the wrapped generation",
    invariants: &[Invariant::I7],
    marks: &[
        "MMIO fault raced a memslot update",
        "translate trusted an MMIO spte",
    ],
    run: s9f_fault_between_wrap_zap_and_publish,
};

/// S9 (I7). vCPU 0 faults on gfn 2, which no slot maps (an MMIO spte), and
/// translates it, while the memslot thread creates a slot over gfn 2: a new
/// memslots generation (two bits in MMIO sptes, no wrap). An MMIO spte must
/// carry the generation of the memslots it was built from, so that the new
/// generation stops trusting it; the vCPU's MMIO cache likewise. Wide: a second
/// slot update (gfn 3) and a second round of fault and translate.
pub fn s9_mmio_generation(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 1, 1);
    cfg.mmio_gen_bits = 2;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    let memslot = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            op_checked(&w, "create", w.vm.create_memslot(slot(1, 2, 1)));
            if wide {
                op_checked(&w, "create", w.vm.create_memslot(slot(2, 3, 1)));
            }
        })
    };
    let vcpu = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            let gfns: &[u64] = if wide { &[2, 3] } else { &[2] };
            for &gfn in gfns {
                mmio_fault_and_translate(&w, gfn);
            }
        })
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    for mark in 0..2 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S9.name, params);
}

/// Faults on `gfn` and translates it; raises flag 0 when the fault installed
/// MMIO from memslots that were replaced while it ran, flag 1 when the
/// translation trusted an MMIO spte.
fn mmio_fault_and_translate(w: &World, gfn: u64) {
    // A fault that finds its root obsolete reloads and faults once more, as the
    // vCPU would on its next entry.
    for _ in 0..2 {
        let before = w.vm.memslots().generation();
        let fault = w.vm.page_fault(V0, Gfn(gfn), false).expect("fault");
        if fault == Fault::Mmio && w.vm.memslots().generation() != before {
            w.flags[0].raise();
        }
        if !matches!(fault, Fault::Retry(_)) {
            break;
        }
        w.vm.handle_requests(V0).expect("handle");
    }
    if w.vm.translate(V0, Gfn(gfn)).expect("translate") == Translation::Mmio {
        w.flags[1].raise();
    }
}

/// S9w (I7): the wrap of the MMIO generation. One bit of memslots generation
/// in MMIO sptes. Before any slot exists (generation 0) vCPU 0 faults on gfn 3:
/// an MMIO spte stamped 0. Slot 0 is created (generation 1). Then the memslot
/// thread creates slot 1 over gfn 3: generation 2, which wraps to 0 in one bit,
/// so every page must be invalidated before the publish; otherwise the spte of
/// generation 0 matches again while slot 1 maps gfn 3 (bug 15). vCPU 0 only
/// translates gfn 3 meanwhile (a fault would open the window of S9f). Wide: it
/// translates twice and faults on gfn 2 (slot-free) as well.
pub fn s9w_mmio_generation_wrap(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 1, 1);
    cfg.mmio_gen_bits = 1;
    let w = world(cfg);
    let vm = &w.vm;
    vm.handle_requests(V0).expect("handle");
    assert_eq!(
        vm.page_fault(V0, Gfn(3), false).expect("fault"),
        Fault::Mmio,
        "no slot yet: gfn 3 is MMIO"
    );
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    let memslot = {
        let w = w.clone();
        spawn(move || {
            op_checked(&w, "create", w.vm.create_memslot(slot(1, 3, 1)));
            w.flags[1].raise();
        })
    };
    let vcpu = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            for _ in 0..if wide { 2 } else { 1 } {
                let generation = w.vm.memslots().generation();
                w.vm.translate(V0, Gfn(3)).expect("translate");
                if generation == 1 && !w.flags[1].is_up() {
                    w.flags[0].raise();
                }
            }
        })
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    if w.flags[0].is_up() {
        tally.mark(0);
    }
    finish(&w, S9W.name, params);
}

/// S9f (I7): a fault during the wrap of the MMIO generation. One bit of memslots generation in
/// MMIO sptes: creating slot 1 (gfn 2) publishes generation 2, which wraps, so
/// every page is invalidated before the publish; creating slot 2 (gfn 3) then
/// publishes generation 3. vCPU 0 faults on gfn 3 and translates it meanwhile.
/// No MMIO spte built before the wrap may be trusted after it.
///
/// This scenario found a bug in the first core: a fault that read the memslots
/// after the wrap's zap and before the publish built an MMIO spte stamped with
/// the pre-wrap generation 1 in a fresh page; the zap had already run, so it
/// survived, and generation 3 (1 again in one bit) trusted it while slot 2
/// mapped gfn 3. As upstream did in 2019, the core now marks the memslots in
/// flux when an update begins and caches no MMIO decision taken from them.
pub fn s9f_fault_between_wrap_zap_and_publish(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 1, 1);
    cfg.mmio_gen_bits = 1;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    let memslot = {
        let w = w.clone();
        spawn(move || {
            op_checked(&w, "create", w.vm.create_memslot(slot(1, 2, 1)));
            op_checked(&w, "create", w.vm.create_memslot(slot(2, 3, 1)));
        })
    };
    let vcpu = {
        let w = w.clone();
        spawn(move || mmio_fault_and_translate(&w, 3))
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    for mark in 0..2 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S9F.name, params);
}

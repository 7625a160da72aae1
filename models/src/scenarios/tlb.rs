//! # S12: a vCPU translating through its TLB while the notifier invalidates
//!
//! The vCPU's TLB (`core/src/tlb.rs`) answers a translate without a walk; only
//! a flush, handled at guest entry, empties it. S12 races a vCPU that
//! translates twice against an `invalidate_range` of the page it translates.

use fastzap::check::Invariant;
use fastzap::checking::sync::{spawn, yield_now};
use fastzap::{Gfn, Hva, MmuError, Translation};

use super::{Scenario, V0};
use crate::harness::{Params, config, finish, slot, world};
use crate::tally::Tally;

/// S12: translate through the TLB versus `invalidate_range`.
pub const S12: Scenario = Scenario {
    name: "s12",
    race: "a vCPU translates through its TLB while invalidate_range takes the host page away",
    invariants: &[Invariant::I4],
    marks: &[
        "the second translate found the invalidation's flush pending",
        "the second translate was answered by the TLB before the invalidation",
        "a later translate walked again: its TLB entry was evicted",
    ],
    run: s12_tlb_vs_invalidate_range,
};

/// S12 (I4, through the TLB). Gfn 0 is mapped writable. vCPU 0 translates it
/// (the walk fills its TLB), then translates it again, handling its requests
/// whenever it finds one pending. Meanwhile the notifier invalidates gfn 0's
/// host page: it unmaps the spte and flushes remote TLBs, which waits for the
/// vCPU to leave the walk and leaves `TLB_FLUSH` pending. A translate that
/// begins after the invalidation returned must see that request before its
/// TLB: a TLB hit then is a stale translation (the ghost reports it with the
/// entry's fill time). The hardware evicts the vCPU's entry before a later
/// touch if the schedule has let the notifier begin by then (a ghost flag the
/// notifier raises first). Wide: the vCPU touches the page a third time, and a
/// second notifier invalidates the same page (it finds no spte to unmap when
/// it runs after the first: it must not return while the first one's flush
/// is still due).
pub fn s12_tlb_vs_invalidate_range(params: &Params, tally: &Tally) {
    tally.execution();
    let w = world(config(params, 1, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    let hva = crate::harness::slot_hva(0);
    let vcpu = {
        let w = w.clone();
        let touches = if params.wide { 3 } else { 2 };
        spawn(move || {
            // The notifier's eviction holds the vCPU for a moment: wait it out.
            let unbusy = |op: &dyn Fn() -> Result<(), MmuError>| loop {
                match op() {
                    Err(MmuError::VcpuBusy(_)) => yield_now(),
                    other => break other.expect("vCPU operation"),
                }
            };
            for touch in 0..touches {
                // The hardware may drop the entry at any time: here, when the
                // schedule has let the notifier begin before this touch.
                if touch > 0 && w.flags[3].is_up() {
                    unbusy(&|| w.vm.tlb_evict(V0, Gfn(0)).map(drop));
                }
                let filled = std::cell::Cell::new(false);
                let t = std::cell::Cell::new(Translation::Miss);
                unbusy(&|| {
                    filled.set(w.vm.tlb_entries(V0)? > 0);
                    Ok(())
                });
                unbusy(&|| {
                    t.set(w.vm.translate(V0, Gfn(0))?);
                    Ok(())
                });
                let filled = filled.get();
                match t.get() {
                    Translation::RequestPending => {
                        if touch == 1 {
                            w.flags[0].raise();
                        }
                        unbusy(&|| w.vm.handle_requests(V0).map(drop));
                    }
                    Translation::Mapped { .. } if touch == 1 && filled => w.flags[1].raise(),
                    Translation::Mapped { .. } if touch >= 1 && !filled => w.flags[2].raise(),
                    _ => {}
                }
            }
        })
    };
    let notifier = {
        let w = w.clone();
        spawn(move || {
            w.flags[3].raise();
            w.vm.invalidate_range(Hva(hva), Hva(hva + 4096))
                .expect("invalidate_range");
        })
    };
    // Wide: a second invalidation of the same page, which finds the spte
    // gone when it runs after the first one's unmap.
    let second = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            w.vm.invalidate_range(Hva(hva), Hva(hva + 4096))
                .expect("invalidate_range");
        })
    });
    vcpu.join().expect("vcpu");
    notifier.join().expect("notifier");
    if let Some(second) = second {
        second.join().expect("second notifier");
    }
    for mark in 0..3 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S12.name, params);
}

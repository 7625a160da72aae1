//! # The slot-only DELETEs against TLBs: the third explanation's shapes
//!
//! The June 2020 mail on 4e103134b862 suggested that its rmap pass, which
//! drops `mmu_lock` at a lock break without flushing, "lets one vCPU create
//! and use a new entry while another still has the old one in its TLB",
//! perhaps even with one vCPU when a zapped large page had been fractured
//! into small TLB entries. The deleted slot is `INVALID` while it is zapped,
//! so a fault on it retries: the new entry can only be in a neighbouring
//! slot, in the page table the zapped spte shared. Two shapes, each run with
//! the three slot-only strategies of `core/src/memslot_zap.rs`:
//!
//! - two vCPUs (`s2019v`, `s2019fv`, `s2019qv`), the geometry of
//!   `slot2019.rs` with slot 0's gfn 0 left unmapped: vCPU 0 filled its TLB
//!   for the deleted slot's gfn 1 before the DELETE and keeps translating it;
//!   vCPU 1 faults gfn 0, a new entry in the last-level page keyed by gfn 0
//!   whose gfn 1 spte the rmap pass dropped, and translates it;
//! - a large page (`s2019l`, `s2019fl`, `s2019ql`): large pages on, slot 0 at
//!   gfns 0 and 1, the deleted slot 1 at gfns 2 and 3, each one large spte in
//!   the root; vCPU 0 mapped slot 1's large page and translated both of its
//!   gfns before the DELETE (two small TLB entries of one large spte); during
//!   the DELETE it translates gfn 3, faults slot 0's gfn 0 (a new large spte
//!   in the root the zapped one shared) and translates it. `Config::batch` is
//!   3, so the rmap pass (two empty level-1 heads, then the level-2 head)
//!   breaks once, right after dropping the large spte.
//!
//! Coverage marks, judged on the event log: for `SlotOnly2019`, a TLB hit on
//! a zapped gfn that began inside the rmap pass's unflushed lock break, and
//! the other fault taking `mmu_lock` inside such a break; for the flushing
//! strategies, whose breaks flush first, a translate inside a break finding
//! the flush pending, and the fault inside a break. The checks are those of
//! `slot2019.rs`: I4 (the ghost judges every TLB hit against the DELETE once
//! it returned), the full audit, and no mapping of the deleted slot's gfns
//! once the DELETE returned and each vCPU handled its requests.

use fastzap::check::{Actor, Event, Invariant, What};
use fastzap::checking::sync::spawn;
use fastzap::{DeletionStrategy, Gfn, SlotId, Translation, VcpuId};

use super::{Scenario, V0, V1, op_checked};
use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

const UNFLUSHED_TWO: &[&str] = &[
    "vcpu0 hit its TLB for a zapped gfn inside the delete's unflushed lock break",
    "vcpu1 took mmu_lock inside the delete's unflushed lock break",
];
const FLUSHED_TWO: &[&str] = &[
    "vcpu0's translate inside a lock break of the delete found the flush pending",
    "vcpu1 took mmu_lock inside a lock break of the delete",
];
const UNFLUSHED_LARGE: &[&str] = &[
    "vcpu0 hit its TLB for a gfn of the zapped large page inside the delete's unflushed lock break",
    "vcpu0 took mmu_lock inside the delete's unflushed lock break",
];
const FLUSHED_LARGE: &[&str] = &[
    "vcpu0's translate inside a lock break of the delete found the flush pending",
    "vcpu0 took mmu_lock inside a lock break of the delete",
];

/// Two vCPUs against the 2019 slot-only DELETE.
pub const S2019V: Scenario = Scenario {
    name: "s2019v",
    race: "vcpu0 translates a deleted gfn from its TLB while vcpu1 faults a neighbour during a 2019 slot-only delete",
    invariants: &[Invariant::I4],
    marks: UNFLUSHED_TWO,
    run: s2019v_two_vcpus,
};

/// Two vCPUs against the June 2020 proposal.
pub const S2019FV: Scenario = Scenario {
    name: "s2019fv",
    race: "vcpu0 translates a deleted gfn from its TLB while vcpu1 faults a neighbour during a flushing slot-only delete",
    invariants: &[Invariant::I4],
    marks: FLUSHED_TWO,
    run: s2019fv_two_vcpus,
};

/// Two vCPUs against today's quirk-off DELETE.
pub const S2019QV: Scenario = Scenario {
    name: "s2019qv",
    race: "vcpu0 translates a deleted gfn from its TLB while vcpu1 faults a neighbour during today's quirk-off delete",
    invariants: &[Invariant::I4],
    marks: FLUSHED_TWO,
    run: s2019qv_two_vcpus,
};

/// A large page held as small TLB entries against the 2019 DELETE.
pub const S2019L: Scenario = Scenario {
    name: "s2019l",
    race: "a vCPU holding a large page as small TLB entries translates and faults during a 2019 slot-only delete",
    invariants: &[Invariant::I4],
    marks: UNFLUSHED_LARGE,
    run: s2019l_large_page,
};

/// The same against the June 2020 proposal.
pub const S2019FL: Scenario = Scenario {
    name: "s2019fl",
    race: "a vCPU holding a large page as small TLB entries translates and faults during a flushing slot-only delete",
    invariants: &[Invariant::I4],
    marks: FLUSHED_LARGE,
    run: s2019fl_large_page,
};

/// The same against today's quirk-off DELETE.
pub const S2019QL: Scenario = Scenario {
    name: "s2019ql",
    race: "a vCPU holding a large page as small TLB entries translates and faults during today's quirk-off delete",
    invariants: &[Invariant::I4],
    marks: FLUSHED_LARGE,
    run: s2019ql_large_page,
};

/// [`S2019V`]'s body.
pub fn s2019v_two_vcpus(params: &Params, tally: &Tally) {
    two_vcpus(params, tally, DeletionStrategy::SlotOnly2019, S2019V.name);
}

/// [`S2019FV`]'s body.
pub fn s2019fv_two_vcpus(params: &Params, tally: &Tally) {
    let strategy = DeletionStrategy::SlotOnlyFlushing2020;
    two_vcpus(params, tally, strategy, S2019FV.name);
}

/// [`S2019QV`]'s body.
pub fn s2019qv_two_vcpus(params: &Params, tally: &Tally) {
    two_vcpus(
        params,
        tally,
        DeletionStrategy::SlotOnlyQuirkOff,
        S2019QV.name,
    );
}

/// [`S2019L`]'s body.
pub fn s2019l_large_page(params: &Params, tally: &Tally) {
    large_page(params, tally, DeletionStrategy::SlotOnly2019, S2019L.name);
}

/// [`S2019FL`]'s body.
pub fn s2019fl_large_page(params: &Params, tally: &Tally) {
    let strategy = DeletionStrategy::SlotOnlyFlushing2020;
    large_page(params, tally, strategy, S2019FL.name);
}

/// [`S2019QL`]'s body.
pub fn s2019ql_large_page(params: &Params, tally: &Tally) {
    large_page(
        params,
        tally,
        DeletionStrategy::SlotOnlyQuirkOff,
        S2019QL.name,
    );
}

/// Where the DELETE (the `Memslot` actor) is, as far as `events` go.
#[derive(Debug, Clone, Copy, Default)]
struct Break {
    /// Between a lock break and the next acquisition.
    inside: bool,
    /// Some spte it dropped has not been flushed since.
    owed: bool,
}

impl Break {
    fn step(&mut self, event: &Event) {
        if event.actor != Actor::Memslot {
            return;
        }
        match &event.what {
            What::LockBreak { .. } => self.inside = true,
            What::Lock => self.inside = false,
            What::SpteSet { now: "clear", .. } => self.owed = true,
            What::Request { what } if what.contains("flush") => self.owed = false,
            _ => {}
        }
    }

    fn at_end(events: &[Event]) -> Break {
        let mut state = Break::default();
        events.iter().for_each(|e| state.step(e));
        state
    }

    /// The mark the strategy is about: inside an unflushed break for
    /// `SlotOnly2019`, inside any break for the others.
    fn counts(self, unflushed: bool) -> bool {
        self.inside && (self.owed || !unflushed)
    }
}

/// Whether `actor` took `mmu_lock` where [`Break::counts`].
fn locked_in_break(events: &[Event], actor: Actor, unflushed: bool) -> bool {
    let mut state = Break::default();
    events.iter().any(|e| {
        let hit = e.actor == actor && e.what == What::Lock && state.counts(unflushed);
        state.step(e);
        hit
    })
}

/// Whether the DELETE dropped a spte filed under a gfn of `gfns`.
fn dropped(events: &[Event], gfns: std::ops::Range<u64>) -> bool {
    events.iter().any(|e| {
        e.actor == Actor::Memslot
            && matches!(&e.what, What::SpteSet { now: "clear", gfn: Some(g), .. } if gfns.contains(g))
    })
}

/// vCPU `vcpu` translates `gfn` of the deleted slot, whose spte (filed
/// under a gfn of `span`) may be zapped; raises `w.flags[0]` if the translate
/// began where the strategy's mark is and answered from the TLB (the spte was
/// already dropped, and the `INVALID` slot cannot be faulted in again) or, for
/// the flushing strategies, found the flush pending. Handles requests when
/// they are pending.
fn translate_deleted(
    w: &World,
    vcpu: VcpuId,
    gfn: u64,
    span: std::ops::Range<u64>,
    unflushed: bool,
) {
    let before = w.vm.events();
    let t = w.vm.translate(vcpu, Gfn(gfn)).expect("translate");
    let state = Break::at_end(&before);
    let counted = match t {
        Translation::Mapped { .. } => unflushed && dropped(&before, span),
        Translation::RequestPending => !unflushed,
        _ => false,
    };
    if counted && state.counts(unflushed) {
        w.flags[0].raise();
    }
    if t == Translation::RequestPending {
        w.vm.handle_requests(vcpu).expect("handle");
    }
}

/// Faults `gfn` of a slot that stays and translates it, handling requests
/// when they are pending.
fn fault_neighbour(w: &World, vcpu: VcpuId, gfn: u64) {
    w.vm.page_fault(vcpu, Gfn(gfn), true).expect("fault");
    if w.vm.translate(vcpu, Gfn(gfn)).expect("translate") == Translation::RequestPending {
        w.vm.handle_requests(vcpu).expect("handle");
    }
}

/// After the DELETE and a request check, no vCPU translates a gfn of the
/// deleted slot to a mapping.
fn check_after(w: &World, vcpus: &[VcpuId], gfns: std::ops::Range<u64>) {
    for &vcpu in vcpus {
        w.vm.handle_requests(vcpu).expect("handle");
        for gfn in gfns.clone() {
            let t = w.vm.translate(vcpu, Gfn(gfn)).expect("translate");
            if matches!(t, Translation::Mapped { .. }) {
                w.violate(
                    Invariant::I4,
                    format!("vcpu{}: gfn {gfn} of the deleted slot 1 translates to {t:?} after the delete and a request check", vcpu.0),
                );
            }
        }
    }
}

/// The two-vCPU shape (module documentation). Narrow (loom): vCPU 0
/// translates gfn 1 once, vCPU 1 faults and translates gfn 0. Wide
/// (shuttle): vCPU 0 translates gfn 1 twice, vCPU 1 also faults gfn 1.
fn two_vcpus(params: &Params, tally: &Tally, strategy: DeletionStrategy, name: &str) {
    tally.execution();
    let unflushed = strategy == DeletionStrategy::SlotOnly2019;
    let mut config = config(params, 2, 1);
    config.mmio_gen_bits = 3;
    let w = world(config);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 1)).expect("slot");
    vm.create_memslot(slot(1, 1, 2)).expect("slot");
    for vcpu in [V0, V1] {
        vm.handle_requests(vcpu).expect("handle");
    }
    // vCPU 0 maps gfns 1 to 3 and fills its TLB with gfn 1; gfn 0 stays
    // unmapped, for vCPU 1's new entry.
    for gfn in 1..4 {
        vm.page_fault(V0, Gfn(gfn), true).expect("fault");
    }
    let filled = vm.translate(V0, Gfn(1)).expect("translate");
    assert!(
        matches!(filled, Translation::Mapped { writable: true, .. }),
        "{filled:?}"
    );
    assert_eq!(vm.tlb_entries(V0).expect("entries"), 1);
    let memslot = {
        let w = w.clone();
        spawn(move || {
            let deleted = w.vm.delete_memslot_with(SlotId(1), strategy);
            op_checked(&w, "slot-only delete", deleted);
        })
    };
    let wide = params.wide;
    let vcpu0 = {
        let w = w.clone();
        spawn(move || {
            for _ in 0..if wide { 2 } else { 1 } {
                translate_deleted(&w, V0, 1, 1..2, unflushed);
            }
        })
    };
    let vcpu1 = {
        let w = w.clone();
        spawn(move || {
            fault_neighbour(&w, V1, 0);
            if wide {
                // The deleted slot's gfn: INVALID, so the fault must not map it.
                w.vm.page_fault(V1, Gfn(1), false).expect("fault");
            }
        })
    };
    memslot.join().expect("memslot");
    vcpu0.join().expect("vcpu0");
    vcpu1.join().expect("vcpu1");
    check_after(&w, &[V0, V1], 1..3);
    if w.flags[0].is_up() {
        tally.mark(0);
    }
    if locked_in_break(&vm.events(), Actor::Vcpu(1), unflushed) {
        tally.mark(1);
    }
    finish(&w, name, params);
}

/// The large-page shape (module documentation). Narrow (loom): vCPU 0
/// translates gfn 3, then faults and translates gfn 0. Wide (shuttle): it
/// translates gfn 3, faults gfn 0, translates gfn 2, faults the deleted gfn 2.
fn large_page(params: &Params, tally: &Tally, strategy: DeletionStrategy, name: &str) {
    tally.execution();
    let unflushed = strategy == DeletionStrategy::SlotOnly2019;
    let mut config = config(params, 1, 1);
    config.mmio_gen_bits = 3;
    config.large_pages = true;
    config.batch = 3;
    let w = world(config);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 2)).expect("slot");
    vm.create_memslot(slot(1, 2, 2)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.page_fault(V0, Gfn(2), true).expect("fault");
    for gfn in [2, 3] {
        let t = vm.translate(V0, Gfn(gfn)).expect("translate");
        assert!(
            matches!(t, Translation::Mapped { writable: true, .. }),
            "{t:?}"
        );
    }
    // One large spte, two small TLB entries; gfn 0 is not mapped.
    assert_eq!(vm.tlb_entries(V0).expect("entries"), 2);
    assert_eq!(
        vm.translate(V0, Gfn(0)).expect("translate"),
        Translation::Miss
    );
    let memslot = {
        let w = w.clone();
        spawn(move || {
            let deleted = w.vm.delete_memslot_with(SlotId(1), strategy);
            op_checked(&w, "slot-only delete", deleted);
        })
    };
    let wide = params.wide;
    let vcpu = {
        let w = w.clone();
        spawn(move || {
            translate_deleted(&w, V0, 3, 2..4, unflushed);
            fault_neighbour(&w, V0, 0);
            if wide {
                translate_deleted(&w, V0, 2, 2..4, unflushed);
                w.vm.page_fault(V0, Gfn(2), false).expect("fault");
            }
        })
    };
    memslot.join().expect("memslot");
    vcpu.join().expect("vcpu");
    check_after(&w, &[V0], 2..4);
    if w.flags[0].is_up() {
        tally.mark(0);
    }
    if locked_in_break(&vm.events(), Actor::Vcpu(0), unflushed) {
        tally.mark(1);
    }
    finish(&w, name, params);
}

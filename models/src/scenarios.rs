//! # The races of `SPEC.md`, one function per scenario
//!
//! Each scenario is one model execution: it builds a tiny VM (2 sptes per page,
//! 2 levels, 4 gfns), sets up the state the race needs on the main thread, spawns
//! the racing actors through the facade (loom or shuttle threads, or std threads
//! natively), joins them, and ends with [`finish`]: the full audit, the
//! observations its threads made, and a drain. The same functions run under
//! loom (narrow: two actors, crossbeam-epoch, or three with the small EBR) and
//! under shuttle (wide: more actors and operations).
//!
//! Each scenario also names coverage marks: interleavings it is about, counted
//! in the [`Tally`], whose floors the tests assert. A scenario whose race never
//! happens is a vacuous scenario, and its test fails.

use fastzap::sync::spawn;
use fastzap::vcpu::REQ_RELOAD;
use fastzap::{Fault, Invariant, RetryReason, Translation, VcpuId};

use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

/// A scenario: its name, what it checks, its coverage marks, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name (`s1`...), used for counterexample files.
    pub name: &'static str,
    /// One line: the race.
    pub race: &'static str,
    /// The invariants it asserts (besides the full audit every execution runs).
    pub invariants: &'static [Invariant],
    /// Names of its coverage marks, by index.
    pub marks: &'static [&'static str],
    /// One execution.
    pub run: fn(&Params, &Tally),
}

/// S1: a vCPU page fault versus the fast invalidate-all.
pub const S1: Scenario = Scenario {
    name: "s1",
    race: "vCPU page fault versus fast invalidate-all: reload requested under mmu_lock",
    invariants: &[Invariant::I4, Invariant::I5],
    marks: &[
        "fault found its root obsolete",
        "reloaded while the zap ran",
    ],
    run: s1_fault_vs_invalidate_all,
};

/// S2: a lockless translate versus the zap, commit and reclaim of its pages.
pub const S2: Scenario = Scenario {
    name: "s2",
    race: "lockless translate versus zap, commit and reclaim of the pages it walks",
    invariants: &[Invariant::I3, Invariant::I2],
    marks: &[
        "page freed while the reader was running",
        "translate returned Mapped, and the generation moved before it returned",
    ],
    run: s2_translate_vs_reclaim,
};

/// Every scenario, in order.
pub const ALL: &[Scenario] = &[S1, S2];

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// A fault on `vcpu` with the S1 check: a fault that finds its root obsolete
/// must find a reload request pending, because the request is made in the same
/// `mmu_lock` hold as the generation bump. If none is pending the vCPU has
/// handled its requests and still holds an obsolete root.
fn checked_fault(w: &World, vcpu: VcpuId, gfn: u64, write: bool, obsolete_seen: usize) -> Fault {
    let fault = w.vm.page_fault(vcpu, gfn, write).expect("valid fault");
    if fault == Fault::Retry(RetryReason::ObsoleteRoot) {
        w.flags[obsolete_seen].raise();
        let pending = w.vm.pending_requests(vcpu).expect("valid vcpu");
        if pending & REQ_RELOAD == 0 {
            w.violate(
                Invariant::I5,
                format!(
                    "vcpu{}: fault on gfn {gfn} found its root obsolete but no reload is pending \
                     (requests {pending:#x}): it handled its requests and kept an obsolete root",
                    vcpu.0
                ),
            );
        }
    }
    fault
}

/// S1 (I4, I5). The vCPU has a root with a child; the zapper runs
/// `invalidate_zap_all_pages` while the vCPU faults and handles its requests
/// (freeing its old root, which the zapper kept, and loading a new one). Every fault that finds its root obsolete must see the reload
/// request (made under `mmu_lock` with the bump); at the end no vCPU without a
/// pending request holds an obsolete root, and no translation was stale.
/// Wide: two vCPUs sharing the root, two invalidations, and each vCPU faults,
/// reloads, faults and translates again.
pub fn s1_fault_vs_invalidate_all(params: &Params, tally: &Tally) {
    tally.execution();
    let vcpus = if params.wide { 2 } else { 1 };
    let w = world(config(params, vcpus, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in 0..vcpus {
        vm.handle_requests(VcpuId(v)).expect("handle");
    }
    vm.page_fault(V0, 0, true).expect("fault");
    let zaps = if params.wide { 2 } else { 1 };
    let zapper = {
        let w = w.clone();
        spawn(move || {
            for _ in 0..zaps {
                w.vm.invalidate_zap_all_pages().expect("zap");
            }
            w.flags[2].raise();
        })
    };
    let vcpu_threads: Vec<_> = (0..vcpus)
        .map(|v| {
            let w = w.clone();
            let wide = params.wide;
            spawn(move || {
                let vcpu = VcpuId(v);
                checked_fault(&w, vcpu, 1 + v as u64, true, 0);
                let handled = w.vm.handle_requests(vcpu).expect("handle");
                if handled.reloaded && !w.flags[2].is_up() {
                    w.flags[1].raise();
                }
                if wide {
                    checked_fault(&w, vcpu, 2, false, 0);
                    w.vm.handle_requests(vcpu).expect("handle");
                    checked_fault(&w, vcpu, 3, true, 0);
                    w.vm.translate(vcpu, 1).expect("translate");
                }
            })
        })
        .collect();
    zapper.join().expect("zapper");
    for t in vcpu_threads {
        t.join().expect("vcpu");
    }
    for mark in 0..2 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S1.name, params);
}

/// S2 (I3, I2). vCPU 0 maps gfns 0 and 2 (a root and two children), vCPU 1,
/// in the other address space, maps gfn 0 too, so gfn 0's rmap head holds a
/// descriptor. The reader translates locklessly while the zapper invalidates
/// everything (children prepared, flushed and retired) and then waits for grace
/// periods, so that retired pages are really freed while the reader may still be
/// running. A reader that reads a freed page records an I3 violation (or, under
/// loom, races the poison write: a causality violation). Wide: both vCPUs read,
/// and vCPU 0 reloads and reads again.
pub fn s2_translate_vs_reclaim(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 2, 2);
    // One batch: no lock break, whose yield would make loom run the reader to
    // completion before the zapper goes on (S4 is the lock-break scenario).
    cfg.batch = 16;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.handle_requests(V1).expect("handle");
    vm.page_fault(V0, 0, true).expect("fault");
    vm.page_fault(V0, 2, false).expect("fault");
    vm.page_fault(V1, 0, false).expect("fault");
    let zapper = {
        let w = w.clone();
        spawn(move || {
            w.vm.invalidate_zap_all_pages().expect("zap");
            // Flushes, not a grace-period wait: under loom a waiting (yielding)
            // zapper lets the reader finish first, and nothing would be freed
            // while the reader runs.
            for _ in 0..3 {
                w.vm.flush_reclaim();
            }
            if w.vm.counts().pages.freed > 0 && !w.flags[0].is_up() {
                w.flags[2].raise();
            }
        })
    };
    let readers: Vec<_> = (0..if params.wide { 2 } else { 1 })
        .map(|v| {
            let w = w.clone();
            let wide = params.wide;
            spawn(move || {
                let vcpu = VcpuId(v);
                let gfns: &[u64] = if v == 0 { &[0, 2] } else { &[0] };
                for &gfn in gfns {
                    let result = w.vm.translate(vcpu, gfn).expect("translate");
                    if matches!(result, Translation::Mapped { .. }) && w.vm.mmu_valid_gen() != 0 {
                        w.flags[3].raise();
                    }
                }
                if wide && v == 0 {
                    w.vm.handle_requests(vcpu).expect("handle");
                    w.vm.translate(vcpu, 2).expect("translate");
                }
                if v == 0 {
                    w.flags[0].raise();
                }
            })
        })
        .collect();
    for t in readers {
        t.join().expect("reader");
    }
    zapper.join().expect("zapper");
    if w.flags[2].is_up() {
        tally.mark(0);
    }
    if w.flags[3].is_up() {
        tally.mark(1);
    }
    finish(&w, S2.name, params);
}

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

use fastzap::check::{Actor, Event, Invariant, What};
use fastzap::checking::sync::{Arc, JoinHandle, spawn};
use fastzap::{Fault, Gfn, Hva, Requests, RetryReason, Translation, VcpuId};

use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

mod s11c;
pub use s11c::{S11C, s11c_fault_vs_change_pte_and_aging};

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

/// S2b: S2 with four pages per batch, so the zap commits per batch (the
/// default `ZapCommit::PerBatch`) at a lock break while the reader runs.
pub const S2B: Scenario = Scenario {
    name: "s2b",
    race: "lockless translate versus the per-batch commits of a zap that breaks mmu_lock",
    invariants: &[Invariant::I3, Invariant::I2],
    marks: &[
        "page freed while the reader was running",
        "a batch was committed at a lock break",
    ],
    run: s2b_translate_vs_per_batch_commit,
};

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

/// S4: `invalidate_range` during `zap_obsolete_pages`' lock break.
pub const S4: Scenario = Scenario {
    name: "s4",
    race: "mmu-notifier invalidate_range during zap_obsolete_pages' lock break",
    invariants: &[Invariant::I4],
    marks: &["notifier took mmu_lock inside a lock break of the zap"],
    run: s4_notifier_in_lock_break,
};

/// S5: an obsolete root held by a vCPU while the zapper runs.
pub const S5: Scenario = Scenario {
    name: "s5",
    race: "an obsolete root still held by a vCPU while the zapper runs; mmu_free_roots frees it",
    invariants: &[Invariant::I3, Invariant::I5],
    marks: &[
        "zapper kept an in-use root",
        "mmu_free_roots zapped the obsolete root",
    ],
    run: s5_obsolete_root_freed_by_free_roots,
};

/// S6: a fault that waited on the lock versus a zapper that passed its root.
pub const S6: Scenario = Scenario {
    name: "s6",
    race: "a fault that waited on mmu_lock installs into a root the zapper has passed",
    invariants: &[Invariant::I5, Invariant::I3],
    marks: &[
        "fault found its root obsolete after the zapper passed it",
        "fault mapped before the bump",
    ],
    run: s6_fault_into_passed_root,
};

/// S7: the shrinker versus the fast zap.
pub const S7: Scenario = Scenario {
    name: "s7",
    race: "the shrinker versus zap-all",
    invariants: &[Invariant::I3, Invariant::I6],
    marks: &[
        "shrinker freed pages the zap had prepared (zapped_obsolete_pages)",
        "shrinker zapped valid pages",
    ],
    run: s7_shrinker_vs_zap,
};

/// S8: generation wraparound with a one-bit generation.
pub const S8: Scenario = Scenario {
    name: "s8",
    race: "mmu_valid_gen wraps while a vCPU still holds an invalid root of the old value",
    invariants: &[Invariant::I5],
    marks: &["a root was loaded after the generation wrapped"],
    run: s8_generation_wrap,
};

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

/// Every scenario, in order.
pub const ALL: &[Scenario] = &[
    S1, S2, S2B, S3, S3S, S4, S5, S6, S7, S8, S9, S9W, S10, S11, S11C,
];

/// Scenarios that fail on the correct protocol: findings, reported.
pub const FINDINGS: &[Scenario] = &[S9F];

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// A fault on `vcpu` with the S1 check: a fault that finds its root obsolete
/// must find a reload request pending, because the request is made in the same
/// `mmu_lock` hold as the generation bump. If none is pending the vCPU has
/// handled its requests and still holds an obsolete root.
fn checked_fault(w: &World, vcpu: VcpuId, gfn: u64, write: bool, obsolete_seen: usize) -> Fault {
    let fault = w.vm.page_fault(vcpu, Gfn(gfn), write).expect("valid fault");
    if fault == Fault::Retry(RetryReason::ObsoleteRoot) {
        w.flags[obsolete_seen].raise();
        let pending = w.vm.pending_requests(vcpu).expect("valid vcpu");
        if !pending.contains(Requests::RELOAD) {
            w.violate(
                Invariant::I5,
                format!(
                    "vcpu{}: fault on gfn {gfn} found its root obsolete but no reload is pending \
                     (requests {:#x}): it handled its requests and kept an obsolete root",
                    vcpu.0,
                    pending.bits()
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
/// Third actor: two vCPUs sharing the root. Wide: two vCPUs, two
/// invalidations, and each vCPU faults, reloads, faults and translates again.
pub fn s1_fault_vs_invalidate_all(params: &Params, tally: &Tally) {
    tally.execution();
    let vcpus = if params.wide || params.third { 2 } else { 1 };
    let w = world(config(params, vcpus, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in 0..vcpus {
        vm.handle_requests(VcpuId(v)).expect("handle");
    }
    vm.page_fault(V0, Gfn(0), true).expect("fault");
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
                    w.vm.translate(vcpu, Gfn(1)).expect("translate");
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

/// S2 (I3, I2). vCPU 0 maps gfns 0 and 2 (a root and two children) and has an
/// MMIO spte for gfn 3 (no slot maps it); vCPU 1, in the other address space,
/// maps gfn 0 too, so gfn 0's rmap head holds a descriptor. vCPU 0 reads
/// locklessly twice: `translate` (the guest's walk, which stops at a pending
/// request) and a fault on gfn 3, whose `handle_mmio_page_fault` walk does
/// not check requests and so may walk the obsolete root while it is zapped,
/// as the kernel's does. Meanwhile the zapper invalidates everything (children
/// prepared, flushed and retired) and then flushes the reclaimer, so that
/// retired pages are really freed while the reader may still be running. A
/// reader that reads a freed page records an I3 violation (or, under loom,
/// races the poison write: a causality violation). Third actor: both vCPUs
/// read. Wide: both read, and vCPU 0 reloads and reads again.
pub fn s2_translate_vs_reclaim(params: &Params, tally: &Tally) {
    // One batch: no lock break, whose yield would make loom run the reader to
    // completion before the zapper goes on (S4 is the lock-break scenario).
    s2_body(params, tally, 16, S2);
}

/// S2b (I3, I2): S2's actors with four pages per batch. The zap's first
/// hold prepares the two roots (kept: in use) and vCPU 0's two children (the
/// oldest pages), and commits the children at the lock break (flush, then
/// retire), in the middle of the zap; the second hold zaps vCPU 1's child and
/// commits at the end. The reader races the per-batch commit. (Loom's
/// `yield_now` at the break lets the reader run to completion, so the commit
/// that matters is the one before the first yield: hence four pages, not one.)
pub fn s2b_translate_vs_per_batch_commit(params: &Params, tally: &Tally) {
    s2_body(params, tally, 4, S2B);
}

fn s2_body(params: &Params, tally: &Tally, batch: usize, scenario: Scenario) {
    tally.execution();
    let mut cfg = config(params, 2, 2);
    cfg.batch = batch;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 3)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.handle_requests(V1).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    vm.page_fault(V0, Gfn(2), false).expect("fault");
    assert_eq!(vm.page_fault(V0, Gfn(3), false), Ok(Fault::Mmio));
    vm.page_fault(V1, Gfn(0), false).expect("fault");
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
    let readers: Vec<_> = (0..if params.wide || params.third { 2 } else { 1 })
        .map(|v| {
            let w = w.clone();
            let wide = params.wide;
            spawn(move || {
                let vcpu = VcpuId(v);
                let gfns: &[u64] = if v == 0 { &[0, 2] } else { &[0] };
                for &gfn in gfns {
                    let result = w.vm.translate(vcpu, Gfn(gfn)).expect("translate");
                    if matches!(result, Translation::Mapped { .. }) && w.vm.mmu_valid_gen() != 0 {
                        w.flags[3].raise();
                    }
                }
                if v == 0 {
                    w.vm.page_fault(vcpu, Gfn(3), false).expect("fault");
                }
                if wide && v == 0 {
                    w.vm.handle_requests(vcpu).expect("handle");
                    w.vm.translate(vcpu, Gfn(2)).expect("translate");
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
    if w.flags[3].is_up() && scenario.name == S2.name {
        tally.mark(1);
    }
    if scenario.name == S2B.name
        && vm
            .events()
            .iter()
            .filter(|e| e.actor == Actor::Zapper)
            .skip_while(|e| !matches!(e.what, What::LockBreak { .. }))
            .any(|e| matches!(&e.what, What::CommitZap { sps } if !sps.is_empty()))
    {
        tally.mark(1);
    }
    finish(&w, scenario.name, params);
}

/// Runs an invalidation-like operation; a livelocked zap is an I6 violation
/// (the zap gave up after its step bound), any other error a bug in the model.
/// The zapper thread of most scenarios: one fast invalidate-all, checked.
fn spawn_fast_zapper(w: &Arc<World>) -> JoinHandle<()> {
    let w = w.clone();
    spawn(move || {
        zap_checked(
            &w,
            "invalidate_zap_all_pages",
            w.vm.invalidate_zap_all_pages(),
        )
    })
}

fn zap_checked(w: &World, what: &str, result: Result<fastzap::ZapStats, fastzap::MmuError>) {
    match result {
        Ok(_) => {}
        Err(e @ fastzap::MmuError::ZapLivelock { .. }) => {
            w.violate(Invariant::I6, format!("{what}: {e}"))
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Like [`zap_checked`] for operations returning `()`.
fn op_checked(w: &World, what: &str, result: Result<(), fastzap::MmuError>) {
    zap_checked(w, what, result.map(|()| fastzap::ZapStats::default()));
}

/// Whether `actor` took `mmu_lock` while the zapper was between a lock break
/// and its next acquisition.
fn locked_inside_lock_break(events: &[Event], actor: Actor) -> bool {
    let mut in_break = false;
    for event in events {
        match (&event.actor, &event.what) {
            (Actor::Zapper | Actor::Memslot, What::LockBreak { .. }) => in_break = true,
            (Actor::Zapper | Actor::Memslot, What::Lock) => in_break = false,
            (a, What::Lock) if *a == actor && in_break => return true,
            _ => {}
        }
    }
    false
}

/// Whether an event matching `pred` was logged after the first event matching
/// `after` (by anyone).
fn after(events: &[Event], after: impl Fn(&Event) -> bool, pred: impl Fn(&Event) -> bool) -> bool {
    events.iter().skip_while(|e| !after(e)).any(pred)
}

/// Whether an event matching `pred` was logged after the first event matching
/// `start` and before the last event of `actor`: inside that actor's operation.
fn during(
    events: &[Event],
    start: impl Fn(&Event) -> bool,
    actor: Actor,
    pred: impl Fn(&Event) -> bool,
) -> bool {
    let Some(first) = events.iter().position(start) else {
        return false;
    };
    let Some(last) = events.iter().rposition(|e| e.actor == actor) else {
        return false;
    };
    first < last && events[first..last].iter().any(pred)
}

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

/// S5 (I3, I5). The vCPUs use one root. The zapper invalidates: the root is in
/// use, so it is marked invalid and kept on the active list; the vCPUs handle
/// their reload requests, and the last one to drop the root zaps and commits it
/// in `mmu_free_roots`. Nothing may free the root while a vCPU holds it, and
/// nothing may leave it behind. Narrow: one vCPU reloads and translates while
/// the zapper runs. Wide: two vCPUs share the root and both reload twice.
pub fn s5_obsolete_root_freed_by_free_roots(params: &Params, tally: &Tally) {
    tally.execution();
    let vcpus = if params.wide { 2 } else { 1 };
    let w = world(config(params, vcpus, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in 0..vcpus {
        vm.handle_requests(VcpuId(v)).expect("handle");
    }
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    let zapper = spawn_fast_zapper(&w);
    let vcpu_threads: Vec<_> = (0..vcpus)
        .map(|v| {
            let w = w.clone();
            let rounds = if params.wide { 2 } else { 1 };
            spawn(move || {
                for _ in 0..rounds {
                    w.vm.handle_requests(VcpuId(v)).expect("handle");
                    w.vm.translate(VcpuId(v), Gfn(0)).expect("translate");
                }
            })
        })
        .collect();
    zapper.join().expect("zapper");
    for v in vcpu_threads {
        v.join().expect("vcpu");
    }
    let events = vm.events();
    if events.iter().any(|e| {
        matches!(
            e.what,
            What::PrepareZap {
                kept_root: true,
                ..
            }
        )
    }) {
        tally.mark(0);
    }
    // A vCPU dropped the root and zapped it in the same mmu_lock hold.
    let freed_by_vcpu = events.windows(2).any(|pair| {
        matches!(pair[0].actor, Actor::Vcpu(_))
            && matches!(pair[0].what, What::FreeRoot { .. })
            && pair[1].actor == pair[0].actor
            && matches!(
                pair[1].what,
                What::PrepareZap {
                    kept_root: false,
                    ..
                }
            )
    });
    if freed_by_vcpu {
        tally.mark(1);
    }
    finish(&w, S5.name, params);
}

/// S6 (I5, I3). The vCPU faults on gfn 2 (a new child under its root) while the
/// zapper bumps the generation and zaps; the fault may wait on `mmu_lock` until
/// the zapper has passed (kept and invalidated) the root. It must then retry,
/// never link a new page under the obsolete root. Wide: two vCPUs, more faults,
/// then reloads.
pub fn s6_fault_into_passed_root(params: &Params, tally: &Tally) {
    tally.execution();
    let vcpus = if params.wide { 2 } else { 1 };
    let w = world(config(params, vcpus, 1));
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in 0..vcpus {
        vm.handle_requests(VcpuId(v)).expect("handle");
    }
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    let zapper = spawn_fast_zapper(&w);
    let threads: Vec<_> = (0..vcpus)
        .map(|v| {
            let w = w.clone();
            let wide = params.wide;
            spawn(move || {
                let vcpu = VcpuId(v);
                let fault =
                    w.vm.page_fault(vcpu, Gfn(2 + v as u64), true)
                        .expect("fault");
                match fault {
                    Fault::Retry(RetryReason::ObsoleteRoot) => w.flags[0].raise(),
                    Fault::Mapped { .. } if w.vm.mmu_valid_gen() == 0 => w.flags[1].raise(),
                    _ => {}
                }
                if wide {
                    w.vm.page_fault(vcpu, Gfn(1), false).expect("fault");
                    w.vm.handle_requests(vcpu).expect("handle");
                    w.vm.page_fault(vcpu, Gfn(2), true).expect("fault");
                }
            })
        })
        .collect();
    zapper.join().expect("zapper");
    for t in threads {
        t.join().expect("vcpu");
    }
    for mark in 0..2 {
        if w.flags[mark].is_up() {
            tally.mark(mark);
        }
    }
    finish(&w, S6.name, params);
}

/// S7 (I3, I6, I8). One page per batch and the 3.11 commit shape, so the zap
/// leaves prepared pages on `zapped_obsolete_pages` at every lock break; the shrinker, which frees those
/// first and otherwise zaps the oldest valid pages, runs against it. No page may
/// be committed twice or leaked, and the zap must stay within its bound. Wide:
/// the shrinker runs twice and a vCPU faults.
pub fn s7_shrinker_vs_zap(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 1, 1);
    cfg.batch = 1;
    // The 3.11 shape: only it parks prepared pages on zapped_obsolete_pages
    // (the per-batch commit leaves nothing for the shrinker to find there).
    cfg.commit = fastzap::ZapCommit::AtEnd;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    vm.page_fault(V0, Gfn(2), true).expect("fault");
    let zapper = spawn_fast_zapper(&w);
    let shrinker = {
        let w = w.clone();
        let rounds = if params.wide { 2 } else { 1 };
        spawn(move || {
            for _ in 0..rounds {
                let gen_before = w.vm.mmu_valid_gen();
                let freed = w.vm.shrink(2).expect("shrink");
                if freed > 0 && gen_before == 0 && w.vm.mmu_valid_gen() == 0 {
                    w.flags[1].raise();
                }
            }
        })
    };
    let vcpu = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            w.vm.handle_requests(V0).expect("handle");
            w.vm.page_fault(V0, Gfn(1), true).expect("fault");
        })
    });
    zapper.join().expect("zapper");
    shrinker.join().expect("shrinker");
    if let Some(v) = vcpu {
        v.join().expect("vcpu");
    }
    let events = vm.events();
    if locked_inside_lock_break(&events, Actor::Shrinker)
        && events.iter().any(|e| {
            e.actor == Actor::Shrinker
                && matches!(&e.what, What::CommitZap { sps } if !sps.is_empty())
        })
    {
        tally.mark(0);
    }
    if w.flags[1].is_up() {
        tally.mark(1);
    }
    finish(&w, S7.name, params);
}

/// S8 (I5). A one-bit generation: two invalidations bring `mmu_valid_gen` back
/// to 0 while vCPU 1 still holds the root of the first generation 0, now
/// invalid. vCPU 0 reloads meanwhile; no root or page may be reused from
/// before the wrap (an invalid page is obsolete whatever its generation).
/// Wide: a second thread invalidates concurrently (three invalidations in
/// all), and vCPU 0 faults and reloads twice.
pub fn s8_generation_wrap(params: &Params, tally: &Tally) {
    tally.execution();
    let mut cfg = config(params, 2, 1);
    cfg.gen_bits = 1;
    let w = world(cfg);
    let vm = &w.vm;
    vm.create_memslot(slot(0, 0, 4)).expect("slot");
    vm.handle_requests(V0).expect("handle");
    vm.handle_requests(V1).expect("handle");
    vm.page_fault(V0, Gfn(0), true).expect("fault");
    let zapper = {
        let w = w.clone();
        spawn(move || {
            for _ in 0..2 {
                zap_checked(
                    &w,
                    "invalidate_zap_all_pages",
                    w.vm.invalidate_zap_all_pages(),
                );
            }
        })
    };
    // Wide: a second caller of invalidate-all (logged as the zapper too), which
    // slots_lock serializes with the first (bug 6 is doing without it).
    let second_zapper = params.wide.then(|| {
        let w = w.clone();
        spawn(move || {
            zap_checked(
                &w,
                "invalidate_zap_all_pages",
                w.vm.invalidate_zap_all_pages(),
            );
        })
    });
    let vcpu = {
        let w = w.clone();
        let wide = params.wide;
        spawn(move || {
            w.vm.handle_requests(V0).expect("handle");
            if wide {
                w.vm.page_fault(V0, Gfn(1), true).expect("fault");
                w.vm.handle_requests(V0).expect("handle");
                w.vm.page_fault(V0, Gfn(1), true).expect("fault");
            }
        })
    };
    zapper.join().expect("zapper");
    if let Some(z) = second_zapper {
        z.join().expect("zapper");
    }
    vcpu.join().expect("vcpu");
    // The second bump is the wrap (1 -> 0); a root loaded after it.
    let events = vm.events();
    let wrapped = |e: &Event| matches!(e.what, What::GenBump { from: 1, to: 0 });
    if after(&events, wrapped, |e| {
        e.actor == Actor::Vcpu(0) && matches!(e.what, What::LoadRoot { .. })
    }) {
        tally.mark(0);
    }
    // At the end, vCPU 0 reloads once more: whatever generation it is now, the
    // root it gets must be a fresh one.
    vm.handle_requests(V0).expect("handle");
    finish(&w, S8.name, params);
}

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

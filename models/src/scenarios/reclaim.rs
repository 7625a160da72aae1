//! # Lockless readers and reclamation: S2, S2b, S7
//!
//! Pages are committed and freed while something still reaches them: a
//! lockless translate against the zap's commit and the reclaimer's grace
//! period (S2, and S2b at the per-batch commit), and the shrinker against the
//! zap's pages left at a lock break (S7).

use fastzap::check::{Actor, Invariant, What};
use fastzap::checking::sync::spawn;
use fastzap::{Fault, Gfn, Translation, VcpuId};

use super::{Scenario, V0, V1, locked_inside_lock_break, spawn_fast_zapper};
use crate::harness::{Params, config, finish, slot, world};
use crate::tally::Tally;

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

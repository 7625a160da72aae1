//! # Faults and reloads versus the fast zap: S1, S5, S6, S8
//!
//! A vCPU faults, holds a root or reloads while the zapper bumps the
//! generation and zaps: the reload request made with the bump (S1), the
//! obsolete root freed by its last user (S5), the fault that waited for
//! `mmu_lock` past its root (S6), and the generation that wraps (S8).

use fastzap::check::{Actor, Event, Invariant, What};
use fastzap::checking::sync::spawn;
use fastzap::{Fault, Gfn, Requests, RetryReason, VcpuId};

use super::{Scenario, V0, V1, after, spawn_fast_zapper, zap_checked};
use crate::harness::{Params, World, config, finish, slot, world};
use crate::tally::Tally;

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

/// S8: generation wraparound with a one-bit generation.
pub const S8: Scenario = Scenario {
    name: "s8",
    race: "mmu_valid_gen wraps while a vCPU still holds an invalid root of the old value",
    invariants: &[Invariant::I5],
    marks: &["a root was loaded after the generation wrapped"],
    run: s8_generation_wrap,
};

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

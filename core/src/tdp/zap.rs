//! # Invalidate everything, and zap roots (`kvm_mmu_zap_all_fast`, `tdp_mmu_zap_root`)
//!
//! [`kvm_mmu_zap_all_fast`], the caller holding `slots_lock`:
//! 1. under the write lock: bump `mmu_valid_gen` (the shadow MMU's half),
//!    [`kvm_tdp_mmu_invalidate_roots`] (each valid root marked invalid and
//!    scheduled to zap, never twice; the MMU's reference is gifted to the
//!    zapper), and a request to every vCPU to free obsolete roots, made
//!    before anything can drop the lock;
//! 2. under the read lock, concurrently with faults:
//!    [`kvm_tdp_mmu_zap_invalidated_roots`] zaps each scheduled root and
//!    only then puts the gifted reference: the root stays on the list, where
//!    the notifiers reach it, for as long as its zap runs (d62007edf01f).
//!
//! It all finishes before the caller returns (0df9dab891ff moved the zap
//! back into the caller's task). No TLB flush is made for an invalid root:
//! no vCPU runs on it past the request, and a vCPU loading a new root
//! flushes.
//!
//! [`tdp_mmu_zap_root`] zaps in passes of decreasing granularity, one per
//! level from the leaves up to the root's entries (the 4 KiB, 2 MiB, 1 GiB
//! and root passes of 6.9, in this table's levels), so that one step never
//! tears down a huge subtree in a single read-side section (1b6043e8e584,
//! 8ca983631f3c), yielding between entries ([`tdp_mmu_iter_cond_resched`]).

use crate::config::Config;
use crate::event::{Actor, What};
use crate::stats::ZapStats;
use crate::sync::Ordering;
use crate::vcpu::{Requests, make_all_cpus_request};

use super::TdpCtx;
use super::iter::{TdpIter, tdp_mmu_iter_cond_resched};
use super::lock::Held;
use super::removed::{Removed, tdp_mmu_iter_set_spte, tdp_mmu_set_spte_atomic};
use super::root::{TdpRoot, kvm_tdp_mmu_put_root};
use super::spte::RawSpte;

/// What a zap did, as [`ZapStats`] reports it on a TDP VM.
#[derive(Debug, Default)]
pub(crate) struct ZapCount {
    pub(crate) removed: Removed,
    /// Entries the walks examined.
    pub(crate) steps: u64,
    /// Lock holds taken (first holds and re-takes after a yield).
    pub(crate) holds: u64,
}

/// `__tdp_mmu_zap_root`: one pass, zapping the present entries of
/// `zap_level` (and so everything below them).
fn tdp_mmu_zap_root_level(
    ctx: &TdpCtx<'_>,
    held: &mut Held<'_>,
    root: &TdpRoot,
    zap_level: u8,
    count: &mut ZapCount,
) {
    let shared = held.shared();
    let mut iter = TdpIter::start(
        ctx,
        held.guard(),
        root.table,
        root.level,
        zap_level,
        0,
        ctx.max_gfn(),
    );
    while iter.in_range() {
        count.steps += 1;
        // Zapping entries of an invalid root, or under the write lock with
        // the flush made at the yield (`kvm_tdp_mmu_zap_all`), owes no flush
        // here; see `kvm_tdp_mmu_zap_all` for the write-lock case.
        if tdp_mmu_iter_cond_resched(held, &mut iter, !shared, ctx.vcpus, ctx.config) {
            iter.next(ctx, held.guard());
            continue;
        }
        if !iter.old_spte.is_present() || iter.level > zap_level {
            iter.next(ctx, held.guard());
            continue;
        }
        if !shared {
            tdp_mmu_iter_set_spte(
                ctx,
                held.guard(),
                &mut iter,
                RawSpte::NONPRESENT,
                &mut count.removed,
            );
        } else if tdp_mmu_set_spte_atomic(
            ctx,
            held.guard(),
            &mut iter,
            RawSpte::NONPRESENT,
            &mut count.removed,
        )
        .is_err()
        {
            // The entry changed under us: look at it again (`goto retry`).
            continue;
        }
        iter.next(ctx, held.guard());
    }
}

/// `tdp_mmu_zap_root`: every level's pass, leaves first.
pub(crate) fn tdp_mmu_zap_root(
    ctx: &TdpCtx<'_>,
    held: &mut Held<'_>,
    root: &TdpRoot,
    count: &mut ZapCount,
) {
    for zap_level in 1..=root.level {
        tdp_mmu_zap_root_level(ctx, held, root, zap_level, count);
    }
}

/// `kvm_tdp_mmu_invalidate_roots`, under the write lock: every valid root
/// becomes invalid and scheduled to zap. A root already invalid is skipped,
/// so that no root is scheduled (and its MMU reference gifted) twice.
pub(crate) fn kvm_tdp_mmu_invalidate_roots(ctx: &TdpCtx<'_>, _held: &Held<'_>) -> usize {
    let mut scheduled = 0;
    for root in ctx.tdp.roots_snapshot() {
        if !root.is_invalid() {
            root.scheduled_to_zap.store(true, Ordering::Release);
            root.invalid.store(true, Ordering::Release);
            scheduled += 1;
            ctx.ghost.event(Actor::Zapper, || {
                What::Note(format!("tdp root {} invalid, scheduled to zap", root.id))
            });
        }
    }
    scheduled
}

/// `kvm_tdp_mmu_zap_invalidated_roots`, under the read lock: zap each root
/// scheduled to zap, then put the reference the invalidation gifted.
pub(crate) fn kvm_tdp_mmu_zap_invalidated_roots(ctx: &TdpCtx<'_>, count: &mut ZapCount) {
    let mut held = Held::read(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
    for root in ctx.tdp.roots_snapshot() {
        // The iterator's own reference (`for_each_tdp_mmu_root_yield_safe`).
        if !root.kvm_tdp_mmu_get_root() {
            continue;
        }
        if root.scheduled_to_zap.swap(false, Ordering::AcqRel) {
            if !root.is_invalid() {
                ctx.ghost.violate(crate::invariant::Invariant::I3, || {
                    format!("TDP root {} scheduled to zap but valid", root.id)
                });
            }
            tdp_mmu_zap_root(ctx, &mut held, &root, count);
            ctx.ghost.event(Actor::Zapper, || {
                What::Note(format!("tdp root {} zapped; gifted reference put", root.id))
            });
            kvm_tdp_mmu_put_root(ctx, held.guard(), &root, Actor::Zapper);
        }
        kvm_tdp_mmu_put_root(ctx, held.guard(), &root, Actor::Zapper);
    }
    count.holds += held.holds;
}

/// `kvm_mmu_zap_all_fast` on a TDP VM; the caller holds `slots_lock`.
pub(crate) fn kvm_mmu_zap_all_fast(ctx: &TdpCtx<'_>, gen_mask: u64) -> ZapStats {
    let pages_at_start = ctx.tdp.live_tables() as u64;
    let cut = {
        let held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
        let generation = ctx.mmu_valid_gen.load(Ordering::Acquire);
        ctx.mmu_valid_gen
            .store(generation.wrapping_add(1) & gen_mask, Ordering::Release);
        kvm_tdp_mmu_invalidate_roots(ctx, &held);
        // KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, and the flush `kvm_mmu_load`
        // makes on the new root.
        make_all_cpus_request(
            ctx.vcpus,
            Requests::RELOAD | Requests::TLB_FLUSH,
            ctx.config,
        );
        ctx.ghost.tick()
    };
    let mut count = ZapCount {
        holds: 1,
        ..ZapCount::default()
    };
    kvm_tdp_mmu_zap_invalidated_roots(ctx, &mut count);
    ctx.ghost.kill_all(cut);
    stats(pages_at_start, &count)
}

/// `kvm_tdp_mmu_zap_all`, under the write lock: zap every root, valid and
/// invalid. The kernel calls it only when the VM is going away
/// (`kvm_arch_flush_shadow_all` from `kvm_mmu_notifier_release` and
/// `kvm_destroy_vm`), with no vCPU left, so it neither invalidates a root
/// nor asks a vCPU for anything, and flushes nothing.
/// [`Vm::zap_all`](crate::Vm::zap_all) may run while vCPUs run, and what a
/// caller sees after it must not depend on the MMU: the shadow MMU's
/// `kvm_mmu_zap_all` zaps the roots too, and zapping a root invalidates it
/// and asks every vCPU to reload. So, in the same write-lock hold, fastzap
/// first invalidates the valid roots as [`kvm_tdp_mmu_invalidate_roots`]
/// does (gifting the MMU's reference of each), then requests a reload and
/// a flush from every vCPU, then zaps every root and puts the reference
/// the invalidation gifted, once (taking [`TdpRoot::scheduled_to_zap`]).
/// Remote TLBs are flushed before the pin is dropped (at each yield and at
/// the end): the tables it freed must be unreachable from every TLB once
/// the grace period ends (bb95dfb9e2df).
pub(crate) fn kvm_tdp_mmu_zap_all(ctx: &TdpCtx<'_>) -> ZapStats {
    let pages_at_start = ctx.tdp.live_tables() as u64;
    let mut count = ZapCount::default();
    let cut = ctx.ghost.tick();
    let mut held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
    kvm_tdp_mmu_invalidate_roots(ctx, &held);
    // As the shadow MMU's zap of a root (`kvm_reload_remote_mmus`), before
    // anything can drop the lock.
    make_all_cpus_request(
        ctx.vcpus,
        Requests::RELOAD | Requests::TLB_FLUSH,
        ctx.config,
    );
    for root in ctx.tdp.roots_snapshot() {
        if !root.kvm_tdp_mmu_get_root() {
            continue;
        }
        tdp_mmu_zap_root(ctx, &mut held, &root, &mut count);
        if root.scheduled_to_zap.swap(false, Ordering::AcqRel) {
            kvm_tdp_mmu_put_root(ctx, held.guard(), &root, Actor::Zapper);
        }
        kvm_tdp_mmu_put_root(ctx, held.guard(), &root, Actor::Zapper);
    }
    flush_before_unpin(ctx.vcpus, ctx.config);
    count.holds = held.holds;
    drop(held);
    ctx.ghost.kill_all(cut);
    stats(pages_at_start, &count)
}

/// `kvm_flush_remote_tlbs`, inside the pin.
pub(crate) fn flush_before_unpin(vcpus: &[crate::vcpu::Vcpu], config: &Config) {
    make_all_cpus_request(vcpus, Requests::TLB_FLUSH, config);
}

fn stats(pages_at_start: u64, count: &ZapCount) -> ZapStats {
    ZapStats {
        pages_at_start,
        zapped: count.removed.tables,
        holds: count.holds,
        max_batch: count.removed.tables,
        steps: count.steps,
        committed: count.removed.tables,
        ..ZapStats::default()
    }
}

//! # A page fault on the TDP MMU (`kvm_tdp_page_fault`, `kvm_tdp_mmu_map`)
//!
//! Before the lock: the slot and the pfn (`kvm_faultin_pfn`), with the
//! notifier sequence read first (`mmu_invalidate_seq`). A gfn that no slot
//! maps first tries the lockless MMIO path (`handle_mmio_page_fault`). Then,
//! under the read lock:
//! - `is_page_fault_stale`: a fault whose root is invalid, or whose vCPU has
//!   a reload pending, retries (a955cad84cda); so does a fault that an
//!   mmu-notifier invalidation ran or is running across
//!   (`mmu_invalidate_retry_gfn`);
//! - [`kvm_tdp_mmu_map`] inside an epoch pin: walk from the root; a frozen
//!   entry means another thread is tearing it down: start again from the
//!   root; a missing table is allocated and linked by compare-and-exchange
//!   (`tdp_mmu_link_sp`), and freed at once if the exchange lost; the leaf
//!   is installed by compare-and-exchange (`tdp_mmu_map_handle_target_level`).
//!
//! The kernel answers a lost exchange with `RET_PF_RETRY`, and the vCPU
//! faults again at once; fastzap walks again from the root inside the same
//! call, so that the retries a caller sees are those of the shadow MMU
//! (no root, root invalid, slot INVALID, notifier race).
//!
//! A fault on a slot that is INVALID (being deleted or moved) retries. The
//! kernel's vCPU holds `kvm->srcu` across `KVM_RUN`, which orders it against
//! the deletion; fastzap's fault pins the epoch for its whole length.

use crate::sync::{Arc, Guard, Ordering, yield_now};
use crate::vcpu::Vcpu;

use super::TdpCtx;
use super::iter::TdpIter;
use super::lock::Held;
use super::removed::{Removed, tdp_mmu_set_spte_atomic};
use super::root::TdpRoot;
use super::spte::{RawSpte, Spte};
use super::table::{alloc_table, free_unlinked_now};
use super::walk::get_mmio_spte;

/// Why a TDP fault gave up (the shadow MMU's `RetryReason`, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stale {
    NoRoot,
    ObsoleteRoot,
    InvalidSlot,
    NotifierRace,
}

/// What a TDP fault did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Mapped(u64),
    Mmio,
    Retry(Stale),
}

enum Target {
    Leaf { pfn: u64, hva: u64, writable: bool },
    Mmio { generation: u64 },
}

/// `kvm_tdp_page_fault` on `gfn` (checked), a write if `write`.
pub(crate) fn kvm_tdp_page_fault(
    ctx: &TdpCtx<'_>,
    v: &Vcpu,
    vcpu: usize,
    gfn: u64,
    write: bool,
) -> Outcome {
    // A fault drops the faulting address's TLB entry (as x86 does).
    v.tlb.evict(gfn);
    let pin = ctx.reclaimer.pin();
    let mmu_seq = ctx.tdp.invalidate_seq.load(Ordering::Acquire);
    let snapshot = ctx.ghost.now();
    let slots = ctx.memslots.load();
    let target = match slots.search(gfn) {
        Some(slot) if slot.is_invalid() => return Outcome::Retry(Stale::InvalidSlot),
        Some(slot) => {
            let hva = slot.gfn_to_hva(gfn);
            Target::Leaf {
                pfn: ctx.host.hva_to_pfn(hva),
                hva,
                writable: write,
            }
        }
        // Do not cache MMIO while the memslots are in flux.
        None if slots.update_in_progress() => return Outcome::Mmio,
        None => {
            if handle_mmio_page_fault(ctx, v, vcpu, gfn, slots.generation, &pin) {
                return Outcome::Mmio;
            }
            Target::Mmio {
                generation: slots.generation,
            }
        }
    };
    drop(slots);
    drop(pin);
    let Some(root) = ctx.tdp.vcpu_roots[vcpu].lock().clone() else {
        return Outcome::Retry(Stale::NoRoot);
    };
    let held = Held::read(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
    // is_page_fault_stale.
    if root.is_invalid() || v.requests().reload() {
        return Outcome::Retry(Stale::ObsoleteRoot);
    }
    if ctx.tdp.invalidate_in_progress.load(Ordering::Acquire) > 0
        || ctx.tdp.invalidate_seq.load(Ordering::Acquire) != mmu_seq
    {
        return Outcome::Retry(Stale::NotifierRace);
    }
    if let Target::Leaf { pfn, hva, .. } = target {
        // Past the retry checks: the pfn read before the lock is still the
        // host's (no invalidation ran or runs since the snapshot).
        ctx.ghost.check_pfn_fresh(hva, pfn, gfn, snapshot);
    }
    let outcome = kvm_tdp_mmu_map(ctx, held.guard(), &root, gfn, &target);
    drop(held);
    if let Target::Mmio { generation } = target {
        v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
        v.mmio_gen.store(generation, Ordering::Relaxed);
    }
    outcome
}

/// `handle_mmio_page_fault`: a lockless walk of the vCPU's root; an MMIO
/// entry of the current memslots generation is trusted without the lock.
fn handle_mmio_page_fault(
    ctx: &TdpCtx<'_>,
    v: &Vcpu,
    vcpu: usize,
    gfn: u64,
    generation: u64,
    guard: &Guard<'_>,
) -> bool {
    let Some(root) = ctx.tdp.vcpu_roots[vcpu].lock().clone() else {
        return false;
    };
    v.walk_lockless_begin(ctx.config);
    let found = get_mmio_spte(ctx, guard, &root, gfn);
    v.walk_lockless_end();
    let mask = (1u64 << ctx.config.mmio_gen_bits) - 1;
    if found == Some(generation & mask) {
        v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
        v.mmio_gen.store(generation, Ordering::Relaxed);
        return true;
    }
    false
}

/// `kvm_tdp_mmu_map`: install `target` at `gfn` under the read lock.
fn kvm_tdp_mmu_map(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    root: &Arc<TdpRoot>,
    gfn: u64,
    target: &Target,
) -> Outcome {
    let mut removed = Removed::default();
    'retry: loop {
        let mut iter = TdpIter::start(ctx, guard, root.table, root.level, 1, gfn, gfn + 1);
        while iter.in_range() && iter.level > 1 {
            if iter.old_spte.is_frozen() {
                yield_now();
                continue 'retry;
            }
            if let Spte::Table(_) = iter.old_spte.decode() {
                iter.next(ctx, guard);
                continue;
            }
            // tdp_mmu_link_sp: a new table for the level below.
            let child = alloc_table(ctx.tdp, ctx.ghost, ctx.config.spte_count);
            if tdp_mmu_set_spte_atomic(ctx, guard, &mut iter, RawSpte::table(child), &mut removed)
                .is_err()
            {
                free_unlinked_now(ctx.tdp, ctx.ghost, child);
                yield_now();
                continue 'retry;
            }
            iter.next(ctx, guard);
        }
        if !iter.in_range() || iter.level != 1 {
            // The walk did not reach the leaf level: start again.
            yield_now();
            continue 'retry;
        }
        // tdp_mmu_map_handle_target_level.
        if iter.old_spte.is_frozen() {
            yield_now();
            continue 'retry;
        }
        let new = match *target {
            Target::Leaf { pfn, writable, .. } => {
                if let Spte::Leaf {
                    pfn: old_pfn,
                    writable: old_writable,
                    ..
                } = iter.old_spte.decode()
                    && old_pfn == pfn
                    && (old_writable || !writable)
                {
                    // Spurious: already mapped as asked.
                    return Outcome::Mapped(pfn);
                }
                RawSpte::leaf(pfn, writable)
            }
            Target::Mmio { generation } => {
                let mask = (1u64 << ctx.config.mmio_gen_bits) - 1;
                RawSpte::mmio(generation & mask)
            }
        };
        let table = iter.table().get(guard);
        let index = ctx.index(gfn, 1);
        table.ghost.installed_at(index, ctx.ghost.tick());
        if tdp_mmu_set_spte_atomic(ctx, guard, &mut iter, new, &mut removed).is_err() {
            yield_now();
            continue 'retry;
        }
        return match *target {
            Target::Leaf { pfn, .. } => Outcome::Mapped(pfn),
            Target::Mmio { .. } => Outcome::Mmio,
        };
    }
}

//! # mmu-notifiers on the TDP MMU
//!
//! - [`kvm_tdp_mmu_unmap_gfn_range`] (`invalidate_range_start`): under the
//!   write lock, zap the leaves mapping the range in EVERY root, valid and
//!   invalid. An invalid root may be in the middle of its zap, yielded: a
//!   notifier that skipped it returned while the root still mapped the host
//!   page, and the zap finishing later wrote Accessed/Dirty state to a page
//!   the host had freed (d62007edf01f). Then flush; the host remaps; then
//!   `invalidate_range_end` bumps `mmu_invalidate_seq`.
//! - [`kvm_tdp_mmu_age_gfn_range`] (`clear_flush_young`, `test_young`):
//!   under the read lock, clear (or test) Accessed bits by
//!   compare-and-exchange, so that a bit the hardware sets meanwhile is not
//!   lost (ba3a6120a4e7); flush if any was set and cleared.
//! - [`kvm_tdp_mmu_set_spte_gfn`] (`change_pte`, removed from the kernel in
//!   6.9 with the notifier itself): zap the leaf and map the host's new page
//!   read-only, under the write lock, then flush.

use crate::event::{Actor, What};
use crate::memslot::Memslot;
use crate::sync::Ordering;

use super::TdpCtx;
use super::iter::{TdpIter, tdp_mmu_iter_cond_resched};
use super::lock::Held;
use super::removed::{Removed, tdp_mmu_iter_set_spte};
use super::spte::{ACCESSED, RawSpte, Spte};
use super::zap::flush_before_unpin;

/// Every (slot, gfn range) whose host pages intersect `[start, end)`, over
/// the published slots, INVALID ones included.
pub(crate) fn hva_targets(ctx: &TdpCtx<'_>, start: u64, end: u64) -> Vec<(Memslot, u64, u64)> {
    let slots = ctx.memslots.load();
    slots
        .in_hva_range(start, end)
        .into_iter()
        .map(|slot| {
            let gfns = slot.gfns_in_hva(start, end);
            (slot.clone(), gfns.start, gfns.end)
        })
        .filter(|(_, s, e)| s < e)
        .collect()
}

/// `tdp_mmu_zap_leafs`: zap the leaves of every root mapping `[start,
/// end)`, under the write lock, yielding between entries (with the owed
/// flush made before the pin is dropped). Returns the leaves zapped.
pub(crate) fn tdp_mmu_zap_leafs(
    ctx: &TdpCtx<'_>,
    held: &mut Held<'_>,
    start: u64,
    end: u64,
) -> u64 {
    let mut removed = Removed::default();
    for root in ctx.tdp.roots_snapshot() {
        // for_each_tdp_mmu_root_yield_safe: valid and invalid roots.
        if !root.kvm_tdp_mmu_get_root() {
            continue;
        }
        let mut iter = TdpIter::start(ctx, held.guard(), root.table, root.level, 1, start, end);
        while iter.in_range() {
            let owed = removed.leaves > 0;
            if tdp_mmu_iter_cond_resched(held, &mut iter, owed, ctx.vcpus, ctx.config) {
                iter.next(ctx, held.guard());
                continue;
            }
            if iter.old_spte.is_leaf() {
                tdp_mmu_iter_set_spte(
                    ctx,
                    held.guard(),
                    &mut iter,
                    RawSpte::NONPRESENT,
                    &mut removed,
                );
            }
            iter.next(ctx, held.guard());
        }
        super::root::kvm_tdp_mmu_put_root(ctx, held.guard(), &root, Actor::Notifier);
    }
    removed.leaves
}

/// `kvm_tdp_mmu_unmap_gfn_range` over every target of `[start, end)`;
/// `invalidate_range_start` and `_end` around it. Returns leaves zapped.
pub(crate) fn kvm_tdp_mmu_unmap_gfn_range(
    ctx: &TdpCtx<'_>,
    start: u64,
    end: u64,
    cut: u64,
) -> usize {
    let targets;
    let begun;
    let mut unmapped = 0;
    {
        let mut held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
        ctx.tdp
            .invalidate_in_progress
            .fetch_add(1, Ordering::AcqRel);
        begun = ctx.ghost.notifier_locked_begin(start..end);
        targets = hva_targets(ctx, start, end);
        for (_, gfn_start, gfn_end) in &targets {
            unmapped += tdp_mmu_zap_leafs(ctx, &mut held, *gfn_start, *gfn_end);
        }
        if unmapped > 0 {
            flush_before_unpin(ctx.vcpus, ctx.config);
        }
    }
    for (slot, gfn_start, gfn_end) in &targets {
        let hva = slot.gfn_to_hva(*gfn_start);
        ctx.host.remap(hva, slot.gfn_to_hva(*gfn_end));
    }
    ctx.ghost.event(Actor::Notifier, || {
        What::Note(format!(
            "tdp unmap [{start:#x}, {end:#x}): {unmapped} leaves"
        ))
    });
    invalidate_range_end(ctx, start..end, begun);
    ctx.ghost
        .kill_gfns(targets.iter().flat_map(|(_, s, e)| *s..*e), cut);
    unmapped as usize
}

/// `invalidate_range_end`: under the write lock, bump the sequence and drop
/// the in-progress count, so that a fault that read its pfn before or
/// during the invalidation retries.
fn invalidate_range_end(ctx: &TdpCtx<'_>, hvas: std::ops::Range<u64>, begun: u64) {
    let _held = ctx.tdp.mmu_lock.write();
    ctx.ghost.notifier_locked_end(hvas, begun);
    ctx.tdp.invalidate_seq.fetch_add(1, Ordering::AcqRel);
    ctx.tdp
        .invalidate_in_progress
        .fetch_sub(1, Ordering::AcqRel);
}

/// `kvm_tdp_mmu_age_gfn_range` (`clear`) and `kvm_tdp_mmu_test_age_gfn`:
/// whether a leaf mapping `[start, end)` in any root was accessed.
pub(crate) fn kvm_tdp_mmu_age_gfn_range(
    ctx: &TdpCtx<'_>,
    start: u64,
    end: u64,
    clear: bool,
) -> bool {
    let held = Held::read(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
    let mut young = false;
    for (_, gfn_start, gfn_end) in hva_targets(ctx, start, end) {
        for root in ctx.tdp.roots_snapshot() {
            let mut iter = TdpIter::start(
                ctx,
                held.guard(),
                root.table,
                root.level,
                1,
                gfn_start,
                gfn_end,
            );
            while iter.in_range() {
                let cell = iter.sptep(ctx, held.guard());
                let mut raw = iter.old_spte;
                while let Spte::Leaf { accessed: true, .. } = raw.decode() {
                    young = true;
                    if !clear {
                        break;
                    }
                    match cell.cmpxchg(raw, raw.without(ACCESSED)) {
                        Ok(()) => break,
                        Err(now) => raw = now,
                    }
                }
                iter.next(ctx, held.guard());
            }
        }
    }
    if young && clear {
        flush_before_unpin(ctx.vcpus, ctx.config);
    }
    young
}

/// `change_pte`: the host replaced the page at `page` (page-aligned).
/// Returns the leaves now mapping the new page.
pub(crate) fn kvm_tdp_mmu_set_spte_gfn(ctx: &TdpCtx<'_>, page: u64, cut: u64) -> usize {
    let end = page + crate::addr::PAGE_SIZE;
    let targets;
    let begun;
    let mut changed = 0;
    {
        let held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
        ctx.tdp
            .invalidate_in_progress
            .fetch_add(1, Ordering::AcqRel);
        begun = ctx.ghost.notifier_locked_begin(page..end);
        ctx.host.remap(page, end);
        let new_pfn = ctx.host.hva_to_pfn(page);
        targets = hva_targets(ctx, page, end);
        let mut removed = Removed::default();
        for (_, gfn_start, gfn_end) in &targets {
            for root in ctx.tdp.roots_snapshot() {
                let mut iter = TdpIter::start(
                    ctx,
                    held.guard(),
                    root.table,
                    root.level,
                    1,
                    *gfn_start,
                    *gfn_end,
                );
                while iter.in_range() {
                    if iter.old_spte.is_leaf() {
                        let table = iter.table().get(held.guard());
                        table
                            .ghost
                            .installed_at(ctx.index(iter.gfn, 1), ctx.ghost.tick());
                        let new = RawSpte::leaf(new_pfn, false);
                        tdp_mmu_iter_set_spte(ctx, held.guard(), &mut iter, new, &mut removed);
                        changed += 1;
                    }
                    iter.next(ctx, held.guard());
                }
            }
        }
        if changed > 0 {
            flush_before_unpin(ctx.vcpus, ctx.config);
        }
    }
    invalidate_range_end(ctx, page..end, begun);
    ctx.ghost
        .kill_gfns(targets.iter().flat_map(|(_, s, e)| *s..*e), cut);
    changed
}

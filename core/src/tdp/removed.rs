//! # Changing an entry, and what a removed table owes (`handle_changed_spte`, `handle_removed_pt`)
//!
//! Every change of an entry goes through [`handle_changed_spte`]: a table
//! that is no longer linked is torn down by [`handle_removed_pt`], which
//! freezes each of its entries with an atomic exchange (spinning while
//! another thread holds one frozen), handles each child's change
//! recursively, and frees the table through the reclaimer
//! ([`free_table`](super::table::free_table)). The exchange is atomic even
//! under the write lock: the hardware may set Accessed or Dirty bits through
//! a stale paging-structure cache, and a plain store would lose them
//! (ba3a6120a4e7).
//!
//! Under the read lock an entry changes only by compare-and-exchange
//! ([`tdp_mmu_set_spte_atomic`]); under the write lock by exchange
//! ([`tdp_mmu_iter_set_spte`]).

use crate::sync::{Guard, yield_now};

use super::TdpCtx;
use super::iter::TdpIter;
use super::spte::{RawSpte, Spte};
use super::table::{TablePtr, free_table};

/// What a change removed: tables handed to the reclaimer, leaves dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) tables: u64,
    pub(crate) leaves: u64,
}

/// `handle_changed_spte`: the entry of `level` mapping `gfn` went from `old`
/// to `new`.
pub(crate) fn handle_changed_spte(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    old: RawSpte,
    new: RawSpte,
    shared: bool,
    removed: &mut Removed,
) {
    if old == new {
        return;
    }
    match old.decode() {
        Spte::Table(child) => handle_removed_pt(ctx, guard, child, shared, removed),
        Spte::Leaf { pfn, .. } => {
            // A leaf replaced by anything but a leaf of the same page: the
            // page's Accessed and Dirty state goes to the host now
            // (`kvm_set_pfn_accessed`/`_dirty` in older kernels), read from
            // `old`, which the exchange returned with every bit set so far.
            let same = matches!(new.decode(), Spte::Leaf { pfn: p, .. } if p == pfn);
            if !same {
                removed.leaves += 1;
            }
        }
        _ => {}
    }
}

/// `handle_removed_pt`: `table` was unlinked; freeze and handle each of its
/// entries, then free it after a grace period.
pub(crate) fn handle_removed_pt(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    table: TablePtr,
    shared: bool,
    removed: &mut Removed,
) {
    let t = table.get(guard);
    for cell in t.sptes.iter() {
        let old = if shared {
            // Another thread may hold the entry frozen (it walked into this
            // table before the unlink): wait until it writes it back.
            loop {
                let old = cell.exchange(RawSpte::frozen());
                if !old.is_frozen() {
                    break old;
                }
                yield_now();
            }
        } else {
            let old = cell.read();
            if !old.is_present() {
                continue;
            }
            cell.exchange(RawSpte::frozen())
        };
        handle_changed_spte(ctx, guard, old, RawSpte::frozen(), shared, removed);
    }
    removed.tables += 1;
    free_table(ctx.tdp, guard, ctx.ghost, table);
}

/// `tdp_mmu_set_spte_atomic`: under the read lock, set the iterator's entry
/// to `new` if it still holds `iter.old_spte`. On failure the iterator's
/// `old_spte` is refreshed and `Err` returned (`-EBUSY`): the caller retries
/// or gives up.
pub(crate) fn tdp_mmu_set_spte_atomic(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    iter: &mut TdpIter,
    new: RawSpte,
    removed: &mut Removed,
) -> Result<(), ()> {
    // A frozen entry belongs to the thread that froze it.
    if iter.old_spte.is_frozen() {
        return Err(());
    }
    match iter.sptep(ctx, guard).cmpxchg(iter.old_spte, new) {
        Ok(()) => {
            handle_changed_spte(ctx, guard, iter.old_spte, new, true, removed);
            Ok(())
        }
        Err(now) => {
            iter.old_spte = now;
            Err(())
        }
    }
}

/// `tdp_mmu_iter_set_spte`: under the write lock, set the iterator's entry
/// to `new` by exchange (`kvm_tdp_mmu_write_spte`).
pub(crate) fn tdp_mmu_iter_set_spte(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    iter: &mut TdpIter,
    new: RawSpte,
    removed: &mut Removed,
) {
    let old = iter.sptep(ctx, guard).exchange(new);
    iter.old_spte = new;
    handle_changed_spte(ctx, guard, old, new, false, removed);
}

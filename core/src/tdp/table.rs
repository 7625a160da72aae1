//! # TDP tables: allocation and freeing after a grace period
//!
//! `tdp_mmu_alloc_sp` / `tdp_mmu_init_sp` allocate a table of `spte_count`
//! entries; a table unlinked from the tree is freed through the VM's
//! reclaimer after a grace period (`call_rcu(.., tdp_mmu_free_sp_rcu_callback)`),
//! because a lockless walker or another zapper may still be reading it
//! inside its epoch pin. The ghost counts tables as the shadow MMU's pages
//! (`Counts::pages`): allocated, retired (handed to the reclaimer) and freed.

use std::ptr::NonNull;

use crate::ghost::{self, Ghost, PageGhost};
use crate::ids::PageId;
use crate::sync::{Guard, Ordering};

use super::TdpMmu;
use super::spte::SpteCell;

/// A TDP table (`struct kvm_mmu_page` of a TDP MMU page and its `spt`).
#[repr(align(16))]
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) id: PageId,
    pub(crate) sptes: Box<[SpteCell]>,
    /// When each leaf entry was installed, for the I4 checks.
    pub(crate) ghost: PageGhost,
}

/// A table's address. Dereferenced only through [`TablePtr::get`], inside an
/// epoch pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TablePtr(NonNull<Table>);

// SAFETY: a TablePtr is an address; what it may be used for is governed by `get`.
unsafe impl Send for TablePtr {}
// SAFETY: as above.
unsafe impl Sync for TablePtr {}

impl Table {
    /// About how much memory the table holds, heap parts included: the
    /// table, its entries and (in a checking build) each entry's install
    /// time, for the checking build's quarantine, which gives memory back
    /// only by these counts (`Ghost::release`).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Table>() + self.sptes.len() * 2 * std::mem::size_of::<u64>()
    }
}

impl TablePtr {
    pub(crate) fn from_raw(ptr: *mut Table) -> Option<TablePtr> {
        NonNull::new(ptr).map(TablePtr)
    }

    pub(crate) fn as_raw(self) -> *mut Table {
        self.0.as_ptr()
    }

    /// The table, for as long as `guard` is pinned.
    pub(crate) fn get<'g>(self, _guard: &'g Guard<'_>) -> &'g Table {
        // SAFETY: every TablePtr is read from an entry or a root that was
        // reachable when the caller's pin was taken (or after it); a table is
        // handed to the reclaimer only after it was unlinked, and its memory
        // is released only after every pin taken before that was dropped
        // (`free_table`).
        unsafe { self.0.as_ref() }
    }
}

/// `tdp_mmu_alloc_sp` + `tdp_mmu_init_sp`: a table, every entry not
/// present. (Its gfn and level are where the walk links it; fastzap keeps
/// neither in the table.)
pub(crate) fn alloc_table(tdp: &TdpMmu, ghost: &Ghost, spte_count: usize) -> TablePtr {
    let id = PageId(tdp.next_id.fetch_add(1, Ordering::Relaxed));
    let table = Box::new(Table {
        id,
        sptes: (0..spte_count).map(|_| SpteCell::default()).collect(),
        ghost: PageGhost::new(id, spte_count),
    });
    tdp.tables.fetch_add(1, Ordering::AcqRel);
    ghost.pages().alloc();
    TablePtr(NonNull::from(Box::leak(table)))
}

/// Frees a table that was never linked (a lost link race), at once.
pub(crate) fn free_unlinked_now(tdp: &TdpMmu, ghost: &Ghost, table: TablePtr) {
    tdp.tables.fetch_sub(1, Ordering::AcqRel);
    ghost.pages().retire();
    ghost.pages().free();
    let mut bytes = 0;
    if ghost::ENABLED {
        // SAFETY: still allocated (released just below) and never published.
        bytes = unsafe { table.0.as_ref() }.bytes();
    }
    // SAFETY: the table was allocated by `alloc_table` and never published:
    // no other thread has its address. This is its one release. Its size is
    // counted: a quarantined object of 0 bytes would never be given back.
    unsafe { ghost.release(table.0, bytes) };
}

/// `call_rcu(&sp->rcu_head, tdp_mmu_free_sp_rcu_callback)`: the table is
/// unlinked; free it once every reader pinned now has left.
#[doc(alias = "tdp_mmu_free_sp_rcu_callback")]
pub(crate) fn free_table(tdp: &TdpMmu, guard: &Guard<'_>, ghost: &Ghost, table: TablePtr) {
    if !table.get(guard).ghost.retired() {
        ghost.violate(crate::invariant::Invariant::I3, || {
            format!("TDP table {} freed twice", table.get(guard).id)
        });
        return;
    }
    tdp.tables.fetch_sub(1, Ordering::AcqRel);
    ghost.pages().retire();
    let ghost = ghost.clone();
    let pending = tdp.pending_frees.clone();
    pending.fetch_add(1, Ordering::AcqRel);
    guard.defer(move || {
        let owned = table;
        let mut bytes = 0;
        if ghost::ENABLED {
            // SAFETY: still allocated: released just below.
            let t = unsafe { owned.0.as_ref() };
            t.ghost.freed();
            bytes = t.bytes();
        }
        ghost.pages().free();
        // SAFETY: the grace period has passed since the table was unlinked:
        // no pin that could have read its address is still held. It came
        // from `Box::leak` in `alloc_table`; this is its one release.
        unsafe { ghost.release(owned.0, bytes) };
        pending.fetch_sub(1, Ordering::AcqRel);
    });
}

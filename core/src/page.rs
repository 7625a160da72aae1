//! # Shadow pages (`struct kvm_mmu_page`)
//!
//! A shadow page has two halves:
//! - the part lockless walkers read: its body (id, gfn, role, `mmu_valid_gen`,
//!   written once before the page is published), its sptes, and
//!   `role.invalid`;
//! - the part only `mmu_lock` holders touch ([`PageMeta`]): `root_count`, the
//!   parent ptes, and its place on the active list or a zap list.
//!
//! Pages are reached by lockless walkers through raw pointers in sptes and in a
//! vCPU's root. [`PagePtr::get`] is the one place that turns such a pointer
//! into a reference, and [`free_page`] the one place that releases the memory;
//! both sit at the reclamation boundary.
//!
//! With the checking code on, the destructor poisons the body before the
//! memory goes: under loom a read not ordered after that write is a causality
//! violation, and in every lane the reader sees the poison and reports it (I3).

use std::ptr::NonNull;

use crate::ghost::{self, Ghost, PageGhost};
use crate::ids::PageId;
use crate::spte::{RawSpte, SpteCell};
use crate::sync::{AtomicBool, Guard, Ordering, UnsafeCell};

/// `union kvm_mmu_page_role`, reduced to what a direct-map MMU uses.
#[doc(alias = "kvm_mmu_page_role")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Role {
    /// `role.level`: 1 for a last-level page.
    pub(crate) level: u8,
    /// `role.direct`: fastzap models the direct (TDP-style) MMU, so always true.
    pub(crate) direct: bool,
    /// `role.smm`: which address space. vCPUs in different address spaces use
    /// different roots, so one gfn can be mapped by several sptes and its rmap
    /// grows a descriptor chain.
    pub(crate) smm: bool,
}

/// The immutable body of a shadow page, plus the poison flag its destructor sets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageBody {
    /// The page's id.
    pub(crate) id: PageId,
    /// `sp->gfn`: the first gfn this page translates.
    pub(crate) gfn: u64,
    /// `sp->role`.
    pub(crate) role: Role,
    /// `sp->mmu_valid_gen`: the generation the page was created in.
    pub(crate) mmu_valid_gen: u64,
    /// Set by the destructor (checking builds). A reader that sees it read a
    /// freed page.
    pub(crate) poisoned: bool,
}

/// A shadow page: `struct kvm_mmu_page`.
#[doc(alias = "kvm_mmu_page")]
#[repr(align(16))]
#[derive(Debug)]
pub(crate) struct ShadowPage {
    body: UnsafeCell<PageBody>,
    /// `sp->spt`: the page's sptes.
    pub(crate) sptes: Box<[SpteCell]>,
    /// `sp->role.invalid`: set by `prepare_zap_page` under `mmu_lock`, read by
    /// lockless walkers.
    pub(crate) invalid: AtomicBool,
    /// The ghost half: lifecycle, per-spte install times.
    pub(crate) ghost: PageGhost,
}

impl ShadowPage {
    /// Reads the body.
    pub(crate) fn body(&self) -> PageBody {
        self.body.with(|body| {
            // SAFETY: the body is written before the page is published and then
            // only by `poison`, which runs after a grace period that this reader
            // is inside of (or, under a mutant, races, which loom reports).
            unsafe { *body }
        })
    }

    /// Whether `role.invalid` is set.
    pub(crate) fn is_invalid(&self) -> bool {
        self.invalid.load(Ordering::Acquire)
    }

    /// About how much memory the page holds, heap parts included (for the
    /// checking build's quarantine).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<ShadowPage>() + self.sptes.len() * 2 * std::mem::size_of::<u64>()
    }

    /// Poisons the body: from here on a reader of this page is reading freed
    /// memory. Runs after the grace period (or early, under a mutant).
    pub(crate) fn poison(&self) {
        self.ghost.freed();
        self.body.with_mut(|body| {
            // SAFETY: called once per page, by the reclaimer after the grace
            // period: no reader can hold the page any more.
            unsafe { (*body).poisoned = true }
        });
    }
}

/// A raw pointer to a shadow page, as stored in a non-leaf spte or a vCPU root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PagePtr(NonNull<ShadowPage>);

// SAFETY: a PagePtr is an address; what it may be used for is governed by `get`.
unsafe impl Send for PagePtr {}
// SAFETY: as above.
unsafe impl Sync for PagePtr {}

impl PagePtr {
    /// Allocates a page. It is live until [`free_page`].
    pub(crate) fn alloc(body: PageBody, spte_count: usize) -> PagePtr {
        let page = Box::new(ShadowPage {
            body: UnsafeCell::new(body),
            sptes: (0..spte_count).map(|_| SpteCell::new()).collect(),
            invalid: AtomicBool::new(false),
            ghost: PageGhost::new(body.id, spte_count),
        });
        PagePtr(NonNull::from(Box::leak(page)))
    }

    /// The pointer in a word read out of a non-leaf spte (flags cleared:
    /// [`Spte::NonLeaf`](crate::spte::Spte)) or a root, with the provenance
    /// it was stored with.
    pub(crate) fn from_addr(word: RawSpte) -> Option<PagePtr> {
        PagePtr::from_raw(word.ptr().cast())
    }

    /// The word stored in roots, and (with `PRESENT`) in non-leaf sptes.
    pub(crate) fn word(self) -> RawSpte {
        RawSpte::from_ptr(self.as_raw().cast())
    }

    /// The page's address, as an identity (the audit's sets): it cannot be
    /// turned back into a pointer.
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr().addr()
    }

    /// The raw pointer, for the rmap's packed words.
    pub(crate) fn as_raw(self) -> *mut ShadowPage {
        self.0.as_ptr()
    }

    /// A pointer back from [`PagePtr::as_raw`] (with its provenance).
    pub(crate) fn from_raw(ptr: *mut ShadowPage) -> Option<PagePtr> {
        NonNull::new(ptr).map(PagePtr)
    }

    /// Borrows the page for as long as `guard` is pinned.
    ///
    /// A `PagePtr` is only ever obtained (a) from the page table map while holding
    /// `mmu_lock`, where retired pages are no longer listed, or (b) from a spte or
    /// a root read while pinned. In both cases the page was not retired before the
    /// guard was pinned, so the reclaimer cannot release it before the guard drops.
    pub(crate) fn get<'g>(self, _guard: &'g Guard<'_>) -> &'g ShadowPage {
        // SAFETY: see above: the page is retired only after it is unlinked from
        // every place a PagePtr is read from, and its memory is released only
        // after every guard pinned before the retirement has been dropped.
        unsafe { self.0.as_ref() }
    }

    /// Borrows the page while the caller holds `&mut Vm` (passed on as
    /// `_vm`): no operation can run, so nothing can retire or release the page.
    pub(crate) fn get_exclusive<T>(self, _vm: &T) -> &ShadowPage {
        // SAFETY: only reached through `Vm::translate_unsynchronized(&mut self)`,
        // which excludes every other operation on the VM for the borrow's length;
        // the pointer was read from a live root or spte of that VM.
        unsafe { self.0.as_ref() }
    }
}

/// Retires a page: `kvm_mmu_free_page` through the epoch. The memory is
/// released (and, with the checking code, the body poisoned first) once every
/// current reader has unpinned. With `poison_now` (the mutants that free
/// early) the poison is written at once. The memory itself is only ever
/// released through the epoch, and in a checking build not even then: it is
/// quarantined, poisoned, for as long as the VM lives ([`Ghost::release`]),
/// so a dangling pointer left by any bug (a mutant or a plain edit) reads
/// poison: the bug is reported (I3), not undefined.
///
/// A page retired a second time (a bug: a plain edit, or a mutant) is
/// reported (I3) and not handed over again: a second deferred release would
/// free it twice. Without the checking code nothing is checked.
pub(crate) fn free_page(ptr: PagePtr, guard: &Guard<'_>, ghost: &Ghost, poison_now: bool) {
    let page = ptr.get(guard);
    if !page.ghost.retired() {
        ghost.violate(crate::invariant::Invariant::I3, || {
            format!("{} retired twice", page.body().id)
        });
        return;
    }
    ghost.pages().retire();
    if poison_now {
        page.poison();
        ghost.pages().free();
    }
    let ghost = ghost.clone();
    guard.defer(move || {
        let owned = ptr;
        let mut bytes = 0;
        if ghost::ENABLED {
            // SAFETY: the memory is still allocated: it is released below.
            let page = unsafe { owned.0.as_ref() };
            bytes = page.bytes();
            if !poison_now {
                page.poison();
                ghost.pages().free();
            }
        }
        // SAFETY: the grace period has passed: every guard that could have
        // read this pointer has been dropped, and the page was unlinked
        // before. It came from `Box::leak` in `alloc`; this is its one release.
        unsafe { ghost.release(owned.0, bytes) };
    });
}

/// Releases a page of the page table, which no reader can reach any more
/// (the VM is being dropped).
pub(crate) fn free_page_now(ptr: PagePtr, ghost: &Ghost) {
    // SAFETY: called from `Drop for Vm` with exclusive access: no reader
    // exists. The memory is allocated: pages in the page table are never
    // handed to the reclaimer, except by a bug, and then (in a checking
    // build, the only one in which `page_dropped` looks) it is quarantined.
    let owned = ghost.page_dropped(unsafe { &ptr.0.as_ref().ghost });
    if !owned {
        return;
    }
    let mut bytes = 0;
    if ghost::ENABLED {
        // SAFETY: as above.
        let page = unsafe { ptr.0.as_ref() };
        page.poison();
        bytes = page.bytes();
    }
    // SAFETY: as above, and `page_dropped` says the reclaimer never got it,
    // so this is the page's one release (it came from `Box::leak`).
    unsafe { ghost.release(ptr.0, bytes) };
}

/// The lock-protected half of a shadow page.
#[derive(Debug)]
pub(crate) struct PageMeta {
    pub(crate) ptr: PagePtr,
    pub(crate) gfn: u64,
    pub(crate) role: Role,
    pub(crate) mmu_valid_gen: u64,
    /// Ghost: the unmasked generation epoch the page was born in (read by the
    /// audit only).
    #[cfg_attr(not(feature = "ghost"), allow(dead_code))]
    pub(crate) born_epoch: ghost::GenEpoch,
    /// `sp->root_count`.
    pub(crate) root_count: u32,
    /// `sp->parent_ptes`: (parent page, spte index) pairs pointing here.
    pub(crate) parent_ptes: Vec<(PageId, usize)>,
    /// The page's key on the active list, if it is on it.
    pub(crate) active_key: Option<u64>,
    /// `role.invalid`, mirrored under the lock.
    pub(crate) invalid: bool,
    /// Whether the page is on a zap list (`invalid_list` or
    /// `zapped_obsolete_pages`).
    pub(crate) on_zap_list: bool,
}

//! # Reverse map and pte-list descriptors
//!
//! Every memslot has one rmap head per gfn (`slot->arch.rmap[]`). A head lists
//! the sptes that map that gfn: empty, one spte, or a chain of fixed-capacity
//! [`PteListDesc`]s (`struct pte_list_desc`).
//!
//! Head encoding: `0` is empty; an even value is one packed `SptePtr`; an odd
//! value is the address of the first descriptor, plus one.
//!
//! # Two kinds of rmap
//! - A **normal** rmap is changed only under `mmu_lock`. Removing an entry moves
//!   the descriptor's last entry into the hole, and a descriptor that becomes
//!   empty is unlinked and retired through the epoch, so that a walker still
//!   holding it never reads freed memory.
//! - A **remove-only** rmap (the seed's `invalid_rmap_ops`, for a slot being
//!   deleted) never gains an entry. Removal clears the entry *in place*: no entry
//!   moves and no descriptor is unlinked, so the lockless unmapper and the
//!   `mmu_lock` holders can walk it at the same time. Its descriptors are freed
//!   only with the rmap itself, after the slot is unpublished and a grace period
//!   has passed.

use std::ptr::NonNull;

use crate::ghost::{self, DescGhost, Ghost};
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::lockdep::MmuLockHeld;
use crate::page::PagePtr;
use crate::sync::{AtomicBool, AtomicU64, Guard, Ordering, UnsafeCell};

/// A pointer to one spte: its page and index (the kernel's `sptep`).
#[doc(alias = "sptep")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SptePtr {
    pub(crate) page: PagePtr,
    pub(crate) index: usize,
}

impl SptePtr {
    /// Packs the pointer into an even, non-zero word. Page addresses fit in 48
    /// bits on every platform fastzap runs on; the index in 15.
    pub(crate) fn pack(self) -> u64 {
        let addr = self.page.addr() as u64;
        assert!(
            addr >> 48 == 0 && self.index < (1 << 15),
            "spte pointer does not pack"
        );
        (addr << 16) | ((self.index as u64) << 1)
    }

    pub(crate) fn unpack(raw: u64) -> Option<SptePtr> {
        if raw == 0 || raw & 1 == 1 {
            return None;
        }
        let page = PagePtr::from_addr((raw >> 16) as usize)?;
        Some(SptePtr {
            page,
            index: ((raw >> 1) & 0x7fff) as usize,
        })
    }

    /// The spte itself, for as long as `guard` is pinned.
    pub(crate) fn spte<'g>(self, guard: &'g Guard<'_>) -> &'g AtomicU64 {
        &self.page.get(guard).sptes[self.index]
    }
}

#[derive(Debug, Clone, Copy)]
struct DescBody {
    poisoned: bool,
}

/// `struct pte_list_desc`: a fixed-capacity block of spte pointers.
#[doc(alias = "pte_list_desc")]
#[repr(align(16))]
#[derive(Debug)]
pub(crate) struct PteListDesc {
    body: UnsafeCell<DescBody>,
    sptes: Box<[AtomicU64]>,
    more: AtomicU64,
    /// The ghost half: whether the descriptor was retired.
    ghost: DescGhost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DescPtr(NonNull<PteListDesc>);

// SAFETY: an address; its use is governed by `get`.
unsafe impl Send for DescPtr {}

impl DescPtr {
    fn alloc(capacity: usize, ghost: &Ghost) -> DescPtr {
        ghost.descs().alloc();
        let desc = Box::new(PteListDesc {
            body: UnsafeCell::new(DescBody { poisoned: false }),
            sptes: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            more: AtomicU64::new(0),
            ghost: DescGhost::new(),
        });
        DescPtr(NonNull::from(Box::leak(desc)))
    }

    fn from_raw(raw: u64) -> Option<DescPtr> {
        NonNull::new(std::ptr::with_exposed_provenance_mut::<PteListDesc>(
            raw as usize & !1,
        ))
        .map(DescPtr)
    }

    fn raw(self) -> u64 {
        self.0.as_ptr().expose_provenance() as u64
    }

    /// Borrows the descriptor while `guard` is pinned. Descriptors are read only
    /// from a head or a `more` link while pinned, and retired only after they are
    /// unlinked, so the memory outlives the guard.
    fn get<'g>(self, _guard: &'g Guard<'_>) -> &'g PteListDesc {
        // SAFETY: see above; released only after every guard pinned before the
        // retirement has been dropped, or when the whole rmap is dropped, which
        // no walker can be using (walkers hold the rmap's Arc).
        unsafe { self.0.as_ref() }
    }

    /// Retires an unlinked descriptor through the epoch. With `poison_now`
    /// (only under [`Mutant::RemoveOnlyRmapCompacts`](crate::mutant::Mutant))
    /// it is poisoned at once, as the kernel frees a `pte_list_desc` at once;
    /// its memory still goes only through the epoch, and under a mutant not
    /// at all ([`Ghost::release`]).
    fn retire(self, guard: &Guard<'_>, ghost: &Ghost, poison_now: bool) {
        ghost.descs().retire();
        let desc = self.get(guard);
        desc.ghost.retire();
        if poison_now {
            desc.poison();
            ghost.descs().free();
        }
        let ghost = ghost.clone();
        guard.defer(move || {
            let owned = self;
            // SAFETY: grace period passed since the descriptor was unlinked.
            let desc = unsafe { Box::from_raw(owned.0.as_ptr()) };
            if !poison_now {
                if ghost::ENABLED {
                    desc.poison();
                }
                ghost.descs().free();
            }
            ghost.release(desc);
        });
    }
}

impl PteListDesc {
    fn poison(&self) {
        self.ghost.freed();
        self.body.with_mut(|body| {
            // SAFETY: only the reclaimer writes the body, after the grace period.
            unsafe { (*body).poisoned = true }
        });
    }

    fn is_poisoned(&self) -> bool {
        self.body.with(|body| {
            // SAFETY: written only by `poison`, after every reader is gone.
            unsafe { (*body).poisoned }
        })
    }
}

/// One memslot's rmap array: `slot->arch.rmap[]`.
#[doc(alias = "rmap")]
pub(crate) struct Rmap {
    heads: Box<[AtomicU64]>,
    remove_only: AtomicBool,
    capacity: usize,
    /// [`Mutant::RemoveOnlyRmapCompacts`](crate::mutant::Mutant): a
    /// remove-only rmap is changed the normal way. Always false without the
    /// checking code.
    mutant_compacts: bool,
    ghost: Ghost,
}

impl std::fmt::Debug for Rmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rmap")
            .field("heads", &self.heads.len())
            .field("remove_only", &self.is_remove_only())
            .finish()
    }
}

impl PteListDesc {
    /// A walker's check (I2) that this descriptor was not freed under it.
    fn read_freed(&self, ghost: &Ghost, walker: &str) -> bool {
        ghost.saw_freed(
            Invariant::I2,
            || self.is_poisoned(),
            || format!("walker read a freed descriptor ({walker})"),
        )
    }
}

impl Rmap {
    /// An rmap of `npages` empty heads whose descriptors hold `capacity`
    /// sptes. `mutant_compacts` re-introduces the bug of
    /// [`Mutant::RemoveOnlyRmapCompacts`](crate::mutant::Mutant).
    pub(crate) fn new(npages: usize, capacity: usize, mutant_compacts: bool, ghost: Ghost) -> Rmap {
        ghost.rmaps().alloc();
        Rmap {
            heads: (0..npages).map(|_| AtomicU64::new(0)).collect(),
            remove_only: AtomicBool::new(false),
            capacity,
            mutant_compacts,
            ghost,
        }
    }

    /// The number of heads (the slot's page count when allocated).
    pub(crate) fn len(&self) -> usize {
        self.heads.len()
    }

    /// Whether the rmap is remove-only (`invalid_rmap_ops`).
    pub(crate) fn is_remove_only(&self) -> bool {
        self.remove_only.load(Ordering::Acquire)
    }

    /// Makes the rmap remove-only. Done under `mmu_lock`, in the same hold as the
    /// generation bump, so that no fault that saw a valid root can add to it.
    pub(crate) fn set_remove_only(&self, _held: &impl MmuLockHeld) {
        self.remove_only.store(true, Ordering::Release);
    }

    /// `pte_list_add`: adds `sptep` to head `index`. Needs `mmu_lock`: two adders
    /// racing on one head would lose an entry, and then a zapped spte would stay
    /// mapped (I1). Refused on a remove-only rmap.
    pub(crate) fn add(
        &self,
        _held: &impl MmuLockHeld,
        guard: &Guard<'_>,
        index: usize,
        sptep: SptePtr,
    ) -> Result<(), Violation> {
        if self.is_remove_only() {
            return Err(Violation::new(
                Invariant::I1,
                format!(
                    "rmap_add of {}[{}] to a remove-only rmap",
                    sptep_page(sptep, guard),
                    sptep.index
                ),
            ));
        }
        let Some(head) = self.heads.get(index) else {
            return Err(Violation::new(
                Invariant::I1,
                format!(
                    "rmap index {index} beyond the rmap's {} heads",
                    self.heads.len()
                ),
            ));
        };
        let entry = sptep.pack();
        let current = head.load(Ordering::Acquire);
        if current == 0 {
            head.store(entry, Ordering::Release);
            return Ok(());
        }
        if current & 1 == 0 {
            let desc = DescPtr::alloc(self.capacity, &self.ghost);
            let d = desc.get(guard);
            d.sptes[0].store(current, Ordering::Relaxed);
            d.sptes[1].store(entry, Ordering::Relaxed);
            head.store(desc.raw() | 1, Ordering::Release);
            return Ok(());
        }
        // Walk to the last descriptor; fill its first free slot or append.
        let mut desc = DescPtr::from_raw(current).expect("odd head is a descriptor");
        loop {
            let d = desc.get(guard);
            let more = d.more.load(Ordering::Acquire);
            if more != 0 {
                desc = DescPtr::from_raw(more).expect("more link is a descriptor");
                continue;
            }
            if let Some(slot) = d.sptes.iter().find(|s| s.load(Ordering::Relaxed) == 0) {
                slot.store(entry, Ordering::Release);
            } else {
                let next = DescPtr::alloc(self.capacity, &self.ghost);
                next.get(guard).sptes[0].store(entry, Ordering::Relaxed);
                d.more.store(next.raw(), Ordering::Release);
            }
            return Ok(());
        }
    }

    /// `pte_list_remove`: removes `sptep` from head `index`. Returns whether it
    /// was there. On a remove-only rmap the entry is cleared in place, so that
    /// the out-of-lock unmapper walking the same chain never finds a
    /// descriptor gone (the seed's requirement 2, "keep pte-list-descs
    /// available"); otherwise the chain is compacted and emptied descriptors
    /// are retired.
    pub(crate) fn remove(
        &self,
        _held: &impl MmuLockHeld,
        guard: &Guard<'_>,
        index: usize,
        sptep: SptePtr,
    ) -> bool {
        // Only under the mutant does a remove-only rmap get here.
        let poison_now = self.is_remove_only();
        if poison_now && !self.mutant_compacts {
            return self.remove_in_place(guard, index, sptep);
        }
        let Some(head) = self.heads.get(index) else {
            return false;
        };
        let entry = sptep.pack();
        let current = head.load(Ordering::Acquire);
        if current == 0 {
            return false;
        }
        if current & 1 == 0 {
            if current == entry {
                head.store(0, Ordering::Release);
                return true;
            }
            return false;
        }
        let mut prev: Option<DescPtr> = None;
        let mut desc = DescPtr::from_raw(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, "pte_list_remove") {
                return false;
            }
            let used = d
                .sptes
                .iter()
                .take_while(|s| s.load(Ordering::Relaxed) != 0)
                .count();
            if let Some(pos) = d.sptes[..used]
                .iter()
                .position(|s| s.load(Ordering::Relaxed) == entry)
            {
                // Move the last entry of this descriptor into the hole.
                let last = d.sptes[used - 1].load(Ordering::Relaxed);
                d.sptes[pos].store(last, Ordering::Release);
                d.sptes[used - 1].store(0, Ordering::Release);
                if used - 1 == 0 {
                    self.unlink_desc(head, prev, dp, guard, poison_now);
                    self.collapse_single(head, guard, poison_now);
                } else if prev.is_none() && used - 1 == 1 && d.more.load(Ordering::Acquire) == 0 {
                    // One entry left in the only descriptor: back to a single head.
                    head.store(d.sptes[0].load(Ordering::Relaxed), Ordering::Release);
                    dp.retire(guard, &self.ghost, poison_now);
                }
                return true;
            }
            prev = Some(dp);
            desc = DescPtr::from_raw(d.more.load(Ordering::Acquire));
        }
        false
    }

    /// After a later descriptor was unlinked, the chain may be down to one
    /// descriptor holding one entry: go back to a single head, the form every
    /// other path keeps (the audit's I2 checks it).
    fn collapse_single(&self, head: &AtomicU64, guard: &Guard<'_>, poison_now: bool) {
        let current = head.load(Ordering::Acquire);
        if current & 1 == 0 {
            return;
        }
        let Some(first) = DescPtr::from_raw(current) else {
            return;
        };
        let d = first.get(guard);
        if d.more.load(Ordering::Acquire) != 0 {
            return;
        }
        let used = d
            .sptes
            .iter()
            .take_while(|s| s.load(Ordering::Relaxed) != 0)
            .count();
        if used == 1 {
            head.store(d.sptes[0].load(Ordering::Relaxed), Ordering::Release);
            first.retire(guard, &self.ghost, poison_now);
        }
    }

    fn unlink_desc(
        &self,
        head: &AtomicU64,
        prev: Option<DescPtr>,
        dp: DescPtr,
        guard: &Guard<'_>,
        poison_now: bool,
    ) {
        let more = dp.get(guard).more.load(Ordering::Acquire);
        match prev {
            Some(p) => p.get(guard).more.store(more, Ordering::Release),
            None if more == 0 => head.store(0, Ordering::Release),
            None => head.store(more | 1, Ordering::Release),
        }
        dp.retire(guard, &self.ghost, poison_now);
    }

    /// Clears `sptep`'s entry in place, wherever it is. Safe to race with other
    /// in-place removers and with walkers.
    pub(crate) fn remove_in_place(&self, guard: &Guard<'_>, index: usize, sptep: SptePtr) -> bool {
        let Some(head) = self.heads.get(index) else {
            return false;
        };
        let entry = sptep.pack();
        let current = head.load(Ordering::Acquire);
        if current & 1 == 0 {
            return current == entry
                && head
                    .compare_exchange(entry, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
        }
        let mut desc = DescPtr::from_raw(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, "in-place remove") {
                return false;
            }
            for slot in d.sptes.iter() {
                if slot
                    .compare_exchange(entry, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
            }
            desc = DescPtr::from_raw(d.more.load(Ordering::Acquire));
        }
        false
    }

    /// Calls `f` for every spte on head `index` (`for_each_rmap_spte`). On a normal
    /// rmap the caller holds `mmu_lock` and must not change this head inside `f`;
    /// collect first, then act.
    pub(crate) fn walk(&self, guard: &Guard<'_>, index: usize, mut f: impl FnMut(SptePtr)) {
        let Some(head) = self.heads.get(index) else {
            return;
        };
        let current = head.load(Ordering::Acquire);
        if current & 1 == 0 {
            if let Some(sptep) = SptePtr::unpack(current) {
                f(sptep);
            }
            return;
        }
        let mut desc = DescPtr::from_raw(current);
        let mut hops = 0usize;
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, "rmap walk") {
                return;
            }
            for slot in d.sptes.iter() {
                if let Some(sptep) = SptePtr::unpack(slot.load(Ordering::Acquire)) {
                    f(sptep);
                }
            }
            hops += 1;
            if hops > 1 << 20 {
                self.ghost
                    .violate(Invariant::I2, || "descriptor chain has a cycle".into());
                return;
            }
            desc = DescPtr::from_raw(d.more.load(Ordering::Acquire));
        }
    }

    /// The sptes on head `index`, collected.
    pub(crate) fn entries(&self, guard: &Guard<'_>, index: usize) -> Vec<SptePtr> {
        let mut out = Vec::new();
        self.walk(guard, index, |s| out.push(s));
        out
    }

    /// The seed's lockless unmap of a remove-only rmap: take every entry of head
    /// `index` (an atomic swap to 0, in place) and hand it to `f`.
    pub(crate) fn take_all(&self, guard: &Guard<'_>, index: usize, mut f: impl FnMut(SptePtr)) {
        let Some(head) = self.heads.get(index) else {
            return;
        };
        let current = head.load(Ordering::Acquire);
        if current & 1 == 0 {
            if current != 0
                && head
                    .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                && let Some(sptep) = SptePtr::unpack(current)
            {
                f(sptep);
            }
            return;
        }
        let mut desc = DescPtr::from_raw(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, "lockless unmap") {
                return;
            }
            for slot in d.sptes.iter() {
                let raw = slot.swap(0, Ordering::AcqRel);
                if let Some(sptep) = SptePtr::unpack(raw) {
                    f(sptep);
                }
            }
            let more = d.more.load(Ordering::Acquire);
            // Still inside the descriptor: it must not have been freed under
            // the walk (the seed's requirement 2). A ghost read: no access
            // the checkers schedule around.
            if self.ghost.saw_freed(
                Invariant::I2,
                || d.ghost.is_freed(),
                || "descriptor freed while the lockless unmapper was walking it".into(),
            ) {
                return;
            }
            desc = DescPtr::from_raw(more);
        }
    }

    /// Shape of head `index` for the audit: (entries, descriptors, empty
    /// descriptors, holes before the last entry). Checking code.
    #[cfg(feature = "ghost")]
    pub(crate) fn shape(&self, guard: &Guard<'_>, index: usize) -> ChainShape {
        let mut shape = ChainShape::default();
        let Some(head) = self.heads.get(index) else {
            return shape;
        };
        let current = head.load(Ordering::Acquire);
        if current & 1 == 0 {
            shape.entries = usize::from(current != 0);
            return shape;
        }
        let mut desc = DescPtr::from_raw(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.is_poisoned() {
                shape.poisoned += 1;
                return shape;
            }
            shape.descs += 1;
            if d.ghost.is_retired() {
                shape.retired += 1;
            }
            if shape.descs > 1 << 20 {
                shape.cycle = true;
                return shape;
            }
            let used: Vec<bool> = d
                .sptes
                .iter()
                .map(|s| s.load(Ordering::Acquire) != 0)
                .collect();
            let count = used.iter().filter(|u| **u).count();
            shape.entries += count;
            if count == 0 {
                shape.empty_descs += 1;
            }
            if let Some(last) = used.iter().rposition(|u| *u)
                && used[..last].iter().any(|u| !u)
            {
                shape.holes += 1;
            }
            // A descriptor before the last may be partly full: `remove` compacts
            // only within the descriptor that held the entry, as the kernel's
            // `pte_list_desc_remove_entry` does.
            desc = DescPtr::from_raw(d.more.load(Ordering::Acquire));
        }
        shape
    }
}

/// What the audit sees of one rmap head.
#[cfg(feature = "ghost")]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChainShape {
    pub(crate) entries: usize,
    pub(crate) descs: usize,
    pub(crate) empty_descs: usize,
    pub(crate) holes: usize,
    pub(crate) poisoned: usize,
    pub(crate) retired: usize,
    pub(crate) cycle: bool,
}

fn sptep_page(sptep: SptePtr, guard: &Guard<'_>) -> PageId {
    sptep.page.get(guard).body().id
}

impl Drop for Rmap {
    fn drop(&mut self) {
        // The last Arc is gone: no walker holds this rmap or its descriptors.
        for head in self.heads.iter() {
            let mut raw = head.load(Ordering::Acquire);
            if raw & 1 == 0 {
                continue;
            }
            while let Some(dp) = DescPtr::from_raw(raw) {
                // SAFETY: exclusive access (`&mut self`), and descriptors on a
                // chain were never retired.
                let desc = unsafe { Box::from_raw(dp.0.as_ptr()) };
                raw = desc.more.load(Ordering::Acquire);
                if ghost::ENABLED {
                    desc.poison();
                }
                self.ghost.descs().retire();
                self.ghost.descs().free();
                self.ghost.release(desc);
            }
        }
        self.ghost.rmaps().retire();
        self.ghost.rmaps().free();
    }
}

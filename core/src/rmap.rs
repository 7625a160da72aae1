//! # Reverse map and pte-list descriptors
//!
//! Every memslot has one rmap head per gfn (`slot->arch.rmap[]`). A head lists
//! the sptes that map that gfn: empty, one spte, or a chain of fixed-capacity
//! [`PteListDesc`]s (`struct pte_list_desc`).
//!
//! Head encoding: null is empty; an even address is one packed `SptePtr`; an
//! odd one is the address of the first descriptor, plus one (`desc.rs`, which
//! also holds the descriptors themselves).
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

mod desc;

pub(crate) use desc::SptePtr;
use desc::{DescPtr, Word as W};

use crate::ghost::Ghost;
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::lockdep::MmuLockHeld;
use crate::sync::{AtomicBool, AtomicPtr, Guard, Ordering};

/// One memslot's rmap array: `slot->arch.rmap[]`.
#[doc(alias = "rmap")]
pub(crate) struct Rmap {
    heads: Box<[AtomicPtr<()>]>,
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

impl Rmap {
    /// An rmap of `npages` empty heads whose descriptors hold `capacity`
    /// sptes. `mutant_compacts` re-introduces the bug of
    /// [`Mutant::RemoveOnlyRmapCompacts`](crate::mutant::Mutant).
    pub(crate) fn new(npages: usize, capacity: usize, mutant_compacts: bool, ghost: Ghost) -> Rmap {
        ghost.rmaps().alloc();
        Rmap {
            heads: (0..npages).map(|_| AtomicPtr::default()).collect(),
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
        let entry = sptep.word();
        let current = head.load(Ordering::Acquire);
        if current.is_null() {
            head.store(entry, Ordering::Release);
            return Ok(());
        }
        if is_single(current) {
            let desc = DescPtr::alloc(self.capacity, &self.ghost);
            let d = desc.get(guard);
            d.sptes[0].store(current, Ordering::Relaxed);
            d.sptes[1].store(entry, Ordering::Relaxed);
            head.store(desc.head(), Ordering::Release);
            return Ok(());
        }
        // Walk to the last descriptor; fill its first free slot or append.
        let mut desc = DescPtr::from_word(current).expect("odd head is a descriptor");
        loop {
            let d = desc.get(guard);
            if d.read_freed(&self.ghost, index, "pte_list_add") {
                return Ok(());
            }
            let more = d.more.load(Ordering::Acquire);
            if let Some(next) = DescPtr::from_word(more) {
                desc = next;
                continue;
            }
            if let Some(slot) = d.sptes.iter().find(|s| s.load(Ordering::Relaxed).is_null()) {
                slot.store(entry, Ordering::Release);
            } else {
                let next = DescPtr::alloc(self.capacity, &self.ghost);
                next.get(guard).sptes[0].store(entry, Ordering::Relaxed);
                d.more.store(next.link(), Ordering::Release);
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
        let entry = sptep.word();
        let current = head.load(Ordering::Acquire);
        if current.is_null() {
            return false;
        }
        if is_single(current) {
            if current == entry {
                head.store(std::ptr::null_mut(), Ordering::Release);
                return true;
            }
            return false;
        }
        let mut prev: Option<DescPtr> = None;
        let mut desc = DescPtr::from_word(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, index, "pte_list_remove") {
                return false;
            }
            let used = d.used();
            if let Some(pos) = d.sptes[..used]
                .iter()
                .position(|s| s.load(Ordering::Relaxed) == entry)
            {
                // Move the last entry of this descriptor into the hole.
                let last = d.sptes[used - 1].load(Ordering::Relaxed);
                d.sptes[pos].store(last, Ordering::Release);
                d.sptes[used - 1].store(std::ptr::null_mut(), Ordering::Release);
                if used - 1 == 0 {
                    self.unlink_desc(head, prev, dp, guard, poison_now);
                    self.collapse_single(head, index, guard, poison_now);
                } else if prev.is_none()
                    && used - 1 == 1
                    && d.more.load(Ordering::Acquire).is_null()
                {
                    // One entry left in the only descriptor: back to a single head.
                    head.store(d.sptes[0].load(Ordering::Relaxed), Ordering::Release);
                    dp.retire(guard, &self.ghost, poison_now);
                }
                return true;
            }
            prev = Some(dp);
            desc = DescPtr::from_word(d.more.load(Ordering::Acquire));
        }
        false
    }

    /// After a later descriptor was unlinked, the chain may be down to one
    /// descriptor holding one entry: go back to a single head, the form every
    /// other path keeps (the audit's I2 checks it).
    fn collapse_single(
        &self,
        head: &AtomicPtr<()>,
        index: usize,
        guard: &Guard<'_>,
        poison_now: bool,
    ) {
        let current = head.load(Ordering::Acquire);
        if is_single(current) {
            return;
        }
        let Some(first) = DescPtr::from_word(current) else {
            return;
        };
        let d = first.get(guard);
        if d.read_freed(&self.ghost, index, "pte_list_remove")
            || !d.more.load(Ordering::Acquire).is_null()
        {
            return;
        }
        if d.used() == 1 {
            head.store(d.sptes[0].load(Ordering::Relaxed), Ordering::Release);
            first.retire(guard, &self.ghost, poison_now);
        }
    }

    fn unlink_desc(
        &self,
        head: &AtomicPtr<()>,
        prev: Option<DescPtr>,
        dp: DescPtr,
        guard: &Guard<'_>,
        poison_now: bool,
    ) {
        let more = dp.get(guard).more.load(Ordering::Acquire);
        match prev {
            Some(p) => p.get(guard).more.store(more, Ordering::Release),
            None if more.is_null() => head.store(more, Ordering::Release),
            None => head.store(more.map_addr(|a| a | 1), Ordering::Release),
        }
        dp.retire(guard, &self.ghost, poison_now);
    }

    /// Clears `sptep`'s entry in place, wherever it is. Safe to race with other
    /// in-place removers and with walkers.
    pub(crate) fn remove_in_place(&self, guard: &Guard<'_>, index: usize, sptep: SptePtr) -> bool {
        let Some(head) = self.heads.get(index) else {
            return false;
        };
        let entry = sptep.word();
        let empty = std::ptr::null_mut();
        let current = head.load(Ordering::Acquire);
        if is_single(current) {
            return current == entry
                && head
                    .compare_exchange(entry, empty, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
        }
        let mut desc = DescPtr::from_word(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, index, "in-place remove") {
                return false;
            }
            for slot in d.sptes.iter() {
                if slot
                    .compare_exchange(entry, empty, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return true;
                }
            }
            desc = DescPtr::from_word(d.more.load(Ordering::Acquire));
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
        if is_single(current) {
            if let Some(sptep) = SptePtr::unpack(current) {
                f(sptep);
            }
            return;
        }
        let mut desc = DescPtr::from_word(current);
        let mut hops = 0usize;
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, index, "rmap walk") {
                return;
            }
            for slot in d.sptes.iter() {
                if let Some(sptep) = SptePtr::unpack(slot.load(Ordering::Acquire)) {
                    f(sptep);
                }
            }
            hops += 1;
            if hops > 1 << 20 {
                self.ghost.violate(Invariant::I2, || {
                    format!("descriptor chain of rmap head {index} has a cycle")
                });
                return;
            }
            desc = DescPtr::from_word(d.more.load(Ordering::Acquire));
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
        let empty = std::ptr::null_mut();
        let current = head.load(Ordering::Acquire);
        if is_single(current) {
            if !current.is_null()
                && head
                    .compare_exchange(current, empty, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                && let Some(sptep) = SptePtr::unpack(current)
            {
                f(sptep);
            }
            return;
        }
        let mut desc = DescPtr::from_word(current);
        while let Some(dp) = desc {
            let d = dp.get(guard);
            if d.read_freed(&self.ghost, index, "lockless unmap") {
                return;
            }
            for slot in d.sptes.iter() {
                let raw = slot.swap(empty, Ordering::AcqRel);
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
                || {
                    format!(
                        "descriptor d{} on rmap head {index} freed while the lockless \
                         unmapper was walking it",
                        d.ghost.id()
                    )
                },
            ) {
                return;
            }
            desc = DescPtr::from_word(more);
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
        if is_single(current) {
            shape.entries = usize::from(!current.is_null());
            return shape;
        }
        let mut desc = DescPtr::from_word(current);
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
                .map(|s| !s.load(Ordering::Acquire).is_null())
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
            desc = DescPtr::from_word(d.more.load(Ordering::Acquire));
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

#[cfg(all(test, feature = "ghost", not(any(loom, shuttle))))]
impl Rmap {
    /// Test hook, the bug a plain edit of `remove` could make: retires the
    /// first descriptor of head `index` through the epoch but leaves it
    /// linked. Returns whether the head had one.
    pub(crate) fn retire_linked_for_test(&self, guard: &Guard<'_>, index: usize) -> bool {
        let Some(dp) = DescPtr::from_word(self.heads[index].load(Ordering::Acquire))
            .filter(|_| !is_single(self.heads[index].load(Ordering::Acquire)))
        else {
            return false;
        };
        dp.retire(guard, &self.ghost, false);
        true
    }

    /// Test hook, the bug a plain edit of `remove`'s compaction could make:
    /// clears the first entry of head `index`'s first descriptor and leaves
    /// the rest, a hole on a normal rmap. Returns whether the head had one.
    pub(crate) fn punch_hole_for_test(&self, guard: &Guard<'_>, index: usize) -> bool {
        let word = self.heads[index].load(Ordering::Acquire);
        if is_single(word) {
            return false;
        }
        let Some(dp) = DescPtr::from_word(word) else {
            return false;
        };
        dp.get(guard).sptes[0].store(std::ptr::null_mut(), Ordering::Release);
        true
    }
}

/// Whether a head word is empty or one spte (not a descriptor chain).
fn is_single(word: W) -> bool {
    word.addr() & 1 == 0
}

fn sptep_page(sptep: SptePtr, guard: &Guard<'_>) -> PageId {
    sptep.page.get(guard).body().id
}

impl Drop for Rmap {
    fn drop(&mut self) {
        // The last Arc is gone: no walker holds this rmap or its descriptors.
        for head in self.heads.iter() {
            let mut word = head.load(Ordering::Acquire);
            if is_single(word) {
                continue;
            }
            while let Some(dp) = DescPtr::from_word(word) {
                // A descriptor on a chain is never retired, except by a bug:
                // then the reclaimer owns it (and, in a checking build, the
                // quarantine), and it must not be released twice.
                if dp.retired_still_linked(&self.ghost) {
                    break;
                }
                // SAFETY: exclusive access (`&mut self`), and the descriptor
                // was never retired (checked above, in a checking build);
                // `dp` is not used again.
                word = unsafe { dp.release_now(&self.ghost) };
            }
        }
        self.ghost.rmaps().retire();
        self.ghost.rmaps().free();
    }
}

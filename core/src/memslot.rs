//! # Memslots (`struct kvm_memory_slot`, `struct kvm_memslots`)
//!
//! The memslots array is a generation root: readers load the current
//! [`Memslots`] without a lock and keep it for as long as they use it; an update
//! publishes a whole new array with `generation + 1`, as `install_new_memslots`
//! does. Each slot owns its rmap and its `lpage_info`; an INVALID copy of a
//! slot shares them with the original. Callers see a slot's geometry only:
//! the rmap and `lpage_info` are reachable only from the protocol, and changed
//! only under `mmu_lock`.

use crate::addr::{Gfn, Hva, PAGE_SIZE};
use crate::ids::SlotId;
use crate::lockdep::MmuLockHeld;
use crate::rmap::Rmap;
use crate::sync::Arc;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// `KVM_MEMSLOT_INVALID`: the slot is being deleted or moved. Faults on it retry.
pub(crate) const SLOT_INVALID: u32 = 1 << 16;

/// What a caller asks for when creating a slot (`struct kvm_userspace_memory_region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSpec {
    /// The slot's id.
    pub id: SlotId,
    /// The first gfn.
    pub base_gfn: Gfn,
    /// The number of pages.
    pub npages: u64,
    /// The host virtual address of the first page (page aligned).
    pub userspace_addr: Hva,
}

/// `slot->arch.lpage_info[]`: per large page spanned by the slot, the
/// `disallow_lpage` count. Its length depends on the slot's base alignment, which
/// is why a MOVE must allocate a new one (bug 10).
#[doc(alias = "kvm_lpage_info")]
#[derive(Debug)]
pub(crate) struct LpageInfo {
    /// The large-page shift in gfns (`log2(spte_count)`).
    shift: u32,
    /// `disallow_lpage` per large page.
    disallow: Box<[AtomicU64]>,
}

impl LpageInfo {
    /// Sizes the array for a slot at `base_gfn` of `npages`. Partial large pages
    /// at either end are disallowed, as `kvm_arch_create_memslot` does.
    pub(crate) fn new(base_gfn: u64, npages: u64, shift: u32) -> LpageInfo {
        let first = base_gfn >> shift;
        let last = (base_gfn + npages - 1) >> shift;
        let disallow: Box<[AtomicU64]> = (first..=last).map(|_| AtomicU64::new(0)).collect();
        let mask = (1u64 << shift) - 1;
        if base_gfn & mask != 0 {
            disallow[0].fetch_add(1, Ordering::Relaxed);
        }
        if (base_gfn + npages) & mask != 0 {
            disallow[disallow.len() - 1].fetch_add(1, Ordering::Relaxed);
        }
        LpageInfo { shift, disallow }
    }

    /// The index of `gfn`'s large page in this array, if the array covers it.
    pub(crate) fn index(&self, slot_base: u64, gfn: u64) -> Option<usize> {
        let index = (gfn >> self.shift).checked_sub(slot_base >> self.shift)?;
        let index = usize::try_from(index).ok()?;
        (index < self.disallow.len()).then_some(index)
    }

    /// Resets every count (`kvm_clear_all_lpage_info`), under `mmu_lock`.
    pub(crate) fn reset(&self, _held: &impl MmuLockHeld) {
        for count in self.disallow.iter() {
            count.store(0, Ordering::Relaxed);
        }
    }
}

/// `struct kvm_memory_slot`.
#[doc(alias = "kvm_memory_slot")]
#[derive(Debug, Clone)]
pub struct Memslot {
    /// `slot->id`.
    pub(crate) id: SlotId,
    /// `slot->base_gfn`.
    pub(crate) base_gfn: u64,
    /// `slot->npages`.
    pub(crate) npages: u64,
    /// `slot->userspace_addr`.
    pub(crate) userspace_addr: u64,
    /// `slot->flags`, including `KVM_MEMSLOT_INVALID`.
    pub(crate) flags: u32,
    /// `slot->arch.rmap`.
    pub(crate) rmap: Arc<Rmap>,
    /// `slot->arch.lpage_info`.
    pub(crate) lpage_info: Arc<LpageInfo>,
}

impl Memslot {
    /// `slot->id`.
    pub fn id(&self) -> SlotId {
        self.id
    }

    /// `slot->base_gfn`: the first gfn.
    pub fn base_gfn(&self) -> Gfn {
        Gfn(self.base_gfn)
    }

    /// `slot->npages`.
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// `slot->userspace_addr`: the host address of the first page.
    pub fn userspace_addr(&self) -> Hva {
        Hva(self.userspace_addr)
    }

    /// Whether the slot is flagged INVALID (`KVM_MEMSLOT_INVALID`: being
    /// deleted or moved; faults on it retry).
    pub fn is_invalid(&self) -> bool {
        self.flags & SLOT_INVALID != 0
    }

    /// Whether `gfn` falls in the slot.
    pub fn contains_gfn(&self, gfn: Gfn) -> bool {
        self.contains(gfn.0)
    }

    /// `__gfn_to_hva_memslot`, if `gfn` falls in the slot.
    pub fn hva_of(&self, gfn: Gfn) -> Option<Hva> {
        self.contains(gfn.0).then(|| Hva(self.gfn_to_hva(gfn.0)))
    }

    /// Whether `gfn` falls in the slot.
    pub(crate) fn contains(&self, gfn: u64) -> bool {
        gfn >= self.base_gfn && gfn - self.base_gfn < self.npages
    }

    /// `__gfn_to_hva_memslot`.
    pub(crate) fn gfn_to_hva(&self, gfn: u64) -> u64 {
        self.userspace_addr + (gfn - self.base_gfn) * PAGE_SIZE
    }

    /// The host range `[start, end)` the slot maps.
    pub(crate) fn hva_range(&self) -> (u64, u64) {
        (
            self.userspace_addr,
            self.userspace_addr + self.npages * PAGE_SIZE,
        )
    }

    /// The gfns of the slot whose host pages intersect `[start, end)`.
    pub(crate) fn gfns_in_hva(&self, start: u64, end: u64) -> std::ops::Range<u64> {
        let (lo, hi) = self.hva_range();
        let start = start.max(lo);
        let end = end.min(hi);
        if start >= end {
            return 0..0;
        }
        let first = self.base_gfn + (start - lo) / PAGE_SIZE;
        let last = self.base_gfn + (end - lo).div_ceil(PAGE_SIZE);
        first..last
    }

    /// `gfn`'s index in the rmap.
    pub(crate) fn rmap_index(&self, gfn: u64) -> usize {
        (gfn - self.base_gfn) as usize
    }

    /// Whether the gfn ranges of two slots overlap.
    pub(crate) fn overlaps(&self, base_gfn: u64, npages: u64) -> bool {
        base_gfn < self.base_gfn + self.npages && self.base_gfn < base_gfn + npages
    }
}

/// `struct kvm_memslots`: one published generation of the slots.
#[doc(alias = "kvm_memslots")]
#[derive(Debug)]
pub struct Memslots {
    /// `slots->generation`.
    pub(crate) generation: u64,
    /// The slots, sorted by `base_gfn`.
    pub(crate) slots: Vec<Memslot>,
    /// `KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS`: set on the published memslots when an
    /// update of them begins. A fault that read these memslots and sees it set
    /// must not cache an MMIO decision: the wrap's zap may already have run, and
    /// an MMIO spte stamped with this generation would outlive it.
    in_flux: AtomicBool,
}

impl Default for Memslots {
    fn default() -> Self {
        Memslots {
            generation: 0,
            slots: Vec::new(),
            in_flux: AtomicBool::new(false),
        }
    }
}

impl Clone for Memslots {
    fn clone(&self) -> Self {
        Memslots {
            generation: self.generation,
            slots: self.slots.clone(),
            in_flux: AtomicBool::new(self.update_in_progress()),
        }
    }
}

impl Memslots {
    /// `slots->generation`: every publication adds one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The slots, by base gfn (INVALID ones included).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Memslot> {
        self.slots.iter()
    }

    /// The number of slots (INVALID ones included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot containing `gfn`, INVALID ones included.
    pub fn lookup(&self, gfn: Gfn) -> Option<&Memslot> {
        self.search(gfn.0)
    }

    /// Whether an update of these memslots has begun
    /// (`KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS`).
    pub fn update_in_progress(&self) -> bool {
        self.in_flux.load(Ordering::Acquire)
    }

    /// Marks these (published) memslots as being replaced.
    pub(crate) fn begin_update(&self) {
        self.in_flux.store(true, Ordering::Release);
    }

    /// `search_memslots`: the slot containing `gfn`, INVALID ones included.
    pub(crate) fn search(&self, gfn: u64) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.contains(gfn))
    }

    /// The slot with `id`.
    pub fn by_id(&self, id: SlotId) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// A copy with `generation + 1` and `edit` applied, sorted again.
    pub(crate) fn next(&self, edit: impl FnOnce(&mut Vec<Memslot>)) -> Memslots {
        let mut slots = self.slots.clone();
        edit(&mut slots);
        slots.sort_by_key(|s| s.base_gfn);
        Memslots {
            generation: self.generation + 1,
            slots,
            in_flux: AtomicBool::new(false),
        }
    }
}

/// A caller's view of one generation of the memslots: it stays valid (and
/// unchanged) however many updates are published after it was taken, as an
/// SRCU reader's `kvm_memslots()` does.
#[derive(Debug, Clone)]
pub struct MemslotsRef(pub(crate) Arc<Memslots>);

impl std::ops::Deref for MemslotsRef {
    type Target = Memslots;
    fn deref(&self) -> &Memslots {
        &self.0
    }
}

//! # Memslots (`struct kvm_memory_slot`, `struct kvm_memslots`)
//!
//! The memslots array is a generation root: readers load the current
//! [`Memslots`] without a lock and keep it for as long as they use it; an update
//! publishes a whole new array with `generation + 1`, as `install_new_memslots`
//! does. Each slot owns its [`Rmap`] and its [`LpageInfo`]; an INVALID copy of a
//! slot shares them with the original.

use crate::rmap::Rmap;
use crate::sync::Arc;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// A memslot id (`slot->id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u16);

/// Bytes per guest page.
pub const PAGE_SIZE: u64 = 4096;

/// `KVM_MEMSLOT_INVALID`: the slot is being deleted or moved. Faults on it retry.
pub const SLOT_INVALID: u32 = 1 << 16;

/// What a caller asks for when creating a slot (`struct kvm_userspace_memory_region`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSpec {
    /// The slot's id.
    pub id: SlotId,
    /// The first gfn.
    pub base_gfn: u64,
    /// The number of pages.
    pub npages: u64,
    /// The host virtual address of the first page (page aligned).
    pub userspace_addr: u64,
}

/// `slot->arch.lpage_info[]`: per large page spanned by the slot, the
/// `disallow_lpage` count. Its length depends on the slot's base alignment, which
/// is why a MOVE must allocate a new one (bug 10).
#[doc(alias = "kvm_lpage_info")]
#[derive(Debug)]
pub struct LpageInfo {
    /// The large-page shift in gfns (`log2(spte_count)`).
    pub shift: u32,
    /// The base gfn the array was sized for.
    pub base_gfn: u64,
    /// `disallow_lpage` per large page.
    pub disallow: Box<[AtomicU64]>,
}

impl LpageInfo {
    /// Sizes the array for a slot at `base_gfn` of `npages`. Partial large pages
    /// at either end are disallowed, as `kvm_arch_create_memslot` does.
    pub fn new(base_gfn: u64, npages: u64, shift: u32) -> LpageInfo {
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
        LpageInfo {
            shift,
            base_gfn,
            disallow,
        }
    }

    /// The index of `gfn`'s large page in this array, if the array covers it.
    pub fn index(&self, slot_base: u64, gfn: u64) -> Option<usize> {
        let index = (gfn >> self.shift).checked_sub(slot_base >> self.shift)?;
        let index = usize::try_from(index).ok()?;
        (index < self.disallow.len()).then_some(index)
    }

    /// Resets every count (`kvm_clear_all_lpage_info`).
    pub fn reset(&self) {
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
    pub id: SlotId,
    /// `slot->base_gfn`.
    pub base_gfn: u64,
    /// `slot->npages`.
    pub npages: u64,
    /// `slot->userspace_addr`.
    pub userspace_addr: u64,
    /// `slot->flags`, including [`SLOT_INVALID`].
    pub flags: u32,
    /// `slot->arch.rmap`.
    pub rmap: Arc<Rmap>,
    /// `slot->arch.lpage_info`.
    pub lpage_info: Arc<LpageInfo>,
}

impl Memslot {
    /// Whether `gfn` falls in the slot.
    pub fn contains(&self, gfn: u64) -> bool {
        gfn >= self.base_gfn && gfn - self.base_gfn < self.npages
    }

    /// Whether the slot is flagged INVALID.
    pub fn is_invalid(&self) -> bool {
        self.flags & SLOT_INVALID != 0
    }

    /// `__gfn_to_hva_memslot`.
    pub fn gfn_to_hva(&self, gfn: u64) -> u64 {
        self.userspace_addr + (gfn - self.base_gfn) * PAGE_SIZE
    }

    /// The host range `[start, end)` the slot maps.
    pub fn hva_range(&self) -> (u64, u64) {
        (
            self.userspace_addr,
            self.userspace_addr + self.npages * PAGE_SIZE,
        )
    }

    /// The gfns of the slot whose host pages intersect `[start, end)`.
    pub fn gfns_in_hva(&self, start: u64, end: u64) -> std::ops::Range<u64> {
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
    pub fn rmap_index(&self, gfn: u64) -> usize {
        (gfn - self.base_gfn) as usize
    }

    /// Whether the gfn ranges of two slots overlap.
    pub fn overlaps(&self, base_gfn: u64, npages: u64) -> bool {
        base_gfn < self.base_gfn + self.npages && self.base_gfn < base_gfn + npages
    }
}

/// `struct kvm_memslots`: one published generation of the slots.
#[doc(alias = "kvm_memslots")]
#[derive(Debug)]
pub struct Memslots {
    /// `slots->generation`.
    pub generation: u64,
    /// The slots, sorted by `base_gfn`.
    pub slots: Vec<Memslot>,
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
    /// Whether an update of these memslots has begun.
    pub fn update_in_progress(&self) -> bool {
        self.in_flux.load(Ordering::Acquire)
    }

    /// Marks these (published) memslots as being replaced.
    pub(crate) fn begin_update(&self) {
        self.in_flux.store(true, Ordering::Release);
    }

    /// `search_memslots`: the slot containing `gfn`, INVALID ones included.
    pub fn lookup(&self, gfn: u64) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.contains(gfn))
    }

    /// The slot with `id`.
    pub fn by_id(&self, id: SlotId) -> Option<&Memslot> {
        self.slots.iter().find(|s| s.id == id)
    }

    /// A copy with `generation + 1` and `edit` applied, sorted again.
    pub fn next(&self, edit: impl FnOnce(&mut Vec<Memslot>)) -> Memslots {
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

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
use crate::rmap::Rmap;
use crate::sync::Arc;
use crate::sync::{AtomicBool, Ordering};

mod hva_index;
mod lpage;
use hva_index::HvaIndex;
pub(crate) use lpage::LpageInfo;

/// `KVM_MEMSLOT_INVALID`: the slot is being deleted or moved. Faults on it retry.
pub(crate) const SLOT_INVALID: u32 = 1 << 16;

/// What a caller asks for when creating a slot (`struct kvm_userspace_memory_region`).
///
/// ```
/// use fastzap::{Config, Gfn, Hva, MmuError, SlotId, SlotSpec, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let spec = SlotSpec { id: SlotId(0), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) };
/// vm.create_memslot(spec)?;
/// assert_eq!(vm.slot_count(), 1);
/// // The host range must be page aligned: a bad spec changes nothing.
/// let unaligned = SlotSpec { id: SlotId(1), base_gfn: Gfn(0), userspace_addr: Hva(0x10), ..spec };
/// assert_eq!(vm.create_memslot(unaligned), Err(MmuError::BadHostRange));
/// assert_eq!(vm.slot_count(), 1);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
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

/// `struct kvm_memory_slot`.
///
/// ```
/// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let base = Hva(0x7f00_0000_0000);
/// vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: base })?;
/// let slots = vm.memslots();
/// let slot = slots.lookup(Gfn(0x105)).expect("gfn 0x105 is in slot 3");
/// assert_eq!((slot.id(), slot.base_gfn(), slot.npages()), (SlotId(3), Gfn(0x100), 16));
/// assert_eq!(slot.hva_of(Gfn(0x105)), Some(base + 5 * PAGE_SIZE));
/// # Ok::<(), fastzap::MmuError>(())
/// ```
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
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// assert_eq!(slots.lookup(Gfn(0x100)).map(|slot| slot.id()), Some(SlotId(3)));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn id(&self) -> SlotId {
        self.id
    }

    /// `slot->base_gfn`: the first gfn.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// let slot = slots.by_id(SlotId(3)).unwrap();
    /// assert_eq!(slot.base_gfn(), Gfn(0x100));
    /// vm.move_memslot(SlotId(3), Gfn(0x200))?;
    /// assert_eq!(vm.memslots().by_id(SlotId(3)).unwrap().base_gfn(), Gfn(0x200));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn base_gfn(&self) -> Gfn {
        Gfn(self.base_gfn)
    }

    /// `slot->npages`.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// let slot = slots.by_id(SlotId(3)).unwrap();
    /// assert_eq!(slot.npages(), 16);
    /// assert!(slot.contains_gfn(slot.base_gfn() + (slot.npages() - 1)));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// `slot->userspace_addr`: the host address of the first page.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// let slot = slots.by_id(SlotId(3)).unwrap();
    /// assert_eq!(slot.userspace_addr(), Hva(0x7f00_0000_0000));
    /// assert_eq!(slot.hva_of(slot.base_gfn()), Some(slot.userspace_addr()));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn userspace_addr(&self) -> Hva {
        Hva(self.userspace_addr)
    }

    /// Whether the slot is flagged INVALID (`KVM_MEMSLOT_INVALID`: being
    /// deleted or moved; faults on it retry).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// // Published slots are valid; a DELETE or MOVE flags the slot INVALID
    /// // only in the copy it publishes while the zap runs.
    /// let slots = vm.memslots();
    /// assert!(slots.iter().all(|slot| !slot.is_invalid()));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn is_invalid(&self) -> bool {
        self.flags & SLOT_INVALID != 0
    }

    /// Whether `gfn` falls in the slot.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// let slot = slots.by_id(SlotId(3)).unwrap();
    /// assert!(slot.contains_gfn(Gfn(0x100)) && slot.contains_gfn(Gfn(0x10f)));
    /// assert!(!slot.contains_gfn(Gfn(0x110)) && !slot.contains_gfn(Gfn(0xff)));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn contains_gfn(&self, gfn: Gfn) -> bool {
        self.contains(gfn.0)
    }

    /// `__gfn_to_hva_memslot`, if `gfn` falls in the slot.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// # use fastzap::PAGE_SIZE;
    /// let slots = vm.memslots();
    /// let slot = slots.by_id(SlotId(3)).unwrap();
    /// assert_eq!(slot.hva_of(Gfn(0x102)), Some(Hva(0x7f00_0000_0000) + 2 * PAGE_SIZE));
    /// assert_eq!(slot.hva_of(Gfn(0x110)), None);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
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

/// A persistent ordered map: a B-tree whose update copies one root-to-leaf
/// path of nodes, O(log n), and shares the rest with the generation it came
/// from. Its nodes hold their keys and values inline, so a lookup touches a
/// few nodes (about 4 with 32,764 slots), where a binary tree touched 15 or
/// more, each a cache miss once the slots outgrow the cache. Plain data (its
/// reference counts are not the facade's), so the loom and shuttle lanes see
/// no new atomics.
pub(crate) type Map<K, V> = imbl::OrdMap<K, V>;

/// `struct kvm_memslots`: one published generation of the slots.
///
/// As the kernel's since 5.11 (`gfn_tree`, `hva_tree`, `id_hash`), it indexes
/// the slots three ways, so that a lookup and an update cost O(log n) with
/// 32,764 slots as with 32. The kernel updates an inactive copy in place and
/// swaps; here each generation is a persistent map that shares all but one
/// path with the one before, so readers keep theirs without a grace period.
///
/// ```
/// use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// for (i, base) in [0x0u64, 0x100].into_iter().enumerate() {
///     let id = SlotId(i as u16);
///     let userspace_addr = Hva(0x7f00_0000_0000 + base * 0x1000);
///     vm.create_memslot(SlotSpec { id, base_gfn: Gfn(base), npages: 16, userspace_addr })?;
/// }
/// let slots = vm.memslots();
/// assert_eq!(slots.len(), 2);
/// assert_eq!(slots.lookup(Gfn(0x105)).map(|s| s.id()), Some(SlotId(1)));
/// assert!(slots.lookup(Gfn(0x50)).is_none());
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[doc(alias = "kvm_memslots")]
#[derive(Debug)]
pub struct Memslots {
    /// `slots->generation`.
    pub(crate) generation: u64,
    /// The slots by `base_gfn` (`gfn_tree`). Their gfn ranges never overlap.
    slots: Map<u64, Memslot>,
    /// `base_gfn` by id (`id_hash`).
    ids: Map<SlotId, u64>,
    /// The slots by host range (`hva_tree`): these may overlap.
    hva: HvaIndex,
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
            slots: Map::new(),
            ids: Map::new(),
            hva: HvaIndex::default(),
            in_flux: AtomicBool::new(false),
        }
    }
}

impl Clone for Memslots {
    fn clone(&self) -> Self {
        Memslots {
            generation: self.generation,
            slots: self.slots.clone(),
            ids: self.ids.clone(),
            hva: self.hva.clone(),
            in_flux: AtomicBool::new(self.update_in_progress()),
        }
    }
}

impl Memslots {
    /// `KVM_USER_MEM_SLOTS` on x86: `SHRT_MAX` ids less the 3 internal slots.
    /// The kernel bounds the id, which bounds the count; fastzap's ids are the
    /// caller's, so it bounds the count ([`MmuError::TooManySlots`]).
    ///
    /// [`MmuError::TooManySlots`]: crate::MmuError::TooManySlots
    #[doc(alias = "KVM_USER_MEM_SLOTS")]
    pub const MAX_SLOTS: usize = 32_764;

    /// `slots->generation`: every publication adds one.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let before = vm.memslots().generation();
    /// vm.delete_memslot(SlotId(3))?;
    /// assert!(vm.memslots().generation() > before);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The slots, by base gfn (INVALID ones included).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(1), base_gfn: Gfn(0), npages: 4, userspace_addr: Hva(0x10_0000) })?;
    /// let slots = vm.memslots();
    /// let bases: Vec<Gfn> = slots.iter().map(|slot| slot.base_gfn()).collect();
    /// assert_eq!(bases, [Gfn(0), Gfn(0x100)]);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Memslot> {
        self.slots.values()
    }

    /// The number of slots (INVALID ones included).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// assert_eq!(vm.memslots().len(), 1);
    /// assert_eq!(vm.memslots().len(), vm.slot_count());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// assert!(!vm.memslots().is_empty());
    /// vm.delete_memslot(SlotId(3))?;
    /// assert!(vm.memslots().is_empty());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot containing `gfn`, INVALID ones included.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// assert_eq!(slots.lookup(Gfn(0x10f)).map(|slot| slot.id()), Some(SlotId(3)));
    /// assert!(slots.lookup(Gfn(0x110)).is_none()); // a fault there is MMIO
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn lookup(&self, gfn: Gfn) -> Option<&Memslot> {
        self.search(gfn.0)
    }

    /// Whether an update of these memslots has begun
    /// (`KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS`).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// // A snapshot taken before an update is marked when the update begins.
    /// let old = vm.memslots();
    /// assert!(!old.update_in_progress());
    /// vm.delete_memslot(SlotId(3))?;
    /// assert!(old.update_in_progress());
    /// assert!(!vm.memslots().update_in_progress());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn update_in_progress(&self) -> bool {
        self.in_flux.load(Ordering::Acquire)
    }

    /// Marks these (published) memslots as being replaced.
    pub(crate) fn begin_update(&self) {
        self.in_flux.store(true, Ordering::Release);
    }

    /// `search_memslots`: the slot containing `gfn`, INVALID ones included. The
    /// only candidate is the last slot starting at or before `gfn`. O(log n).
    pub(crate) fn search(&self, gfn: u64) -> Option<&Memslot> {
        let (_, slot) = self.slots.range(..=gfn).next_back()?;
        slot.contains(gfn).then_some(slot)
    }

    /// The slot with `id`. O(log n).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # vm.create_memslot(SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) })?;
    /// let slots = vm.memslots();
    /// assert_eq!(slots.by_id(SlotId(3)).map(|slot| slot.base_gfn()), Some(Gfn(0x100)));
    /// assert!(slots.by_id(SlotId(4)).is_none());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn by_id(&self, id: SlotId) -> Option<&Memslot> {
        self.slots.get(self.ids.get(&id)?)
    }

    /// The first slot by base gfn, other than `except`, whose gfns overlap
    /// `[base_gfn, base_gfn + npages)`. Slots never overlap each other, so the
    /// candidates are the slot starting at or before `base_gfn` and those
    /// starting inside the range, in that order. O(log n).
    pub(crate) fn first_overlapping(
        &self,
        base_gfn: u64,
        npages: u64,
        except: Option<SlotId>,
    ) -> Option<&Memslot> {
        use std::ops::Bound::{Excluded, Unbounded};
        let before = self.slots.range(..=base_gfn).next_back();
        let inside = self
            .slots
            .range((Excluded(base_gfn), Unbounded))
            .take_while(|&(&base, _)| base < base_gfn.saturating_add(npages));
        before
            .into_iter()
            .chain(inside)
            .map(|(_, slot)| slot)
            .filter(|slot| Some(slot.id) != except)
            .find(|slot| slot.overlaps(base_gfn, npages))
    }

    /// The published slots whose host range intersects `[start, end)`, by base
    /// gfn (`kvm_for_each_memslot_in_hva_range`). O(log n + k) when no two
    /// slots share host pages; see [`HvaIndex::overlapping`].
    pub(crate) fn in_hva_range(&self, start: u64, end: u64) -> Vec<&Memslot> {
        let mut hits: Vec<&Memslot> = self.hva.overlapping(start, end).collect();
        hits.sort_unstable_by_key(|slot| slot.base_gfn);
        hits
    }

    /// A copy with `generation + 1` and `edit` applied. The copy is O(1): each
    /// edit copies one path of each map.
    pub(crate) fn next(&self, edit: impl FnOnce(&mut Memslots)) -> Memslots {
        let mut next = Memslots {
            generation: self.generation + 1,
            in_flux: AtomicBool::new(false),
            ..self.clone()
        };
        edit(&mut next);
        next
    }

    /// Adds `slot`, whose id and gfns the caller checked are free.
    pub(crate) fn insert(&mut self, slot: Memslot) {
        self.ids.insert(slot.id, slot.base_gfn);
        self.hva.insert(&slot);
        self.slots.insert(slot.base_gfn, slot);
    }

    /// Removes the slot with `id`, if there is one.
    pub(crate) fn remove(&mut self, id: SlotId) -> Option<Memslot> {
        let base = *self.ids.get(&id)?;
        let slot = self.slots.remove(&base)?;
        self.ids.remove(&id);
        self.hva.remove(&slot);
        Some(slot)
    }

    /// Sets `flags` on the slot with `id`, if there is one.
    pub(crate) fn set_flags(&mut self, id: SlotId, flags: u32) {
        if let Some(base) = self.ids.get(&id).copied()
            && let Some(slot) = self.slots.get_mut(&base)
        {
            slot.flags |= flags;
            self.hva.set_flags(slot, flags);
        }
    }
}

/// The three indexes of one [`Memslots`] generation, read-only, for the
/// audit's check that they agree (I10).
#[cfg(feature = "ghost")]
pub(crate) struct IndexView<'a> {
    /// By base gfn.
    pub(crate) slots: &'a Map<u64, Memslot>,
    /// Base gfn by id.
    pub(crate) ids: &'a Map<SlotId, u64>,
    /// By (host start, id): copies of the slots.
    pub(crate) by_start: &'a Map<(u64, SlotId), Memslot>,
    /// Slots per host length.
    pub(crate) lengths: &'a Map<u64, u64>,
    /// Pairs of slots that share host pages.
    pub(crate) overlaps: u64,
}

#[cfg(feature = "ghost")]
impl Memslots {
    /// The indexes, for the audit.
    pub(crate) fn index_view(&self) -> IndexView<'_> {
        IndexView {
            slots: &self.slots,
            ids: &self.ids,
            by_start: &self.hva.by_start,
            lengths: &self.hva.lengths,
            overlaps: self.hva.overlaps,
        }
    }

    /// Test hook, the bug a plain edit of `remove` or `set_flags` could
    /// make: one index changed without the others. `what` picks which.
    #[cfg(all(test, not(any(loom, shuttle))))]
    pub(crate) fn corrupt_index_for_test(&mut self, id: SlotId, what: u8) {
        let Some(base) = self.ids.get(&id).copied() else {
            return;
        };
        match what {
            0 => {
                self.ids.remove(&id);
            }
            1 => {
                if let Some(slot) = self.slots.get_mut(&base) {
                    slot.flags |= SLOT_INVALID;
                }
            }
            _ => self.hva.overlaps += 1,
        }
    }
}

/// A caller's view of one generation of the memslots: it stays valid (and
/// unchanged) however many updates are published after it was taken, as an
/// SRCU reader's `kvm_memslots()` does.
///
/// ```
/// use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 8, userspace_addr: Hva(0x10_0000) })?;
/// let snapshot = vm.memslots();
/// vm.delete_memslot(SlotId(0))?;
/// // The snapshot still sees the slot; the VM does not.
/// assert!(snapshot.by_id(SlotId(0)).is_some());
/// assert!(vm.memslots().by_id(SlotId(0)).is_none());
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemslotsRef(pub(crate) Arc<Memslots>);

impl std::ops::Deref for MemslotsRef {
    type Target = Memslots;
    fn deref(&self) -> &Memslots {
        &self.0
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests;

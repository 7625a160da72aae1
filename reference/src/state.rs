//! # The state: what a caller of a `Vm` can see, and nothing else
//!
//! Mirrors `core/src/vm.rs` (`struct kvm`: the memslots, the vCPUs,
//! `mmu_valid_gen`), `core/src/vcpu.rs` (a vCPU's root and requests) and
//! `core/src/spte.rs` (a leaf or an MMIO spte), reduced to what the public
//! API shows: a [`Reference`] holds the slots, the host, per address space the
//! leaves and MMIO sptes the page tables may hold, and per vCPU its root, its
//! pending requests and its MMIO cache, each exact or only possible
//! ([`Tri`], [`Leaf::certain`]). It also holds what a concurrent history
//! needs (operations whose tail is to come, deferred bumps, zombie slots),
//! empty in sequential use.
//!
//! Here are the state's constructor and the lookups every operation shares
//! (input checks, which slot backs a gfn, a gfn's host address); each
//! operation's rules are in the file of its family.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use fastzap::{Config, DeletionStrategy, Gfn, MmuError, SlotSpec, VcpuId};

use crate::host::{Host, PAGE_SIZE};

/// Three-valued knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tri {
    /// Certainly not.
    Clear,
    /// Perhaps.
    Maybe,
    /// Certainly.
    Set,
}

impl Tri {
    /// At least maybe: `Clear` becomes `Maybe`, `Set` stays `Set`.
    pub(crate) fn weaken(self) -> Tri {
        match self {
            Tri::Clear => Tri::Maybe,
            other => other,
        }
    }
}

/// A vCPU's root, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    /// Never loaded: the vCPU has not handled its first requests.
    None,
    /// A valid root of the current generation.
    Current,
    /// Obsolete or invalid: faults retry until the vCPU reloads.
    Obsolete,
    /// Perhaps zapped by the shrinker.
    MaybeObsolete,
}

/// One vCPU, as the caller can see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VcpuModel {
    /// Its root.
    pub root: Root,
    /// Whether any request is pending.
    pub pending: Tri,
    /// Whether a reload request is pending.
    pub reload: Tri,
    /// The MMIO cache: (gfn, memslots generation), exactly.
    pub mmio_cache: Option<(u64, u64)>,
}

/// A leaf the page tables of one address space may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// The pfn it maps: `None` after `change_pte` pointed it at the new pfn of
    /// its host page, which the reference has not seen yet.
    pub pfn: Option<u64>,
    /// The writable bit, if known.
    pub writable: Option<bool>,
    /// The accessed bit, if known.
    pub accessed: Option<bool>,
    /// Certainly reachable from the address space's current root (else only
    /// possibly present, perhaps unreachable).
    pub certain: bool,
}

/// An MMIO spte one address space may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MmioEntry {
    /// The memslots generation it was built under.
    pub generation: u64,
    /// Certainly reachable from the current root.
    pub certain: bool,
}

/// The page tables of one address space, by gfn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Space {
    /// Leaves.
    pub leaves: BTreeMap<u64, Leaf>,
    /// MMIO sptes.
    pub mmio: BTreeMap<u64, MmioEntry>,
}

/// The sequential reference model. See the [module documentation](crate::reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub(crate) max_gfn: u64,
    pub(crate) gen_mask: u64,
    pub(crate) mmio_mask: u64,
    pub(crate) address_spaces: usize,
    pub(crate) deletion: DeletionStrategy,
    /// Gfns per large page, if faults may map large pages
    /// (`Config::large_pages`, with more than one level).
    pub(crate) large: Option<u64>,
    /// The slots, sorted by base gfn.
    pub slots: Vec<SlotSpec>,
    /// The memslots generation.
    pub slots_generation: u64,
    /// `mmu_valid_gen`.
    pub mmu_valid_gen: u64,
    /// The host.
    pub host: Host,
    /// Per address space.
    pub spaces: Vec<Space>,
    /// Per vCPU.
    pub vcpus: Vec<VcpuModel>,
    /// Operations placed whose tails are not (see
    /// [`Reference::step_overlapping`]): always empty in sequential use.
    pub(crate) in_flight: Vec<InFlight>,
    /// Per vCPU, how many times it looked at its requests.
    pub(crate) consumed: Vec<u64>,
    /// Within [`Reference::step_overlapping`] of an operation with a tail:
    /// the invalidations that core makes at an instant of their own (see
    /// [`Reference::deferred_bump`]) are counted, not carried out.
    pub(crate) deferring: Option<u32>,
    /// Slots a seed v3 DELETE unpublished whose invalidation is deferred:
    /// their leaves are still mapped, and the notifiers still reach them
    /// (core keeps them as zombies). Always empty in sequential use.
    pub(crate) zombies: Vec<SlotSpec>,
    /// Per gfn, the leaves (over every address space) that a deferring DELETE
    /// (`SeedV3Deferred`) left in the previous generation's pages: never
    /// translated through again, but still on the live slots' rmaps, so the
    /// notifiers may find them (possible, never certain) until the next
    /// invalidation or `invalidate_range` over them. Empty otherwise.
    pub(crate) retained: BTreeMap<u64, usize>,
    /// A deferring DELETE left the previous generation's pages in place: an
    /// obsolete root still reaches them, with their leaves and MMIO sptes.
    pub(crate) retains: bool,
    /// Within [`Reference::step_overlapping`] of a `SlotOnlyQuirkOff` DELETE
    /// with a tail: the leaves its zap removed (address space, gfn, hva, leaf),
    /// which go to its [`InFlight`] entry. Empty between steps.
    pub(crate) unreached: Vec<(usize, u64, u64, Leaf)>,
}

/// An operation whose tail is still to come.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InFlight {
    /// The checker's key for it.
    pub(crate) key: u64,
    /// It zaps obsolete pages in batches.
    pub(crate) zaps: bool,
    /// Per vCPU: whether it owes it a request, a reload, and the vCPU's
    /// `consumed` count when it was placed.
    pub(crate) owed: Vec<(bool, bool, u64)>,
    /// Invalidations deferred to [`Reference::deferred_bump`].
    pub(crate) bumps: u32,
    /// A `SlotOnlyQuirkOff` DELETE's zap yields at lock breaks and flushes
    /// before each (core/src/tdp/memslot.rs): until it returns, a translate
    /// may still find a leaf of the deleted slot that the zap has not reached
    /// (address space, gfn, hva, leaf), even after the vCPU handled a flush.
    /// The notifiers still reach them through the INVALID slot.
    pub(crate) unreached: Vec<(usize, u64, u64, Leaf)>,
}

impl Hash for Reference {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.max_gfn.hash(state);
        self.gen_mask.hash(state);
        self.mmio_mask.hash(state);
        self.address_spaces.hash(state);
        matches!(self.deletion, DeletionStrategy::Merged311).hash(state);
        self.large.hash(state);
        for s in self.slots.iter().chain(&self.zombies) {
            (s.id, s.base_gfn, s.npages, s.userspace_addr).hash(state);
        }
        self.zombies.len().hash(state);
        self.slots_generation.hash(state);
        self.mmu_valid_gen.hash(state);
        self.host.hash(state);
        self.spaces.hash(state);
        self.vcpus.hash(state);
        self.in_flight.hash(state);
        self.consumed.hash(state);
    }
}

impl Reference {
    /// The reference for a fresh VM of `config`: no slots, every vCPU without a
    /// root and with a reload request.
    pub fn new(config: &Config) -> Reference {
        Reference {
            max_gfn: config.max_gfn(),
            gen_mask: (1u64 << config.gen_bits) - 1,
            mmio_mask: (1u64 << config.mmio_gen_bits) - 1,
            address_spaces: usize::from(config.address_spaces),
            deletion: config.deletion,
            large: (config.large_pages && config.levels > 1).then_some(config.spte_count as u64),
            slots: Vec::new(),
            slots_generation: 0,
            mmu_valid_gen: 0,
            host: Host::default(),
            spaces: vec![Space::default(); usize::from(config.address_spaces)],
            vcpus: (0..config.vcpus)
                .map(|_| VcpuModel {
                    root: Root::None,
                    pending: Tri::Set,
                    reload: Tri::Set,
                    mmio_cache: None,
                })
                .collect(),
            in_flight: Vec::new(),
            consumed: vec![0; config.vcpus],
            deferring: None,
            zombies: Vec::new(),
            retained: BTreeMap::new(),
            retains: false,
            unreached: Vec::new(),
        }
    }

    /// The address space vCPU `v` runs in: odd vCPUs use the second (`role.smm`).
    pub fn space_of(&self, v: usize) -> usize {
        if self.address_spaces == 2 { v % 2 } else { 0 }
    }

    /// The error a call naming `gfn` must return, if any.
    pub(crate) fn check_gfn(&self, gfn: u64) -> Result<(), MmuError> {
        if gfn >= self.max_gfn {
            return Err(MmuError::GfnOutOfRange {
                gfn: Gfn(gfn),
                limit: Gfn(self.max_gfn),
            });
        }
        Ok(())
    }

    /// The error a call naming `vcpu` must return, if any.
    pub(crate) fn check_vcpu(&self, vcpu: VcpuId) -> Result<(), MmuError> {
        if vcpu.0 >= self.vcpus.len() {
            return Err(MmuError::UnknownVcpu(vcpu));
        }
        Ok(())
    }

    /// The slot whose host pages back `gfn`'s leaves: a published slot, or
    /// a deleted one whose invalidation is deferred.
    pub(crate) fn backing_slot(&self, gfn: u64) -> Option<&SlotSpec> {
        self.slot_of(gfn).or_else(|| {
            self.zombies
                .iter()
                .find(|s| gfn >= s.base_gfn.0 && gfn - s.base_gfn.0 < s.npages)
        })
    }

    /// The published slot that maps `gfn`.
    pub(crate) fn slot_of(&self, gfn: u64) -> Option<&SlotSpec> {
        self.slots
            .iter()
            .find(|s| gfn >= s.base_gfn.0 && gfn - s.base_gfn.0 < s.npages)
    }

    /// The host address of `gfn` in `slot`.
    pub(crate) fn hva_of(slot: &SlotSpec, gfn: u64) -> u64 {
        slot.userspace_addr.0 + (gfn - slot.base_gfn.0) * PAGE_SIZE
    }

    /// The gfns of `gfn`'s large page, if a fault on `gfn` may map it large
    /// now (`core/src/fault.rs`, `mapping_level`): large pages are on, the
    /// large page lies wholly inside the slot backing `gfn` (its
    /// `disallow_lpage` is 0), and one large host page backs it (its first
    /// host page is aligned and none of its pages was remapped). Whether the
    /// fault does map it large depends on whether a page table of small
    /// sptes is already there, which the reference does not track: the
    /// gfns of such a large page are linked, each may be mapped by the
    /// spte of another.
    pub(crate) fn large_page(&self, gfn: u64) -> Option<std::ops::Range<u64>> {
        let count = self.large?;
        let slot = self.backing_slot(gfn)?;
        let first = gfn & !(count - 1);
        let (base, end) = (slot.base_gfn.0, slot.base_gfn.0 + slot.npages);
        if first < base || first + count > end {
            return None;
        }
        let page = Self::hva_of(slot, first) / PAGE_SIZE;
        (page.is_multiple_of(count) && self.host.never_remapped(page, count))
            .then_some(first..first + count)
    }

    /// The other gfns of `gfn`'s large page, if it may be mapped large.
    pub(crate) fn large_neighbours(&self, gfn: u64) -> Vec<u64> {
        self.large_page(gfn)
            .map(|r| r.filter(|g| *g != gfn).collect())
            .unwrap_or_default()
    }
}

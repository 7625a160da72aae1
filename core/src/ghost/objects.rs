//! The per-object ghost halves (feature `ghost`): a page's lifecycle and
//! spte install times, the pages a lockless walk visited, a descriptor's
//! lifecycle, a vCPU's operation count, and the unmasked generation count.

use crate::ids::PageId;
use crate::sync::ghost::GhostU64;

/// Ghost lifecycle of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum PageLife {
    /// Allocated and not retired.
    Live = 0,
    /// Handed to the reclaimer.
    Retired = 1,
    /// Poisoned (its memory may still be waiting for the deferred release).
    Freed = 2,
}

/// A shadow page's ghost half.
#[derive(Debug)]
pub(crate) struct PageGhost {
    /// The page's id, readable without touching the body, which a mutant may
    /// be poisoning at the same time.
    pub(crate) id: PageId,
    life: GhostU64,
    /// For each spte, the ghost time its current leaf was installed.
    install: Box<[GhostU64]>,
}

impl PageGhost {
    pub(crate) fn new(id: PageId, sptes: usize) -> PageGhost {
        PageGhost {
            id,
            life: GhostU64::new(PageLife::Live as u64),
            install: (0..sptes).map(|_| GhostU64::new(0)).collect(),
        }
    }

    /// The leaf at `index` was installed at ghost time `at`.
    #[inline]
    pub(crate) fn installed_at(&self, index: usize, at: u64) {
        self.install[index].set(at);
    }

    /// When the leaf at `index` was installed.
    #[inline]
    pub(crate) fn installed(&self, index: usize) -> u64 {
        self.install[index].get()
    }

    /// The page was handed to the reclaimer. Returns whether it was live:
    /// a page retired a second time is not (`free_page` reports it, I3,
    /// and does not hand it over again).
    pub(crate) fn retired(&self) -> bool {
        self.life
            .compare_set(PageLife::Live as u64, PageLife::Retired as u64)
    }

    /// The page was poisoned.
    pub(crate) fn freed(&self) {
        self.life.set(PageLife::Freed as u64);
    }

    /// Where the page is in its life.
    pub(crate) fn life(&self) -> PageLife {
        match self.life.get() {
            0 => PageLife::Live,
            1 => PageLife::Retired,
            _ => PageLife::Freed,
        }
    }
}

/// The pages a lockless reader visited, for [`Ghost::check_outlived`].
#[derive(Debug, Default)]
pub(crate) struct Visited<'g>(pub(super) Vec<&'g PageGhost>);

impl<'g> Visited<'g> {
    #[inline]
    pub(crate) fn push(&mut self, page: &'g PageGhost) {
        self.0.push(page);
    }
}

/// A descriptor's ghost half: its id (`d<n>` in violations, from
/// [`Ghost::next_desc_id`]) and its life: live (0), retired (1) or freed (2).
#[derive(Debug, Default)]
pub(crate) struct DescGhost {
    id: u64,
    life: GhostU64,
}

impl DescGhost {
    /// Live.
    pub(crate) const fn new(id: u64) -> DescGhost {
        DescGhost {
            id,
            life: GhostU64::new(0),
        }
    }

    /// The id, readable without touching the body.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The descriptor was unlinked and handed to the reclaimer. Returns
    /// whether it was live: one retired a second time is not
    /// (`DescPtr::retire` reports it, I2, and does not hand it over again).
    pub(crate) fn retire(&self) -> bool {
        self.life.compare_set(0, 1)
    }

    /// The descriptor was poisoned.
    pub(crate) fn freed(&self) {
        self.life.set(2);
    }

    /// Whether it was retired (or freed since).
    pub(crate) fn is_retired(&self) -> bool {
        self.life.get() != 0
    }

    /// Whether it was freed.
    pub(crate) fn is_freed(&self) -> bool {
        self.life.get() == 2
    }
}

/// A vCPU's ghost half: how many operations ran on it, and how many claims
/// hold it now (I11: at most one).
#[derive(Debug, Default)]
pub(crate) struct VcpuGhost {
    ops: GhostU64,
    holders: GhostU64,
}

impl VcpuGhost {
    /// No operation yet.
    pub(crate) const fn new() -> VcpuGhost {
        VcpuGhost {
            ops: GhostU64::new(0),
            holders: GhostU64::new(0),
        }
    }

    /// One more operation.
    #[inline]
    pub(crate) fn op(&self) {
        self.ops.increment();
    }

    /// Operations so far.
    pub(crate) fn ops(&self) -> u64 {
        self.ops.get()
    }

    /// A claim now holds the vCPU; returns how many do.
    pub(crate) fn hold(&self) -> u64 {
        self.holders.increment()
    }

    /// A claim was released.
    #[inline]
    pub(crate) fn release(&self) {
        self.holders.decrement();
    }

    /// How many claims hold the vCPU.
    pub(crate) fn holders(&self) -> u64 {
        self.holders.get()
    }
}

/// A vCPU TLB's ghost half: per entry, when the spte it copied was installed
/// and when it was filled (I4 through the TLB).
#[derive(Debug)]
pub(crate) struct TlbGhost<const N: usize> {
    installed: [GhostU64; N],
    filled: [GhostU64; N],
}

impl<const N: usize> TlbGhost<N> {
    pub(crate) fn new() -> TlbGhost<N> {
        TlbGhost {
            installed: std::array::from_fn(|_| GhostU64::new(0)),
            filled: std::array::from_fn(|_| GhostU64::new(0)),
        }
    }

    /// Entry `slot` was filled now from a spte installed at `installed`.
    #[inline]
    pub(crate) fn filled(&self, ghost: &super::Ghost, slot: usize, installed: u64) {
        self.installed[slot].set(installed);
        self.filled[slot].set(ghost.now());
    }

    /// Entry `slot` answered `gfn -> pfn` in a translate that began at `start`.
    #[inline]
    pub(crate) fn check_hit(
        &self,
        ghost: &super::Ghost,
        slot: usize,
        gfn: u64,
        pfn: u64,
        start: u64,
    ) {
        let (installed, filled) = (self.installed[slot].get(), self.filled[slot].get());
        ghost.check_tlb_hit(gfn, pfn, installed, filled, start);
    }
}

/// How many times `mmu_valid_gen` was bumped, unmasked: a page born in another
/// epoch is obsolete even if a wrapped generation matches its own (I5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct GenEpoch(u64);

impl GenEpoch {
    /// No bump yet.
    pub(crate) const fn new() -> GenEpoch {
        GenEpoch(0)
    }

    /// One more bump.
    #[inline]
    pub(crate) fn bump(&mut self) {
        self.0 += 1;
    }

    /// The count.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

//! # Sptes
//!
//! A shadow page table entry is one 64-bit word, read by lockless walkers and
//! written under `mmu_lock` (and, for the seed's remove-only rmaps, cleared
//! atomically outside it).
//!
//! | bits | not present | leaf | non-leaf | MMIO |
//! |---|---|---|---|---|
//! | 0 `PRESENT` | 0 | 1 | 1 | 0 |
//! | 1 `MMIO` | 0 | 0 | 0 | 1 |
//! | 2 `LEAF` | 0 | 1 | 0 | 0 |
//! | 3 `ACCESSED` | | A bit | | |
//! | 4 `WRITABLE` | | W bit | | |
//! | 7 `PT_PAGE_SIZE_MASK` | | large page (a leaf above level 1) | | |
//! | 12..63 | | pfn | child page address (bits 4..63) | memslots generation (masked, bits 12..31); ghost full generation (bits 32..63) |
//!
//! The ghost half of an MMIO spte is for the audit (I7) only: the protocol
//! compares the masked generation, as the kernel does.
//!
//! # A spte is a pointer-sized word that keeps provenance
//! A spte lives in a [`SpteCell`], an [`AtomicPtr`] word, and is read as a
//! [`RawSpte`]. A non-leaf spte is the child page's pointer with `PRESENT`
//! set through `map_addr`, so the child pointer decoded from it keeps the
//! provenance of the page it points to (Miri's `-Zmiri-strict-provenance`
//! accepts the walk's dereference, and Tree Borrows can check it). Every
//! other spte holds bits only (`ptr::without_provenance_mut`). A vCPU's root
//! (the kernel's `root.hpa`) is the same kind of word, holding the root
//! page's pointer with no flag. The layout needs 64-bit pointers.

use std::ops::{BitAnd, BitOr};

use crate::sync::{AtomicPtr, Ordering};

const _: () = assert!(
    usize::BITS == 64,
    "a spte is a pointer-sized word holding 64 bits"
);

/// `PT_PRESENT_MASK`.
pub const PRESENT: u64 = 1 << 0;
/// The MMIO marker (`shadow_mmio_mask`).
pub const MMIO: u64 = 1 << 1;
/// Set in a present spte that maps a pfn (a last-level spte).
pub const LEAF: u64 = 1 << 2;
/// `shadow_accessed_mask`.
pub const ACCESSED: u64 = 1 << 3;
/// `PT_WRITABLE_MASK`.
pub const WRITABLE: u64 = 1 << 4;

/// `PT_PAGE_SIZE_MASK`: set in a leaf above level 1, a large page whose pfn
/// is the first of `spte_count` contiguous, aligned ones. Bit 7, as on x86;
/// only leaves carry it (a non-leaf spte's bits 4 to 63 are its child's
/// address).
pub const PT_PAGE_SIZE_MASK: u64 = 1 << 7;

const PFN_SHIFT: u32 = 12;
const FLAG_BITS: u64 = 0xf;

/// A decoded spte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spte {
    /// Not present.
    None,
    /// A present leaf mapping `pfn`.
    Leaf {
        /// The host page frame.
        pfn: u64,
        /// `ACCESSED`.
        accessed: bool,
        /// `WRITABLE`.
        writable: bool,
    },
    /// A present non-leaf spte pointing to a child page (its pointer, flags
    /// cleared, with the page's provenance).
    NonLeaf(RawSpte),
    /// An MMIO spte.
    Mmio {
        /// The masked memslots generation it was built under.
        generation: u64,
        /// The full memslots generation (ghost, for the audit).
        ghost_generation: u64,
    },
}

impl Spte {
    /// Decodes a raw spte.
    pub fn decode(word: RawSpte) -> Spte {
        let raw = word.bits();
        if raw & PRESENT != 0 {
            if raw & LEAF != 0 {
                Spte::Leaf {
                    pfn: raw >> PFN_SHIFT,
                    accessed: raw & ACCESSED != 0,
                    writable: raw & WRITABLE != 0,
                }
            } else {
                Spte::NonLeaf(RawSpte(word.0.map_addr(|a| a & !(FLAG_BITS as usize))))
            }
        } else if raw & MMIO != 0 {
            Spte::Mmio {
                generation: (raw >> PFN_SHIFT) & 0xf_ffff,
                ghost_generation: raw >> 32,
            }
        } else {
            Spte::None
        }
    }

    /// Encodes a present leaf.
    pub fn leaf(pfn: u64, writable: bool) -> u64 {
        (pfn << PFN_SHIFT) | PRESENT | LEAF | if writable { WRITABLE } else { 0 }
    }

    /// Encodes a present large leaf (`PT_PAGE_SIZE_MASK` set) mapping the
    /// large page whose first pfn is `pfn`.
    pub fn large_leaf(pfn: u64, writable: bool) -> u64 {
        Spte::leaf(pfn, writable) | PT_PAGE_SIZE_MASK
    }

    /// `is_large_pte`: whether the raw spte is a present large leaf.
    pub fn is_large_pte(raw: RawSpte) -> bool {
        Spte::is_leaf(raw) && raw.bits() & PT_PAGE_SIZE_MASK != 0
    }

    /// Encodes a non-leaf spte for the child page `child` (a page's word,
    /// 16-byte aligned).
    pub fn non_leaf(child: RawSpte) -> RawSpte {
        debug_assert_eq!(
            child.bits() & FLAG_BITS,
            0,
            "shadow pages are 16-byte aligned"
        );
        child | PRESENT
    }

    /// Encodes an MMIO spte: `masked` is compared by the protocol, `full` is ghost.
    pub fn mmio(masked: u64, full: u64) -> u64 {
        ((full & 0xffff_ffff) << 32) | ((masked & 0xf_ffff) << PFN_SHIFT) | MMIO
    }

    /// Whether the raw spte is a present leaf.
    pub fn is_leaf(raw: RawSpte) -> bool {
        raw.bits() & (PRESENT | LEAF) == PRESENT | LEAF
    }
}

/// One spte's value (or a vCPU root's): 64 bits, and, for a pointer to a
/// page, that page's provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSpte(*mut ());

impl RawSpte {
    /// The bits.
    pub fn bits(self) -> u64 {
        self.0.addr() as u64
    }

    /// The address (the bits, as an address: it cannot be dereferenced), for
    /// the audit's identity checks.
    #[cfg(feature = "ghost")]
    pub fn addr(self) -> usize {
        self.0.addr()
    }

    /// A word holding `ptr` (a page's pointer), keeping its provenance.
    pub(crate) fn from_ptr(ptr: *mut ()) -> RawSpte {
        RawSpte(ptr)
    }

    /// The pointer, with its provenance (null for an empty word).
    pub(crate) fn ptr(self) -> *mut () {
        self.0
    }
}

/// A word with no pointer in it: a leaf, an MMIO spte, 0.
impl From<u64> for RawSpte {
    fn from(bits: u64) -> RawSpte {
        RawSpte(std::ptr::without_provenance_mut(bits as usize))
    }
}

/// Sets flag bits, keeping the provenance.
impl BitOr<u64> for RawSpte {
    type Output = RawSpte;
    fn bitor(self, bits: u64) -> RawSpte {
        RawSpte(self.0.map_addr(|a| a | bits as usize))
    }
}

/// Masks bits, keeping the provenance.
impl BitAnd<u64> for RawSpte {
    type Output = RawSpte;
    fn bitand(self, bits: u64) -> RawSpte {
        RawSpte(self.0.map_addr(|a| a & bits as usize))
    }
}

/// Compares the bits (`root == 0`: no root).
impl PartialEq<u64> for RawSpte {
    fn eq(&self, bits: &u64) -> bool {
        self.bits() == *bits
    }
}

/// One spte (`u64 *sptep`), or a vCPU's root word: read by lockless walkers,
/// written under `mmu_lock` (and cleared atomically outside it by the
/// remove-only unmapper).
#[derive(Debug, Default)]
pub struct SpteCell(AtomicPtr<()>);

impl SpteCell {
    /// An empty word.
    pub fn new() -> SpteCell {
        SpteCell::default()
    }

    /// `load`.
    #[inline]
    pub fn load(&self, order: Ordering) -> RawSpte {
        RawSpte(self.0.load(order))
    }

    /// `store`.
    #[inline]
    pub fn store(&self, value: impl Into<RawSpte>, order: Ordering) {
        self.0.store(value.into().0, order)
    }

    /// `swap`.
    #[inline]
    pub fn swap(&self, value: impl Into<RawSpte>, order: Ordering) -> RawSpte {
        RawSpte(self.0.swap(value.into().0, order))
    }

    /// `compare_exchange` (on the bits; provenance is not compared).
    #[inline]
    pub fn compare_exchange(
        &self,
        current: impl Into<RawSpte>,
        new: impl Into<RawSpte>,
        success: Ordering,
        failure: Ordering,
    ) -> Result<RawSpte, RawSpte> {
        self.0
            .compare_exchange(current.into().0, new.into().0, success, failure)
            .map(RawSpte)
            .map_err(RawSpte)
    }

    /// `fetch_or` of flag bits, keeping the provenance.
    #[inline]
    pub fn fetch_or(&self, bits: u64, order: Ordering) -> RawSpte {
        RawSpte(self.0.fetch_or(bits as usize, order))
    }
}

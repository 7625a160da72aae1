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
//! | 12..63 | | pfn | child page address (bits 4..63) | memslots generation (masked, bits 12..31); ghost full generation (bits 32..63) |
//!
//! The ghost half of an MMIO spte is for the audit (I7) only: the protocol
//! compares the masked generation, as the kernel does.

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
    /// A present non-leaf spte pointing to a child page (its address).
    NonLeaf(usize),
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
    pub fn decode(raw: u64) -> Spte {
        if raw & PRESENT != 0 {
            if raw & LEAF != 0 {
                Spte::Leaf {
                    pfn: raw >> PFN_SHIFT,
                    accessed: raw & ACCESSED != 0,
                    writable: raw & WRITABLE != 0,
                }
            } else {
                Spte::NonLeaf((raw & !FLAG_BITS) as usize)
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

    /// Encodes a non-leaf spte for the child page at `addr` (16-byte aligned).
    pub fn non_leaf(addr: usize) -> u64 {
        debug_assert_eq!(
            addr as u64 & FLAG_BITS,
            0,
            "shadow pages are 16-byte aligned"
        );
        addr as u64 | PRESENT
    }

    /// Encodes an MMIO spte: `masked` is compared by the protocol, `full` is ghost.
    pub fn mmio(masked: u64, full: u64) -> u64 {
        ((full & 0xffff_ffff) << 32) | ((masked & 0xf_ffff) << PFN_SHIFT) | MMIO
    }

    /// Whether the raw spte is a present leaf.
    pub fn is_leaf(raw: u64) -> bool {
        raw & (PRESENT | LEAF) == PRESENT | LEAF
    }
}

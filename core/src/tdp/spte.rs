//! # An entry of a TDP table (`spte.h`)
//!
//! One atomic word. A table pointer is a 16-aligned address with its low bits
//! clear; every other kind sets [`NOT_TABLE`]:
//!
//! | word | meaning | kernel |
//! |---|---|---|
//! | 0 | not present | `SHADOW_NONPRESENT_VALUE` |
//! | [`FROZEN_SPTE`] | torn down by one thread, nobody else may write it | `FROZEN_SPTE` (`REMOVED_SPTE` before 6.11, 964cea817196) |
//! | a table's address | a non-leaf entry | `is_shadow_present_pte && !is_last_spte` |
//! | `pfn << 8` with flags | a 4 KiB leaf: [`WRITABLE`], [`ACCESSED`], [`DIRTY`] | `make_spte` |
//! | `generation << 8` with [`MMIO`] | an MMIO entry of that memslots generation | `make_mmio_spte` |
//!
//! Entries change only by atomic operations, under either lock mode
//! (`tdp_mmu_set_spte_atomic`, `kvm_tdp_mmu_write_spte`): the hardware sets
//! Accessed and Dirty bits at any time, so a plain store could lose one
//! (ba3a6120a4e7).

use crate::sync::{AtomicPtr, Ordering};

use super::table::{Table, TablePtr};

/// Set in every word that is not a table pointer.
pub(crate) const NOT_TABLE: usize = 1;
/// A leaf the guest may write.
pub(crate) const WRITABLE: usize = 1 << 1;
/// The hardware's Accessed bit.
pub(crate) const ACCESSED: usize = 1 << 2;
/// The hardware's Dirty bit.
pub(crate) const DIRTY: usize = 1 << 3;
/// An MMIO entry.
pub(crate) const MMIO: usize = 1 << 4;
/// `FROZEN_SPTE`: not present, and reserved by the thread that froze it.
pub(crate) const FROZEN_SPTE: usize = NOT_TABLE | 1 << 5;
const SHIFT: u32 = 8;

/// An entry's word, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSpte(pub(crate) *mut Table);

/// An entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spte {
    NotPresent,
    Frozen,
    Table(TablePtr),
    Leaf {
        pfn: u64,
        writable: bool,
        accessed: bool,
        dirty: bool,
    },
    Mmio {
        generation: u64,
    },
}

impl RawSpte {
    /// `SHADOW_NONPRESENT_VALUE`.
    pub(crate) const NONPRESENT: RawSpte = RawSpte(std::ptr::null_mut());

    fn bits(bits: usize) -> RawSpte {
        RawSpte(std::ptr::without_provenance_mut(bits))
    }

    /// `FROZEN_SPTE`.
    pub(crate) fn frozen() -> RawSpte {
        RawSpte::bits(FROZEN_SPTE)
    }

    /// A non-leaf entry pointing at `table`.
    pub(crate) fn table(table: TablePtr) -> RawSpte {
        RawSpte(table.as_raw())
    }

    /// A 4 KiB leaf (`make_spte`). A writable leaf is made dirty, as a write
    /// fault's is; every new leaf is accessed (`shadow_accessed_mask` set on
    /// a fault's spte).
    pub(crate) fn leaf(pfn: u64, writable: bool) -> RawSpte {
        let flags = NOT_TABLE | ACCESSED | if writable { WRITABLE | DIRTY } else { 0 };
        RawSpte::bits((pfn as usize) << SHIFT | flags)
    }

    /// An MMIO entry (`make_mmio_spte`) of memslots `generation` (masked).
    pub(crate) fn mmio(generation: u64) -> RawSpte {
        RawSpte::bits((generation as usize) << SHIFT | NOT_TABLE | MMIO)
    }

    pub(crate) fn addr(self) -> usize {
        self.0.addr()
    }

    /// This word with `bits` cleared, keeping the provenance.
    pub(crate) fn without(self, bits: usize) -> RawSpte {
        RawSpte(self.0.map_addr(|a| a & !bits))
    }

    /// This word with `bits` set, keeping the provenance.
    pub(crate) fn with(self, bits: usize) -> RawSpte {
        RawSpte(self.0.map_addr(|a| a | bits))
    }

    /// `is_shadow_present_pte`: a table or a leaf.
    pub(crate) fn is_present(self) -> bool {
        matches!(self.decode(), Spte::Table(_) | Spte::Leaf { .. })
    }

    /// `is_frozen_spte`.
    pub(crate) fn is_frozen(self) -> bool {
        self.addr() == FROZEN_SPTE
    }

    /// `is_last_spte` of a present entry.
    pub(crate) fn is_leaf(self) -> bool {
        matches!(self.decode(), Spte::Leaf { .. })
    }

    pub(crate) fn decode(self) -> Spte {
        let a = self.addr();
        if a == 0 {
            Spte::NotPresent
        } else if a & NOT_TABLE == 0 {
            match TablePtr::from_raw(self.0) {
                Some(table) => Spte::Table(table),
                None => Spte::NotPresent,
            }
        } else if a == FROZEN_SPTE {
            Spte::Frozen
        } else if a & MMIO != 0 {
            Spte::Mmio {
                generation: (a >> SHIFT) as u64,
            }
        } else {
            Spte::Leaf {
                pfn: (a >> SHIFT) as u64,
                writable: a & WRITABLE != 0,
                accessed: a & ACCESSED != 0,
                dirty: a & DIRTY != 0,
            }
        }
    }
}

/// One entry's cell (`tdp_ptep_t`).
#[derive(Debug, Default)]
pub(crate) struct SpteCell(AtomicPtr<Table>);

impl SpteCell {
    /// `kvm_tdp_mmu_read_spte`: Acquire, pairing with the Release of the
    /// exchange that linked a table, so that the table's entries are seen.
    pub(crate) fn read(&self) -> RawSpte {
        RawSpte(self.0.load(Ordering::Acquire))
    }

    /// An atomic exchange (`kvm_tdp_mmu_write_spte` with volatile bits, and
    /// `handle_removed_pt`'s freeze): returns the old word, so that bits the
    /// hardware set meanwhile are not lost.
    pub(crate) fn exchange(&self, new: RawSpte) -> RawSpte {
        RawSpte(self.0.swap(new.0, Ordering::AcqRel))
    }

    /// `try_cmpxchg64`: Ok if the entry still held `old`, else the word it
    /// holds now.
    pub(crate) fn cmpxchg(&self, old: RawSpte, new: RawSpte) -> Result<(), RawSpte> {
        self.0
            .compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(RawSpte)
    }
}

//! # The vCPU's TLB
//!
//! The hardware caches translations: a guest access that hits its TLB does
//! not walk the shadow page table. [`Tlb`] is that cache, a few direct-mapped
//! entries keyed by gfn, owned by one vCPU ([`Vcpu`](crate::vcpu::Vcpu)).
//!
//! - [`Vm::translate`](crate::Vm::translate) checks the vCPU's requests first
//!   (a vCPU with requests pending is outside guest mode: it handles them
//!   before it runs, and handling them is what empties the TLB), then the TLB,
//!   then walks.
//! - A walk that maps a gfn writable fills the entry of that gfn
//!   ([`Tlb::fill`]); MMIO answers are not TLB entries (the MMIO cache is
//!   separate).
//! - Handling `TLB_FLUSH` or a reload empties it ([`Tlb::flush`]).
//! - It may drop any entry at any time ([`Tlb::evict`]): no correct protocol
//!   relies on an entry staying.
//!
//! Only the thread holding the vCPU's claim (`vcpu->mutex`) reads or writes
//! it, so its atomics are `Relaxed`: they are atomics only because the vCPU
//! is shared between threads, not to order anything. The checking build
//! keeps, per entry, when the spte it copied was installed and when it was
//! filled ([`TlbGhost`]): a hit on an entry whose spte an invalidation killed
//! before the hit began is a stale translation (I4).

use crate::ghost::{Ghost, TlbGhost};
use crate::sync::{AtomicU64, Ordering};

/// Entries per vCPU: a small direct-mapped TLB, indexed by the gfn's low bits.
pub(crate) const TLB_ENTRIES: usize = 4;

/// One vCPU's TLB.
#[derive(Debug)]
pub(crate) struct Tlb {
    /// Per entry: the gfn plus one (0: empty).
    keys: [AtomicU64; TLB_ENTRIES],
    /// Per entry: the pfn shifted left by one, the writable bit in bit 0.
    values: [AtomicU64; TLB_ENTRIES],
    /// The checking build's half: install and fill times.
    ghost: TlbGhost<TLB_ENTRIES>,
}

/// A TLB hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlbHit {
    pub(crate) pfn: u64,
    pub(crate) writable: bool,
}

impl Tlb {
    pub(crate) fn new() -> Tlb {
        Tlb {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            values: std::array::from_fn(|_| AtomicU64::new(0)),
            ghost: TlbGhost::new(),
        }
    }

    #[inline]
    fn slot(gfn: u64) -> usize {
        (gfn % TLB_ENTRIES as u64) as usize
    }

    /// The cached translation of `gfn`, if any. `start` is the ghost time the
    /// translation began: the checking build judges the hit there (I4).
    #[inline]
    pub(crate) fn lookup(&self, ghost: &Ghost, gfn: u64, start: u64) -> Option<TlbHit> {
        let slot = Self::slot(gfn);
        if self.keys[slot].load(Ordering::Relaxed) != gfn + 1 {
            return None;
        }
        let value = self.values[slot].load(Ordering::Relaxed);
        let hit = TlbHit {
            pfn: value >> 1,
            writable: value & 1 != 0,
        };
        self.ghost.check_hit(ghost, slot, gfn, hit.pfn, start);
        Some(hit)
    }

    /// A walk mapped `gfn` to `pfn` through a spte installed at ghost time
    /// `installed`: cache it if it is writable. A translation reports whether
    /// the guest may write, which a read-only entry cannot answer: a write
    /// through it would fault, drop the entry and walk again, and another
    /// vCPU's fault may have made the spte writable meanwhile without a flush
    /// (a permission upgrade needs none). So read-only mappings are walked.
    #[inline]
    pub(crate) fn fill(&self, ghost: &Ghost, gfn: u64, pfn: u64, writable: bool, installed: u64) {
        if !writable {
            return;
        }
        let slot = Self::slot(gfn);
        self.keys[slot].store(gfn + 1, Ordering::Relaxed);
        self.values[slot].store(pfn << 1 | u64::from(writable), Ordering::Relaxed);
        self.ghost.filled(ghost, slot, installed);
    }

    /// Drops the entry of `gfn`, if it holds `gfn`. Returns whether it did.
    pub(crate) fn evict(&self, gfn: u64) -> bool {
        let slot = Self::slot(gfn);
        if self.keys[slot].load(Ordering::Relaxed) != gfn + 1 {
            return false;
        }
        self.keys[slot].store(0, Ordering::Relaxed);
        true
    }

    /// Empties the TLB (a handled `TLB_FLUSH` or reload).
    #[inline]
    pub(crate) fn flush(&self) {
        for key in &self.keys {
            key.store(0, Ordering::Relaxed);
        }
    }

    /// The filled entries, as (gfn, hit) (for the audit).
    #[cfg(feature = "ghost")]
    pub(crate) fn entries(&self) -> Vec<(u64, TlbHit)> {
        (0..TLB_ENTRIES)
            .filter_map(|slot| {
                let key = self.keys[slot].load(Ordering::Relaxed);
                let value = self.values[slot].load(Ordering::Relaxed);
                (key != 0).then(|| {
                    let hit = TlbHit {
                        pfn: value >> 1,
                        writable: value & 1 != 0,
                    };
                    (key - 1, hit)
                })
            })
            .collect()
    }

    /// How many entries are filled.
    pub(crate) fn len(&self) -> usize {
        self.keys
            .iter()
            .filter(|k| k.load(Ordering::Relaxed) != 0)
            .count()
    }
}

//! `lpage_info` and the per-level rmap: what decides whether a fault may map
//! a large page (`disallow_lpage`), and where a spte of each level is filed
//! (`__gfn_to_rmap`).

use super::Memslot;
use crate::lockdep::MmuLockHeld;
use crate::sync::{AtomicU64, Ordering};

/// `slot->arch.lpage_info[]`: per large page spanned by the slot, the
/// `disallow_lpage` count. Its length depends on the slot's base alignment, which
/// is why a MOVE must allocate a new one (bug 10).
#[doc(alias = "kvm_lpage_info")]
#[derive(Debug)]
pub(crate) struct LpageInfo {
    /// The large-page shift in gfns (`log2(spte_count)`).
    pub(super) shift: u32,
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

    /// The number of large pages the slot spans, partial ones included.
    pub(crate) fn len(&self) -> usize {
        self.disallow.len()
    }

    /// `disallow_lpage` of the large page at `index` (`linfo->write_count`
    /// in 3.11's `has_wrprotected_page`): non-zero forbids mapping it large.
    pub(crate) fn disallow_lpage(&self, index: usize) -> u64 {
        self.disallow[index].load(Ordering::Relaxed)
    }

    /// Resets every count (`kvm_clear_all_lpage_info`), under `mmu_lock`.
    pub(crate) fn reset(&self, _held: &impl MmuLockHeld) {
        for count in self.disallow.iter() {
            count.store(0, Ordering::Relaxed);
        }
    }
}

impl Memslot {
    /// `__gfn_to_rmap(gfn, level, slot)`: the head of `gfn`'s sptes of
    /// `level`, if the slot has one. The slot's rmap holds the kernel's
    /// per-level arrays (`slot->arch.rmap[level - 1]`) one after the other:
    /// `npages` heads for level 1, then one per large page the slot spans
    /// (as many as `lpage_info` counts), keyed by the large page's index.
    pub(crate) fn gfn_to_rmap(&self, gfn: u64, level: u8) -> Option<usize> {
        match level {
            1 => self.contains(gfn).then(|| self.rmap_index(gfn)),
            2 => {
                let index = self.lpage_info.index(self.base_gfn, gfn)?;
                // A slot created with large pages off has no level-2 heads.
                Some(self.npages as usize + index).filter(|i| *i < self.rmap.len())
            }
            _ => None,
        }
    }

    /// The heads every rmap walk over `gfn` visits, level 1 then level 2
    /// (`kvm_handle_hva_range` walks each level's rmap).
    pub(crate) fn rmap_heads(&self, gfn: u64) -> impl Iterator<Item = usize> {
        [self.gfn_to_rmap(gfn, 1), self.gfn_to_rmap(gfn, 2)]
            .into_iter()
            .flatten()
    }

    /// What head `index` of the rmap files: its level and first gfn (the
    /// large page's first gfn for a level-2 head).
    #[cfg(feature = "ghost")]
    pub(crate) fn rmap_head(&self, index: usize) -> (u8, u64) {
        let npages = self.npages as usize;
        if index < npages {
            return (1, self.base_gfn + index as u64);
        }
        let shift = self.lpage_info.shift;
        let first = (self.base_gfn >> shift) + (index - npages) as u64;
        (2, first << shift)
    }

    /// The number of rmap heads a slot of `npages` needs: one per page, one
    /// per large page (`lpage_info`'s length).
    ///
    /// With large pages off there are none for level 2: no large spte can
    /// exist, and the rmap walks (the models' atomic loads) stay those of a
    /// per-gfn rmap.
    pub(crate) fn rmap_len(npages: u64, lpage_info: &LpageInfo, large_pages: bool) -> usize {
        npages as usize + if large_pages { lpage_info.len() } else { 0 }
    }
}

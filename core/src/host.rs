//! # The host's memory map, as KVM sees it through `gfn_to_pfn`
//!
//! fastzap's host maps each host virtual page to a pfn. An mmu-notifier
//! invalidation models the host taking the page away (reclaim, migration): the
//! page gets a new pfn, so any translation to the old pfn is stale from then on.
//! This is the environment, not the protocol, so it is ghost state.

use std::collections::BTreeMap;

use crate::addr::Hva;
use crate::error::MmuError;
use crate::sync::ghost::GhostMutex;

/// `hva` as a number, if it is inside the host's address space (below
/// [`Hva::LIMIT`]); else [`MmuError::HvaOutOfRange`].
pub(crate) fn check_hva(hva: Hva) -> Result<u64, MmuError> {
    if hva >= Hva::LIMIT {
        return Err(MmuError::HvaOutOfRange {
            hva,
            limit: Hva::LIMIT,
        });
    }
    Ok(hva.0)
}

/// The host page tables: the pfn of every host page that was ever remapped.
/// A page never remapped is backed by the pfn equal to its page number (below
/// 2^36, since host addresses are below [`Hva::LIMIT`], 2^48). Each remap
/// hands out a fresh pfn from 2^36 up, so a pfn is never reused and always
/// fits the 52 bits a spte holds (a version packed above bit 36 overflowed
/// them after 65536 remaps of one page, and the spte then truncated the new
/// pfn back to the old one).
#[derive(Debug, Default)]
pub struct HostMm {
    pages: GhostMutex<HostPages>,
}

#[derive(Debug, Default)]
struct HostPages {
    /// Ordered, so that a large page's range is one lookup.
    remapped: BTreeMap<u64, u64>,
    fresh: u64,
}

/// Past every page number below [`Hva::LIMIT`].
const FIRST_FRESH_PFN: u64 = Hva::LIMIT.0 >> 12;

impl HostMm {
    /// `hva_to_pfn`: the pfn currently backing `hva`, which must be below
    /// [`Hva::LIMIT`] (every slot's pages are; [`check_hva`] checks a
    /// caller's). Above it the page number would not fit below the fresh pfns
    /// and would alias another page's pfn.
    pub fn hva_to_pfn(&self, hva: u64) -> u64 {
        debug_assert!(hva < Hva::LIMIT.0, "hva {hva:#x} outside the host");
        let page = hva >> 12;
        self.pages.with(|p| {
            p.remapped
                .get(&page)
                .copied()
                .unwrap_or(page & (FIRST_FRESH_PFN - 1))
        })
    }

    /// The first pfn of the large host page backing the `count` pages from
    /// `hva` on, if one does: the host's `host_pfn_mapping_level` (3.11's
    /// `host_mapping_level`, which `kvm_mmu_max_mapping_level` consults) sees a
    /// huge page there. fastzap's host backs a range with one large page when
    /// `hva`'s page number is a multiple of `count` and no page in the range
    /// was ever remapped (a remap by an invalidation or `change_pte` splits
    /// it for good): the pfns are then the page numbers, contiguous and
    /// aligned. `count` is a power of two.
    pub fn large_pfn(&self, hva: u64, count: u64) -> Option<u64> {
        let page = hva >> 12;
        let end = page.checked_add(count)?;
        if !page.is_multiple_of(count) || end > Hva::LIMIT.0 >> 12 {
            return None;
        }
        self.pages
            .with(|p| p.remapped.range(page..end).next().is_none())
            .then_some(page)
    }

    /// The host remaps every page in `[start, end)`; their old pfns are dead.
    pub fn remap(&self, start: u64, end: u64) {
        // Count in page numbers: `page << 12` wraps to 0 past the last page of
        // the address space, which made a range ending at u64::MAX loop forever.
        let last = end.div_ceil(4096);
        self.pages.with(|p| {
            for page in start >> 12..last {
                let pfn = FIRST_FRESH_PFN + p.fresh;
                p.fresh += 1;
                p.remapped.insert(page, pfn);
            }
        });
    }
}

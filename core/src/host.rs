//! # The host's memory map, as KVM sees it through `gfn_to_pfn`
//!
//! fastzap's host maps each host virtual page to a pfn. An mmu-notifier
//! invalidation models the host taking the page away (reclaim, migration): the
//! page gets a new pfn, so any translation to the old pfn is stale from then on.
//! This is the environment, not the protocol, so it is ghost state.

use std::collections::HashMap;

use crate::sync::ghost::GhostMutex;

/// The host page tables: a version per host page that was ever remapped.
#[derive(Debug, Default)]
pub struct HostMm {
    versions: GhostMutex<HashMap<u64, u64>>,
}

const VERSION_SHIFT: u32 = 36;

impl HostMm {
    /// `hva_to_pfn`: the pfn currently backing `hva`.
    pub fn hva_to_pfn(&self, hva: u64) -> u64 {
        let page = hva >> 12;
        let version = self.versions.with(|v| v.get(&page).copied().unwrap_or(0));
        (version << VERSION_SHIFT) | (page & ((1 << VERSION_SHIFT) - 1))
    }

    /// The host remaps every page in `[start, end)`; their old pfns are dead.
    pub fn remap(&self, start: u64, end: u64) {
        // Count in page numbers: `page << 12` wraps to 0 past the last page of
        // the address space, which made a range ending at u64::MAX loop forever.
        let last = end.div_ceil(4096);
        self.versions.with(|v| {
            for page in start >> 12..last {
                *v.entry(page).or_insert(0) += 1;
            }
        });
    }
}

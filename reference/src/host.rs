//! # The host, as the reference learns it: a version and a pfn per host page
//!
//! Mirrors `core/src/host.rs`, the host's memory map as KVM sees it through
//! `gfn_to_pfn`. The reference does not know pfn values: [`Host`] keeps a
//! version per host page (an `invalidate_range` or a `change_pte` remaps the
//! page: a new version) and learns the pfn of each (page, version) the first
//! time a fault or a translation shows it. After that the pfn must never
//! change, and two different (page, version) pairs must never share a pfn.

use std::collections::BTreeMap;

/// Bytes per guest page.
pub const PAGE_SIZE: u64 = 4096;

/// The host's pfn per host page and version, learned from observation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Host {
    versions: BTreeMap<u64, u64>,
    learned: BTreeMap<(u64, u64), u64>,
    owners: BTreeMap<u64, (u64, u64)>,
}

impl Host {
    fn version(&self, page: u64) -> u64 {
        self.versions.get(&page).copied().unwrap_or(0)
    }

    /// `invalidate_range` or `change_pte` took the page away: its next pfn is new.
    pub(crate) fn remap_page(&mut self, page: u64) {
        *self.versions.entry(page).or_insert(0) += 1;
    }

    /// Whether none of the `count` pages from `page` on was ever remapped:
    /// fastzap's host then backs them with one large page if `page` is a
    /// multiple of `count` (`HostMm::large_pfn`).
    pub(crate) fn never_remapped(&self, page: u64, count: u64) -> bool {
        self.versions
            .range(page..page.saturating_add(count))
            .next()
            .is_none()
    }

    /// Checks that `pfn` is the pfn of `hva` now: consistent with what was
    /// seen before for the same page and version, and different from the pfn of
    /// any other page or version.
    pub(crate) fn observe(&mut self, hva: u64, pfn: u64) -> Result<(), String> {
        let key = (hva / PAGE_SIZE, self.version(hva / PAGE_SIZE));
        if let Some(&known) = self.learned.get(&key) {
            if known != pfn {
                return Err(format!(
                    "host page {:#x} version {} was pfn {known:#x}, now {pfn:#x}",
                    key.0, key.1
                ));
            }
            return Ok(());
        }
        if let Some(owner) = self.owners.get(&pfn) {
            return Err(format!(
                "pfn {pfn:#x} of host page {:#x} v{} already belonged to page {:#x} v{}",
                key.0, key.1, owner.0, owner.1
            ));
        }
        self.learned.insert(key, pfn);
        self.owners.insert(pfn, key);
        Ok(())
    }
}

//! # mmu-notifiers: `invalidate_range`, `change_pte`, `clear_flush_young`, `test_young`
//!
//! Mirrors `core/src/notifier.rs`: the host changes its page tables and
//! tells KVM. `invalidate_range` removes the leaves of every gfn whose host
//! page is in the range, from every address space, and the host remaps the
//! pages that back a slot; `change_pte` remaps its page and points the
//! leaves at the new pfn, read-only. After an invalidation of X has
//! returned, no pfn mapped before it can be returned for X (I4). The counts
//! they return lie between the certain and the possible leaves in the range;
//! the `*_young` answers must agree with the accessed bits the reference
//! knows. While a fast invalidation's batches run (`tail.rs`), the obsolete
//! pages are still on the rmaps: the counts have no upper bound, and
//! `*_young` may say true.

use fastzap::{Hva, MmuError};

use crate::host::PAGE_SIZE;
use crate::op::{Divergence, ensure, expect_err, expect_ok};
use crate::overlap::Overlap;
use crate::state::Reference;

impl Reference {
    /// `invalidate_range(start, end)`.
    pub(crate) fn step_invalidate_range(
        &mut self,
        start: u64,
        end: u64,
        r: &Result<usize, MmuError>,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        if let Err(e) = Self::check_hva_range(start, end) {
            return expect_err(r, e);
        }
        let unmapped = expect_ok(r)?;
        let gfns = self.gfns_in_hva(start, end);
        let (certain, possible) = self.leaf_bounds(&gfns);
        // The notifier yields at lock breaks (`tdp_mmu_zap_leafs` with
        // `may_block`): an operation that removes leaves and overlaps it may
        // take some of the range's leaves first, and the notifier does not
        // count those. They are gone all the same (removed below).
        let certain = if overlap.leaf_remover { 0 } else { certain };
        let possible = possible + self.unreached_in(start, end);
        let possible = if self.zapping() { usize::MAX } else { possible };
        ensure(certain <= unmapped && unmapped <= possible, || {
            // Fewer than the certain leaves: a spte of the range survived the
            // invalidation, which SPEC.md's I4 forbids.
            let i4 = if unmapped < certain {
                "I4 no stale translation: "
            } else {
                ""
            };
            format!(
                "{i4}invalidate_range({start:#x}, {end:#x}) unmapped {unmapped}, \
                 expected {certain}..={possible}"
            )
        })?;
        self.unlink_large_pages(&gfns, false);
        self.remove_leaves(&gfns);
        self.drop_unreached(start, end);
        // The host remaps the pages that back a slot (once per slot
        // gfn): only those can be mapped by an spte. A page that backs
        // no slot keeps its pfn, as fastzap's host defines it.
        for g in &gfns {
            if let Some(slot) = self.backing_slot(*g) {
                let page = Self::hva_of(slot, *g) / PAGE_SIZE;
                self.host.remap_page(page);
            }
        }
        if unmapped > 0 {
            self.all_flushed();
        }
        Ok(())
    }

    /// `change_pte(hva)`.
    pub(crate) fn step_change_pte(
        &mut self,
        hva: u64,
        r: &Result<usize, MmuError>,
    ) -> Result<(), Divergence> {
        let page = hva / PAGE_SIZE;
        if hva >= Hva::LIMIT.0 {
            return expect_err(
                r,
                MmuError::HvaOutOfRange {
                    hva: Hva(hva),
                    limit: Hva::LIMIT,
                },
            );
        }
        let changed = expect_ok(r)?;
        let gfns = self.gfns_in_hva(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
        let (certain, possible) = self.leaf_bounds(&gfns);
        let (lo, hi) = (page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
        let possible = possible + self.unreached_in(lo, hi);
        let possible = if self.zapping() { usize::MAX } else { possible };
        ensure(certain <= changed && changed <= possible, || {
            format!("change_pte({hva:#x}) changed {changed}, expected {certain}..={possible}")
        })?;
        // A large spte over the page is dropped whole: the page's own leaf
        // may be gone, and the rest of its large page with it.
        let large: Vec<bool> = gfns.iter().map(|g| self.large_page(*g).is_some()).collect();
        self.unlink_large_pages(&gfns, false);
        self.change_unreached(lo, hi);
        self.host.remap_page(page);
        // The new pfn is learned when a fault or a translation shows it;
        // the leaves keep pointing at it, read-only and not accessed.
        for s in &mut self.spaces {
            for (g, large) in gfns.iter().zip(&large) {
                if let Some(l) = s.leaves.get_mut(g) {
                    l.pfn = None;
                    l.writable = Some(false);
                    l.accessed = Some(false);
                    l.certain &= !large;
                }
            }
        }
        if changed > 0 {
            self.all_flushed();
        }
        Ok(())
    }

    /// `clear_flush_young(start, end)`.
    pub(crate) fn step_clear_flush_young(
        &mut self,
        start: u64,
        end: u64,
        r: &Result<bool, MmuError>,
    ) -> Result<(), Divergence> {
        if let Err(e) = Self::check_hva_range(start, end) {
            return expect_err(r, e);
        }
        let young = expect_ok(r)?;
        self.young(start, end, young)?;
        self.unlink_large_pages(&self.gfns_in_hva(start, end), true);
        for g in self.gfns_in_hva(start, end) {
            for s in &mut self.spaces {
                if let Some(l) = s.leaves.get_mut(&g) {
                    l.accessed = Some(false);
                }
            }
        }
        if young {
            self.all_flushed();
        }
        Ok(())
    }

    /// `test_young(start, end)`.
    pub(crate) fn step_test_young(
        &mut self,
        start: u64,
        end: u64,
        r: &Result<bool, MmuError>,
    ) -> Result<(), Divergence> {
        if let Err(e) = Self::check_hva_range(start, end) {
            return expect_err(r, e);
        }
        let young = expect_ok(r)?;
        self.young(start, end, young)
    }

    /// The error a notifier given `[start, end)` must return, if any: an
    /// empty or reversed range, then one that ends above 2^48 (reporting its
    /// first address at or above it).
    fn check_hva_range(start: u64, end: u64) -> Result<(), MmuError> {
        if start >= end {
            return Err(MmuError::BadHvaRange);
        }
        if end > Hva::LIMIT.0 {
            return Err(MmuError::HvaOutOfRange {
                hva: Hva(start.max(Hva::LIMIT.0)),
                limit: Hva::LIMIT,
            });
        }
        Ok(())
    }

    /// How many leaves a quirk-off DELETE in flight has not reached yet
    /// (`InFlight::unreached`) have their host page in `[start, end)`: the
    /// notifiers still find them through the INVALID slot.
    fn unreached_in(&self, start: u64, end: u64) -> usize {
        let unreached = self.in_flight.iter().flat_map(|f| &f.unreached);
        unreached
            .filter(|(_, _, hva, _)| *hva < end && start < *hva + PAGE_SIZE)
            .count()
    }

    /// A notifier unmapped or changed `[start, end)`: the leaves a DELETE in
    /// flight had not reached there are gone too, and can no longer be
    /// translated (I4 holds for them as soon as the notifier is placed).
    fn drop_unreached(&mut self, start: u64, end: u64) {
        for f in &mut self.in_flight {
            f.unreached
                .retain(|(_, _, hva, _)| !(*hva < end && start < *hva + PAGE_SIZE));
        }
    }

    /// `change_pte` reached `[start, end)`: the leaves a DELETE in flight had
    /// not reached there point at the page's new pfn, read-only.
    fn change_unreached(&mut self, start: u64, end: u64) {
        for f in &mut self.in_flight {
            for (_, _, hva, l) in &mut f.unreached {
                if *hva < end && start < *hva + PAGE_SIZE {
                    l.pfn = None;
                    l.writable = Some(false);
                }
            }
        }
    }

    /// Every gfn of a slot whose host page intersects `[start, end)`.
    fn gfns_in_hva(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for s in self.slots.iter().chain(&self.zombies) {
            for i in 0..s.npages {
                let lo = s.userspace_addr.0 + i * PAGE_SIZE;
                if lo < end && start < lo + PAGE_SIZE {
                    out.push(s.base_gfn.0 + i);
                }
            }
        }
        out
    }

    fn remove_leaves(&mut self, gfns: &[u64]) {
        for s in &mut self.spaces {
            for g in gfns {
                s.leaves.remove(g);
            }
        }
        for g in gfns {
            self.retained.remove(g);
        }
    }

    /// A notifier reached `gfns`: the other gfns of their large pages (those
    /// that may be mapped large) may have been mapped by a large spte it
    /// dropped whole (or, with `aged`, whose accessed bit it cleared). Their
    /// leaves become possible, with unknown bits. Run before the host remaps.
    fn unlink_large_pages(&mut self, gfns: &[u64], aged: bool) {
        let mut others: Vec<u64> = gfns
            .iter()
            .flat_map(|g| self.large_neighbours(*g))
            .collect();
        others.retain(|g| !gfns.contains(g));
        for s in &mut self.spaces {
            for g in &others {
                if let Some(l) = s.leaves.get_mut(g) {
                    l.accessed = None;
                    if !aged {
                        l.writable = None;
                        l.certain = false;
                    }
                }
            }
        }
    }

    /// (certain, possible) leaves over every address space for `gfns`. The
    /// certain leaves of one large page that may be mapped large may all be
    /// one large spte: they count once.
    fn leaf_bounds(&self, gfns: &[u64]) -> (usize, usize) {
        let mut certain = 0;
        let mut possible = 0;
        for s in &self.spaces {
            let mut large_pages = std::collections::BTreeSet::new();
            for g in gfns {
                if let Some(l) = s.leaves.get(g) {
                    possible += 1;
                    match self.large_page(*g) {
                        Some(r) if l.certain => certain += usize::from(large_pages.insert(r.start)),
                        _ => certain += usize::from(l.certain),
                    }
                }
            }
        }
        possible += gfns
            .iter()
            .map(|g| self.retained.get(g).copied().unwrap_or(0))
            .sum::<usize>();
        (certain, possible)
    }

    fn young(&self, start: u64, end: u64, got: bool) -> Result<(), Divergence> {
        let gfns = self.gfns_in_hva(start, end);
        let mut must = false;
        let mut may = false;
        for s in &self.spaces {
            for g in &gfns {
                if let Some(l) = s.leaves.get(g) {
                    may = true;
                    must |= l.certain && l.accessed == Some(true);
                }
            }
        }
        ensure(!must || got, || {
            format!("young({start:#x}, {end:#x}) = false, but an accessed leaf is mapped")
        })?;
        // While a fast invalidation runs, the obsolete pages it has not
        // zapped yet are still on the rmaps, with their accessed bits; so are
        // the pages a deferring DELETE retained.
        let may = may
            || self.zapping()
            || gfns.iter().any(|g| self.retained.contains_key(g))
            || self.unreached_in(start, end) > 0;
        ensure(may || !got, || {
            format!("young({start:#x}, {end:#x}) = true, but no leaf can be mapped there")
        })
    }
}

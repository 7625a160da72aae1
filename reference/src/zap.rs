//! # Invalidation: the fast zap-all, the eager zap, the shrinker
//!
//! Mirrors `core/src/zap.rs`. What each zap does to what the API shows:
//!
//! - a fast invalidation ([`Reference::invalidate_all`], the `mmu_lock`
//!   hold of core's `invalidate_all_locked` that bumps `mmu_valid_gen`):
//!   every root is obsolete, every vCPU must reload, the page tables are
//!   empty. `invalidate_zap_all_pages` makes one, and so do a DELETE, a MOVE
//!   and a memslots publish that wraps the MMIO generation (`memslot.rs`);
//! - the eager `zap_all`: every page zapped, roots in use kept but invalid;
//! - the shrinker, which zaps some of the oldest pages the reference does
//!   not know about: every leaf and MMIO entry becomes only possible.
//!
//! For an operation with a tail (`tail.rs`) an invalidation core makes at an
//! instant of its own is counted here and carried out later, when the
//! linearizability checker places it ([`Reference::deferred_bump`]).

use std::collections::BTreeMap;

use fastzap::{MmuError, SlotSpec, ZapStats};

use crate::op::{Divergence, ensure, expect_ok};
use crate::state::{Reference, Root, Space, Tri};

impl Reference {
    /// `invalidate_zap_all_pages`: one fast invalidation.
    pub(crate) fn step_zap_all_fast(
        &mut self,
        r: &Result<ZapStats, MmuError>,
    ) -> Result<(), Divergence> {
        expect_ok(r)?;
        self.invalidate_all();
        Ok(())
    }

    /// `zap_all`: the eager zap.
    pub(crate) fn step_zap_all_eager(
        &mut self,
        r: &Result<ZapStats, MmuError>,
    ) -> Result<(), Divergence> {
        expect_ok(r)?;
        self.zap_all();
        Ok(())
    }

    /// `shrink(nr)`: at most `nr` pages freed, and none asked for, none freed.
    pub(crate) fn step_shrink(
        &mut self,
        nr: usize,
        r: &Result<usize, MmuError>,
    ) -> Result<(), Divergence> {
        let freed = expect_ok(r)?;
        ensure(freed <= nr, || format!("shrink({nr}) freed {freed}"))?;
        if nr > 0 {
            self.shrunk(freed);
        }
        Ok(())
    }

    /// A fast invalidation (`invalidate_all_locked`): the generation moves on,
    /// every root is obsolete, every vCPU must reload, the page tables are
    /// empty. MMIO caches survive: they are keyed by the memslots generation.
    pub(crate) fn invalidate_all(&mut self) {
        self.zombies.clear();
        self.retained.clear();
        self.retains = false;
        self.mmu_valid_gen = (self.mmu_valid_gen + 1) & self.gen_mask;
        for v in &mut self.vcpus {
            if v.root != Root::None {
                v.root = Root::Obsolete;
            }
            v.pending = Tri::Set;
            v.reload = Tri::Set;
        }
        self.clear_spaces();
    }

    fn clear_spaces(&mut self) {
        for s in &mut self.spaces {
            *s = Space::default();
        }
    }

    /// [`Reference::invalidate_all`], or, for an operation with a tail, count
    /// it for [`Reference::deferred_bump`].
    pub(crate) fn invalidate_or_defer(&mut self) {
        match &mut self.deferring {
            Some(bumps) => *bumps += 1,
            None => self.invalidate_all(),
        }
    }

    /// A deferring DELETE's invalidation (`SeedV3Deferred`): what
    /// [`Reference::invalidate_all`] does to what the API shows, except that
    /// the leaves stay reachable from the live slots' rmaps, as
    /// [`Reference::retained`]. The deleted slot's own leaves (`gone`) were
    /// unmapped before it returned; what an earlier deferring DELETE retained
    /// was zapped before the bump.
    pub(crate) fn invalidate_all_deferred(&mut self, gone: Option<SlotSpec>) {
        if self.deferring.is_some() {
            // Concurrent use: the bump is counted; the retained leaves are
            // unknown, which `zapping()` already allows for.
            self.invalidate_or_defer();
            return;
        }
        let mut retained = BTreeMap::new();
        for s in &self.spaces {
            for g in s.leaves.keys() {
                let deleted =
                    gone.is_some_and(|d| *g >= d.base_gfn.0 && *g - d.base_gfn.0 < d.npages);
                if !deleted {
                    *retained.entry(*g).or_insert(0) += 1;
                }
            }
        }
        self.invalidate_all();
        self.retained = retained;
        self.retains = true;
    }

    /// `zap_all` (eager): every page is zapped. Roots in use are kept, invalid,
    /// and a reload is requested if one of them was valid and current.
    fn zap_all(&mut self) {
        let any_current = self.vcpus.iter().any(|v| v.root == Root::Current);
        let any_maybe = self.vcpus.iter().any(|v| v.root == Root::MaybeObsolete);
        for v in &mut self.vcpus {
            if any_current {
                v.reload = Tri::Set;
                v.pending = Tri::Set;
            } else {
                if any_maybe {
                    v.reload = v.reload.weaken();
                }
                // Pages without roots may be committed: a flush.
                v.pending = v.pending.weaken();
            }
            if v.root != Root::None {
                v.root = Root::Obsolete;
            }
        }
        self.clear_spaces();
    }

    /// The shrinker zapped some of the oldest pages.
    fn shrunk(&mut self, freed: usize) {
        for v in &mut self.vcpus {
            if v.root == Root::Current {
                v.root = Root::MaybeObsolete;
            }
            v.reload = v.reload.weaken();
            v.pending = if freed > 0 {
                Tri::Set
            } else {
                v.pending.weaken()
            };
        }
        for s in &mut self.spaces {
            for l in s.leaves.values_mut() {
                l.certain = false;
            }
            for m in s.mmio.values_mut() {
                m.certain = false;
            }
        }
    }
}

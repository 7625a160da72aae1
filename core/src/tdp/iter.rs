//! # The TDP iterator (`tdp_iter.c`, `tdp_iter.h`)
//!
//! A pre-order walk of the entries of one root that map gfns in a range,
//! down to a minimum level: [`TdpIter::start`] (`tdp_iter_start`),
//! [`TdpIter::next`] (`tdp_iter_next`: down, else sideways, else up and
//! sideways), and the yield, [`tdp_mmu_iter_cond_resched`].
//!
//! The yield's two rules, both fixes of real bugs:
//! - yield only after progress: not again at the gfn of the last yield
//!   (`yielded_gfn`, ed5e484b79e8), else two walkers could make each other
//!   restart forever;
//! - after a yield, restart from the root at `next_last_level_gfn` without
//!   advancing (3a0f64de479c): the entry the walk stood at has not been
//!   handled yet, and advancing past it leaked tables (CVE-2021-47094).

use crate::config::Config;
use crate::sync::Guard;
use crate::vcpu::Vcpu;

use super::TdpCtx;
use super::lock::Held;
use super::spte::{RawSpte, Spte};
use super::table::TablePtr;

/// `struct tdp_iter`.
#[derive(Debug)]
pub(crate) struct TdpIter {
    /// The gfn the walk will resume at: the lowest gfn it has not finished.
    pub(crate) next_last_level_gfn: u64,
    /// `next_last_level_gfn` when the walk last (re)started from the root.
    pub(crate) yielded_gfn: u64,
    /// The tables from the root down to the current one, by level - 1.
    pt_path: Vec<Option<TablePtr>>,
    /// The first gfn the current entry maps.
    pub(crate) gfn: u64,
    pub(crate) root_level: u8,
    pub(crate) min_level: u8,
    pub(crate) level: u8,
    /// The entry as last read.
    pub(crate) old_spte: RawSpte,
    /// Whether the walk still has an entry.
    pub(crate) valid: bool,
    /// Whether the walk yielded and must restart from the root.
    pub(crate) yielded: bool,
    end: u64,
}

impl TdpIter {
    /// `tdp_iter_start`: from `root` (of `root_level`), at `start`, entries
    /// mapping gfns below `end`, down to `min_level`.
    pub(crate) fn start(
        ctx: &TdpCtx<'_>,
        guard: &Guard<'_>,
        root: TablePtr,
        root_level: u8,
        min_level: u8,
        start: u64,
        end: u64,
    ) -> TdpIter {
        let mut path = vec![None; usize::from(root_level)];
        path[usize::from(root_level) - 1] = Some(root);
        let mut iter = TdpIter {
            next_last_level_gfn: start,
            yielded_gfn: start,
            pt_path: path,
            gfn: 0,
            root_level,
            min_level,
            level: root_level,
            old_spte: RawSpte::NONPRESENT,
            valid: false,
            yielded: false,
            end,
        };
        iter.restart(ctx, guard);
        iter
    }

    /// Whether the walk has an entry in range (the `for_each_tdp_pte` test).
    pub(crate) fn in_range(&self) -> bool {
        self.valid && self.gfn < self.end
    }

    /// The current entry's cell.
    pub(crate) fn sptep<'g>(
        &self,
        ctx: &TdpCtx<'_>,
        guard: &'g Guard<'_>,
    ) -> &'g super::spte::SpteCell {
        let table = self.pt_path[usize::from(self.level) - 1].expect("table on the path");
        &table.get(guard).sptes[ctx.index(self.gfn, self.level)]
    }

    /// The table holding the current entry.
    pub(crate) fn table(&self) -> TablePtr {
        self.pt_path[usize::from(self.level) - 1].expect("table on the path")
    }

    fn refresh(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) {
        self.old_spte = self.sptep(ctx, guard).read();
    }

    /// `tdp_iter_restart`: back to the root, at `next_last_level_gfn`.
    pub(crate) fn restart(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) {
        self.yielded = false;
        self.yielded_gfn = self.next_last_level_gfn;
        self.level = self.root_level;
        self.gfn = ctx.round_gfn(self.next_last_level_gfn, self.level);
        self.refresh(ctx, guard);
        self.valid = true;
    }

    fn try_step_down(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) -> bool {
        if self.level == self.min_level {
            return false;
        }
        // Re-read: the entry may have changed since the walk looked at it.
        self.old_spte = self.sptep(ctx, guard).read();
        let Spte::Table(child) = self.old_spte.decode() else {
            return false;
        };
        self.level -= 1;
        self.pt_path[usize::from(self.level) - 1] = Some(child);
        self.gfn = ctx.round_gfn(self.next_last_level_gfn, self.level);
        self.refresh(ctx, guard);
        true
    }

    fn try_step_side(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) -> bool {
        if ctx.index(self.gfn, self.level) == ctx.config.spte_count - 1 {
            return false;
        }
        self.gfn += ctx.pages_per_entry(self.level);
        self.next_last_level_gfn = self.gfn;
        self.refresh(ctx, guard);
        true
    }

    fn try_step_up(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) -> bool {
        if self.level == self.root_level {
            return false;
        }
        self.level += 1;
        self.gfn = ctx.round_gfn(self.gfn, self.level);
        self.refresh(ctx, guard);
        true
    }

    /// `tdp_iter_next`: the next entry in pre-order; after a yield, the
    /// restart from the root at `next_last_level_gfn` and nothing more.
    pub(crate) fn next(&mut self, ctx: &TdpCtx<'_>, guard: &Guard<'_>) {
        if self.yielded {
            self.restart(ctx, guard);
            return;
        }
        if self.try_step_down(ctx, guard) {
            return;
        }
        loop {
            if self.try_step_side(ctx, guard) {
                return;
            }
            if !self.try_step_up(ctx, guard) {
                break;
            }
        }
        self.valid = false;
    }
}

/// `tdp_mmu_iter_cond_resched`: if the walk should yield and has made
/// progress since it last (re)started, flush what is owed, drop the pin and
/// the lock, take them again, and mark the iterator to restart from the
/// root (without advancing). Returns whether it yielded; the caller then
/// `continue`s to the restart.
pub(crate) fn tdp_mmu_iter_cond_resched(
    held: &mut Held<'_>,
    iter: &mut TdpIter,
    flush: bool,
    vcpus: &[Vcpu],
    config: &Config,
) -> bool {
    if !held.need_resched() {
        return false;
    }
    // Progress: not twice at the same gfn.
    if iter.next_last_level_gfn == iter.yielded_gfn {
        return false;
    }
    held.resched(flush, vcpus, config);
    iter.yielded = true;
    true
}

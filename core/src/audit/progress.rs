//! I6, progress, from the ghost's own observations of each zap (never from
//! the zap loop's counters: a loop that miscounts, bug 9's batch counter,
//! would otherwise grade itself).

use crate::invariant::{Invariant, Violation};
use crate::mmu::MmuLock;
use crate::vm::Vm;

/// I6 progress: every zap of the obsolete pages, as the ghost watched it
/// (`ghost/progress.rs`), took at most [`zap_step_bound`] steps (pages
/// examined plus passes) for the pages that existed when it began, prepared
/// at most a batch per `mmu_lock` hold and no page twice (the ghost records
/// each breach as it sees it; this reports them again in the audit); and no
/// obsolete page is left on the active list except in-use roots, and the
/// previous generation's pages when a deferring invalidation left them
/// (whose bound is I8's). Only on a quiescent VM, so not at the audit points
/// inside operations: there another invalidation may have bumped the
/// generation and not yet zapped, and `slots_lock` is no witness that none
/// is in flight (bug 6, [`NoSlotsLock`](crate::mutant::Mutant::NoSlotsLock),
/// runs invalidations without it, and its twins must be caught by what it
/// breaks, I5).
///
/// [`zap_step_bound`]: crate::check::zap_step_bound
pub(crate) fn check_i6_progress(vm: &Vm, lk: &MmuLock<'_>) -> Vec<Violation> {
    let mut out = vm.ghost.zap_breaches();
    let v = |detail: String| Violation::new(Invariant::I6, detail);
    if vm.slots_lock.try_lock().is_some() {
        let previous = lk.mmu_valid_gen.wrapping_sub(1) & vm.gen_mask();
        for id in lk.active.values() {
            let Some(meta) = lk.pages.get(id) else {
                out.push(Violation::new(
                    Invariant::I3,
                    format!("the active list names {id}, which is no longer a page"),
                ));
                continue;
            };
            let left = lk.obsolete_left && meta.mmu_valid_gen == previous;
            if meta.mmu_valid_gen != lk.mmu_valid_gen && !meta.invalid && !left {
                out.push(v(format!(
                    "{id} of generation {} survived the zap",
                    meta.mmu_valid_gen
                )));
            }
        }
    }
    out
}

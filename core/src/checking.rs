//! # What only fastzap's own checkers use
//!
//! Not part of the API, and hidden from its documentation: the sync facade
//! (whose types change with the lane, loom or shuttle or native), the facade's
//! small EBR and its mutants, the bug zoo's [`Mutant`]s, and the checks that
//! model threads run in the middle of an execution. The models, the
//! verification crate and the litmus tests use it; a VMM should not.

/// The sync facade (the crate root's `sync`, core/src/sync/) under the path
/// the models name: `fastzap::checking::sync::{Arc, spawn, ebr::Ebr, ...}`.
pub mod sync {
    pub use crate::sync::*;
}

pub use crate::mutant::Mutant;

#[cfg(feature = "ghost")]
pub mod litmus;

#[cfg(loom)]
pub mod poison;

/// I4, the notifier half, for a model thread while other operations are in
/// flight: every present leaf spte of every page in the page table, obsolete
/// and invalid pages included, maps the pfn that now backs its gfn's host
/// page. Takes `mmu_lock` (logged as the notifier).
#[cfg(feature = "ghost")]
pub fn check_notifier_reach(vm: &crate::Vm) -> Vec<crate::invariant::Violation> {
    crate::audit::check_i4_notifier_reach(vm)
}

/// I9, reclamation completes, at the end of an execution: runs up to
/// `rounds` grace periods and reports every kind of object retired and
/// still not freed. Call it with no guard pinned and nothing else running.
#[cfg(feature = "ghost")]
pub fn check_reclamation_completes(
    vm: &crate::Vm,
    rounds: usize,
) -> Vec<crate::invariant::Violation> {
    crate::audit::check_i9_drained(vm, rounds)
}

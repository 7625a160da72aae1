//! # The audit: one function per invariant (`mmu_audit.c`)
//!
//! Each `check_*` function of [`invariants`] states one invariant of `SPEC.md`
//! (or one half of it) and returns the [`Violation`]s it finds. [`audit`] runs
//! all of them on a quiescent VM (no operation in flight): at the end of every
//! test, model execution and proptest step. The protocol reaches the audit
//! only through its hook (`checkpoint.rs`), which decides what runs at each of
//! its named points inside operations: [`in_flight`], the subset that holds
//! whenever `mmu_lock` is free of writers, and the checks tied to one
//! operation's promise (an invalidation reached every spte of its range, a
//! seed-v3 delete left nothing mapped).
//!
//! Some violations can only be seen as they happen (a reader that reads a freed
//! page, a translation that returns an invalidated pfn); the ghost state
//! records those, and [`audit`] reports them too.

mod bounds;
mod invariants;
mod mmio;
mod progress;
mod structures;
// Native only: the tests drive real threads and the native facade.
#[cfg(all(test, not(any(loom, shuttle))))]
mod tests;

use crate::event::Actor;
use crate::invariant::Violation;
use crate::mmu::MmuLock;
use crate::sync::Guard;
use crate::vm::Vm;

pub(crate) use bounds::{check_i8_retention, check_i8_shrinker_order};
use invariants::*;
pub(crate) use invariants::{
    check_i1_slot_unmapped, check_i4_notifier_reach, check_i4_range_unmapped,
};
use mmio::{check_i7_mmio_generation, mmio_sptes_trusted_rightly};
use progress::check_i6_progress;
pub(crate) use structures::check_i9_drained;
use structures::leaf_gfns;
use structures::{check_i9_reclamation_counts, check_i10_memslot_indexes, check_i11_vcpu_claims};

/// Runs every check on a quiescent VM. `Ok` means every invariant holds and
/// no violation was recorded at run time. The violations come in detection
/// order ([`detection_order`](crate::invariant::detection_order)): those the
/// ghost recorded while the VM ran, as it recorded them, then those the
/// checks below find now, in check order; each once.
pub fn audit(vm: &Vm) -> Result<(), Vec<Violation>> {
    let guard = vm.reclaimer.pin();
    let lk = vm.lock_mmu(Actor::Zapper);
    let during = vm.ghost.violations();
    let mut found = check_i1_rmap_integrity(vm, &lk, &guard);
    found.extend(check_i2_descriptors(vm, &lk, &guard, true));
    found.extend(check_i3_page_lifetime(vm, &lk, &guard, true));
    found.extend(check_i4_no_stale_translation(vm, &lk, &guard));
    found.extend(check_i5_obsolete_never_reused(vm, &lk, &guard));
    found.extend(check_i6_progress(vm, &lk));
    found.extend(check_i7_mmio_generation(vm, &lk, &guard));
    found.extend(check_i8_retention(vm, &lk));
    found.extend(check_i9_reclamation_counts(vm));
    found.extend(check_i10_memslot_indexes(&vm.memslots.load_full()));
    found.extend(check_i11_vcpu_claims(vm));
    let found = crate::invariant::detection_order(&during, &found);
    if found.is_empty() { Ok(()) } else { Err(found) }
}

/// The checks that hold at every audit point inside an operation, with
/// `mmu_lock` held even while other operations are in flight; each detail is
/// prefixed with the point's name `at`.
pub(crate) fn in_flight(vm: &Vm, lk: &MmuLock<'_>, guard: &Guard<'_>, at: &str) -> Vec<Violation> {
    let mut found = check_i3_page_lifetime(vm, lk, guard, false);
    found.extend(check_i5_obsolete_never_reused(vm, lk, guard));
    found.extend(mmio_sptes_trusted_rightly(vm, lk, guard));
    if !vm.ghost.unmapper_running() {
        found.extend(check_i2_descriptors(vm, lk, guard, false));
    }
    for violation in &mut found {
        violation.detail = format!("[{at}] {}", violation.detail);
    }
    found
}

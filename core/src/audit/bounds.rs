//! I8, bounded retention: the resource bound that no safety invariant states.
//!
//! A zap that retains what it zapped breaks nothing a reader can see: every
//! free still goes through the commit's flush and grace period. What breaks is
//! memory: the kernel's 365c886860c4 made the shrinker "reclaim the
//! zapped-obsolete page first", because pages parked on
//! `zapped_obsolete_pages` while active pages are zapped instead "can lead to
//! OOM". These checks state that bound.

use crate::invariant::{Invariant, Violation};
use crate::mmu::MmuLock;
use crate::vm::Vm;

/// I8, the shrinker's order: when the shrinker zaps an active page, nothing is
/// parked on `zapped_obsolete_pages` (it would have freed those first). Run
/// where the shrinker is about to prepare an active page, with `mmu_lock` held.
pub(crate) fn check_i8_shrinker_order(lk: &MmuLock<'_>) -> Vec<Violation> {
    if lk.zapped_obsolete.is_empty() {
        return Vec::new();
    }
    vec![Violation::new(
        Invariant::I8,
        format!(
            "the shrinker zaps an active page while {} zapped-obsolete pages are parked ({:?})",
            lk.zapped_obsolete.len(),
            &lk.zapped_obsolete[..lk.zapped_obsolete.len().min(4)],
        ),
    )]
}

/// I8, retention after an invalidation: the obsolete pages left in the VM are
/// at most [`retain_bound`](crate::check::retain_bound): at most one obsolete root in
/// use per vCPU, and at most one batch of unused obsolete pages (parked, or not
/// yet zapped). After a deferring invalidation
/// ([`DeletionStrategy::SeedV3Deferred`](crate::DeletionStrategy)) the unused
/// obsolete pages may be a whole table, but of one generation only, the one
/// before the current: at most one obsolete generation is retained. Run when
/// `zap_obsolete_pages` returns, with `mmu_lock` held, and by the quiescent
/// audit.
pub(crate) fn check_i8_retention(vm: &Vm, lk: &MmuLock<'_>) -> Vec<Violation> {
    let mut in_use = 0u64;
    let mut unused = Vec::new();
    let previous = lk.mmu_valid_gen.wrapping_sub(1) & vm.gen_mask();
    let mut older = Vec::new();
    for (id, meta) in lk.pages.iter() {
        if !lk.is_obsolete(meta) {
            continue;
        }
        if meta.root_count > 0 {
            in_use += 1;
        } else {
            unused.push(*id);
            if !meta.invalid && meta.mmu_valid_gen != previous {
                older.push((*id, meta.mmu_valid_gen));
            }
        }
    }
    let mut out = Vec::new();
    let vcpus = vm.config.vcpus as u64;
    if in_use > vcpus {
        out.push(Violation::new(
            Invariant::I8,
            format!("{in_use} obsolete roots still in use, more than one per vCPU ({vcpus})"),
        ));
    }
    let batch = vm.config.batch as u64;
    if lk.obsolete_left {
        if !older.is_empty() {
            older.sort();
            out.push(Violation::new(
                Invariant::I8,
                format!(
                    "{} unused obsolete pages retained from generations older than {previous} \
                     (the current is {}): a deferred invalidation bumped without zapping what \
                     the previous one left; first {:?}",
                    older.len(),
                    lk.mmu_valid_gen,
                    &older[..older.len().min(4)],
                ),
            ));
        }
    } else if unused.len() as u64 > batch {
        unused.sort();
        out.push(Violation::new(
            Invariant::I8,
            format!(
                "{} unused obsolete pages retained after the zap ({} parked on \
                 zapped_obsolete_pages), bound {batch} (one batch); first {:?}",
                unused.len(),
                lk.zapped_obsolete.len(),
                &unused[..unused.len().min(4)],
            ),
        ));
    }
    out
}

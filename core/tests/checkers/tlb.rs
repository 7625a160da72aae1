//! The flush-site twins' sequential cases: each fills vCPU 0's TLB through a
//! walk, runs the operation whose flush the mutant drops, and translates
//! again. With the flush, the translate finds the request pending; without
//! it, the TLB answers with a mapping the operation killed (I4).

use super::*;

/// vCPU 0 maps `gfn` and touches it: its TLB holds the translation.
fn fill(vm: &Vm, gfn: u64) {
    vm.page_fault(V0, Gfn(gfn), true).unwrap();
    assert!(matches!(
        vm.translate(V0, Gfn(gfn)).unwrap(),
        Translation::Mapped { .. }
    ));
    assert_eq!(vm.tlb_entries(V0), Ok(1));
}

/// After the operation: with the flush, the vCPU must handle its requests
/// first; without it, the stale entry answers.
fn translate_after(vm: &Vm, gfn: u64, mutant: Option<Mutant>) {
    let t = vm.translate(V0, Gfn(gfn)).unwrap();
    match mutant {
        None => assert_eq!(t, Translation::RequestPending),
        Some(m) => assert!(
            matches!(t, Translation::Mapped { .. }),
            "{m:?}: the TLB did not answer ({t:?})"
        ),
    }
}

/// `invalidate_range` of gfn 1's page.
pub(super) fn invalidate_range_without_flush(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    let spec = slot(0, 0, 4);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    fill(&vm, 1);
    let at = hva(&spec, 1);
    assert_eq!(vm.invalidate_range(at, at + PAGE_SIZE).unwrap(), 1);
    translate_after(&vm, 1, mutant);
    vm
}

/// `change_pte` of gfn 1's page.
pub(super) fn change_pte_without_flush(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    let spec = slot(0, 0, 4);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    fill(&vm, 1);
    assert_eq!(vm.change_pte(hva(&spec, 1)).unwrap(), 1);
    translate_after(&vm, 1, mutant);
    vm
}

/// The shrinker zaps vCPU 0's root (a reload for everyone) but leaves its
/// child page valid and unlinked; the new root links the same child again,
/// so the child is now older than the root. The next shrink zaps the child
/// alone: only the commit's flush empties the TLB. The mutant skips it; the
/// `invalidate_range` that follows finds no spte for gfn 1, flushes nothing,
/// and the host takes the page back while the TLB still maps it.
pub(super) fn commit_without_flush(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.address_spaces = 1;
    let vm = vm(cfg);
    let spec = slot(0, 0, 4);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(1), true).unwrap();
    vm.shrink(1).unwrap(); // the root, the oldest page
    enter_all(&vm);
    fill(&vm, 1); // through the new root and the old child
    assert_eq!(vm.shrink(1).unwrap(), 1, "the child alone");
    let at = hva(&spec, 1);
    assert_eq!(vm.invalidate_range(at, at + PAGE_SIZE).unwrap(), 0);
    translate_after(&vm, 1, mutant);
    vm
}

/// One level: the root holds the leaves. `zap_all` zaps the root vCPU 0
/// holds (kept until it reloads), commits nothing, and only the reload
/// request empties the TLB; the mutant does not send it.
pub(super) fn zap_root_without_reload(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.levels = 1; // 2 gfns
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 2)).unwrap();
    enter_all(&vm);
    fill(&vm, 1);
    assert_eq!(vm.zap_all().unwrap().committed, 0);
    translate_after(&vm, 1, mutant);
    vm
}

/// A deferred delete (the seed's v3 as posted) of the slot vCPU 0 has
/// cached: the bump's reload is the only flush, as nothing is committed.
pub(super) fn bump_without_reload(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.mmio_gen_bits = 8; // no MMIO generation wrap, whose full zap would flush
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    fill(&vm, 1);
    vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3Deferred)
        .unwrap();
    translate_after(&vm, 1, mutant);
    vm
}

#[test]
fn twin_invalidate_range_without_flush() {
    check(Mutant::InvalidateRangeWithoutFlush);
}

#[test]
fn twin_change_pte_without_flush() {
    check(Mutant::ChangePteWithoutFlush);
}

#[test]
fn twin_commit_without_flush() {
    check(Mutant::CommitWithoutFlush);
}

#[test]
fn twin_zap_root_without_reload() {
    check(Mutant::ZapRootWithoutReload);
}

#[test]
fn twin_bump_without_reload() {
    check(Mutant::BumpWithoutReload);
}

/// The audit's half of I4 through the TLB: with the flush dropped, the entry
/// is stale as soon as the invalidation returns, before any translate hits it;
/// with the flush, the pending request exempts it until it is handled.
#[test]
fn the_audit_sees_a_stale_entry_before_any_hit() {
    for mutant in [None, Some(Mutant::InvalidateRangeWithoutFlush)] {
        let vm = vm(cfg(mutant));
        let spec = slot(0, 0, 4);
        vm.create_memslot(spec).unwrap();
        enter_all(&vm);
        fill(&vm, 1);
        let at = hva(&spec, 1);
        vm.invalidate_range(at, at + PAGE_SIZE).unwrap();
        let found = fastzap::check::audit(&vm);
        match mutant {
            None => assert!(found.is_ok(), "{found:?}"),
            Some(_) => {
                let found = found.expect_err("the stale entry");
                assert_eq!(found[0].invariant, Invariant::I4);
                assert!(
                    found[0].to_string().contains("TLB maps gfn 1"),
                    "{}",
                    found[0]
                );
            }
        }
    }
}

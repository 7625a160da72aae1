//! A use after free is reported, not crashed; corrupt counts are reported,
//! not panicked on. Each test plants the bug a plain source edit could make
//! (through a `cfg(test)` hook, with no `Config::mutant` set), and checks
//! that the checkers name the invariant it breaks. These run under Miri
//! too (`.ci/miri`): there, a read of really freed memory would be UB.

use super::audit;
use crate::event::Actor;
use crate::invariant::{Invariant, Violation};
use crate::page::free_page;
use crate::{Config, Fault, Gfn, Hva, SlotId, SlotSpec, Translation, VcpuId, Vm};

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// A VM with one slot of 4 gfns, every vCPU in the guest.
fn vm() -> Vm {
    let config = Config::model();
    assert!(config.mutant.is_none());
    let vm = Vm::new(config).expect("the model config is valid");
    vm.create_memslot(SlotSpec {
        id: SlotId(0),
        base_gfn: Gfn(0),
        npages: 4,
        userspace_addr: Hva(0x100_0000),
    })
    .expect("the slot fits");
    for _ in 0..2 {
        for v in [V0, V1] {
            vm.handle_requests(v).expect("vcpu exists");
        }
    }
    vm
}

fn violations_of(found: &[Violation], invariant: Invariant) -> Vec<&Violation> {
    found.iter().filter(|v| v.invariant == invariant).collect()
}

#[test]
fn a_freed_descriptor_read_by_a_walker_is_an_i2_report() {
    let vm = vm();
    // Two address spaces map gfn 0: its rmap head is a descriptor (d0).
    for v in [V0, V1] {
        assert!(matches!(
            vm.page_fault(v, Gfn(0), false),
            Ok(Fault::Mapped { .. })
        ));
    }
    assert_eq!(vm.counts().descs.allocated, 1);
    let slot = vm
        .memslots
        .load_full()
        .iter()
        .next()
        .expect("slot 0")
        .clone();
    let index = slot.rmap_index(0);
    {
        let guard = vm.reclaimer.pin();
        assert!(slot.rmap.retire_linked_for_test(&guard, index));
    }
    // The grace period passes: the descriptor is poisoned and released,
    // which in a checking build means quarantined, never reused.
    vm.reclaimer.drain(4);
    assert_eq!(vm.counts().descs.freed, 1);
    assert!(vm.ghost.quarantined() >= 1);
    // A walker still finds it on the chain: an invalidation of gfn 0 walks
    // the rmap (the process must not crash, and no freed memory is read).
    vm.invalidate_range(Hva(0x100_0000), Hva(0x100_1000))
        .expect("a valid range");
    let found = audit(&vm).expect_err("the use after free is reported");
    let i2 = violations_of(&found, Invariant::I2);
    assert!(
        i2.iter()
            .any(|v| v.detail.contains("read freed descriptor d0 on rmap head")),
        "{found:#?}"
    );
    assert!(
        i2.iter()
            .any(|v| v.detail.contains("freed descriptor is reachable")),
        "{found:#?}"
    );
    assert!(
        found[0]
            .to_string()
            .starts_with("I2 descriptor availability: "),
        "the run-time report comes first, through the normal violation path: {}",
        found[0]
    );
    // Dropping the VM does not release the descriptor a second time.
    drop(slot);
    drop(vm);
}

#[test]
fn a_freed_page_read_by_a_translation_is_an_i3_report() {
    let vm = vm();
    assert!(matches!(
        vm.page_fault(V0, Gfn(0), false),
        Ok(Fault::Mapped { .. })
    ));
    // Free the last-level page under gfn 0 while its parent still links it
    // and it is still in the page table (a zap that forgot to unlink it).
    let (leaf, id) = {
        let lk = vm.lock_mmu(Actor::Zapper);
        let (id, meta) = lk
            .pages
            .iter()
            .find(|(_, m)| m.role.level == 1 && !m.role.smm)
            .expect("the fault built a last-level page");
        (meta.ptr, *id)
    };
    {
        let guard = vm.reclaimer.pin();
        free_page(leaf, &guard, &vm.ghost, false);
    }
    vm.reclaimer.drain(4);
    assert_eq!(vm.counts().pages.freed, 1);
    // The walk reaches the poisoned page, reports it and misses.
    assert_eq!(vm.translate(V0, Gfn(0)), Ok(Translation::Miss));
    let found = audit(&vm).expect_err("the use after free is reported");
    let i3 = violations_of(&found, Invariant::I3);
    assert!(
        i3.iter()
            .any(|v| v.detail == format!("translate read freed page {id}")),
        "{found:#?}"
    );
    assert!(
        found[0].to_string().starts_with("I3 "),
        "the run-time report comes first: {}",
        found[0]
    );
    // Dropping the VM does not release the page a second time.
    drop(vm);
}

#[test]
fn corrupt_descriptor_counts_are_an_i2_violation_not_a_panic() {
    let vm = vm();
    assert_eq!(audit(&vm), Ok(()));
    // More descriptors retired than ever allocated.
    vm.ghost.descs().retire();
    let found = audit(&vm).expect_err("corrupt counts are reported");
    assert!(
        found.iter().any(|v| v.invariant == Invariant::I2
            && v.detail == "descriptor counts disagree: 1 retired but only 0 allocated"),
        "{found:#?}"
    );
}

#[test]
fn corrupt_page_counts_are_an_i3_violation_not_a_panic() {
    let vm = vm();
    assert_eq!(audit(&vm), Ok(()));
    let allocated = vm.counts().pages.allocated;
    for _ in 0..=allocated {
        vm.ghost.pages().retire();
    }
    let found = audit(&vm).expect_err("corrupt counts are reported");
    let expected = format!(
        "page counts disagree: {} retired but only {allocated} allocated",
        allocated + 1
    );
    assert!(
        found
            .iter()
            .any(|v| v.invariant == Invariant::I3 && v.detail == expected),
        "{found:#?}"
    );
}

/// The audit's chain-shape check sees a hole (an empty entry before a used
/// one) on a normal rmap: cargo-mutants found that turning the hole counter's
/// `+=` into `*=` (so it never counts) survived every test.
#[test]
fn a_hole_in_a_normal_chain_is_an_i2_report() {
    let vm = vm();
    for v in [V0, V1] {
        assert!(matches!(
            vm.page_fault(v, Gfn(0), false),
            Ok(Fault::Mapped { .. })
        ));
    }
    assert_eq!(audit(&vm), Ok(()));
    let slot = vm
        .memslots
        .load_full()
        .iter()
        .next()
        .expect("slot 0")
        .clone();
    {
        let guard = vm.reclaimer.pin();
        assert!(slot.rmap.punch_hole_for_test(&guard, slot.rmap_index(0)));
    }
    let found = audit(&vm).expect_err("the hole is reported");
    assert!(
        violations_of(&found, Invariant::I2)
            .iter()
            .any(|v| v.detail.contains("hole in a normal rmap's chain")),
        "{found:#?}"
    );
}

/// The descriptor of gfn 0's rmap head in `vm` (both vCPUs fault gfn 0 in
/// their own address space: two sptes, one descriptor), and its slot.
fn descriptor_at_gfn0(vm: &Vm) -> crate::memslot::Memslot {
    for v in [V0, V1] {
        assert!(matches!(
            vm.page_fault(v, Gfn(0), false),
            Ok(Fault::Mapped { .. })
        ));
    }
    assert_eq!(vm.counts().descs.allocated, 1);
    vm.memslots
        .load_full()
        .iter()
        .next()
        .expect("slot 0")
        .clone()
}

/// A descriptor retired twice used to be released twice (a double free in
/// the quarantine's drop, SIGSEGV): now the second retirement is reported,
/// and not handed to the reclaimer again.
#[test]
fn a_descriptor_retired_twice_is_an_i2_report_not_a_crash() {
    let vm = vm();
    let slot = descriptor_at_gfn0(&vm);
    let index = slot.rmap_index(0);
    {
        let guard = vm.reclaimer.pin();
        assert!(slot.rmap.retire_linked_for_test(&guard, index));
        assert!(slot.rmap.retire_linked_for_test(&guard, index));
    }
    vm.reclaimer.drain(4);
    let c = vm.counts().descs;
    assert_eq!((c.retired, c.freed), (1, 1), "retired and freed once");
    let found = audit(&vm).expect_err("the second retirement is reported");
    assert_eq!(
        found[0],
        Violation::new(Invariant::I2, "descriptor d0 retired twice".into()),
        "reported first, as it happened: {found:#?}"
    );
    drop(slot);
    drop(vm);
}

/// The same for a page: `free_page` twice on one page.
#[test]
fn a_page_retired_twice_is_an_i3_report_not_a_crash() {
    let vm = vm();
    assert!(matches!(
        vm.page_fault(V0, Gfn(0), false),
        Ok(Fault::Mapped { .. })
    ));
    let (leaf, id) = {
        let lk = vm.lock_mmu(Actor::Zapper);
        let (id, meta) = lk
            .pages
            .iter()
            .find(|(_, m)| m.role.level == 1)
            .expect("a last-level page");
        (meta.ptr, *id)
    };
    {
        let guard = vm.reclaimer.pin();
        free_page(leaf, &guard, &vm.ghost, false);
        free_page(leaf, &guard, &vm.ghost, false);
    }
    vm.reclaimer.drain(4);
    let c = vm.counts().pages;
    assert_eq!((c.retired, c.freed), (1, 1), "retired and freed once");
    let found = audit(&vm).expect_err("the second retirement is reported");
    assert_eq!(
        found[0],
        Violation::new(Invariant::I3, format!("{id} retired twice")),
        "{found:#?}"
    );
    drop(vm);
}

/// I9's counts: a free with no retirement, and (with the small EBR, which
/// counts its queue) a retirement with no deferred free, each name I9.
#[test]
fn unbalanced_reclamation_counts_are_an_i9_violation() {
    let mut config = Config::model();
    config.reclaim = crate::ReclaimBackend::small(4);
    let vm = Vm::new(config.clone()).expect("valid");
    assert_eq!(audit(&vm), Ok(()));
    vm.ghost.descs().free();
    let found = audit(&vm).expect_err("a free with no retirement");
    assert!(
        found.contains(&Violation::new(
            Invariant::I9,
            "descriptors: 1 freed but only 0 retired".into()
        )),
        "{found:#?}"
    );
    let vm = Vm::new(config).expect("valid");
    vm.ghost.pages().alloc();
    vm.ghost.pages().retire();
    let found = audit(&vm).expect_err("a retirement with no deferred free");
    assert!(
        found.iter().any(|v| v.invariant == Invariant::I9
            && v.detail.contains("but only 0 deferred frees queued")),
        "{found:#?}"
    );
}

/// I9's completion: an object retired and never freed is I9 after a drain
/// (it used to be reported as I3, page lifetime, like a use after free).
#[test]
fn a_retired_object_never_freed_is_an_i9_violation() {
    let vm = vm();
    assert_eq!(super::check_i9_drained(&vm, 2), vec![]);
    vm.ghost.pages().alloc();
    vm.ghost.pages().retire();
    assert_eq!(
        super::check_i9_drained(&vm, 2),
        vec![Violation::new(
            Invariant::I9,
            "pages: 1 retired but not freed after 2 grace periods (1 retired, 0 freed)".into()
        )]
    );
}

/// I10: one memslot index changed without the others, published.
#[test]
fn memslot_indexes_that_disagree_are_an_i10_violation() {
    for (what, expected) in [
        (0u8, "0 by id"),
        (1, "the host index's copy differs"),
        (2, "overlapping pairs"),
    ] {
        let vm = vm();
        assert_eq!(audit(&vm), Ok(()));
        let mut corrupt = (*vm.memslots.load_full()).clone();
        corrupt.corrupt_index_for_test(crate::SlotId(0), what);
        vm.memslots.store(crate::sync::Arc::new(corrupt));
        let found = audit(&vm).expect_err("the indexes disagree");
        assert!(
            found
                .iter()
                .any(|v| v.invariant == Invariant::I10 && v.detail.contains(expected)),
            "{what}: {found:#?}"
        );
    }
}

/// I11: the claim flag released while its claim still holds the vCPU (a
/// plain edit of `VcpuClaim`'s drop, say), and a second claim taken: the
/// ghost reports two holders as the second claim is taken, and the audit
/// an inconsistent claim.
#[test]
fn a_vcpu_claimed_twice_is_an_i11_violation() {
    let vm = vm();
    let first = vm.claim_vcpu(V0).expect("free");
    assert!(matches!(
        vm.translate(V0, Gfn(0)),
        Err(crate::MmuError::VcpuBusy(VcpuId(0)))
    ));
    vm.vcpus[0].unclaim();
    let found = audit(&vm).expect_err("a claim with its flag clear");
    assert!(
        found.contains(&Violation::new(
            Invariant::I11,
            "vcpu0: 1 claims hold it, its claim flag is false".into()
        )),
        "{found:#?}"
    );
    let second = vm.claim_vcpu(V0).expect("the flag is clear");
    assert!(
        vm.ghost.violations().contains(&Violation::new(
            Invariant::I11,
            "vcpu0 claimed while 1 other claims hold it".into()
        )),
        "{:#?}",
        vm.ghost.violations()
    );
    drop(second);
    drop(first);
}

/// I6 is judged from what the ghost watched, not from the zap loop's own
/// counts: a zap record claiming a million steps changes nothing, and the
/// ghost's count of a correct zap's steps is the loop's.
#[test]
fn i6_counts_what_the_ghost_saw_not_the_loops_counter() {
    let vm = vm();
    for v in [V0, V1] {
        vm.page_fault(v, Gfn(0), false).expect("maps");
    }
    let (watched, _) = vm.ghost.zaps_watched();
    let stats = vm.invalidate_zap_all_pages().expect("zaps");
    let (now, steps) = vm.ghost.zaps_watched();
    assert_eq!(now, watched + 1, "the zap was watched");
    assert!(stats.steps > 2);
    assert_eq!(
        steps, stats.steps,
        "the ghost counts the loop's steps itself"
    );
    vm.ghost.record_zap(crate::ZapStats {
        steps: 1_000_000,
        max_batch: 1_000,
        holds: 2,
        ..stats
    });
    for v in [V0, V1] {
        vm.handle_requests(v).expect("reloads");
    }
    assert_eq!(
        audit(&vm),
        Ok(()),
        "the loop's counters are not I6's evidence"
    );
}

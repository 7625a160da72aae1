//! A use after free is reported, not crashed; corrupt counts are reported,
//! not panicked on. Each test plants the bug a plain source edit could make
//! (through a `cfg(test)` hook, with no `Config::mutant` set), and checks
//! that the checkers name the invariant it breaks. These run under Miri
//! too (`.ci/miri`): there, a read of really freed memory would be UB.

use crate::event::Actor;
use crate::invariant::{Invariant, Violation};
use crate::page::free_page;
use crate::{Config, Fault, Gfn, Hva, SlotId, SlotSpec, Translation, VcpuId, Vm, audit};

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

//! The order in which each operation checks its rules, as its documentation
//! lists it ("Errors"): an input that breaks two adjacent rules gets the
//! first one's error, and changes nothing. One test per documented order.

use super::*;

/// `Config::validate` and `Vm::new`: the rules in the order of
/// `ConfigError`'s variants. Each pair of adjacent rules is broken together;
/// each edit alone breaks its own rule, so both apply.
#[test]
fn config_rules_in_order() {
    type Edit = fn(&mut Config);
    type Is = fn(ConfigError) -> bool;
    let rules: &[(Edit, Is)] = &[
        (|c| c.vcpus = 0, |e| matches!(e, ConfigError::Vcpus { .. })),
        (
            |c| c.spte_count = 8192,
            |e| matches!(e, ConfigError::SpteCount { .. }),
        ),
        (
            |c| c.levels = 9,
            |e| matches!(e, ConfigError::Levels { .. }),
        ),
        (
            |c| {
                c.spte_count = 64;
                c.levels = 8;
            },
            |e| matches!(e, ConfigError::GfnSpace { .. }),
        ),
        (
            |c| c.address_spaces = 0,
            |e| matches!(e, ConfigError::AddressSpaces { .. }),
        ),
        (
            |c| c.gen_bits = 0,
            |e| matches!(e, ConfigError::GenBits { .. }),
        ),
        (
            |c| c.mmio_gen_bits = 0,
            |e| matches!(e, ConfigError::MmioGenBits { .. }),
        ),
        (|c| c.batch = 0, |e| matches!(e, ConfigError::Batch { .. })),
        (
            |c| c.desc_capacity = 1,
            |e| matches!(e, ConfigError::DescCapacity { .. }),
        ),
        (
            |c| {
                c.mmu = Mmu::Tdp;
                c.deletion = DeletionStrategy::SlotOnly2019;
            },
            |e| matches!(e, ConfigError::Deletion { .. }),
        ),
        (
            |c| c.reclaim = ReclaimBackend::small(0),
            |e| matches!(e, ConfigError::ReclaimSlots { .. }),
        ),
    ];
    let error = |cfg: &Config| match cfg.validate() {
        Err(MmuError::InvalidConfig(e)) => {
            assert_eq!(Vm::new(cfg.clone()).err(), Some(MmuError::InvalidConfig(e)));
            e
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    for (i, pair) in rules.windows(2).enumerate() {
        let [(first, is_first), (second, is_second)] = pair else {
            unreachable!()
        };
        let mut alone = Config::model();
        second(&mut alone);
        assert!(is_second(error(&alone)), "rule {} alone", i + 1);
        // The later rule's edit first, so the earlier one's wins where both
        // touch a field (the gfn space's spte_count and levels).
        let mut both = Config::model();
        second(&mut both);
        first(&mut both);
        let got = error(&both);
        assert!(is_first(got), "rules {i} and {}: got {got:?}", i + 1);
    }
}

/// `create_memslot`: npages, gfn range, host range, id, count, overlap.
/// (The count, on a VM with `Memslots::MAX_SLOTS` slots, against an id in
/// use and an overlap: `too_many_slots_on_create`.)
#[test]
fn create_memslot_checks_in_order() {
    let mut spec = slot(5, 8, 0); // no pages, and past the last gfn (8)
    refused(MmuError::EmptySlot, |vm| vm.create_memslot(spec));
    spec = slot(5, 7, 2); // ends past gfn 8, and an unaligned host address
    spec.userspace_addr = Hva(0x1234);
    let oor = MmuError::GfnOutOfRange {
        gfn: Gfn(8),
        limit: Gfn(8),
    };
    refused(oor, |vm| vm.create_memslot(spec));
    spec = slot(1, 2, 1); // id 1 is in use, and the host address is unaligned
    spec.userspace_addr = Hva(0x100_0001);
    refused(MmuError::BadHostRange, |vm| vm.create_memslot(spec));
    spec = slot(1, 2, 1); // id 1 in use, and its host range ends past 2^48
    spec.userspace_addr = Hva::LIMIT;
    refused(MmuError::BadHostRange, |vm| vm.create_memslot(spec));
    // id 1 is in use, and gfn 0 is slot 0's.
    refused(MmuError::SlotExists(SlotId(1)), |vm| {
        vm.create_memslot(slot(1, 0, 1))
    });
}

/// `move_memslot`: unknown slot, gfn range, overlap.
#[test]
fn move_memslot_checks_in_order() {
    // No slot 9, and no place to go.
    refused(MmuError::UnknownSlot(SlotId(9)), |vm| {
        vm.move_memslot(SlotId(9), Gfn(u64::MAX))
    });
    // Slot 1 (2 pages) at gfn 7 would pass gfn 8 and overlap slot 2 at 7.
    let vm = busy_vm();
    vm.create_memslot(slot(2, 7, 1)).unwrap();
    let oor = MmuError::GfnOutOfRange {
        gfn: Gfn(8),
        limit: Gfn(8),
    };
    refused_on(&vm, oor, |vm| vm.move_memslot(SlotId(1), Gfn(7)));
    // The overlap alone is reported as such.
    refused_on(
        &vm,
        MmuError::SlotOverlap {
            slot: SlotId(1),
            other: SlotId(2),
        },
        |vm| vm.move_memslot(SlotId(1), Gfn(6)),
    );
}

/// `translate`, `translate_run` and `page_fault`: the gfn, then the vCPU
/// (unknown, then busy; a vCPU that does not exist cannot be busy). On a
/// `ClaimedVcpu` the same operations check the gfn, and nothing else.
#[test]
fn vcpu_operations_check_the_gfn_first() {
    let bad = VcpuId(9);
    let oor = |gfn| MmuError::GfnOutOfRange {
        gfn: Gfn(gfn),
        limit: Gfn(8),
    };
    refused(oor(8), |vm| vm.translate(bad, Gfn(8)));
    refused(oor(9), |vm| vm.page_fault(bad, Gfn(9), true));
    // The first gfn out of range, in the order given.
    refused(oor(9), |vm| {
        vm.translate_run(bad, &[Gfn(0), Gfn(9), Gfn(8)], &mut Vec::new())
    });
    // A busy vCPU: another handle holds it.
    let vm = busy_vm();
    let mut held = vm.claim_vcpu(V0).unwrap();
    let before = snapshot(&vm);
    assert_eq!(vm.translate(V0, Gfn(8)), Err(oor(8)));
    assert_eq!(vm.page_fault(V0, Gfn(8), false), Err(oor(8)));
    let mut out = Vec::new();
    assert_eq!(vm.translate_run(V0, &[Gfn(8)], &mut out), Err(oor(8)));
    assert!(out.is_empty());
    // With a good gfn the claim is what refuses it.
    assert_eq!(vm.translate(V0, Gfn(1)), Err(MmuError::VcpuBusy(V0)));
    assert_eq!(vm.page_fault(V0, Gfn(1), true), Err(MmuError::VcpuBusy(V0)));
    // The holder's own operations: the gfn.
    assert_eq!(held.translate(Gfn(8)), Err(oor(8)));
    assert_eq!(held.page_fault(Gfn(8), true), Err(oor(8)));
    assert_eq!(held.translate_run(&[Gfn(1), Gfn(9)], &mut out), Err(oor(9)));
    assert!(out.is_empty());
    assert_eq!(snapshot(&vm), before);
    drop(held);
    assert_audit(&vm);
}

/// `invalidate_range`, `clear_flush_young`, `test_young`: an empty or
/// reversed range, then one past `Hva::LIMIT`.
#[test]
fn notifier_ranges_check_emptiness_first() {
    let top = Hva::LIMIT.0;
    for (start, end) in [(top + 2, top + 1), (u64::MAX, top + 1), (top + 1, top + 1)] {
        let (s, e) = (Hva(start), Hva(end));
        refused(MmuError::BadHvaRange, |vm| vm.invalidate_range(s, e));
        refused(MmuError::BadHvaRange, |vm| vm.clear_flush_young(s, e));
        refused(MmuError::BadHvaRange, |vm| vm.test_young(s, e));
    }
}

//! The host address errors: `BadHostRange` (a slot's host range),
//! `BadHvaRange` (a notifier's empty or reversed range) and `HvaOutOfRange`
//! (an address at or above `Hva::LIMIT`, 2^48).

use super::*;

// ----- BadHostRange, BadHvaRange -------------------------------------------------

#[test]
fn bad_host_range_on_create() {
    let e = MmuError::BadHostRange;
    let mut unaligned = slot(3, 2, 1);
    unaligned.userspace_addr = Hva(unaligned.userspace_addr.0 + 1);
    refused(e, |vm| vm.create_memslot(unaligned));
    unaligned.userspace_addr = Hva(unaligned.userspace_addr.0 + PAGE / 2);
    refused(e, |vm| vm.create_memslot(unaligned));
    // The range would end beyond 2^48.
    let mut high = slot(3, 2, 2);
    high.userspace_addr = Hva((1 << 48) - PAGE);
    refused(e, |vm| vm.create_memslot(high));
    high.userspace_addr = Hva(1 << 48);
    refused(e, |vm| vm.create_memslot(high));
    high.npages = 1;
    refused(e, |vm| vm.create_memslot(high));
    // The range overflows u64.
    high.userspace_addr = Hva(!(PAGE - 1));
    refused(e, |vm| vm.create_memslot(high));
    // Below the limit is accepted.
    let vm = busy_vm();
    high.npages = 2;
    high.userspace_addr = Hva((1 << 48) - 3 * PAGE);
    vm.create_memslot(high).unwrap();
    assert_audit(&vm);
}

/// The range check's bound is exclusive: a one-page slot whose range ends
/// exactly at 2^48 is inside the host's address space, and works: a fault
/// maps the last host page's pfn, `change_pte` and an invalidation reaching
/// the limit find its spte.
#[test]
fn a_slot_ending_exactly_at_the_top_of_the_host_is_accepted() {
    let vm = busy_vm();
    let last = Hva::LIMIT.checked_sub(PAGE).unwrap();
    let top = SlotSpec {
        id: SlotId(3),
        base_gfn: Gfn(2),
        npages: 1,
        userspace_addr: last,
    };
    vm.create_memslot(top).unwrap();
    assert_eq!(
        vm.memslots().by_id(SlotId(3)).unwrap().userspace_addr(),
        last
    );
    let pfn = vm.hva_to_pfn(last).unwrap();
    assert_eq!(pfn, Pfn((1 << 36) - 1), "the last page's own pfn");
    assert_eq!(
        vm.page_fault(V0, Gfn(2), true).unwrap(),
        Fault::Mapped { pfn }
    );
    assert!(matches!(
        vm.translate(V0, Gfn(2)).unwrap(),
        Translation::Mapped { pfn: p, .. } if p == pfn
    ));
    assert_eq!(vm.change_pte(last + 7).unwrap(), 1);
    assert_ne!(vm.hva_to_pfn(last).unwrap(), pfn, "change_pte remapped it");
    assert_eq!(vm.invalidate_range(last, Hva::LIMIT).unwrap(), 1);
    assert_audit(&vm);
    // One more page would end past the limit.
    vm.delete_memslot(SlotId(3)).unwrap();
    let two = SlotSpec { npages: 2, ..top };
    refused_on(&vm, MmuError::BadHostRange, |vm| vm.create_memslot(two));
}

// ----- HvaOutOfRange ------------------------------------------------------------------

#[test]
fn hva_out_of_range_on_hva_to_pfn_and_every_notifier() {
    let oor = |hva| MmuError::HvaOutOfRange {
        hva: Hva(hva),
        limit: Hva::LIMIT,
    };
    let top = Hva::LIMIT.0;
    for hva in [top, top + 1, top + PAGE, u64::MAX - PAGE + 1, u64::MAX] {
        // Before the fix, 2^48 aliased page 0's pfn.
        refused(oor(hva), |vm| vm.hva_to_pfn(Hva(hva)));
        refused(oor(hva), |vm| vm.change_pte(Hva(hva)));
    }
    // A range reaching past the limit reports its first address at or above it.
    for (start, end, first) in [
        (top - PAGE, top + 1, top),
        (0, u64::MAX, top),
        (top, top + PAGE, top),
        (top + 5, u64::MAX, top + 5),
    ] {
        let (s, e) = (Hva(start), Hva(end));
        refused(oor(first), |vm| vm.invalidate_range(s, e));
        refused(oor(first), |vm| vm.clear_flush_young(s, e));
        refused(oor(first), |vm| vm.test_young(s, e));
    }
    // Just below the limit is fine: the host has a page there.
    let vm = busy_vm();
    let last = Hva::LIMIT.checked_sub(1).unwrap();
    assert_eq!(vm.hva_to_pfn(last), Ok(Pfn((1 << 36) - 1)));
    assert_eq!(vm.change_pte(last), Ok(0));
    assert!(vm.invalidate_range(Hva(0), Hva::LIMIT).is_ok());
    assert_eq!(vm.test_young(Hva(0), Hva::LIMIT), Ok(false), "all unmapped");
    assert_audit(&vm);
}

#[test]
fn bad_hva_range_on_every_notifier() {
    let e = MmuError::BadHvaRange;
    let a = 0x100_0000;
    for (start, end) in [(a, a), (a + PAGE, a), (u64::MAX, 0), (0, 0)] {
        let (start, end) = (Hva(start), Hva(end));
        refused(e, |vm| vm.invalidate_range(start, end));
        refused(e, |vm| vm.clear_flush_young(start, end));
        refused(e, |vm| vm.test_young(start, end));
    }
}

#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! Large pages: a fault maps the large page at level 2 where the slot's
//! `lpage_info` and the host allow it; the notifiers drop the whole large
//! spte; the walk returns the pfn at the gfn's offset; the audit stays clean.

mod common;

use common::*;
use fastzap::*;

const V0: VcpuId = VcpuId(0);

/// 4 sptes per page, 3 levels: a large page is 4 gfns.
fn config() -> Config {
    let mut config = Config::model();
    config.spte_count = 4;
    config.levels = 3;
    config.large_pages = true;
    config
}

fn mapped(vm: &Vm, gfn: u64) -> Option<(Pfn, bool)> {
    match vm.translate(V0, Gfn(gfn)).unwrap() {
        Translation::Mapped { pfn, writable } => Some((pfn, writable)),
        Translation::Miss => None,
        other => panic!("gfn {gfn}: {other:?}"),
    }
}

#[test]
fn a_fault_maps_the_whole_large_page() {
    let vm = vm(config());
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    let fault = vm.page_fault(V0, Gfn(1), true).unwrap();
    assert_eq!(
        fault,
        Fault::Mapped {
            pfn: initial_pfn(hva(&spec, 1))
        }
    );
    // Its neighbours translate without a fault of their own, writable.
    for gfn in 0..4 {
        assert_eq!(mapped(&vm, gfn), Some((initial_pfn(hva(&spec, gfn)), true)));
    }
    // The next large page is not mapped; a fault there finds the first's.
    assert_eq!(mapped(&vm, 4), None);
    assert!(matches!(
        vm.page_fault(V0, Gfn(3), false).unwrap(),
        Fault::Mapped { .. }
    ));
    assert_audit(&vm);
}

#[test]
fn the_off_switch_and_partial_large_pages_map_small() {
    let mut off = config();
    off.large_pages = false;
    // A 6-page slot: its second large page (gfns 4 to 7) is partial.
    for (config, gfn) in [(off, 1), (config(), 5)] {
        let vm = vm(config);
        vm.create_memslot(slot(0, 0, 6)).unwrap();
        enter_all(&vm);
        vm.page_fault(V0, Gfn(gfn), true).unwrap();
        assert!(mapped(&vm, gfn).is_some());
        assert_eq!(mapped(&vm, gfn ^ 1), None, "gfn {gfn} mapped large");
        assert_audit(&vm);
    }
}

#[test]
fn a_host_range_not_aligned_maps_small() {
    let vm = vm(config());
    let mut spec = slot(0, 0, 8);
    spec.userspace_addr = Hva(spec.userspace_addr.0 + PAGE);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), true).unwrap();
    assert_eq!(mapped(&vm, 1), None);
    assert_audit(&vm);
}

#[test]
fn invalidating_one_small_page_drops_the_large_spte() {
    let vm = vm(config());
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    let page = hva(&spec, 2);
    assert_eq!(vm.invalidate_range(page, page + PAGE).unwrap(), 1);
    enter_all(&vm);
    for gfn in 0..4 {
        assert_eq!(mapped(&vm, gfn), None);
    }
    assert_audit(&vm);
    // The host page was remapped: the large page is split for good.
    vm.page_fault(V0, Gfn(0), false).unwrap();
    assert!(mapped(&vm, 0).is_some());
    assert_eq!(mapped(&vm, 1), None);
    assert_audit(&vm);
}

#[test]
fn change_pte_inside_a_large_mapping_drops_it() {
    let vm = vm(config());
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), true).unwrap();
    assert_eq!(vm.change_pte(hva(&spec, 3)).unwrap(), 1);
    enter_all(&vm);
    for gfn in 0..4 {
        assert_eq!(mapped(&vm, gfn), None);
    }
    assert_audit(&vm);
}

#[test]
fn aging_and_zapping_reach_the_large_spte() {
    let vm = vm(config());
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), true).unwrap();
    mapped(&vm, 2); // the guest touches gfn 2: the large spte's accessed bit
    let page = hva(&spec, 1);
    assert!(vm.test_young(page, page + PAGE).unwrap());
    assert!(vm.clear_flush_young(page, page + PAGE).unwrap());
    enter_all(&vm);
    assert!(!vm.test_young(hva(&spec, 3), hva(&spec, 3) + PAGE).unwrap());
    vm.invalidate_zap_all_pages().unwrap();
    enter_all(&vm);
    assert_eq!(mapped(&vm, 0), None);
    vm.delete_memslot(SlotId(0)).unwrap();
    assert_audit(&vm);
    assert_drains(&vm);
}

#[test]
fn a_small_page_table_keeps_the_gfns_small() {
    let vm = vm(config());
    enter_all(&vm);
    // No slot yet: gfn 2's MMIO spte builds a level-1 page under the large
    // page's spte.
    assert_eq!(vm.page_fault(V0, Gfn(2), false).unwrap(), Fault::Mmio);
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), true).unwrap();
    assert!(mapped(&vm, 0).is_some());
    assert_eq!(mapped(&vm, 1), None, "mapped large over a page table");
    // The next large page has no page table: large.
    vm.page_fault(V0, Gfn(4), true).unwrap();
    assert!(mapped(&vm, 5).is_some());
    assert_audit(&vm);
}

/// Every slot-only delete (2019, 2020, today's quirk-off) walks each level's
/// rmap: a large spte lives on its level-2 head only, so a delete that walked
/// level 1 alone would leave the deleted slot's gfns mapped (I4).
#[test]
fn a_slot_only_delete_unmaps_a_large_spte() {
    for strategy in DeletionStrategy::ALL
        .into_iter()
        .filter(|s| s.is_slot_only())
    {
        let vm = vm(config());
        let spec = slot(0, 0, 8);
        vm.create_memslot(spec).unwrap();
        enter_all(&vm);
        vm.page_fault(V0, Gfn(1), true).unwrap();
        assert!(mapped(&vm, 2).is_some(), "{strategy:?}: mapped large first");
        vm.delete_memslot_with(spec.id, strategy).unwrap();
        enter_all(&vm);
        for gfn in 0..4 {
            assert_eq!(
                mapped(&vm, gfn),
                None,
                "{strategy:?}: gfn {gfn} after the delete"
            );
        }
        assert_audit(&vm);
    }
}

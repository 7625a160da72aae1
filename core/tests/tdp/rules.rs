//! The upstream rules of the TDP MMU that a plain test can show, each named
//! by the commit that made it a rule.

use crate::common::*;
use crate::{tdp, tdp_vm};
use fastzap::*;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// Small tables, so that a slot spans many of them.
fn small() -> Config {
    let mut cfg = tdp(Config::native());
    cfg.spte_count = 4;
    cfg.levels = 4;
    cfg
}

fn fault_all(vm: &Vm, vcpu: VcpuId, gfns: std::ops::Range<u64>) {
    for gfn in gfns {
        let fault = vm.page_fault(vcpu, Gfn(gfn), true).unwrap();
        assert!(
            matches!(fault, Fault::Mapped { .. }),
            "gfn {gfn}: {fault:?}"
        );
    }
}

/// edbdb43fc96b: a new root starts at 2 (the vCPU's reference and the
/// MMU's); invalidating gifts the MMU's to the zapper, which puts it after
/// the zap; the vCPU's reload puts the last one and the root leaves the list.
#[test]
fn root_counts_across_invalidate_and_reload() {
    let mut cfg = tdp(Config::native());
    cfg.vcpus = 3;
    let vm = Vm::new(cfg).unwrap();
    vm.handle_requests(V0).unwrap();
    vm.handle_requests(V1).unwrap();
    let roots = vm.tdp_roots();
    assert_eq!(roots.len(), 2, "one root per address space");
    assert!(
        roots
            .iter()
            .all(|&(_, count, invalid)| count == 2 && !invalid),
        "{roots:?}"
    );
    // vCPU 2 shares vCPU 0's address space: it reuses the valid root.
    vm.handle_requests(VcpuId(2)).unwrap();
    let shared = vm.root(V0).unwrap().unwrap().page;
    assert_eq!(vm.root(VcpuId(2)).unwrap().unwrap().page, shared);
    assert!(vm.tdp_roots().contains(&(shared, 3, false)));

    vm.invalidate_zap_all_pages().unwrap();
    let roots = vm.tdp_roots();
    assert!(
        roots.contains(&(shared, 2, true)),
        "the MMU's reference was put: {roots:?}"
    );
    assert_eq!(
        roots.iter().filter(|r| r.1 == 1 && r.2).count(),
        1,
        "{roots:?}"
    );
    // A second invalidation schedules nothing twice: counts unchanged.
    vm.invalidate_zap_all_pages().unwrap();
    assert_eq!(vm.tdp_roots(), roots);

    vm.handle_requests(V0).unwrap();
    let fresh = vm.root(V0).unwrap().unwrap().page;
    assert!(vm.tdp_roots().contains(&(shared, 1, true)));
    assert!(vm.tdp_roots().contains(&(fresh, 2, false)));
    vm.handle_requests(VcpuId(2)).unwrap();
    vm.handle_requests(V1).unwrap();
    let roots = vm.tdp_roots();
    assert_eq!(roots.len(), 2, "{roots:?}");
    assert!(roots.contains(&(fresh, 3, false)), "{roots:?}");
    assert!(vm.drain(8));
    assert_eq!(vm.counts().pages.allocated - vm.counts().pages.freed, 2);
}

/// a955cad84cda: a fault whose root was invalidated retries; nothing is
/// installed in an invalid root.
#[test]
fn a_fault_into_an_invalid_root_retries() {
    let vm = tdp_vm(Config::native());
    vm.create_memslot(slot(0, 0, 16)).unwrap();
    vm.handle_requests(V0).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    assert_eq!(
        vm.page_fault(V0, Gfn(1), true).unwrap(),
        Fault::Retry(RetryReason::ObsoleteRoot)
    );
    assert!(vm.tdp_leaves().is_empty());
    vm.handle_requests(V0).unwrap();
    assert!(matches!(
        vm.page_fault(V0, Gfn(1), true).unwrap(),
        Fault::Mapped { .. }
    ));
}

/// 3a0f64de479c (and ed5e484b79e8): a zap that yields after every entry
/// still visits every entry; nothing is left behind, everything is freed.
#[test]
fn a_zap_that_yields_visits_every_entry() {
    let mut cfg = small();
    cfg.batch = 1;
    let vm = Vm::new(cfg).unwrap();
    let npages = 4u64.pow(4);
    vm.create_memslot(slot(0, 0, npages)).unwrap();
    vm.handle_requests(V0).unwrap();
    fault_all(&vm, V0, 0..npages);
    // 1 root, 4 + 16 + 64 tables below it.
    assert_eq!(vm.shadow_pages(), 85);
    let stats = vm.invalidate_zap_all_pages().unwrap();
    assert!(stats.holds > 10, "the zap yielded: {stats:?}");
    assert_eq!(stats.zapped, 84, "{stats:?}");
    assert_eq!(vm.shadow_pages(), 1, "the invalid root, until the reload");
    assert!(vm.tdp_leaves().is_empty());
    vm.handle_requests(V0).unwrap();
    assert!(vm.drain(8));
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, 86);
    assert_eq!(counts.pages.freed, 86, "{counts:?}");
}

/// The quirk-off delete (aa8d1f48d353) zaps only the slot's leaves, and
/// flushes if it zapped one: the other slot's translations stay; the tables stay until torn
/// down; the teardown frees them.
#[test]
fn quirk_off_delete_zaps_the_slots_leaves_and_flushes() {
    let mut cfg = small();
    cfg.deletion = DeletionStrategy::SlotOnlyQuirkOff;
    // No yield inside the zap, so that its final flush is its only one.
    cfg.batch = 1000;
    let vm = Vm::new(cfg).unwrap();
    vm.create_memslot(slot(0, 0, 16)).unwrap();
    vm.create_memslot(slot(1, 16, 16)).unwrap();
    vm.handle_requests(V0).unwrap();
    fault_all(&vm, V0, 0..32);
    let tables = vm.shadow_pages();
    vm.translate(V0, Gfn(3)).unwrap();
    vm.delete_memslot(SlotId(0)).unwrap();
    assert_eq!(
        vm.translate(V0, Gfn(3)).unwrap(),
        Translation::RequestPending,
        "flushed"
    );
    vm.handle_requests(V0).unwrap();
    assert_eq!(vm.translate(V0, Gfn(3)).unwrap(), Translation::Miss);
    assert!(matches!(
        vm.translate(V0, Gfn(20)).unwrap(),
        Translation::Mapped { .. }
    ));
    let leaves = vm.tdp_leaves();
    assert_eq!(leaves.len(), 16);
    assert!(leaves.iter().all(|&(_, _, gfn, _)| gfn >= 16));
    assert_eq!(vm.shadow_pages(), tables, "non-leaf tables stay");
    // A slot with no leaf: nothing zapped, no flush
    // (`kvm_mmu_remote_flush_or_zap` with nothing to do).
    vm.create_memslot(slot(2, 40, 4)).unwrap();
    enter_all(&vm);
    vm.delete_memslot(SlotId(2)).unwrap();
    assert_eq!(vm.pending_requests(V0), Ok(Requests::NONE));
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, counts.pages.freed, "{counts:?}");
}

/// `kvm_mmu_uninit_tdp_mmu`: the teardown frees every table of every root,
/// valid or invalid, and waits for the frees (`rcu_barrier`).
#[test]
fn teardown_frees_everything() {
    let vm = Vm::new(small()).unwrap();
    vm.create_memslot(slot(0, 0, 64)).unwrap();
    enter_all(&vm);
    fault_all(&vm, V0, 0..64);
    fault_all(&vm, V1, 0..32);
    vm.invalidate_zap_all_pages().unwrap();
    vm.handle_requests(V0).unwrap(); // a new root for V0; V1 keeps its invalid one
    fault_all(&vm, V0, 0..8);
    let allocated = vm.counts().pages.allocated;
    // Two roots with 21 + 11 tables below, then a new root with 4.
    assert_eq!(allocated, 39);
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, allocated);
    assert_eq!(counts.pages.retired, allocated, "{counts:?}");
    assert_eq!(counts.pages.freed, allocated, "{counts:?}");
}

/// ba3a6120a4e7: aging clears Accessed by compare-and-exchange; a walk sets
/// it again; a test never clears it.
#[test]
fn accessed_bits_are_cleared_only_by_clear_flush_young() {
    let vm = tdp_vm(Config::native());
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    vm.handle_requests(V0).unwrap();
    vm.page_fault(V0, Gfn(1), false).unwrap();
    let (s, e) = (hva(&spec, 0), hva(&spec, 8));
    assert!(vm.test_young(s, e).unwrap(), "a new leaf is accessed");
    assert!(vm.test_young(s, e).unwrap());
    assert!(vm.clear_flush_young(s, e).unwrap());
    assert!(!vm.test_young(s, e).unwrap());
    assert!(!vm.clear_flush_young(s, e).unwrap());
    vm.handle_requests(V0).unwrap();
    vm.translate(V0, Gfn(1)).unwrap();
    assert!(vm.test_young(s, e).unwrap());
}

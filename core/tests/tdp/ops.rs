//! Each public operation on a TDP VM, sequentially: the same answers the
//! shadow MMU gives where a caller can see them, and what each means on the
//! TDP MMU.

use crate::common::*;
use crate::{tdp, tdp_vm};
use fastzap::*;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

fn mapped(vm: &Vm, vcpu: VcpuId, gfn: u64, write: bool) -> Pfn {
    match vm.page_fault(vcpu, Gfn(gfn), write).expect("valid fault") {
        Fault::Mapped { pfn } => pfn,
        other => panic!("fault on gfn {gfn}: {other:?}"),
    }
}

#[test]
fn new_builds_a_tdp_vm_and_refuses_a_deletion_it_lacks() {
    let vm = tdp_vm(Config::native());
    assert_eq!(vm.config().mmu, Mmu::Tdp);
    let mut bad = tdp(Config::native());
    bad.deletion = DeletionStrategy::SeedV3;
    assert_eq!(
        Vm::new(bad).err(),
        Some(MmuError::InvalidConfig(ConfigError::Deletion {
            mmu: Mmu::Tdp,
            deletion: DeletionStrategy::SeedV3
        }))
    );
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    assert_eq!(
        vm.delete_memslot_with(SlotId(0), DeletionStrategy::SlotOnly2019),
        Err(MmuError::InvalidConfig(ConfigError::Deletion {
            mmu: Mmu::Tdp,
            deletion: DeletionStrategy::SlotOnly2019
        }))
    );
    assert_eq!(vm.slot_count(), 1, "a refused delete changes nothing");
}

#[test]
fn fault_then_translate_matches_the_host() {
    let vm = tdp_vm(Config::native());
    let spec = slot(0, 0, 64);
    vm.create_memslot(spec).unwrap();
    assert_eq!(
        vm.page_fault(V0, Gfn(3), false).unwrap(),
        Fault::Retry(RetryReason::NoRoot)
    );
    assert_eq!(
        vm.translate(V0, Gfn(3)).unwrap(),
        Translation::RequestPending
    );
    let handled = vm.handle_requests(V0).unwrap();
    assert!(handled.reloaded && handled.requests.reload());
    assert_eq!(vm.translate(V0, Gfn(3)).unwrap(), Translation::Miss);
    let pfn = mapped(&vm, V0, 3, false);
    assert_eq!(pfn, vm.hva_to_pfn(hva(&spec, 3)).unwrap());
    assert_eq!(
        vm.translate(V0, Gfn(3)).unwrap(),
        Translation::Mapped {
            pfn,
            writable: false
        }
    );
    // A write fault makes it writable; the translate fills the TLB.
    assert_eq!(mapped(&vm, V0, 3, true), pfn);
    assert_eq!(
        vm.translate(V0, Gfn(3)).unwrap(),
        Translation::Mapped {
            pfn,
            writable: true
        }
    );
    assert_eq!(vm.tlb_entries(V0).unwrap(), 1);
    // Root + one table per level below it.
    assert_eq!(vm.shadow_pages(), usize::from(vm.config().levels));
    let mut out = Vec::new();
    vm.translate_run(V0, &[Gfn(3), Gfn(4)], &mut out).unwrap();
    assert_eq!(
        out,
        [
            Translation::Mapped {
                pfn,
                writable: true
            },
            Translation::Miss
        ]
    );
    // Input checks, in the shadow MMU's order.
    let beyond = Gfn(vm.config().max_gfn());
    assert!(matches!(
        vm.page_fault(VcpuId(9), beyond, true),
        Err(MmuError::GfnOutOfRange { .. })
    ));
    assert_eq!(
        vm.page_fault(VcpuId(9), Gfn(0), true),
        Err(MmuError::UnknownVcpu(VcpuId(9)))
    );
    assert!(matches!(
        vm.translate_run(V0, &[Gfn(1), beyond], &mut out),
        Err(MmuError::GfnOutOfRange { .. })
    ));
}

#[test]
fn a_gfn_no_slot_maps_is_mmio_until_a_slot_maps_it() {
    let vm = tdp_vm(Config::native());
    vm.handle_requests(V0).unwrap();
    assert_eq!(vm.page_fault(V0, Gfn(100), false).unwrap(), Fault::Mmio);
    assert_eq!(vm.translate(V0, Gfn(100)).unwrap(), Translation::Mmio);
    // The lockless MMIO path answers again.
    assert_eq!(vm.page_fault(V0, Gfn(100), false).unwrap(), Fault::Mmio);
    let spec = slot(0, 96, 8);
    vm.create_memslot(spec).unwrap();
    // A new memslots generation: the MMIO entry and cache are stale.
    assert_eq!(vm.translate(V0, Gfn(100)).unwrap(), Translation::Miss);
    let pfn = mapped(&vm, V0, 100, true);
    assert_eq!(pfn, vm.hva_to_pfn(hva(&spec, 100)).unwrap());
}

#[test]
fn invalidate_all_invalidates_roots_and_the_reload_frees_them() {
    let vm = tdp_vm(Config::native());
    vm.create_memslot(slot(0, 0, 64)).unwrap();
    enter_all(&vm);
    let first = vm.root(V0).unwrap().expect("loaded");
    assert!(first.valid);
    for gfn in 0..8 {
        mapped(&vm, V0, gfn, true);
        mapped(&vm, V1, gfn, true);
    }
    let before = vm.mmu_valid_gen();
    let stats = vm.invalidate_zap_all_pages().unwrap();
    assert_eq!(vm.mmu_valid_gen(), before + 1);
    // Two roots (one per address space), each with two tables below.
    assert_eq!(stats.zapped, 4);
    assert!(vm.pending_requests(V0).unwrap().reload());
    assert_eq!(
        vm.translate(V0, Gfn(1)).unwrap(),
        Translation::RequestPending
    );
    assert!(!vm.root(V0).unwrap().expect("kept until the reload").valid);
    // Only the two invalid roots are left, each held by its vCPU.
    assert_eq!(vm.shadow_pages(), 2);
    enter_all(&vm);
    let second = vm.root(V0).unwrap().expect("reloaded");
    assert_ne!(second.page, first.page);
    assert!(second.valid && second.generation == vm.mmu_valid_gen());
    assert_eq!(vm.shadow_pages(), 2, "the new roots");
    assert_eq!(vm.translate(V0, Gfn(1)).unwrap(), Translation::Miss);
    assert!(vm.drain(8));
}

/// `Vm::zap_all` as the shadow MMU's: every root zapped and invalidated,
/// a reload asked of every vCPU, the old roots freed by the reloads.
#[test]
fn zap_all_invalidates_and_empties_every_root() {
    let vm = tdp_vm(Config::native());
    vm.create_memslot(slot(0, 0, 64)).unwrap();
    enter_all(&vm);
    mapped(&vm, V0, 5, true);
    vm.translate(V0, Gfn(5)).unwrap();
    let roots = vm.shadow_pages() - 2;
    let old = vm.root(V0).unwrap().expect("loaded");
    let gen_before = vm.mmu_valid_gen();
    let stats = vm.zap_all().unwrap();
    assert_eq!(vm.mmu_valid_gen(), gen_before);
    assert_eq!(stats.zapped, 2);
    for v in 0..vm.config().vcpus {
        let pending = vm.pending_requests(VcpuId(v)).unwrap();
        assert!(pending.reload(), "vcpu{v}: {pending:?}");
    }
    let after = vm.root(V0).unwrap().expect("kept until the reload");
    assert_eq!((after.page, after.valid), (old.page, false));
    assert_eq!(vm.shadow_pages(), roots, "the roots stay until reloaded");
    assert_eq!(
        vm.translate(V0, Gfn(5)).unwrap(),
        Translation::RequestPending
    );
    enter_all(&vm);
    let new = vm.root(V0).unwrap().expect("reloaded");
    assert!(new.valid && new.page != old.page, "{new:?}");
    assert_eq!(vm.shadow_pages(), roots, "the old roots were freed");
    assert_eq!(vm.translate(V0, Gfn(5)).unwrap(), Translation::Miss);
    assert_eq!(
        vm.shrink(10),
        Ok(0),
        "the shrinker never touches TDP tables"
    );
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, counts.pages.freed, "{counts:?}");
}

/// `translate_unsynchronized` walks the vCPU's TDP root: it answers what
/// the tables hold (the shadow MMU's vCPU root, never set on TDP, gave
/// `Miss` for all of it).
#[test]
fn translate_unsynchronized_walks_the_tdp_root() {
    let mut vm = tdp_vm(Config::native());
    vm.create_memslot(slot(0, 0, 64)).unwrap();
    assert_eq!(
        vm.translate_unsynchronized(V0, Gfn(5)).unwrap(),
        Translation::Miss,
        "no root yet"
    );
    enter_all(&vm);
    let pfn = mapped(&vm, V0, 5, true);
    assert_eq!(vm.page_fault(V0, Gfn(100), false).unwrap(), Fault::Mmio);
    assert_eq!(
        vm.translate_unsynchronized(V0, Gfn(5)).unwrap(),
        Translation::Mapped {
            pfn,
            writable: true
        }
    );
    assert_eq!(
        vm.translate_unsynchronized(V0, Gfn(100)).unwrap(),
        Translation::Mmio
    );
    assert_eq!(
        vm.translate_unsynchronized(V0, Gfn(6)).unwrap(),
        Translation::Miss
    );
    assert!(matches!(
        vm.translate_unsynchronized(V0, Gfn(1 << 40)),
        Err(MmuError::GfnOutOfRange { .. })
    ));
}

#[test]
fn notifiers_unmap_age_and_change_pages() {
    let vm = tdp_vm(Config::native());
    let spec = slot(0, 0, 16);
    vm.create_memslot(spec).unwrap();
    vm.handle_requests(V0).unwrap();
    mapped(&vm, V0, 2, true);
    vm.translate(V0, Gfn(2)).unwrap();
    let (start, end) = (hva(&spec, 2), hva(&spec, 3));
    assert!(vm.test_young(start, end).unwrap());
    assert!(vm.clear_flush_young(start, end).unwrap());
    assert!(!vm.test_young(start, end).unwrap());
    vm.handle_requests(V0).unwrap();
    vm.translate(V0, Gfn(2)).unwrap(); // a walk sets Accessed again
    assert!(vm.test_young(start, end).unwrap());

    let old = vm.hva_to_pfn(start).unwrap();
    assert_eq!(vm.change_pte(start).unwrap(), 1);
    let new = vm.hva_to_pfn(start).unwrap();
    assert_ne!(new, old);
    vm.handle_requests(V0).unwrap();
    assert_eq!(
        vm.translate(V0, Gfn(2)).unwrap(),
        Translation::Mapped {
            pfn: new,
            writable: false
        }
    );

    assert_eq!(
        vm.invalidate_range(hva(&spec, 0), hva(&spec, 16)).unwrap(),
        1
    );
    assert_ne!(vm.hva_to_pfn(start).unwrap(), new);
    vm.handle_requests(V0).unwrap();
    assert_eq!(vm.translate(V0, Gfn(2)).unwrap(), Translation::Miss);
    assert_eq!(mapped(&vm, V0, 2, false), vm.hva_to_pfn(start).unwrap());
    // Input checks.
    assert_eq!(vm.invalidate_range(end, start), Err(MmuError::BadHvaRange));
    assert!(matches!(
        vm.change_pte(Hva::LIMIT),
        Err(MmuError::HvaOutOfRange { .. })
    ));
    assert_eq!(vm.clear_flush_young(end, end), Err(MmuError::BadHvaRange));
}

#[test]
fn delete_and_move_on_both_tdp_deletions() {
    for deletion in [
        DeletionStrategy::Merged311,
        DeletionStrategy::SlotOnlyQuirkOff,
    ] {
        let mut cfg = tdp(Config::native());
        cfg.deletion = deletion;
        let vm = Vm::new(cfg).unwrap();
        let a = slot(0, 0, 16);
        let b = slot(1, 64, 16);
        vm.create_memslot(a).unwrap();
        vm.create_memslot(b).unwrap();
        vm.handle_requests(V0).unwrap();
        mapped(&vm, V0, 2, true);
        let kept = mapped(&vm, V0, 66, true);
        vm.delete_memslot(SlotId(0)).unwrap();
        vm.handle_requests(V0).unwrap();
        assert_eq!(
            vm.translate(V0, Gfn(2)).unwrap(),
            Translation::Miss,
            "{deletion:?}"
        );
        let other = vm.translate(V0, Gfn(66)).unwrap();
        if deletion.is_slot_only() {
            assert_eq!(
                other,
                Translation::Mapped {
                    pfn: kept,
                    writable: true
                }
            );
        } else {
            assert_eq!(other, Translation::Miss);
        }
        assert_eq!(vm.page_fault(V0, Gfn(2), true).unwrap(), Fault::Mmio);
        assert_eq!(
            vm.delete_memslot(SlotId(0)),
            Err(MmuError::UnknownSlot(SlotId(0)))
        );
        vm.move_memslot(SlotId(1), Gfn(128)).unwrap();
        vm.handle_requests(V0).unwrap();
        assert_eq!(
            mapped(&vm, V0, 128, false),
            vm.hva_to_pfn(hva(&b, 64)).unwrap()
        );
        assert_eq!(vm.page_fault(V0, Gfn(66), false).unwrap(), Fault::Mmio);
    }
}

#[test]
fn claimed_vcpu_runs_on_tdp() {
    let vm = tdp_vm(Config::native());
    let spec = slot(0, 0, 16);
    vm.create_memslot(spec).unwrap();
    let mut v = vm.claim_vcpu(V0).unwrap();
    assert!(v.pending_requests().reload());
    assert!(v.handle_requests().reloaded);
    assert!(v.root().expect("loaded").valid);
    let Fault::Mapped { pfn } = v.page_fault(Gfn(4), true).unwrap() else {
        panic!("mapped")
    };
    assert_eq!(
        v.translate(Gfn(4)).unwrap(),
        Translation::Mapped {
            pfn,
            writable: true
        }
    );
    assert_eq!(vm.translate(V0, Gfn(4)), Err(MmuError::VcpuBusy(V0)));
    drop(v);
    assert_eq!(vm.pending_requests(V0).unwrap(), Requests::NONE);
}

#[test]
fn the_event_log_shows_the_tdp_steps() {
    use fastzap::check::What;
    let vm = tdp_vm(Config::model()); // the model configuration logs events
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    vm.handle_requests(V0).unwrap();
    mapped(&vm, V0, 1, true);
    vm.invalidate_zap_all_pages().unwrap();
    vm.handle_requests(V0).unwrap();
    let notes: Vec<String> = vm
        .events()
        .into_iter()
        .filter_map(|e| match e.what {
            What::Note(note) => Some(note),
            _ => None,
        })
        .collect();
    let has = |text: &str| notes.iter().filter(|n| n.contains(text)).count();
    assert_eq!(has("loaded"), 2, "{notes:?}");
    assert_eq!(has("scheduled to zap"), 1, "{notes:?}");
    assert_eq!(has("gifted reference put"), 1, "{notes:?}");
    assert_eq!(has("last reference put"), 1, "{notes:?}");
    assert_eq!(has("tdp map gfn 1"), 1, "{notes:?}");
}

#[test]
fn a_one_level_table_maps_in_the_root() {
    let mut cfg = Config::model();
    cfg.levels = 1;
    cfg.spte_count = 8;
    let vm = tdp_vm(cfg);
    let spec = slot(0, 0, 8);
    vm.create_memslot(spec).unwrap();
    vm.handle_requests(V0).unwrap();
    let pfn = mapped(&vm, V0, 7, true);
    assert_eq!(pfn, vm.hva_to_pfn(hva(&spec, 7)).unwrap());
    assert_eq!(vm.shadow_pages(), 1, "the root alone");
    assert_eq!(vm.invalidate_zap_all_pages().unwrap().zapped, 0);
    assert!(vm.tdp_leaves().is_empty());
    vm.handle_requests(V0).unwrap();
    assert_eq!(vm.translate(V0, Gfn(7)).unwrap(), Translation::Miss);
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, counts.pages.freed);
}

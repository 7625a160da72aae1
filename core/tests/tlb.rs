#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! The vCPU's TLB (`core/src/tlb.rs`): what fills it, what empties it, and
//! what may drop an entry. The flush-site twins, which show a stale hit caught
//! as I4, are in `checkers.rs` (`checkers/tlb.rs`).

mod common;

use common::*;
use fastzap::*;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// A mapped VM on `mmu`: every test here runs on both MMUs.
fn mapped_vm(mmu: Mmu) -> (Vm, SlotSpec) {
    let mut cfg = Config::model();
    cfg.mmu = mmu;
    let vm = vm(cfg);
    let spec = slot(0, 0, 4);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    (vm, spec)
}

#[test]
fn a_writable_walk_fills_the_tlb_and_a_flush_empties_it() {
    Mmu::ALL
        .into_iter()
        .for_each(a_writable_walk_fills_the_tlb_and_a_flush_empties_it_on);
}

fn a_writable_walk_fills_the_tlb_and_a_flush_empties_it_on(mmu: Mmu) {
    let (vm, spec) = mapped_vm(mmu);
    assert_eq!(vm.tlb_entries(V0), Ok(0));
    vm.page_fault(V0, Gfn(1), true).unwrap();
    vm.page_fault(V0, Gfn(2), false).unwrap();
    assert!(matches!(
        vm.translate(V0, Gfn(1)).unwrap(),
        Translation::Mapped { writable: true, .. }
    ));
    assert_eq!(vm.tlb_entries(V0), Ok(1));
    // A read-only mapping is walked each time, not cached.
    assert!(matches!(
        vm.translate(V0, Gfn(2)).unwrap(),
        Translation::Mapped {
            writable: false,
            ..
        }
    ));
    assert_eq!(vm.tlb_entries(V0), Ok(1));
    // Another vCPU's TLB is its own.
    assert_eq!(vm.tlb_entries(V1), Ok(0));
    // The invalidation flushes: the request comes before the TLB, and handling it empties it.
    let at = hva(&spec, 1);
    assert_eq!(vm.invalidate_range(at, at + PAGE_SIZE).unwrap(), 1);
    assert_eq!(
        vm.translate(V0, Gfn(1)).unwrap(),
        Translation::RequestPending
    );
    assert_eq!(
        vm.tlb_entries(V0),
        Ok(1),
        "only handling the request empties it"
    );
    assert!(vm.handle_requests(V0).unwrap().requests.tlb_flush());
    assert_eq!(vm.tlb_entries(V0), Ok(0));
    assert_eq!(vm.translate(V0, Gfn(1)).unwrap(), Translation::Miss);
    assert_audit(&vm);
}

#[test]
fn a_reload_empties_the_tlb() {
    Mmu::ALL.into_iter().for_each(a_reload_empties_the_tlb_on);
}

fn a_reload_empties_the_tlb_on(mmu: Mmu) {
    let (vm, _) = mapped_vm(mmu);
    vm.page_fault(V0, Gfn(3), true).unwrap();
    vm.translate(V0, Gfn(3)).unwrap();
    assert_eq!(vm.tlb_entries(V0), Ok(1));
    vm.invalidate_zap_all_pages().unwrap();
    assert!(vm.handle_requests(V0).unwrap().reloaded);
    assert_eq!(vm.tlb_entries(V0), Ok(0));
    assert_audit(&vm);
}

#[test]
fn mmio_answers_are_not_tlb_entries() {
    Mmu::ALL
        .into_iter()
        .for_each(mmio_answers_are_not_tlb_entries_on);
}

fn mmio_answers_are_not_tlb_entries_on(mmu: Mmu) {
    let (vm, _) = mapped_vm(mmu);
    vm.delete_memslot(SlotId(0)).unwrap();
    enter_all(&vm);
    assert_eq!(vm.page_fault(V0, Gfn(1), false).unwrap(), Fault::Mmio);
    assert_eq!(vm.translate(V0, Gfn(1)).unwrap(), Translation::Mmio);
    assert_eq!(vm.tlb_entries(V0), Ok(0));
}

#[test]
fn eviction_and_faults_drop_entries() {
    Mmu::ALL
        .into_iter()
        .for_each(eviction_and_faults_drop_entries_on);
}

fn eviction_and_faults_drop_entries_on(mmu: Mmu) {
    let (vm, _) = mapped_vm(mmu);
    vm.page_fault(V0, Gfn(1), true).unwrap();
    vm.translate(V0, Gfn(1)).unwrap();
    assert_eq!(
        vm.tlb_evict(V0, Gfn(0)),
        Ok(false),
        "gfn 0 was never cached"
    );
    assert_eq!(vm.tlb_evict(V0, Gfn(1)), Ok(true));
    assert_eq!(vm.tlb_evict(V0, Gfn(1)), Ok(false));
    assert_eq!(vm.tlb_entries(V0), Ok(0));
    // After an eviction the walk answers again, and fills again.
    assert!(matches!(
        vm.translate(V0, Gfn(1)).unwrap(),
        Translation::Mapped { writable: true, .. }
    ));
    assert_eq!(vm.tlb_entries(V0), Ok(1));
    // A page fault drops the faulting gfn's entry.
    vm.page_fault(V0, Gfn(1), true).unwrap();
    assert_eq!(vm.tlb_entries(V0), Ok(0));
    // Through a claimed vCPU as well.
    let mut v = vm.claim_vcpu(V0).unwrap();
    v.translate(Gfn(1)).unwrap();
    assert_eq!(v.tlb_evict(Gfn(1)), Ok(true));
    let limit = Gfn(vm.config().max_gfn());
    assert_eq!(
        v.tlb_evict(limit),
        Err(MmuError::GfnOutOfRange { gfn: limit, limit })
    );
    drop(v);
    assert_audit(&vm);
}

#[test]
fn eviction_refuses_bad_input_and_a_busy_vcpu() {
    Mmu::ALL
        .into_iter()
        .for_each(eviction_refuses_bad_input_and_a_busy_vcpu_on);
}

fn eviction_refuses_bad_input_and_a_busy_vcpu_on(mmu: Mmu) {
    let (vm, _) = mapped_vm(mmu);
    let limit = Gfn(vm.config().max_gfn());
    assert_eq!(
        vm.tlb_evict(V0, limit),
        Err(MmuError::GfnOutOfRange { gfn: limit, limit })
    );
    assert_eq!(
        vm.tlb_evict(VcpuId(9), Gfn(0)),
        Err(MmuError::UnknownVcpu(VcpuId(9)))
    );
    assert_eq!(
        vm.tlb_entries(VcpuId(9)),
        Err(MmuError::UnknownVcpu(VcpuId(9)))
    );
    let held = vm.claim_vcpu(V0).unwrap();
    assert_eq!(vm.tlb_evict(V0, Gfn(0)), Err(MmuError::VcpuBusy(V0)));
    assert_eq!(vm.tlb_entries(V0), Err(MmuError::VcpuBusy(V0)));
    drop(held);
}

#[test]
fn a_translate_run_hits_and_fills_the_tlb() {
    Mmu::ALL
        .into_iter()
        .for_each(a_translate_run_hits_and_fills_the_tlb_on);
}

fn a_translate_run_hits_and_fills_the_tlb_on(mmu: Mmu) {
    let (vm, _) = mapped_vm(mmu);
    vm.page_fault(V0, Gfn(0), true).unwrap();
    vm.page_fault(V0, Gfn(1), true).unwrap();
    let mut out = Vec::new();
    vm.translate_run(V0, &[Gfn(0), Gfn(1), Gfn(2)], &mut out)
        .unwrap();
    assert_eq!(vm.tlb_entries(V0), Ok(2));
    let mut again = Vec::new();
    vm.translate_run(V0, &[Gfn(0), Gfn(1), Gfn(2)], &mut again)
        .unwrap();
    assert_eq!(out, again);
    assert_eq!(out[2], Translation::Miss);
}

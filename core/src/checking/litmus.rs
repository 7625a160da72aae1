//! # The protocol's own halves of its fence pairs, for the litmus models
//!
//! `models/tests/loom_litmus.rs` checks each fence pair of the protocol by
//! itself under loom (`SPEC.md`, "Litmus models"). These functions call the
//! protocol's own code and add nothing to it: no vCPU claim (`vcpu->mutex`,
//! whose acquire and release would order the two halves of a pair on one
//! vCPU), no `mmu_lock` where the protocol's half does not take it, and no
//! epoch pin between a pair's accesses. A litmus model is not a use of the
//! VM: it calls these on a [`Vm`] no operation is running on, from the
//! threads of one loom execution.

use crate::event::{Actor, What};
use crate::ids::{PageId, VcpuId};
use crate::vcpu::{self, Requests};
use crate::vm::Vm;
use crate::walk::Translation;

/// L1 and L3, the requester: the crate's `make_all_cpus_request`, called as
/// `kvm_reload_remote_mmus` and `kvm_flush_remote_tlbs` call it (set the
/// request bits, `fence(SeqCst)`, wait for every vCPU in
/// `READING_SHADOW_PAGE_TABLES`). `mmu_lock` is not taken: the handshake does
/// not rely on it.
pub fn request_all_vcpus(vm: &Vm, request: Requests) {
    vcpu::make_all_cpus_request(&vm.vcpus, request, &vm.config);
    vm.event(Actor::Zapper, || What::Request { what: "litmus" });
}

/// L1, the vCPU: `walk_shadow_page_lockless_begin` (mode, then
/// `fence(SeqCst)`), as [`Vm::translate`], [`Vm::translate_run`] and the
/// fault's MMIO walk begin. The caller then reads its requests with
/// [`Vm::pending_requests`], as `translate` does.
pub fn walk_lockless_begin(vm: &Vm, vcpu: VcpuId) {
    vm.walk_lockless_begin(&vm.vcpus[vcpu.0]);
}

/// L1, the vCPU: `walk_shadow_page_lockless_end`.
pub fn walk_lockless_end(vm: &Vm, vcpu: VcpuId) {
    vm.vcpus[vcpu.0].walk_lockless_end();
}

/// L3, the vCPU at guest entry: `kvm_check_request` for every request, as
/// [`Vm::handle_requests`] takes them.
pub fn take_requests(vm: &Vm, vcpu: VcpuId) -> Requests {
    vm.vcpus[vcpu.0].take_requests(&vm.config)
}

/// L2, the publisher: `mmu_alloc_direct_roots` under `mmu_lock` (taken as the
/// vCPU, as [`Vm::handle_requests`] does): a root page of the current
/// generation, published in `root_hpa`.
pub fn mmu_alloc_roots(vm: &Vm, vcpu: VcpuId) -> PageId {
    let mut lk = vm.lock_mmu(Actor::Vcpu(vcpu.0));
    vm.mmu_alloc_roots(&mut lk, vcpu.0)
}

/// L2, the walker: the lockless walk's root check (`current_root`: load
/// `root_hpa`, read the page's body, compare its `mmu_valid_gen` with
/// `kvm->arch.mmu_valid_gen`). Returns the root's id and generation. The walk
/// pins first, as [`Vm::translate`] does; the publisher never pins, so the
/// pin orders nothing between the two halves.
pub fn current_root(vm: &Vm, vcpu: VcpuId) -> Result<(PageId, u64), Translation> {
    let guard = vm.reclaimer.pin();
    vm.current_root(&vm.vcpus[vcpu.0], &guard).map(|root| {
        let body = root.body();
        (body.id, body.mmu_valid_gen)
    })
}

/// L3, the updater: the first step of `install_memslots`, which marks the
/// published memslots in flux (`KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS`) before
/// the wrap's zap requests the reload. The fault's half is
/// [`Memslots::update_in_progress`](crate::Memslots::update_in_progress) on
/// the memslots it loaded ([`Vm::memslots`]).
pub fn begin_memslots_update(vm: &Vm) {
    vm.memslots.load().begin_update();
}

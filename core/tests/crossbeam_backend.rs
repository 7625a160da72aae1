#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! The crossbeam-epoch backend on its own, smallest use: register, pin,
//! defer, wait for the grace period. Natively it passes.
//!
//! Under Miri it is the reproduction of UB that Miri reports inside
//! crossbeam-epoch 0.9's participant list (SPEC.md, "What the checkers
//! cannot see"): `MIRIFLAGS=-Zmiri-tree-borrows cargo +nightly miri test
//! -p fastzap --test crossbeam_backend`. The CI Miri job (`.ci/miri`) runs
//! the small EBR only, and does not run this file.

use fastzap::check::*;
use fastzap::checking::sync::{Arc, AtomicBool, Ordering, Reclaimer};
use fastzap::*;

#[test]
fn crossbeam_backend_defers_past_a_grace_period() {
    let reclaimer = Reclaimer::new(ReclaimBackend::Crossbeam).expect("native lane");
    let done = Arc::new(AtomicBool::new(false));
    {
        let guard = reclaimer.pin();
        let flag = done.clone();
        guard.defer(move || flag.store(true, Ordering::Release));
    }
    // `barrier`, not `synchronize`: only the barrier promises that deferred
    // functions have run (core/src/sync/reclaim.rs).
    reclaimer.barrier();
    assert!(done.load(Ordering::Acquire));
}

#[test]
fn a_vm_on_crossbeam_faults_translates_and_zaps() {
    let mut config = Config::model();
    config.reclaim = ReclaimBackend::Crossbeam;
    let vm = Vm::new(config).expect("valid");
    vm.create_memslot(SlotSpec {
        id: SlotId(0),
        base_gfn: Gfn(0),
        npages: 2,
        userspace_addr: Hva(0x100_0000),
    })
    .expect("fits");
    vm.handle_requests(VcpuId(0)).expect("vcpu 0");
    assert!(matches!(
        vm.page_fault(VcpuId(0), Gfn(0), false),
        Ok(Fault::Mapped { .. })
    ));
    assert!(matches!(
        vm.translate(VcpuId(0), Gfn(0)),
        Ok(Translation::Mapped { .. })
    ));
    vm.invalidate_zap_all_pages().expect("zaps");
    vm.flush_reclaim();
    assert_eq!(audit(&vm), Ok(()));
}

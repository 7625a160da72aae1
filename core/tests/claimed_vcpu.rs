#![cfg(not(any(loom, shuttle)))]
//! `Vm::claim_vcpu`: a vCPU claimed across many operations (`vcpu->mutex`
//! held across `KVM_RUN`). While the handle lives every other operation on the
//! vCPU is refused; its translates and faults answer what `Vm::translate` and
//! `Vm::page_fault` answer; a pending request reaches it, and it can handle
//! it. The `KVM_RUN`-shaped loops (`kvm_run_*`) run in both builds; with the
//! `ghost` feature they end with the audit.

#[cfg(feature = "ghost")]
mod common;
#[path = "claimed_vcpu/kvm_run.rs"]
mod kvm_run;

#[cfg(feature = "ghost")]
use common::*;
#[cfg(feature = "ghost")]
use fastzap::*;

#[cfg(feature = "ghost")]
const V0: VcpuId = VcpuId(0);
#[cfg(feature = "ghost")]
const V1: VcpuId = VcpuId(1);

#[cfg(feature = "ghost")]
fn populated() -> Vm {
    let mut cfg = Config::model();
    cfg.vcpus = 2;
    cfg.spte_count = 4;
    cfg.levels = 3;
    let vm = common::vm(cfg);
    vm.create_memslot(slot(0, 0, 8)).unwrap();
    enter_all(&vm);
    for gfn in 0..4 {
        vm.page_fault(V0, Gfn(gfn), gfn % 2 == 0).unwrap();
    }
    vm
}

#[cfg(feature = "ghost")]
#[test]
fn a_claimed_vcpu_refuses_every_other_operation_until_dropped() {
    let vm = populated();
    let ops_before = vm.vcpu_operations();
    let claimed = vm.claim_vcpu(V0).unwrap();
    assert_eq!(claimed.id(), V0);
    assert_eq!(vm.translate(V0, Gfn(1)), Err(MmuError::VcpuBusy(V0)));
    assert_eq!(
        vm.page_fault(V0, Gfn(5), false),
        Err(MmuError::VcpuBusy(V0))
    );
    assert_eq!(vm.handle_requests(V0), Err(MmuError::VcpuBusy(V0)));
    assert!(matches!(vm.claim_vcpu(V0), Err(MmuError::VcpuBusy(V0))));
    assert_eq!(
        vm.vcpu_operations() - ops_before,
        1,
        "a refused call counted as an operation (only the claim should)"
    );
    // Another vCPU is not affected.
    assert!(matches!(
        vm.translate(V1, Gfn(1)),
        Ok(Translation::Miss | Translation::Mapped { .. })
    ));
    drop(claimed);
    assert!(matches!(
        vm.translate(V0, Gfn(1)),
        Ok(Translation::Mapped { .. })
    ));
    assert_audit(&vm);
}

#[cfg(feature = "ghost")]
#[test]
fn claimed_translates_answer_what_translate_answers() {
    let vm = populated();
    let gfns: Vec<Gfn> = (0..8).map(Gfn).collect();
    let expected: Vec<Translation> = gfns.iter().map(|&g| vm.translate(V0, g).unwrap()).collect();
    assert!(
        expected
            .iter()
            .any(|t| matches!(t, Translation::Mapped { .. }))
            && expected.contains(&Translation::Miss),
        "the VM should have mapped and unmapped gfns: {expected:?}"
    );
    let ops_before = vm.vcpu_operations();
    {
        let mut claimed = vm.claim_vcpu(V0).unwrap();
        for (&gfn, want) in gfns.iter().zip(&expected) {
            assert_eq!(claimed.translate(gfn).unwrap(), *want, "gfn {gfn}");
        }
        let mut out = Vec::new();
        claimed.translate_run(&gfns, &mut out).unwrap();
        assert_eq!(out, expected);
        // Bad input is a typed error, and the handle stays usable.
        let limit = vm.config().max_gfn();
        assert_eq!(
            claimed.translate(Gfn(limit)),
            Err(MmuError::GfnOutOfRange {
                gfn: Gfn(limit),
                limit: Gfn(limit)
            })
        );
        out.clear();
        assert!(
            claimed
                .translate_run(&[Gfn(0), Gfn(limit)], &mut out)
                .is_err()
        );
        assert!(out.is_empty(), "a refused run appended {out:?}");
        assert_eq!(claimed.translate(gfns[0]).unwrap(), expected[0]);
    }
    // The claim, 8 translates, one run and one more translate are
    // operations on the vCPU; the refused ones are not.
    assert_eq!(vm.vcpu_operations() - ops_before, 1 + 8 + 1 + 1);
    assert_audit(&vm);
}

#[cfg(feature = "ghost")]
#[test]
fn a_claimed_vcpu_sees_an_invalidation_and_handles_its_requests() {
    let vm = populated();
    let mut claimed = vm.claim_vcpu(V0).unwrap();
    assert!(matches!(
        claimed.translate(Gfn(0)).unwrap(),
        Translation::Mapped { .. }
    ));
    // The invalidation neither needs nor waits for the claim.
    vm.invalidate_zap_all_pages().unwrap();
    assert_eq!(
        claimed.translate(Gfn(0)).unwrap(),
        Translation::RequestPending
    );
    let handled = claimed.handle_requests();
    assert!(handled.requests.reload(), "{handled:?}");
    assert!(handled.reloaded);
    // A fresh root of the new generation: nothing is mapped in it yet.
    assert_eq!(claimed.translate(Gfn(0)).unwrap(), Translation::Miss);
    drop(claimed);
    enter_all(&vm);
    assert_audit(&vm);
}

//! A `KVM_RUN`-shaped loop on a vCPU claimed once: enter (translate); on
//! `Miss` take the fault, on `RequestPending` handle the requests; enter
//! again. Another thread invalidates all pages and deletes a memslot
//! meanwhile. The loop never drops its claim, never sees `VcpuBusy`, and sees
//! exactly what the protocol says; `Vm::page_fault` on the claimed vCPU is
//! refused with `VcpuBusy` throughout. With the `ghost` feature every test
//! ends with the audit, and the loops' tests check that each step was one
//! operation on the vCPU and that the only claim was the first.

use fastzap::checking::sync::{Arc, AtomicBool, AtomicUsize, Ordering, yield_now};
use fastzap::*;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// Slot 0 maps gfns 0-7, slot 1 gfns 8-15; host ranges 16 MiB apart.
const SLOT_PAGES: u64 = 8;

fn spec(id: u16) -> SlotSpec {
    SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(u64::from(id) * SLOT_PAGES),
        npages: SLOT_PAGES,
        userspace_addr: Hva(0x100_0000 * (u64::from(id) + 1)),
    }
}

/// 4 sptes per page and 3 levels (64 gfns), so that the tables have inner
/// pages; a batch of 2, so that the zaps break the lock.
fn two_slot_vm() -> Vm {
    let mut cfg = Config::native();
    cfg.vcpus = 2;
    cfg.spte_count = 4;
    cfg.levels = 3;
    cfg.batch = 2;
    // The steps below are those of small mappings (tests/large_pages.rs
    // covers large ones).
    cfg.large_pages = false;
    let vm = Vm::new(cfg).expect("a valid config");
    vm.create_memslot(spec(0)).unwrap();
    vm.create_memslot(spec(1)).unwrap();
    vm
}

/// The pfn the host backs `gfn` with, through the slot that mapped it.
fn pfn_of(vm: &Vm, gfn: u64) -> Pfn {
    let slot = spec((gfn / SLOT_PAGES) as u16);
    let hva = Hva(slot.userspace_addr.0 + (gfn - slot.base_gfn.0) * PAGE_SIZE);
    vm.hva_to_pfn(hva).unwrap()
}

/// One step of the loop: what the vCPU did, and what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Entered(Translation),
    Faulted(Fault),
    Handled(Handled),
}

/// How long one access may go without being satisfied: a fault retries
/// while a delete holds its slot INVALID, which takes a grace period.
const PATIENCE: Duration = Duration::from_secs(60);

/// `KVM_RUN` until the guest's access to `gfn` is satisfied (`Mapped` or
/// `Mmio`), the claim held throughout; `on_step` sees every step, and the
/// last (the satisfied entry) is returned. An error from the handle
/// (`VcpuBusy` above all) fails the test; so does an access that is not
/// satisfied within [`PATIENCE`]. A retried fault yields, as a vCPU thread
/// returning to its caller would.
fn kvm_run(
    vcpu: &mut ClaimedVcpu<'_>,
    gfn: u64,
    write: bool,
    mut on_step: impl FnMut(Step),
) -> Step {
    let started = Instant::now();
    loop {
        let entered = vcpu.translate(Gfn(gfn));
        assert!(
            !matches!(entered, Err(MmuError::VcpuBusy(_))),
            "{entered:?}"
        );
        let entered = entered.expect("a gfn in range");
        on_step(Step::Entered(entered));
        match entered {
            Translation::Mapped { .. } | Translation::Mmio => return Step::Entered(entered),
            Translation::RequestPending => on_step(Step::Handled(vcpu.handle_requests())),
            Translation::Miss => {
                let fault = vcpu.page_fault(Gfn(gfn), write);
                assert!(!matches!(fault, Err(MmuError::VcpuBusy(_))), "{fault:?}");
                let fault = fault.expect("a gfn in range");
                on_step(Step::Faulted(fault));
                if matches!(fault, Fault::Retry(_)) {
                    yield_now();
                }
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "vcpu{}: gfn {gfn} not satisfied in {PATIENCE:?}",
            vcpu.id().0
        );
    }
}

/// [`kvm_run`], collecting its steps.
fn kvm_run_steps(vcpu: &mut ClaimedVcpu<'_>, gfn: u64, write: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    kvm_run(vcpu, gfn, write, |step| steps.push(step));
    steps
}

/// A reload taken at entry: the requests, and whether the root was reloaded.
fn reloaded(requests: Requests) -> Step {
    Step::Handled(Handled {
        requests,
        reloaded: true,
    })
}

/// Every operation on `vcpu` that claims it is refused while the loop holds it.
#[track_caller]
fn refused_while_claimed(vm: &Vm, vcpu: VcpuId) {
    let busy = Some(MmuError::VcpuBusy(vcpu));
    assert_eq!(vm.page_fault(vcpu, Gfn(2), true).err(), busy);
    assert_eq!(vm.translate(vcpu, Gfn(2)).err(), busy);
    assert_eq!(vm.handle_requests(vcpu).err(), busy);
    assert_eq!(vm.claim_vcpu(vcpu).err(), busy);
}

/// With `ghost`: the audit passes once every vCPU has handled its requests.
fn audit_at_the_end(vm: &Vm) {
    for vcpu in [V0, V1] {
        vm.handle_requests(vcpu).unwrap();
    }
    #[cfg(feature = "ghost")]
    if let Err(found) = fastzap::check::audit(vm) {
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        panic!("audit failed:\n{}", text.join("\n"));
    }
}

/// The loop and the other thread in lockstep (a handshake between phases), so
/// that every step the loop takes is known exactly.
#[test]
fn kvm_run_holds_its_claim_across_an_invalidation_and_a_delete() {
    let vm = two_slot_vm();
    // Each side waits for the other's message; if either side panics its
    // sender is dropped and the other fails too, instead of waiting forever.
    let (vcpu_done, other_waits) = channel::<()>();
    let (other_done, vcpu_waits) = channel::<()>();
    let handshake = move || {
        vcpu_done.send(()).expect("the other thread is there");
        vcpu_waits.recv().expect("the other thread went on");
    };
    #[cfg(feature = "ghost")]
    let ops_before = vm.vcpu_operations();
    let steps_taken = std::thread::scope(|s| {
        let vm = &vm;
        let vcpu_thread = s.spawn(move || {
            let mut vcpu = vm.claim_vcpu(V0).unwrap();
            let mut taken = 0;
            let mut run = |gfn, write| {
                let steps = kvm_run_steps(&mut vcpu, gfn, write);
                taken += steps.len();
                steps
            };
            let (p1, p9) = (pfn_of(vm, 1), pfn_of(vm, 9));
            let mapped = |pfn, writable| Step::Entered(Translation::Mapped { pfn, writable });
            let miss = Step::Entered(Translation::Miss);
            let pending = Step::Entered(Translation::RequestPending);
            // Every vCPU starts with a reload request.
            assert_eq!(
                run(1, true),
                [
                    pending,
                    reloaded(Requests::RELOAD),
                    miss,
                    Step::Faulted(Fault::Mapped { pfn: p1 }),
                    mapped(p1, true),
                ]
            );
            assert_eq!(
                run(9, false),
                [
                    miss,
                    Step::Faulted(Fault::Mapped { pfn: p9 }),
                    mapped(p9, false)
                ]
            );
            handshake(); // the other thread invalidates all pages
            // The reload; dropping the obsolete root zaps it, whose commit
            // flushes every TLB, this one's too: handled in the same entry.
            let both = Requests::RELOAD | Requests::TLB_FLUSH;
            let after_zap = [
                pending,
                reloaded(both),
                miss,
                Step::Faulted(Fault::Mapped { pfn: p1 }),
                mapped(p1, true),
            ];
            assert_eq!(run(1, true), after_zap);
            handshake(); // the other thread deletes slot 1
            // No slot maps gfn 9 now: after the reload, an MMIO spte.
            assert_eq!(
                run(9, false),
                [
                    pending,
                    reloaded(both),
                    miss,
                    Step::Faulted(Fault::Mmio),
                    Step::Entered(Translation::Mmio),
                ]
            );
            // The delete zapped every page (Linux 3.11's strategy): slot 0's
            // gfn faults in again, to the same host page.
            assert_eq!(
                run(1, true),
                [
                    miss,
                    Step::Faulted(Fault::Mapped { pfn: p1 }),
                    mapped(p1, true)
                ]
            );
            drop(vcpu);
            taken
        });
        let wait_for_vcpu = || other_waits.recv().expect("the vCPU loop stopped");
        wait_for_vcpu();
        refused_while_claimed(vm, V0);
        let stats = vm.invalidate_zap_all_pages().unwrap();
        assert!(stats.zapped > 0 && stats.holds > 1, "{stats:?}");
        assert!(vm.pending_requests(V0).unwrap().reload());
        refused_while_claimed(vm, V0);
        other_done.send(()).unwrap();
        wait_for_vcpu();
        vm.delete_memslot(SlotId(1)).unwrap();
        refused_while_claimed(vm, V0);
        other_done.send(()).unwrap();
        vcpu_thread.join().unwrap()
    });
    // The claim is free again.
    assert!(matches!(
        vm.page_fault(V0, Gfn(2), false),
        Ok(Fault::Mapped { .. })
    ));
    // The loop's one claim, one operation per step (it never claimed
    // again), and the fault just above.
    #[cfg(feature = "ghost")]
    assert_eq!(
        vm.vcpu_operations() - ops_before,
        1 + steps_taken as u64 + 1
    );
    #[cfg(not(feature = "ghost"))]
    assert_eq!(steps_taken, 5 + 3 + 5 + 5 + 3);
    audit_at_the_end(&vm);
}

/// What a step may be while another thread zaps and deletes under the loop,
/// for an access to `gfn`: a mapping only of `gfn`'s own host page, MMIO only
/// where slot 1 (being deleted) mapped it, and no error.
fn allowed(vm: &Vm, gfn: u64, step: Step) -> bool {
    let in_slot_1 = gfn >= SLOT_PAGES;
    match step {
        Step::Entered(Translation::Mapped { pfn, .. }) | Step::Faulted(Fault::Mapped { pfn }) => {
            pfn == pfn_of(vm, gfn)
        }
        Step::Entered(Translation::Mmio) | Step::Faulted(Fault::Mmio) => in_slot_1,
        Step::Entered(Translation::Miss | Translation::RequestPending) | Step::Handled(_) => true,
        Step::Faulted(Fault::Retry(RetryReason::ObsoleteRoot)) => true,
        Step::Faulted(Fault::Retry(RetryReason::InvalidSlot)) => in_slot_1,
        Step::Faulted(Fault::Retry(_)) => false,
    }
}

/// Two vCPU threads, each claiming its vCPU once, run their loops over
/// both slots while a third thread invalidates all pages several times and
/// then deletes slot 1. Every step is one the protocol allows, and once the
/// third thread is done one more pass sees slot 0 mapped and slot 1 MMIO.
#[test]
fn kvm_run_races_invalidations_and_a_delete() {
    const INVALIDATIONS: usize = 8;
    let vm = Arc::new(two_slot_vm());
    let done = Arc::new(AtomicBool::new(false));
    // Whatever happens here, the loops are told to stop.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stop = StopOnDrop(done.clone());
    let first_passes = Arc::new(AtomicUsize::new(0));
    #[cfg(feature = "ghost")]
    let ops_before = vm.vcpu_operations();
    let loops: Vec<_> = [V0, V1]
        .into_iter()
        .map(|id| {
            let (vm, done, first_passes) = (vm.clone(), done.clone(), first_passes.clone());
            std::thread::spawn(move || {
                let mut vcpu = vm.claim_vcpu(id).unwrap();
                let (mut taken, mut reloads) = (0u64, 0u64);
                let mut pass = |vcpu: &mut ClaimedVcpu<'_>| {
                    let mut last = Vec::new();
                    for gfn in 0..2 * SLOT_PAGES {
                        let satisfied = kvm_run(vcpu, gfn, gfn.is_multiple_of(3), |step| {
                            assert!(allowed(&vm, gfn, step), "vcpu{} gfn {gfn}: {step:?}", id.0);
                            if let Step::Handled(h) = step {
                                reloads += u64::from(h.reloaded);
                            }
                            taken += 1;
                        });
                        last.push(satisfied);
                    }
                    last
                };
                pass(&mut vcpu);
                first_passes.fetch_add(1, Ordering::SeqCst);
                while !done.load(Ordering::SeqCst) {
                    pass(&mut vcpu);
                }
                // The other thread is done: what the guest sees is settled.
                let last = pass(&mut vcpu);
                (last, taken, reloads)
            })
        })
        .collect();
    // Both loops are running, and have mapped both slots, before the first
    // zap. A loop that stopped fails the test here rather than hang it.
    while first_passes.load(Ordering::SeqCst) < 2 {
        assert!(
            !loops.iter().any(std::thread::JoinHandle::is_finished),
            "a vCPU loop stopped before its first pass ended"
        );
        yield_now();
    }
    for _ in 0..INVALIDATIONS {
        vm.invalidate_zap_all_pages().unwrap();
        for vcpu in [V0, V1] {
            assert_eq!(
                vm.page_fault(vcpu, Gfn(1), false),
                Err(MmuError::VcpuBusy(vcpu))
            );
        }
    }
    vm.delete_memslot(SlotId(1)).unwrap();
    refused_while_claimed(&vm, V0);
    refused_while_claimed(&vm, V1);
    drop(stop);
    let mut all_steps = 0;
    for handle in loops {
        let (last, taken, reloads) = handle.join().unwrap();
        let expected: Vec<Step> = (0..2 * SLOT_PAGES)
            .map(|gfn| {
                Step::Entered(if gfn < SLOT_PAGES {
                    Translation::Mapped {
                        pfn: pfn_of(&vm, gfn),
                        writable: gfn.is_multiple_of(3),
                    }
                } else {
                    Translation::Mmio
                })
            })
            .collect();
        assert_eq!(last, expected);
        // The initial load, and at least one reload after the zaps began.
        assert!(reloads >= 2, "{reloads} reloads: the loop saw no zap");
        all_steps += taken;
    }
    #[cfg(feature = "ghost")]
    assert_eq!(vm.vcpu_operations() - ops_before, 2 + all_steps);
    #[cfg(not(feature = "ghost"))]
    assert!(all_steps > 4 * 2 * SLOT_PAGES, "{all_steps} steps");
    audit_at_the_end(&vm);
}

/// `ClaimedVcpu::page_fault` is `Vm::page_fault` without the claim: the
/// same sequence of operations on two VMs, one through a handle held
/// throughout and one through `Vm`, gives the same results, errors included.
#[test]
fn a_claimed_page_fault_answers_what_page_fault_answers() {
    let (claimed_vm, plain) = (two_slot_vm(), two_slot_vm());
    let mut vcpu = claimed_vm.claim_vcpu(V0).unwrap();
    let limit = claimed_vm.config().max_gfn();
    let mut seen = Vec::new();
    let mut compare = |vcpu: &mut ClaimedVcpu<'_>, round: u64| {
        for gfn in [0, 5, 9, 15, 20, limit, u64::MAX] {
            let write = (gfn % 2 + round).is_multiple_of(2);
            let got = vcpu.page_fault(Gfn(gfn), write);
            assert_eq!(got, plain.page_fault(V0, Gfn(gfn), write), "gfn {gfn}");
            let got_t = vcpu.translate(Gfn(gfn));
            assert_eq!(got_t, plain.translate(V0, Gfn(gfn)), "gfn {gfn}");
            seen.push(got);
        }
        assert_eq!(vcpu.pending_requests(), plain.pending_requests(V0).unwrap());
        assert_eq!(Ok(vcpu.root()), plain.root(V0));
    };
    for round in 0..3u64 {
        // Before the requests are handled (no root, or an obsolete one),
        // and after.
        compare(&mut vcpu, round);
        assert_eq!(Ok(vcpu.handle_requests()), plain.handle_requests(V0));
        compare(&mut vcpu, round);
        match round {
            0 => {
                claimed_vm.invalidate_zap_all_pages().unwrap();
                plain.invalidate_zap_all_pages().unwrap();
            }
            _ => {
                let deleted = claimed_vm.delete_memslot(SlotId(1));
                assert_eq!(deleted, plain.delete_memslot(SlotId(1)));
            }
        }
    }
    // The sequence met every kind of answer, so the comparison covered them.
    let kinds = |f: fn(&Result<Fault, MmuError>) -> bool| seen.iter().any(f);
    assert!(kinds(|r| matches!(
        r,
        Ok(Fault::Retry(RetryReason::NoRoot))
    )));
    assert!(kinds(|r| matches!(r, Ok(Fault::Mapped { .. }))));
    assert!(kinds(|r| matches!(r, Ok(Fault::Mmio))));
    assert!(kinds(|r| matches!(r, Err(MmuError::GfnOutOfRange { .. }))));
    drop(vcpu);
    audit_at_the_end(&claimed_vm);
    audit_at_the_end(&plain);
}

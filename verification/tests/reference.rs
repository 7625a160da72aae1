//! The reference model rejects what the specification forbids, and its error
//! rules are the implementation's.

use fastzap::checking::Mutant;
use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, Hva, MmuError, Pfn, Requests, SlotId, SlotSpec,
    Translation, VcpuId, Vm,
};
use fastzap_reference::reference::{Op, Outcome, Reference};
use fastzap_verification::conformance::run_many_with;

const V0: VcpuId = VcpuId(0);

fn spec(id: u16, base_gfn: u64, npages: u64, userspace_addr: u64) -> SlotSpec {
    SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base_gfn),
        npages,
        userspace_addr: Hva(userspace_addr),
    }
}

/// A reference with one slot (gfns 0..2 at hva 0x10000) and vCPU 0 loaded.
fn loaded() -> Reference {
    let mut r = Reference::new(&Config::model());
    r.step(
        &Op::CreateSlot(spec(0, 0, 2, 0x10000)),
        &Outcome::Unit(Ok(())),
    )
    .expect("create");
    r.step(
        &Op::HandleRequests(V0),
        &Outcome::Handled(Ok(fastzap::Handled {
            requests: Requests::RELOAD,
            reloaded: true,
        })),
    )
    .expect("first handle_requests reloads");
    r
}

fn fault(r: &mut Reference, gfn: u64, got: Fault) -> Result<(), String> {
    r.step(
        &Op::PageFault {
            vcpu: V0,
            gfn,
            write: true,
        },
        &Outcome::Fault(Ok(got)),
    )
}

fn translate(r: &mut Reference, gfn: u64, got: Translation) -> Result<(), String> {
    r.step(
        &Op::Translate { vcpu: V0, gfn },
        &Outcome::Translation(Ok(got)),
    )
}

#[test]
fn a_faulted_gfn_must_translate_to_its_pfn() {
    let mut r = loaded();
    fault(&mut r, 1, Fault::Mapped { pfn: Pfn(77) }).expect("first pfn of a page is learned");
    let mapped = Translation::Mapped {
        pfn: Pfn(77),
        writable: true,
    };
    assert!(
        translate(&mut r.clone(), 1, Translation::Miss).is_err(),
        "Miss after a fault"
    );
    assert!(
        translate(
            &mut r.clone(),
            1,
            Translation::Mapped {
                pfn: Pfn(78),
                writable: true
            }
        )
        .is_err(),
        "another pfn"
    );
    assert!(
        translate(
            &mut r.clone(),
            1,
            Translation::Mapped {
                pfn: Pfn(77),
                writable: false
            }
        )
        .is_err(),
        "a write fault maps writable"
    );
    assert!(
        translate(&mut r.clone(), 1, Translation::RequestPending).is_err(),
        "no request is pending"
    );
    translate(&mut r, 1, mapped).expect("the faulted pfn");
}

#[test]
fn no_stale_translation_after_invalidate_range() {
    let mut r = loaded();
    fault(&mut r, 1, Fault::Mapped { pfn: Pfn(77) }).expect("fault");
    r.step(
        &Op::InvalidateRange {
            start: 0x11000,
            end: 0x12000,
        },
        &Outcome::Count(Ok(1)),
    )
    .expect("one spte unmapped");
    r.step(
        &Op::PendingRequests(V0),
        &Outcome::Requests(Ok(Requests::TLB_FLUSH)),
    )
    .expect("the unmap flushed TLBs");
    r.step(
        &Op::HandleRequests(V0),
        &Outcome::Handled(Ok(fastzap::Handled {
            requests: Requests::TLB_FLUSH,
            reloaded: false,
        })),
    )
    .expect("a flush, no reload");
    let stale = Translation::Mapped {
        pfn: Pfn(77),
        writable: true,
    };
    assert!(
        translate(&mut r.clone(), 1, stale).is_err(),
        "I4: the old pfn is stale"
    );
    // The host page was remapped: a fault must not return the old pfn either.
    assert!(fault(&mut r.clone(), 1, Fault::Mapped { pfn: Pfn(77) }).is_err());
    fault(&mut r, 1, Fault::Mapped { pfn: Pfn(99) }).expect("a new pfn");
}

#[test]
fn invalidation_counts_are_bounded_by_what_is_mapped() {
    let mut r = loaded();
    fault(&mut r, 0, Fault::Mapped { pfn: Pfn(5) }).expect("fault");
    let range = Op::InvalidateRange {
        start: 0x10000,
        end: 0x12000,
    };
    assert!(
        r.clone().step(&range, &Outcome::Count(Ok(0))).is_err(),
        "a certain leaf"
    );
    assert!(
        r.clone().step(&range, &Outcome::Count(Ok(2))).is_err(),
        "only one leaf"
    );
    r.step(&range, &Outcome::Count(Ok(1))).expect("exactly one");
}

#[test]
fn fault_results_agree_with_the_slots() {
    let mut r = loaded();
    assert!(
        fault(&mut r.clone(), 3, Fault::Mapped { pfn: Pfn(1) }).is_err(),
        "no slot: MMIO"
    );
    assert!(
        fault(&mut r.clone(), 0, Fault::Mmio).is_err(),
        "a slot maps gfn 0"
    );
    assert!(
        fault(
            &mut r.clone(),
            0,
            Fault::Retry(fastzap::RetryReason::NotifierRace)
        )
        .is_err(),
        "one caller never races a notifier"
    );
    fault(&mut r, 3, Fault::Mmio).expect("MMIO");
    translate(&mut r, 3, Translation::Mmio).expect("cached MMIO");
    r.step(
        &Op::CreateSlot(spec(1, 3, 1, 0x20000)),
        &Outcome::Unit(Ok(())),
    )
    .expect("a slot for gfn 3");
    assert!(
        translate(&mut r.clone(), 3, Translation::Mmio).is_err(),
        "I7: the MMIO cache is from an older memslots generation"
    );
    translate(&mut r, 3, Translation::Miss).expect("miss, then fault");
}

#[test]
fn an_obsolete_root_retries() {
    let mut r = loaded();
    r.step(&Op::ZapAllFast, &Outcome::Zap(Ok(Default::default())))
        .expect("zap");
    assert!(fault(&mut r.clone(), 0, Fault::Mapped { pfn: Pfn(5) }).is_err());
    assert!(translate(&mut r.clone(), 0, Translation::Miss).is_err());
    fault(&mut r, 0, Fault::Retry(fastzap::RetryReason::ObsoleteRoot)).expect("retry");
}

/// The reference's memslot errors are the implementation's, call by call, on
/// a table of bad and good calls applied in order.
#[test]
fn memslot_errors_match_the_implementation() {
    let config = Config::model();
    let mut vm = Vm::new(config.clone()).expect("vm");
    let mut r = Reference::new(&config);
    let calls = [
        Op::CreateSlot(spec(0, 0, 0, 0)),
        Op::CreateSlot(spec(0, 3, 2, 0)),
        Op::CreateSlot(spec(0, u64::MAX, 2, 0)),
        Op::CreateSlot(spec(0, 0, 1, 0x1234)),
        Op::CreateSlot(spec(0, 0, 2, (1 << 48) - 4096)),
        Op::CreateSlot(spec(0, 0, 1, u64::MAX - 4095)),
        Op::CreateSlot(spec(0, 0, 2, 0)),
        Op::CreateSlot(spec(0, 2, 1, 0)),
        Op::CreateSlot(spec(1, 1, 1, 0)),
        Op::CreateSlot(spec(1, 2, 2, 0x5000)),
        Op::MoveSlot {
            id: SlotId(7),
            base_gfn: 0,
        },
        Op::MoveSlot {
            id: SlotId(1),
            base_gfn: 3,
        },
        Op::MoveSlot {
            id: SlotId(1),
            base_gfn: 1,
        },
        Op::MoveSlot {
            id: SlotId(1),
            base_gfn: 2,
        },
        Op::DeleteSlot {
            id: SlotId(0),
            strategy: Some(DeletionStrategy::SeedV3),
        },
        Op::DeleteSlot {
            id: SlotId(0),
            strategy: None,
        },
        Op::InvalidateRange { start: 5, end: 5 },
        Op::ChangePte { hva: u64::MAX },
        Op::Translate {
            vcpu: VcpuId(9),
            gfn: 0,
        },
        Op::Translate {
            vcpu: VcpuId(9),
            gfn: 4,
        },
        Op::HandleRequests(VcpuId(2)),
    ];
    let mut errors = 0;
    for op in &calls {
        let got = fastzap_verification::conformance::apply(&mut vm, op);
        errors += usize::from(got.error().is_some());
        r.step(op, &got)
            .unwrap_or_else(|why| panic!("{op:?} -> {got:?}: {why}"));
    }
    assert_eq!(errors, 17, "the table has 17 bad calls");
    let vm_error = vm.create_memslot(spec(0, 0, 0, 0x1234)).expect_err("empty");
    assert_eq!(
        vm_error,
        MmuError::EmptySlot,
        "size is checked before the host range"
    );
}

/// The top of the host's address space, in the reference as in the
/// implementation: a one-page slot that ends exactly at 2^48 is accepted and
/// its page can be notified, and a notifier range or hva past 2^48 is
/// refused with `HvaOutOfRange`, after an empty range's `BadHvaRange`.
#[test]
fn the_top_of_the_host_address_space_matches_the_implementation() {
    let config = Config::model();
    let mut vm = Vm::new(config.clone()).expect("vm");
    let mut r = Reference::new(&config);
    let top = Hva::LIMIT.0;
    let last = top - 4096;
    let calls = [
        (Op::CreateSlot(spec(0, 0, 1, last)), None),
        (Op::ChangePte { hva: last + 5 }, None),
        (
            Op::InvalidateRange {
                start: last,
                end: top,
            },
            None,
        ),
        (Op::TestYoung { start: 0, end: top }, None),
        (
            Op::InvalidateRange {
                start: last,
                end: top + 1,
            },
            Some(MmuError::HvaOutOfRange {
                hva: Hva::LIMIT,
                limit: Hva::LIMIT,
            }),
        ),
        (
            Op::ClearFlushYoung {
                start: top + 4096,
                end: u64::MAX,
            },
            Some(MmuError::HvaOutOfRange {
                hva: Hva(top + 4096),
                limit: Hva::LIMIT,
            }),
        ),
        (
            Op::TestYoung {
                start: u64::MAX,
                end: top + 1,
            },
            Some(MmuError::BadHvaRange),
        ),
        (
            Op::ChangePte { hva: top },
            Some(MmuError::HvaOutOfRange {
                hva: Hva::LIMIT,
                limit: Hva::LIMIT,
            }),
        ),
    ];
    for (op, want) in &calls {
        let got = fastzap_verification::conformance::apply(&mut vm, op);
        assert_eq!(got.error(), *want, "{op:?} -> {got:?}");
        r.step(op, &got)
            .unwrap_or_else(|why| panic!("{op:?} -> {got:?}: {why}"));
    }
    assert_eq!(vm.slot_count(), 1);
}

/// Conformance can fail: bug 16 (the MMIO cache trusted across memslots
/// generations) shows to one caller, and the reference rejects it.
#[test]
fn conformance_rejects_the_mmio_cache_mutant() {
    let report = run_many_with(300, 11, Some(Mutant::MmioCacheIgnoresGen));
    let failure = report.failure.expect("the mutant must be rejected");
    assert!(failure.contains("Mmio"), "{failure}");
    let clean = run_many_with(100, 11, None);
    assert!(clean.failure.is_none(), "{:?}", clean.failure);
}

/// Regression: the host handed out pfns as `version << 36 | page`, and a spte
/// holds 52 pfn bits, so after 65536 remaps of one page the spte truncated the
/// new pfn back to the page's first one, and `translate` returned a pfn that
/// an invalidation had killed. The reference requires the faulted pfn exactly.
#[test]
fn pfns_stay_exact_after_many_remaps_of_one_page() {
    let mut config = Config::model();
    config.events = false;
    let mut vm = Vm::new(config.clone()).expect("vm");
    let mut r = Reference::new(&config);
    let mut run = |op: Op| {
        let got = fastzap_verification::conformance::apply(&mut vm, &op);
        r.step(&op, &got)
            .unwrap_or_else(|why| panic!("{op:?} -> {got:?}: {why}"));
        got
    };
    run(Op::CreateSlot(spec(0, 0, 1, 0x10000)));
    run(Op::HandleRequests(V0));
    let first = run(Op::PageFault {
        vcpu: V0,
        gfn: 0,
        write: true,
    });
    for _ in 0..65536 {
        run(Op::InvalidateRange {
            start: 0x10000,
            end: 0x11000,
        });
    }
    run(Op::HandleRequests(V0));
    let last = run(Op::PageFault {
        vcpu: V0,
        gfn: 0,
        write: true,
    });
    assert_ne!(first, last, "the page was remapped: a new pfn");
    let Outcome::Fault(Ok(Fault::Mapped { pfn })) = last else {
        panic!("fault: {last:?}");
    };
    let seen = run(Op::Translate { vcpu: V0, gfn: 0 });
    assert_eq!(
        seen,
        Outcome::Translation(Ok(Translation::Mapped {
            pfn,
            writable: true
        })),
        "translate returns the faulted pfn"
    );
}

//! The reference model's rules for the slot-only DELETEs
//! (reference/src/slot_zap.rs), judged against the VM, and shown to reject
//! what they forbid.

use fastzap::{Config, DeletionStrategy, Gfn, Hva, Pfn, SlotId, SlotSpec, Translation, VcpuId, Vm};
use fastzap_reference::reference::{Op, Outcome, Reference};
use fastzap_verification::conformance::apply;

const V0: VcpuId = VcpuId(0);
const SLOT_ONLY: [DeletionStrategy; 3] = [
    DeletionStrategy::SlotOnly2019,
    DeletionStrategy::SlotOnlyFlushing2020,
    DeletionStrategy::SlotOnlyQuirkOff,
];

/// Runs `ops` on a model VM (no wrap of the MMIO generation) and the
/// reference, which must accept every outcome.
fn run(ops: &[Op]) -> (Vm, Reference) {
    let mut config = Config::model();
    config.mmio_gen_bits = 20;
    let mut vm = Vm::new(config.clone()).unwrap();
    let mut r = Reference::new(&config);
    for op in ops {
        let got = apply(&mut vm, op);
        r.step(op, &got)
            .unwrap_or_else(|why| panic!("{op:?} -> {got:?}: {why}"));
    }
    (vm, r)
}

/// Slot 0 at gfns 0..2, slot 1 at gfn 3, gfn 2 in no slot (userspace MMIO),
/// all three touched by vCPU 0, then slot `deleted` deleted with `strategy`
/// and vCPU 0's requests handled.
fn scenario(deleted: u16, strategy: DeletionStrategy) -> Vec<Op> {
    let slot = |id, base, npages, hva| {
        Op::CreateSlot(SlotSpec {
            id: SlotId(id),
            base_gfn: Gfn(base),
            npages,
            userspace_addr: Hva(hva),
        })
    };
    let mut ops = vec![
        slot(0, 0, 2, 0x10_000),
        slot(1, 3, 1, 0x20_000),
        Op::HandleRequests(V0),
    ];
    for gfn in [0, 2, 3] {
        ops.push(Op::PageFault {
            vcpu: V0,
            gfn,
            write: true,
        });
    }
    ops.push(Op::DeleteSlot {
        id: SlotId(deleted),
        strategy: Some(strategy),
    });
    ops.push(Op::HandleRequests(V0));
    ops
}

fn judge(r: &Reference, gfn: u64, got: Translation) -> Result<(), String> {
    r.clone().step(
        &Op::Translate { vcpu: V0, gfn },
        &Outcome::Translation(Ok(got)),
    )
}

/// After any slot-only DELETE, the deleted slot's gfn translates to `Miss`
/// in the VM, and the reference refuses a `Mapped` for it.
#[test]
fn the_deleted_slots_gfns_miss_and_a_mapping_is_refused() {
    for strategy in SLOT_ONLY {
        let (vm, r) = run(&scenario(1, strategy));
        assert_eq!(
            vm.translate(V0, Gfn(3)).unwrap(),
            Translation::Miss,
            "{strategy:?}"
        );
        judge(&r, 3, Translation::Miss).unwrap();
        let stale = Translation::Mapped {
            pfn: Pfn(1),
            writable: true,
        };
        assert!(
            judge(&r, 3, stale).is_err(),
            "{strategy:?} admitted a stale mapping"
        );
    }
}

/// Deleting slot 1 (gfn 3) leaves slot 0's gfn 0 mapped: the VM says so, and
/// the reference, which knows the leaf is certain (no page keyed at or above
/// gfn 3 exists to take it along), refuses a `Miss`.
#[test]
fn another_slot_stays_mapped_and_a_miss_is_refused() {
    for strategy in SLOT_ONLY {
        let (vm, r) = run(&scenario(1, strategy));
        let t = vm.translate(V0, Gfn(0)).unwrap();
        assert!(
            matches!(t, Translation::Mapped { .. }),
            "{strategy:?}: {t:?}"
        );
        judge(&r, 0, t).unwrap();
        assert!(
            judge(&r, 0, Translation::Miss).is_err(),
            "{strategy:?} admitted a Miss"
        );
    }
}

/// Deleting slot 0 (gfns 0..2, where the roots are keyed): the 2019 hash
/// walk zaps the roots, so vCPU 0 reloaded and slot 1's gfn 3 misses; the
/// reference must admit that, and still refuse a translation of gfn 0. With
/// the quirk off, gfn 3 stays mapped and a `Miss` is refused.
#[test]
fn deleting_the_slot_of_gfn_0_zaps_the_2019_roots() {
    for strategy in SLOT_ONLY {
        let (vm, r) = run(&scenario(0, strategy));
        let three = vm.translate(V0, Gfn(3)).unwrap();
        judge(&r, 3, three).unwrap();
        let quirk_off = strategy == DeletionStrategy::SlotOnlyQuirkOff;
        assert_eq!(
            matches!(three, Translation::Mapped { .. }),
            quirk_off,
            "{strategy:?}"
        );
        assert_eq!(
            judge(&r, 3, Translation::Miss).is_err(),
            quirk_off,
            "{strategy:?}"
        );
        assert_eq!(vm.translate(V0, Gfn(0)).unwrap(), Translation::Miss);
    }
}

/// The native stress draws every slot-only DELETE, and passes its audit.
#[test]
fn the_native_stress_runs_every_slot_only_delete() {
    use fastzap_verification::stress::{StressConfig, run as stress};
    let report = stress(&StressConfig::new(
        20_000,
        std::time::Duration::from_secs(120),
        11,
    ));
    assert!(report.passed(), "stress failed: {:#?}", report.violations);
    for kind in [
        "delete/slot-only-2019",
        "delete/slot-only-2020",
        "delete/slot-only-quirk-off",
    ] {
        let done = report.ops_by_kind.get(kind).copied().unwrap_or(0);
        assert!(
            done > 0,
            "the stress never ran {kind}: {:?}",
            report.ops_by_kind
        );
    }
}

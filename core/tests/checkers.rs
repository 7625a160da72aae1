#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! "A checker that cannot fail is a defect": for every [`Mutant`] that a
//! sequential scenario can expose, the scenario runs twice, once with the
//! mutant and once with `mutant: None`. With the mutant the audit
//! (`fastzap::check::audit`, which includes the violations recorded at run time by the
//! readers and the audit points) must report the expected invariant; without
//! it the same scenario must pass.
//!
//! Mutants that only manifest under a race are listed in [`RACE_ONLY`] with the
//! interleaving they need; the loom and shuttle models cover them. A test
//! checks that every mutant is in exactly one of the two lists.

mod common;
#[path = "checkers/tlb.rs"]
mod tlb;

use common::*;
use fastzap::check::*;
use fastzap::checking::Mutant;
use fastzap::*;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// What must catch the mutant.
#[derive(Clone, Copy)]
enum Expect {
    /// `fastzap::check::audit` reports a violation of this invariant.
    Audit(Invariant),
}

struct Case {
    mutant: Mutant,
    scenario: fn(Option<Mutant>) -> Vm,
    expect: Expect,
}

const CASES: &[Case] = &[
    Case {
        mutant: Mutant::SkipRmapForObsolete,
        scenario: skip_rmap_for_obsolete,
        expect: Expect::Audit(Invariant::I1),
    },
    Case {
        mutant: Mutant::ReloadOutsideLock,
        scenario: reload_outside_lock,
        expect: Expect::Audit(Invariant::I5),
    },
    Case {
        mutant: Mutant::ObsoleteIgnoresInvalid,
        scenario: obsolete_ignores_invalid,
        expect: Expect::Audit(Invariant::I5),
    },
    Case {
        mutant: Mutant::NoSlotsLock,
        scenario: no_slots_lock,
        expect: Expect::Audit(Invariant::I5),
    },
    Case {
        mutant: Mutant::RezapInUseRoots,
        scenario: rezap_in_use_roots,
        expect: Expect::Audit(Invariant::I6),
    },
    Case {
        mutant: Mutant::BatchNotAdvancing,
        scenario: batch_not_advancing,
        expect: Expect::Audit(Invariant::I6),
    },
    Case {
        mutant: Mutant::MoveReusesMetadata,
        scenario: move_reuses_metadata,
        expect: Expect::Audit(Invariant::I1),
    },
    Case {
        mutant: Mutant::FaultIntoObsoleteRoot,
        scenario: fault_into_obsolete_root,
        expect: Expect::Audit(Invariant::I5),
    },
    Case {
        mutant: Mutant::MmioCacheIgnoresGen,
        scenario: mmio_cache_ignores_gen,
        expect: Expect::Audit(Invariant::I7),
    },
    Case {
        mutant: Mutant::ZapLeavesParked,
        scenario: zap_leaves_parked,
        expect: Expect::Audit(Invariant::I8),
    },
    Case {
        mutant: Mutant::DeferNeverDrains,
        scenario: defer_never_drains,
        expect: Expect::Audit(Invariant::I8),
    },
    Case {
        mutant: Mutant::InvalidateRangeWithoutFlush,
        scenario: tlb::invalidate_range_without_flush,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::ChangePteWithoutFlush,
        scenario: tlb::change_pte_without_flush,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::CommitWithoutFlush,
        scenario: tlb::commit_without_flush,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::ZapRootWithoutReload,
        scenario: tlb::zap_root_without_reload,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::BumpWithoutReload,
        scenario: tlb::bump_without_reload,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::LargeSpteInSmallRmap,
        scenario: large_spte_in_small_rmap,
        expect: Expect::Audit(Invariant::I1),
    },
    Case {
        mutant: Mutant::NotifierMissesLargeSpte,
        scenario: notifier_misses_large_spte,
        expect: Expect::Audit(Invariant::I4),
    },
    Case {
        mutant: Mutant::LargeIgnoresDisallowLpage,
        scenario: large_ignores_disallow_lpage,
        expect: Expect::Audit(Invariant::I4),
    },
];

/// Mutants no sequential scenario can expose, and the interleaving each needs.
const RACE_ONLY: &[(Mutant, &str)] = &[
    (
        Mutant::InvalidateRangeFlushAfterUnlock,
        "a second invalidate_range of the same page between the first one's unlock and its late \
         flush: it finds no spte, flushes nothing and returns while the vCPU's TLB still maps the \
         page. Sequentially the late flush comes before the operation returns. S12's wide twin \
         catches it under shuttle (I4)",
    ),
    (
        Mutant::ShrinkerZapsActiveFirst,
        "the shrinker inside a zap's lock break, while the zap's prepared pages are parked on \
         zapped_obsolete_pages; sequentially nothing is parked between operations (the zap takes \
         its parked pages back and commits them). S7's twin catches it with I8 at the audit \
         point where the shrinker zaps an active page (loom and shuttle)",
    ),
    (
        Mutant::FaultIgnoresNotifierSeq,
        "an invalidate_range that runs whole between a fault's notifier snapshot (and its pfn \
         read) and the fault's mmu_lock; sequentially the fault's snapshot, read and install \
         happen with no invalidation in between. S11's twin catches it with I4 where the fault \
         installs the pfn it read (loom and shuttle)",
    ),
    (
        Mutant::FreeWithoutGrace,
        "a lockless reader pinned across the commit that frees the page it is walking; \
         sequentially no reader is in flight. vCPU walks are covered twice (the commit's remote \
         flush waits for vCPUs in READING_SHADOW_PAGE_TABLES), so the reader must be one the \
         flush does not wait for: the seed's out-of-lock unmapper racing the shrinker, which \
         S3s catches (loom and shuttle)",
    ),
    (
        Mutant::FreeBeforeFlush,
        "a lockless walker inside a page while commit_zap_page frees it at once (no flush, no \
         grace period); sequentially every vCPU is outside its walk. The walker is the fault's \
         MMIO walk, which does not stop at the pending reload: S2's twin (loom, and shuttle with \
         PCT at depth 3) catches it",
    ),
    (
        Mutant::RemoveOnlyRmapCompacts,
        "the seed-v3 delete's out-of-lock unmapper walking a remove-only descriptor chain while \
         a removal under mmu_lock compacts the chain and frees a descriptor at once; \
         sequentially the unmapper runs alone and no removal can overlap it. S3s's twin catches \
         it with I2 (loom and shuttle)",
    ),
    (
        Mutant::NotifierRewritesInvalidRmap,
        "clear_flush_young on a seed-v3 remove-only rmap while the lockless unmapper clears it; \
         the rmap is remove-only only inside delete_memslot (SeedV3), never between operations. \
         The core's ghost check after the unmap and grace period reports the spte it leaves \
         behind (I1); shuttle's S3 twin catches it",
    ),
    (
        Mutant::ZapFromHead,
        "vCPUs adding pages of the new generation at the head during the zap's lock breaks; \
         sequentially no page of the new generation exists during the zap. ZapStats::steps now \
         counts every page examined, so the rescan from the head counts against the I6 bound, \
         but the small models never fault enough during one zap to exceed it (not caught yet)",
    ),
    (
        Mutant::InvalidSlotFaultInstallsMmio,
        "a fault while a DELETE or MOVE has the slot published INVALID; sequentially the INVALID \
         copy is never visible between operations. Even under the race the audit is blind to it: \
         the MMIO spte and cache entry it leaves are stamped with the INVALID copy's generation, \
         which is never current once the DELETE returns. The audit points now run the spte half \
         of I7 (a trusted MMIO spte must name a gfn no slot maps, INVALID ones included), and \
         the models' S10 twin catches it",
    ),
    (
        Mutant::NotifierSkipsObsolete,
        "invalidate_range between the generation bump and the zap of the obsolete pages; \
         sequentially every obsolete page has been unlinked (no leaf left) when the zap returns. \
         Even under the race the audit is blind to it: the skipped sptes sit in obsolete pages, \
         which check_i4 skips, the zap removes them soon after, and a vCPU on the old root sees \
         its reload request before it walks. invalidate_range now checks, before it returns, that \
         no spte of the range (obsolete pages included) is left on an rmap (I4); the models' S4 \
         twin catches it",
    ),
    (
        Mutant::MmioGenFromNewSlots,
        "a memslot publish between the fault's memslots load and its MMIO install; sequentially \
         both reads return the same generation. Caught at translate time (I7) once the ghost half \
         of the MMIO spte records the source generation rather than the mutated one",
    ),
    (
        Mutant::WrapZapAfterPublish,
        "a translate between the publish of the wrapping generation and the zap that follows it. \
         Sequentially the window is visible only to AuditPoint::AfterMemslotUpdate, which runs \
         exactly there but does not run check_i7_mmio_generation (only I2, I3, I5, I6), so the \
         audit misses it: see wrap_zap_after_publish_window_is_not_audited",
    ),
    (
        Mutant::RequestWithoutFence,
        "a weak-memory outcome (store buffering between the request bits and vcpu->mode) that \
         no sequential run and no sequentially consistent checker can produce; natively masked \
         on x86, where fetch_or is a locked instruction. Loom's litmus model L1 catches it (I3)",
    ),
    (
        Mutant::RequestFenceAcqRel,
        "a weak-memory outcome: an acquire-release fence does not order the request bits' store \
         before the read of vcpu->mode. Loom's litmus model L1 catches it (I3)",
    ),
    (
        Mutant::WalkBeginWithoutFence,
        "a weak-memory outcome (store buffering between vcpu->mode and the requests) on the \
         vCPU's side of the handshake. Loom's litmus model L1 catches it (I3)",
    ),
    (
        Mutant::RootStoreRelaxed,
        "a weak-memory outcome: a walker not ordered after the construction of the root it \
         loads; in the VM the vCPU claim also orders the reload before the walk. Loom's litmus \
         model L2 catches it (I3, as a causality violation on the page's body)",
    ),
    (
        Mutant::RootLoadRelaxed,
        "a weak-memory outcome, the walker's half of RootStoreRelaxed. Loom's litmus model L2 \
         catches it (I3)",
    ),
    (
        Mutant::RequestBitRelaxed,
        "a weak-memory outcome: the reload request no longer carries the memslots' in-flux flag \
         to the vCPU that takes it; in the VM mmu_lock also orders that chain. Loom's litmus \
         model L3 catches it (I7)",
    ),
    (
        Mutant::TakeRequestsRelaxed,
        "a weak-memory outcome, the vCPU's half of RequestBitRelaxed. Loom's litmus model L3 \
         catches it (I7)",
    ),
    (
        Mutant::WalkSpteLoadRelaxed,
        "a weak-memory outcome: a lockless walk that follows a non-leaf spte linked by a fault \
         on another vCPU is not ordered after the child page's construction. Loom's litmus \
         model L2b catches it (I3, as a causality violation on the child's body)",
    ),
];

fn cfg(mutant: Option<Mutant>) -> Config {
    let mut cfg = Config::model();
    cfg.mutant = mutant;
    cfg
}

// ----- scenarios ----------------------------------------------------------------

/// Bug 1: both address spaces map gfn 0; the fast zap prepares the obsolete
/// leaf pages. The mutant clears their sptes without rmap_remove, so the rmap
/// keeps entries into retired pages.
fn skip_rmap_for_obsolete(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    vm.page_fault(V1, Gfn(0), false).unwrap();
    vm.page_fault(V0, Gfn(3), true).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    enter_all(&vm);
    vm
}

/// Bug 2: a vCPU with a root and a child page, no request pending. The zap
/// commits the child before the (late) reload request: the audit point after
/// the commit sees a vCPU on an invalid root with no reload pending.
fn reload_outside_lock(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(1), false).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    enter_all(&vm);
    vm
}

/// Bug 5: with a 1-bit generation, vCPU 0 sleeps through two bumps holding its
/// invalid root, whose generation is current again; then it faults.
fn obsolete_ignores_invalid(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.gen_bits = 1;
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    assert_eq!(vm.mmu_valid_gen(), 0);
    let fault = vm.page_fault(V0, Gfn(2), false).unwrap();
    if mutant.is_none() {
        assert_eq!(fault, Fault::Retry(RetryReason::ObsoleteRoot));
    }
    vm
}

/// Bug 6, with two threads (not deterministic, bounded): a 1-bit generation,
/// 31 pages and batch 1, so that a zap breaks the lock after every page; two
/// threads start invalidate_zap_all_pages together. Without slots_lock the
/// second bump lands during the first zap and toggles the generation back, so
/// the pages the first zap has not reached yet are current again (I5: born
/// in another generation epoch). The mutant run stops at the first recorded
/// violation; the clean run does all 200 rounds.
fn no_slots_lock(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.events = false;
    cfg.gen_bits = 1;
    cfg.levels = 5; // 32 gfns
    cfg.batch = 1;
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 32)).unwrap();
    for _ in 0..200 {
        if !vm.runtime_violations().is_empty() {
            break;
        }
        enter_all(&vm);
        for gfn in 0..32 {
            vm.page_fault(V0, Gfn(gfn), false).unwrap();
        }
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    barrier.wait();
                    vm.invalidate_zap_all_pages().unwrap();
                });
            }
        });
    }
    enter_all(&vm);
    vm
}

/// Bug 8: a vCPU holds its root across the zap; the mutant re-prepares the
/// in-use root forever, until the progress bound stops it.
fn rezap_in_use_roots(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    let result = vm.invalidate_zap_all_pages();
    match mutant {
        None => assert!(result.is_ok(), "{result:?}"),
        Some(_) => assert!(
            matches!(result, Err(MmuError::ZapLivelock { .. })),
            "{result:?}"
        ),
    }
    vm
}

/// Bug 9: batch 1 and two in-use roots at the tail of the active list. The
/// mutant counts what prepare_zap_page returns (0 for a kept root), so the
/// first hold prepares both roots and a page: 3 pages with batch 1.
///
/// I6 compares `ZapStats::max_batch` with the batch size. `max_batch` used to
/// be computed from the same mutated counter, so it read 1 and the audit was
/// blind; it now counts the pages prepared in each hold independently.
fn batch_not_advancing(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.levels = 3;
    cfg.batch = 1;
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 8)).unwrap();
    enter_all(&vm);
    for gfn in 0..8 {
        vm.page_fault(V0, Gfn(gfn), false).unwrap();
    }
    vm.page_fault(V1, Gfn(0), false).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    enter_all(&vm);
    vm
}

/// The most `PrepareZap` events of the zapper between two lock breaks of the
/// first fast zap: an independent count of the pages prepared per hold.
fn max_prepared_per_hold(vm: &Vm) -> u64 {
    let events = vm.events();
    let Some(start) = events
        .iter()
        .position(|e| matches!(e.what, What::GenBump { .. }))
    else {
        return 0;
    };
    let (mut hold, mut max) = (0u64, 0u64);
    for e in &events[start..] {
        if e.actor != Actor::Zapper {
            continue;
        }
        match e.what {
            What::PrepareZap { .. } => {
                hold += 1;
                max = max.max(hold);
            }
            What::LockBreak { .. } => hold = 0,
            What::CommitZap { .. } => break,
            _ => {}
        }
    }
    max
}

/// Bug 10: MOVE a 2-page slot from gfn 0 to the unaligned gfn 1. Its
/// lpage_info was sized for base 0 (one large page); gfn 2 needs a second
/// entry. The fault reports the metadata mismatch (I1).
fn move_reuses_metadata(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 2)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(1), true).unwrap();
    vm.move_memslot(SlotId(0), Gfn(1)).unwrap();
    enter_all(&vm);
    let fault = vm.page_fault(V0, Gfn(2), false).unwrap();
    if mutant.is_none() {
        assert!(matches!(fault, Fault::Mapped { .. }), "{fault:?}");
    }
    vm
}

/// Bug 12: vCPU 0 faults after the zap passed its root, before it handled the
/// reload: the mutant links a new child under the obsolete root.
fn fault_into_obsolete_root(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    vm.invalidate_zap_all_pages().unwrap();
    let fault = vm.page_fault(V0, Gfn(2), false).unwrap();
    if mutant.is_none() {
        assert_eq!(fault, Fault::Retry(RetryReason::ObsoleteRoot));
    }
    vm
}

/// Bug 16: vCPU 0 caches gfn 3 as MMIO, then a slot is created over gfn 3.
/// The mutant trusts the cache from the old memslots generation.
fn mmio_cache_ignores_gen(mutant: Option<Mutant>) -> Vm {
    let vm = vm(cfg(mutant));
    vm.create_memslot(slot(0, 0, 2)).unwrap();
    enter_all(&vm);
    assert_eq!(vm.page_fault(V0, Gfn(3), false).unwrap(), Fault::Mmio);
    vm.create_memslot(slot(1, 3, 1)).unwrap();
    let t = vm.translate(V0, Gfn(3)).unwrap();
    match mutant {
        None => assert_eq!(t, Translation::Miss),
        Some(_) => assert_eq!(t, Translation::Mmio, "the stale cache answered"),
    }
    vm
}

/// I8: batch 1 and 15 pages (a root, its children and grandchildren), so
/// the zap breaks `mmu_lock` after every page. The
/// mutant never takes the parked pages back: its final commit frees only the
/// last batch, and the rest stay allocated after the zap returns.
fn zap_leaves_parked(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.levels = 4; // 16 gfns
    cfg.batch = 1;
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 16)).unwrap();
    enter_all(&vm);
    for gfn in 0..16 {
        vm.page_fault(V0, Gfn(gfn), false).unwrap();
    }
    let stats = vm.invalidate_zap_all_pages().unwrap();
    assert!(stats.holds > 3, "the zap must break the lock: {stats:?}");
    enter_all(&vm);
    vm
}

/// Two deferred deletes (`SeedV3Deferred`) with faults in between. The second
/// must zap what the first left before it bumps; the mutant does not, and two
/// obsolete generations are retained at once.
fn defer_never_drains(mutant: Option<Mutant>) -> Vm {
    let mut cfg = cfg(mutant);
    cfg.mmio_gen_bits = 8; // no MMIO generation wrap, whose full zap would drain
    let vm = vm(cfg);
    vm.create_memslot(slot(0, 0, 2)).unwrap();
    enter_all(&vm);
    for round in 0..2 {
        vm.create_memslot(slot(1, 2, 1)).unwrap();
        enter_all(&vm);
        for gfn in 0..3 {
            vm.page_fault(V0, Gfn(gfn), false).unwrap();
        }
        let before = vm.shadow_pages();
        vm.delete_memslot_with(SlotId(1), DeletionStrategy::SeedV3Deferred)
            .unwrap();
        enter_all(&vm);
        // The first delete leaves its pages in place (plus a fresh root); the
        // second zaps those before its bump, and leaves its own.
        if round == 0 {
            assert!(
                vm.shadow_pages() > before,
                "the deferred delete zapped ({before} -> {} pages)",
                vm.shadow_pages()
            );
        }
    }
    vm
}

/// The model's configuration with large pages: 2 sptes per page, so a large
/// page is 2 gfns, mapped by a leaf in the (level-2) root.
fn large(mutant: Option<Mutant>) -> Config {
    let mut cfg = cfg(mutant);
    cfg.large_pages = true;
    cfg
}

/// Large pages: a fault maps gfns 0 and 1 with one large spte; the mutant
/// files it on gfn 0's level-1 head, where the audit's I1 sees a level-2
/// spte.
fn large_spte_in_small_rmap(mutant: Option<Mutant>) -> Vm {
    let vm = vm(large(mutant));
    vm.create_memslot(slot(0, 0, 4)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(1), true).unwrap();
    vm
}

/// Large pages: gfns 0 and 1 mapped large, then the host takes gfn 1's page.
/// The mutant's `invalidate_range` walks only the level-1 rmaps: as it
/// returns, the large spte still maps gfn 1 (I4).
fn notifier_misses_large_spte(mutant: Option<Mutant>) -> Vm {
    let vm = vm(large(mutant));
    let spec = slot(0, 0, 4);
    vm.create_memslot(spec).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(0), false).unwrap();
    let page = hva(&spec, 1);
    vm.invalidate_range(page, page + PAGE).unwrap();
    vm
}

/// Large pages: a 3-page slot's second large page (gfns 2 and 3) is partial,
/// so `disallow_lpage` forbids it. The mutant maps it large anyway: gfn 3,
/// which no slot maps, translates to host memory (I4).
fn large_ignores_disallow_lpage(mutant: Option<Mutant>) -> Vm {
    let vm = vm(large(mutant));
    vm.create_memslot(slot(0, 0, 3)).unwrap();
    enter_all(&vm);
    vm.page_fault(V0, Gfn(2), false).unwrap();
    vm
}

// ----- the harness ----------------------------------------------------------------

fn case(mutant: Mutant) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.mutant == mutant)
        .unwrap_or_else(|| panic!("{mutant:?} has no sequential case"))
}

/// Runs `mutant`'s scenario with and without it.
fn check(mutant: Mutant) {
    let case = case(mutant);
    let clean = (case.scenario)(None);
    assert_audit(&clean);
    assert_drains(&clean);
    let buggy = (case.scenario)(Some(mutant));
    match case.expect {
        Expect::Audit(invariant) => {
            let found = fastzap::check::audit(&buggy)
                .expect_err(&format!("the audit did not catch {mutant:?}"));
            // The audit lists what it found in detection order: the first is
            // what the mutant is caught by, not any violation further down.
            assert_eq!(
                found[0].invariant,
                invariant,
                "{mutant:?}: expected {} detected first, got {found:#?}",
                invariant.name()
            );
            for v in &found {
                println!("{mutant:?}: {v}");
            }
        }
    }
}

#[test]
fn every_mutant_has_a_case_or_a_race_only_reason() {
    for mutant in Mutant::ALL {
        let cases = CASES.iter().filter(|c| c.mutant == mutant).count();
        let races = RACE_ONLY.iter().filter(|(m, _)| *m == mutant).count();
        assert_eq!(
            cases + races,
            1,
            "{mutant:?} must be in exactly one of CASES and RACE_ONLY"
        );
    }
    assert_eq!(CASES.len() + RACE_ONLY.len(), Mutant::ALL.len());
}

#[test]
fn clean_scenarios_record_no_violation() {
    for case in CASES {
        let vm = (case.scenario)(None);
        assert_eq!(vm.runtime_violations(), vec![], "{:?}", case.mutant);
        assert_audit(&vm);
    }
}

#[test]
fn bug01_skip_rmap_for_obsolete() {
    check(Mutant::SkipRmapForObsolete);
}

#[test]
fn bug02_reload_outside_lock() {
    check(Mutant::ReloadOutsideLock);
}

#[test]
fn bug05_obsolete_ignores_invalid() {
    check(Mutant::ObsoleteIgnoresInvalid);
}

#[test]
fn bug06_no_slots_lock() {
    check(Mutant::NoSlotsLock);
}

#[test]
fn bug08_rezap_in_use_roots() {
    check(Mutant::RezapInUseRoots);
}

#[test]
fn bug09_batch_not_advancing() {
    check(Mutant::BatchNotAdvancing);
}

/// ZapStats::max_batch agrees with the event log, with and without bug 9.
#[test]
fn zap_stats_max_batch_matches_the_event_log() {
    for mutant in [None, Some(Mutant::BatchNotAdvancing)] {
        let vm = batch_not_advancing(mutant);
        let stats = vm.zap_history()[0];
        assert_eq!(stats.max_batch, max_prepared_per_hold(&vm), "{mutant:?}");
        assert!(stats.holds > 1, "{stats:?}");
        assert_eq!(stats.max_batch > 1, mutant.is_some(), "{stats:?}");
    }
}

#[test]
fn bug10_move_reuses_metadata() {
    check(Mutant::MoveReusesMetadata);
}

#[test]
fn bug12_fault_into_obsolete_root() {
    check(Mutant::FaultIntoObsoleteRoot);
}

#[test]
fn bug16_mmio_cache_ignores_gen() {
    check(Mutant::MmioCacheIgnoresGen);
}

#[test]
fn i8_zap_leaves_parked() {
    check(Mutant::ZapLeavesParked);
}

#[test]
fn i8_defer_never_drains() {
    check(Mutant::DeferNeverDrains);
}

/// Bug 15's window, sequentially: the first publish of a wrapping MMIO
/// generation with an MMIO spte from a full cycle ago still installed. With
/// the mutant the publish comes before the zap, so for that moment the old
/// spte's masked generation matches; the only check that runs in the window is
/// AuditPoint::AfterMemslotUpdate, which does not include I7. This test pins
/// down the scenario and that the mutant's order (publish, then bump) shows in
/// the event log; the mutant stays in RACE_ONLY until the audit point checks
/// I7 (or a model interleaves a translate there).
#[test]
fn wrap_zap_after_publish_window_is_not_audited() {
    for mutant in [None, Some(Mutant::WrapZapAfterPublish)] {
        let mut cfg = cfg(mutant);
        cfg.mmio_gen_bits = 1;
        let vm = vm(cfg);
        enter_all(&vm);
        // Generation 0, masked 0: gfn 3 is MMIO.
        assert_eq!(vm.page_fault(V0, Gfn(3), false).unwrap(), Fault::Mmio);
        vm.create_memslot(slot(0, 0, 1)).unwrap(); // generation 1
        assert_eq!(vm.mmu_valid_gen(), 0, "no wrap yet");
        vm.create_memslot(slot(1, 1, 1)).unwrap(); // generation 2: masked 0 again
        assert_eq!(vm.mmu_valid_gen(), 1, "the wrap zapped, before or after");
        enter_all(&vm);
        assert_translate(&vm, V0, Gfn(3), Translation::Miss);
        let publishes: Vec<usize> = vm
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.what, What::Publish { generation: 2 }))
            .map(|(i, _)| i)
            .collect();
        let bumps: Vec<usize> = vm
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.what, What::GenBump { from: 0, to: 1 }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!((publishes.len(), bumps.len()), (1, 1));
        // The mutant's order is visible in the log.
        assert_eq!(publishes[0] < bumps[0], mutant.is_some());
        match mutant {
            None => assert_audit(&vm),
            Some(m) => println!(
                "{m:?}: audit {:?}",
                fastzap::check::audit(&vm).map_err(|v| v.len())
            ),
        }
    }
}

/// Bug 14 under a real race (not deterministic): another thread publishes new
/// memslots back to back (one-page slots far from gfns 2 and 3) while vCPU 0
/// faults on gfn 3 (MMIO), moves its MMIO cache away (a fault on gfn 2) and
/// translates gfn 3 through its MMIO spte. A publish between the fault's
/// memslots load and its install makes the mutant stamp the new generation on
/// a decision taken from the old slots; translate must then report I7.
/// Bounded: each run stops when the writer is done (600 publishes for the
/// clean run, up to 20000 for the mutant), at the first violation, or after
/// 30 s; the clean run must see none.
#[test]
fn bug14_mmio_gen_from_new_slots_under_a_race() {
    fn race(mutant: Option<Mutant>, slots: u16) -> (usize, u64) {
        use fastzap::checking::sync::{Arc, AtomicBool, Ordering::Relaxed};
        let mut cfg = cfg(mutant);
        cfg.events = false;
        cfg.spte_count = 16;
        cfg.levels = 4; // 65536 gfns
        cfg.mmio_gen_bits = 19; // no wrap, so no zap: the faults never retry
        let vm = Arc::new(vm(cfg));
        enter_all(&vm);
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (vm, done) = (vm.clone(), done.clone());
            std::thread::spawn(move || {
                for id in 1..=slots {
                    if done.load(Relaxed) {
                        break;
                    }
                    vm.create_memslot(slot(id, 100 + u64::from(id), 1)).unwrap();
                }
                done.store(true, Relaxed);
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut faults = 0u64;
        while !done.load(Relaxed)
            && vm.runtime_violations().is_empty()
            && std::time::Instant::now() < deadline
        {
            assert_eq!(vm.page_fault(V0, Gfn(3), false).unwrap(), Fault::Mmio);
            assert_eq!(vm.page_fault(V0, Gfn(2), false).unwrap(), Fault::Mmio);
            vm.translate(V0, Gfn(3)).unwrap();
            faults += 1;
        }
        done.store(true, Relaxed);
        writer.join().expect("writer panicked");
        let found = vm.runtime_violations();
        assert!(
            found.iter().all(|v| v.invariant == Invariant::I7),
            "{found:?}"
        );
        (found.len(), faults)
    }
    let (clean, clean_faults) = race(None, 600);
    assert_eq!(clean, 0, "false positive after {clean_faults} rounds");
    assert!(clean_faults > 0);
    let (caught, faults) = race(Some(Mutant::MmioGenFromNewSlots), 20_000);
    assert!(caught > 0, "not caught ({faults} rounds)");
    println!("MmioGenFromNewSlots: caught after {faults} rounds; clean: {clean_faults} rounds");
}

#[test]
fn lpage_large_spte_in_small_rmap() {
    check(Mutant::LargeSpteInSmallRmap);
}

#[test]
fn lpage_notifier_misses_large_spte() {
    check(Mutant::NotifierMissesLargeSpte);
}

#[test]
fn lpage_large_ignores_disallow_lpage() {
    check(Mutant::LargeIgnoresDisallowLpage);
}

//! # The bug zoo: every mutant, its kernel commit, and the checker that catches it
//!
//! [`ZOO`] is the one table: for every [`Mutant`] (and every reclamation
//! mutant and forced failure), the kernel commit it re-introduces, the
//! invariant it must be caught by, and the cheapest checker that catches it
//! under the settings where the correct protocol passes. Every `Mutant` is in
//! exactly one row: a variant appended to `Mutant::ALL` without a row here is
//! a compile error (the `const` assertion below) naming this table, and no
//! variant can be left out of `Mutant::ALL` (`Mutant::position`, an
//! exhaustive `match` checked against it at compile time, and the structure
//! test `mutant_all_names_every_variant`).
//!
//! A row is caught only when the first violation its checker detected is the
//! expected invariant (`fastzap_models::results::reported_in`: the first the
//! ghost recorded during the failing execution, else the end audit's first;
//! a loom causality violation counts for the rows that say so: loom's report
//! that the free raced the reader's access is the use-after-free itself);
//! the expected invariant named anywhere else in the failure is not enough.
//! Any other failure is a wrong invariant, and no failure an escape. Both
//! fail the run.

use fastzap::check::Invariant;
use fastzap::checking::Mutant;

use crate::child::MutantRun;

/// What a zoo row breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A protocol mutant (`Config::mutant`).
    Protocol(Mutant),
    /// A mutant of the facade's small EBR (`EbrMutant`, by name).
    Ebr(&'static str),
    /// A forced failure on the reclamation facade, in the style of
    /// srcu-cbmc's injected bugs (`models/tests/reclaim_forced.rs`).
    Forced(&'static str),
}

impl Subject {
    /// The name in the table.
    pub fn name(self) -> String {
        match self {
            Subject::Protocol(m) => format!("{m:?}"),
            Subject::Ebr(m) => format!("ebr::{m}"),
            Subject::Forced(f) => format!("forced::{f}"),
        }
    }
}

/// Which checker catches a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    /// A loom test (by its function name), in the loom lane.
    Loom(&'static str),
    /// A shuttle test, in the shuttle lane.
    Shuttle(&'static str),
    /// A native run in a child process of `verify`.
    Native(MutantRun),
}

impl Checker {
    /// The checker's lane and test, for the table.
    pub fn describe(self) -> String {
        match self {
            Checker::Loom(t) => format!("loom {t}"),
            Checker::Shuttle(t) => format!("shuttle {t}"),
            Checker::Native(k) => format!("native {}", k.name()),
        }
    }
}

/// One row of the zoo.
#[derive(Debug, Clone, Copy)]
pub struct ZooRow {
    /// What it breaks.
    pub subject: Subject,
    /// The kernel commit (or the seed's review) it re-introduces.
    pub commit: &'static str,
    /// The invariant its checker must report.
    pub expected: Invariant,
    /// The checker.
    pub checker: Checker,
    /// Whether loom's own causality report counts as the expected
    /// invariant (use-after-free rows).
    pub loom_race_counts: bool,
}

const fn row(
    subject: Subject,
    commit: &'static str,
    expected: Invariant,
    checker: Checker,
) -> ZooRow {
    ZooRow {
        subject,
        commit,
        expected,
        checker,
        loom_race_counts: false,
    }
}

const fn protocol(
    m: Mutant,
    commit: &'static str,
    expected: Invariant,
    checker: Checker,
) -> ZooRow {
    row(Subject::Protocol(m), commit, expected, checker)
}

const fn race_counts(row: ZooRow) -> ZooRow {
    ZooRow {
        loom_race_counts: true,
        ..row
    }
}

use Checker::{Loom, Native, Shuttle};
use Invariant::{I1, I2, I3, I4, I5, I6, I7, I8};

/// The bug zoo. Checkers were chosen by measuring (the README's zoo table):
/// every protocol twin's shuttle run finds its bug in under a second (its
/// counterexample then comes with a schedule that replays it); the
/// reclamation's own models are loom models; bug 10 (no model twin) is
/// caught by its sequential case under the audit, bug 7 by the audited native
/// stress (its rescan from the head needs more faults during one zap than the
/// small models make).
pub const ZOO: &[ZooRow] = &[
    protocol(
        Mutant::SkipRmapForObsolete,
        "seed review (bug 1)",
        I1,
        Shuttle("s7_mutant_skip_rmap_for_obsolete"),
    ),
    protocol(
        Mutant::ReloadOutsideLock,
        "5304b8d37c2a (bug 2)",
        I5,
        Shuttle("s1_mutant_reload_outside_lock"),
    ),
    protocol(
        Mutant::FreeWithoutGrace,
        "c142786c6291 (bug 3, grace half)",
        I3,
        Shuttle("s3s_mutant_free_without_grace"),
    ),
    protocol(
        Mutant::FreeBeforeFlush,
        "f34d251d66ba (bug 3)",
        I3,
        Shuttle("s2_mutant_free_before_flush"),
    ),
    protocol(
        Mutant::RemoveOnlyRmapCompacts,
        "seed requirement 2",
        I2,
        Shuttle("s3s_mutant_remove_only_rmap_compacts"),
    ),
    protocol(
        Mutant::NotifierRewritesInvalidRmap,
        "seed review (bug 4)",
        I1,
        Shuttle("s3_mutant_notifier_rewrites_invalid_rmap"),
    ),
    protocol(
        Mutant::ObsoleteIgnoresInvalid,
        "2019 fix (bug 5)",
        I5,
        Shuttle("s8_mutant_obsolete_ignores_invalid"),
    ),
    protocol(
        Mutant::NoSlotsLock,
        "ca333add6933 (bug 6)",
        I5,
        Shuttle("s8_mutant_no_slots_lock"),
    ),
    protocol(
        Mutant::ZapFromHead,
        "002c5f73c508 (bug 7)",
        I6,
        Native(MutantRun::Stress),
    ),
    protocol(
        Mutant::RezapInUseRoots,
        "5304b8d37c2a (bug 8)",
        I6,
        Shuttle("s5_mutant_rezap_in_use_roots"),
    ),
    protocol(
        Mutant::BatchNotAdvancing,
        "fbb158cb88b6 (bug 9)",
        I6,
        Shuttle("s4_mutant_batch_not_advancing"),
    ),
    protocol(
        Mutant::MoveReusesMetadata,
        "edd4fa37ba (bug 10)",
        I1,
        Native(MutantRun::Move),
    ),
    protocol(
        Mutant::InvalidSlotFaultInstallsMmio,
        "e0c378684b65 (bug 11)",
        I7,
        Shuttle("s10_mutant_invalid_slot_fault_installs_mmio"),
    ),
    protocol(
        Mutant::FaultIntoObsoleteRoot,
        "a955cad84cda (bug 12)",
        I5,
        Shuttle("s6_mutant_fault_into_obsolete_root"),
    ),
    protocol(
        Mutant::NotifierSkipsObsolete,
        "d62007edf01f (bug 13)",
        I4,
        Shuttle("s4_mutant_notifier_skips_obsolete"),
    ),
    protocol(
        Mutant::MmioGenFromNewSlots,
        "ee3d1570b586 (bug 14)",
        I7,
        Shuttle("s9_mutant_mmio_gen_from_new_slots"),
    ),
    protocol(
        Mutant::WrapZapAfterPublish,
        "152482580a1b (bug 15)",
        I7,
        Shuttle("s9w_mutant_wrap_zap_after_publish"),
    ),
    protocol(
        Mutant::MmioCacheIgnoresGen,
        "56f17dd3fbc4 (bug 16)",
        I7,
        Shuttle("s9_mutant_mmio_cache_ignores_gen"),
    ),
    protocol(
        Mutant::ShrinkerZapsActiveFirst,
        "365c886860c4 (reverted)",
        I8,
        Shuttle("s7_mutant_shrinker_zaps_active_first"),
    ),
    protocol(
        Mutant::ZapLeavesParked,
        "bug hunt (retention)",
        I8,
        Native(MutantRun::Stress),
    ),
    protocol(
        Mutant::FaultIgnoresNotifierSeq,
        "bug hunt (mmu_notifier_retry)",
        I4,
        Shuttle("s11_mutant_fault_ignores_notifier_seq"),
    ),
    protocol(
        Mutant::DeferNeverDrains,
        "design rule (deferred zap)",
        I8,
        Native(MutantRun::Stress),
    ),
    protocol(
        Mutant::RequestWithoutFence,
        "litmus L1 (requester fence)",
        I3,
        Loom("litmus_l1_mutant_request_without_fence"),
    ),
    protocol(
        Mutant::RequestFenceAcqRel,
        "litmus L1 (fence weakened)",
        I3,
        Loom("litmus_l1_mutant_request_fence_acq_rel"),
    ),
    protocol(
        Mutant::WalkBeginWithoutFence,
        "litmus L1 (vCPU fence)",
        I3,
        Loom("litmus_l1_mutant_walk_begin_without_fence"),
    ),
    race_counts(protocol(
        Mutant::RootStoreRelaxed,
        "litmus L2 (root publication)",
        I3,
        Loom("litmus_l2_mutant_root_store_relaxed"),
    )),
    race_counts(protocol(
        Mutant::RootLoadRelaxed,
        "litmus L2 (root load)",
        I3,
        Loom("litmus_l2_mutant_root_load_relaxed"),
    )),
    race_counts(protocol(
        Mutant::WalkSpteLoadRelaxed,
        "litmus L2b (child publication)",
        I3,
        Loom("litmus_l2b_mutant_walk_spte_load_relaxed"),
    )),
    protocol(
        Mutant::LargeSpteInSmallRmap,
        "__gfn_to_rmap per level (large pages)",
        I1,
        Native(MutantRun::Stress),
    ),
    protocol(
        Mutant::NotifierMissesLargeSpte,
        "kvm_handle_hva_range, every level (large pages)",
        I4,
        Native(MutantRun::Conformance),
    ),
    protocol(
        Mutant::LargeIgnoresDisallowLpage,
        "has_wrprotected_page / disallow_lpage (large pages)",
        I4,
        Native(MutantRun::Conformance),
    ),
    protocol(
        Mutant::RequestBitRelaxed,
        "litmus L3 (request bit)",
        I7,
        Loom("litmus_l3_mutant_request_bit_relaxed"),
    ),
    protocol(
        Mutant::TakeRequestsRelaxed,
        "litmus L3 (take requests)",
        I7,
        Loom("litmus_l3_mutant_take_requests_relaxed"),
    ),
    // The flush-site twins, seen through the vCPU's TLB.
    protocol(
        Mutant::InvalidateRangeWithoutFlush,
        "flush twin (a835429cda91 class)",
        I4,
        Native(MutantRun::Tlb),
    ),
    protocol(
        Mutant::ChangePteWithoutFlush,
        "flush twin (change_pte)",
        I4,
        Native(MutantRun::Tlb),
    ),
    protocol(
        Mutant::CommitWithoutFlush,
        "flush twin (bb95dfb9e2df class)",
        I4,
        Native(MutantRun::Tlb),
    ),
    protocol(
        Mutant::ZapRootWithoutReload,
        "flush twin (zapped root)",
        I5,
        Native(MutantRun::Scenario),
    ),
    protocol(
        Mutant::InvalidateRangeFlushAfterUnlock,
        "flush twin, late (a835429cda91)",
        I4,
        Shuttle("s12_mutant_invalidate_range_flush_after_unlock"),
    ),
    protocol(
        Mutant::BumpWithoutReload,
        "flush twin (generation bump)",
        I5,
        Native(MutantRun::Scenario),
    ),
    race_counts(row(
        Subject::Ebr("FreeAfterOneEpoch"),
        "EBR: free after one epoch, not two",
        I3,
        Loom("ebr_mutant_free_after_one_epoch_is_caught"),
    )),
    race_counts(row(
        Subject::Ebr("NoFenceInPin"),
        "EBR: no SeqCst fence in pin",
        I3,
        Loom("ebr_mutant_no_fence_in_pin_is_caught"),
    )),
    race_counts(row(
        Subject::Forced("read_section_split"),
        "srcu-cbmc style: read-side section split in two",
        I3,
        Loom("forced_read_section_split_in_two"),
    )),
    race_counts(row(
        Subject::Forced("no_grace_period"),
        "srcu-cbmc style: no grace period at all",
        I3,
        Loom("forced_no_grace_period"),
    )),
    race_counts(row(
        Subject::Forced("reader_never_pins"),
        "srcu-cbmc style: a reader that never pins",
        I3,
        Loom("forced_reader_never_pins"),
    )),
];

/// How many rows name `m`.
pub const fn rows_for(m: Mutant) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < ZOO.len() {
        if let Subject::Protocol(x) = ZOO[i].subject
            && x as usize == m as usize
        {
            n += 1;
        }
        i += 1;
    }
    n
}

// Every Mutant in exactly one row: a new variant of `Mutant::ALL` needs its
// row in `ZOO` above (its commit, invariant and cheapest checker).
const _: () = {
    let mut i = 0;
    while i < Mutant::ALL.len() {
        assert!(
            rows_for(Mutant::ALL[i]) == 1,
            "every Mutant needs exactly one row in verification/src/zoo.rs ZOO"
        );
        i += 1;
    }
};

/// The rows of `scenario` (`S4`, case-insensitive) or all of them, and of
/// `mutant` (its name) when given.
pub fn select(scenario: Option<&str>, mutant: Option<&str>) -> Vec<ZooRow> {
    ZOO.iter()
        .copied()
        .filter(|r| match mutant {
            Some(m) => {
                r.subject.name().eq_ignore_ascii_case(m)
                    || r.subject
                        .name()
                        .rsplit("::")
                        .next()
                        .is_some_and(|n| n.eq_ignore_ascii_case(m))
            }
            None => true,
        })
        .filter(|r| match scenario {
            Some(s) => scenario_of(r).is_some_and(|x| x.eq_ignore_ascii_case(s)),
            None => true,
        })
        .collect()
}

/// The scenario a row's checker runs (`s4`), from its test name.
pub fn scenario_of(row: &ZooRow) -> Option<&'static str> {
    match row.checker {
        Checker::Loom(t) | Checker::Shuttle(t) => {
            t.split('_').next().filter(|s| s.starts_with('s'))
        }
        Checker::Native(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutant_is_in_exactly_one_row() {
        for m in Mutant::ALL {
            assert_eq!(rows_for(m), 1, "{m:?} must be in exactly one ZOO row");
        }
        let protocol_rows = ZOO
            .iter()
            .filter(|r| matches!(r.subject, Subject::Protocol(_)))
            .count();
        assert_eq!(protocol_rows, Mutant::ALL.len());
    }

    #[test]
    fn names_are_unique_and_selectable() {
        for r in ZOO {
            assert_eq!(select(None, Some(&r.subject.name())).len(), 1);
        }
        assert_eq!(select(None, Some("reloadoutsidelock")).len(), 1);
        assert!(select(Some("S4"), None).len() >= 2);
    }
}

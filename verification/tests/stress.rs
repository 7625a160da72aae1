//! The native stress at `cargo test` size: 200k operations over 3 threads
//! (two bugs of a bug hunt escaped 20k and were caught only by `verify`'s
//! 10^6), in tens of seconds in debug.

use std::time::Duration;

use fastzap::{DeletionStrategy, Mmu};
use fastzap_verification::stress::{StressConfig, run};

#[test]
fn stress_200k_ops_audit_passes_and_counters_settle() {
    let report = run(&StressConfig::new(200_000, Duration::from_secs(240), 42));
    assert!(report.passed(), "stress failed: {:#?}", report.violations);
    assert!(
        !report.stopped_by_time,
        "200k ops took over four minutes: {report:?}"
    );
    assert_eq!(
        report.total_ops, 200_000,
        "every budgeted operation ran: {report:?}"
    );
    for kind in [
        "fault/mapped",
        "translate/mapped",
        "handle_requests",
        "invalidate_zap_all_pages",
        "zap_all",
        "invalidate_range",
        "change_pte",
        "create",
    ] {
        assert!(
            report.ops_by_kind.get(kind).copied().unwrap_or(0) > 0,
            "the stress never ran {kind}: {:?}",
            report.ops_by_kind
        );
    }
    assert!(
        report.counts.pages.freed > 0,
        "no page was ever reclaimed: {:?}",
        report.counts
    );
}

/// The stress on the TDP MMU deletes only as that MMU can, and still deletes;
/// the shadow MMU's draw keeps every deletion.
#[test]
fn the_stress_draws_only_the_deletions_its_mmu_has() {
    for mmu in Mmu::ALL {
        let report = run(&StressConfig::new(40_000, Duration::from_secs(120), 5).on(mmu));
        assert!(report.passed(), "{}: {:#?}", mmu.name(), report.violations);
        let deletes: Vec<&str> = report
            .ops_by_kind
            .keys()
            .filter_map(|k| k.strip_prefix("delete/"))
            .map(|k| k.trim_end_matches("/err"))
            .collect();
        assert!(!deletes.is_empty(), "{}: no DELETE ran", mmu.name());
        for kind in &deletes {
            let strategy = match *kind {
                "merged311" => DeletionStrategy::Merged311,
                "seedv3" => DeletionStrategy::SeedV3,
                "seedv3-deferred" => DeletionStrategy::SeedV3Deferred,
                "slot-only-2019" => DeletionStrategy::SlotOnly2019,
                "slot-only-2020" => DeletionStrategy::SlotOnlyFlushing2020,
                "slot-only-quirk-off" => DeletionStrategy::SlotOnlyQuirkOff,
                other => panic!("an unknown DELETE kind {other}"),
            };
            assert!(
                mmu.supports(strategy),
                "{}: the stress ran delete/{kind}",
                mmu.name()
            );
        }
        if mmu == Mmu::Shadow {
            assert!(deletes.contains(&"seedv3"), "{deletes:?}");
        }
    }
}

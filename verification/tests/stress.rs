//! The native stress at `cargo test` size: 200k operations over 3 threads
//! (two bugs of a bug hunt escaped 20k and were caught only by `verify`'s
//! 10^6), in tens of seconds in debug.

use std::time::Duration;

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

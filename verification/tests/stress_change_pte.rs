//! The native stress with `change_pte` as the only notifier that takes host
//! pages away (`StressConfig::without_invalidate_range`): faults race it and
//! retry for `mmu_notifier_retry` because of it, and a fault that ignores
//! `mmu_notifier_seq` (`Mutant::FaultIgnoresNotifierSeq`) installs a pfn
//! `change_pte` replaced, which the ghost reports (I4) where it installs.

use std::time::Duration;

use fastzap::checking::Mutant;
use fastzap_verification::stress::{StressConfig, StressReport, run};

const OPS: u64 = 60_000;

/// Four vCPU threads on a machine with fewer cores: a fault is preempted
/// between its pfn read and `mmu_lock` now and then, which is the window a
/// whole `change_pte` must fall into for the mutant to install a stale pfn.
fn config(seed: u64) -> StressConfig {
    let mut config =
        StressConfig::new(OPS, Duration::from_secs(120), seed).without_invalidate_range();
    config.vm.vcpus = 4;
    config
}

fn count(report: &StressReport, kind: &str) -> u64 {
    report.ops_by_kind.get(kind).copied().unwrap_or(0)
}

#[test]
fn faults_race_change_pte_and_the_aging_notifiers() {
    let report = run(&config(7));
    println!("{:#?}", report.ops_by_kind);
    assert!(report.passed(), "stress failed: {:#?}", report.violations);
    assert_eq!(
        count(&report, "invalidate_range"),
        0,
        "{:?}",
        report.ops_by_kind
    );
    for kind in [
        "change_pte",
        "clear_flush_young",
        "test_young",
        "fault/mapped",
        // The race: a fault retried while only change_pte calls overlapped it.
        "fault/retry/change_pte",
    ] {
        assert!(
            count(&report, kind) > 0,
            "the stress never had {kind}: {:?}",
            report.ops_by_kind
        );
    }
}

/// The mutant needs a whole `change_pte` to fall between a fault's pfn read
/// and its `mmu_lock`, which real threads reach in most runs but not all:
/// up to five runs (seeds), stopping at the first that reports it.
#[test]
fn fault_ignores_notifier_seq_is_caught_through_change_pte() {
    let mut tried = Vec::new();
    for seed in 1..=5 {
        let mut config = config(seed);
        config.vm.mutant = Some(Mutant::FaultIgnoresNotifierSeq);
        let report = run(&config);
        assert_eq!(
            count(&report, "invalidate_range"),
            0,
            "{:?}",
            report.ops_by_kind
        );
        if let Some(found) = report.violations.iter().find(|v| v.contains("I4")) {
            println!(
                "caught in run {seed} after {} ops: {found}",
                report.total_ops
            );
            return;
        }
        tried.push((report.total_ops, count(&report, "fault/retry/change_pte")));
    }
    panic!(
        "FaultIgnoresNotifierSeq escaped five change_pte stress runs \
         (ops, fault retries for change_pte): {tried:?}"
    );
}

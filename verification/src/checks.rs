//! # The checks `fastzap verify` runs
//!
//! [`all`] lists them. Each one is a [`Check`] with a run function that
//! returns measured amounts. Later lanes (loom, shuttle, the bug zoo) add
//! their rows here. The scripted cases are in [`crate::scripted`]; a check
//! that must see a mutant caught runs it in a child process
//! ([`crate::child`]).

use fastzap::Mmu;
use fastzap::checking::Mutant;

use crate::child::{MutantRun, run_child};
use crate::memory::{long_stress_outcome, memory_growth};
use crate::report::{Check, CheckOutcome, Lane, Options};
use crate::scripted::scenario_on;
use crate::stress::{self, StressConfig, StressReport};
use crate::{conformance, mmu};

/// Every check, in run order: the workloads that drive a `Vm` once per MMU
/// of [`Mmu::ALL`] ([`native`]), then the rows that must see a mutant caught,
/// on the shadow MMU (the mutants are its own).
pub fn all() -> Vec<Check> {
    let mut checks: Vec<Check> = Mmu::ALL.into_iter().flat_map(native).collect();
    checks.extend(can_fail());
    checks
}

/// The checks of one MMU: the scripted scenario, the native stresses and
/// conformance against the sequential reference. On the TDP MMU the rows
/// leave out what is about the shadow MMU's structures
/// ([`mmu::shadow_internals`]): the audit, the audit points, the shadow-page,
/// descriptor and rmap counters; "what" says so (and never claims the audit,
/// which the report's coverage reads from it).
pub fn native(mmu: Mmu) -> Vec<Check> {
    let shadow = mmu::shadow_internals(mmu);
    let what = |shadow_what: &'static str, other: &'static str| {
        if shadow { shadow_what } else { other }
    };
    let mut checks = vec![
        Check {
            name: "audit-scenario",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: what(
                "a scripted scenario over every operation on the model config; the full audit after every step, drain at the end",
                "a scripted scenario over every operation on the model config (deletions this MMU has); every call must succeed, drain at the end",
            ),
            run: Box::new(move |_| audit_scenario(mmu)),
        },
        Check {
            name: "native-stress",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: what(
                "2 vCPU threads + 1 churn thread (slots, zaps, notifiers, shrinker); final audit; drain settles the counters",
                "2 vCPU threads + 1 churn thread (slots, zaps, notifiers, shrinker; deletions this MMU has); no unexpected error; drain settles",
            ),
            run: Box::new(move |o| {
                stress_row(
                    StressConfig::new(o.stress_ops, o.stress_wall, o.seed).on(mmu),
                    o,
                )
            }),
        },
    ];
    // The audit points are the shadow MMU's audit, at every commit.
    if shadow {
        checks.push(Check {
            name: "native-stress-audited",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: "the same stress with the audit points on: the locked audit at every commit, fault and memslot update, under contention",
            run: Box::new(move |o| {
                stress_row(
                    StressConfig::new(o.stress_ops, o.stress_wall, o.seed ^ 3)
                        .on(mmu)
                        .audited(),
                    o,
                )
            }),
        });
    }
    checks.extend([
        Check {
            name: "native-stress-kernel",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: "the same stress on kernel-sized tables (512 sptes per page, 3 levels) over 16384 gfns",
            run: Box::new(move |o| {
                stress_row(
                    StressConfig::kernel_sized(o.stress_ops, o.stress_wall, o.seed ^ 1).on(mmu),
                    o,
                )
            }),
        },
        Check {
            name: "native-stress-small-ebr",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: "the same stress with the facade's small EBR in place of crossbeam-epoch",
            run: Box::new(move |o| {
                stress_row(
                    StressConfig::small_ebr(o.stress_ops, o.stress_wall, o.seed ^ 2).on(mmu),
                    o,
                )
            }),
        },
        Check {
            name: "native-stress-long",
            mmu: Some(mmu),
            lane: Lane::Native,
            what: "4 vCPU threads + 1 churn thread, 10x the stress budget; resident memory must not grow over the run",
            run: Box::new(move |o| long_stress_row(o, mmu)),
        },
        Check {
            name: "conformance",
            mmu: Some(mmu),
            lane: Lane::Reference,
            what: what(
                "proptest-state-machine: 50-80 transitions per case over the whole API (every invalid-call class on purpose) against the sequential reference; audit and unchanged-on-error after every call; shrunk counterexamples",
                "proptest-state-machine: 50-80 transitions per case over the whole API (every invalid-call class on purpose; deletions this MMU has) against the sequential reference; unchanged-on-error after every call; shrunk counterexamples",
            ),
            run: Box::new(move |o| conformance_run(o, mmu)),
        },
    ]);
    checks
}

/// The rows that re-introduce bugs: each must be caught. The mutants are the
/// shadow MMU's, so these run on it alone.
pub fn can_fail() -> Vec<Check> {
    vec![
        Check {
            name: "audit-can-fail",
            mmu: Some(Mmu::Shadow),
            lane: Lane::Zoo,
            what: "the same scenario with bugs 1, 5 and 12 re-introduced: the audit must report violations for each",
            run: Box::new(audit_can_fail),
        },
        Check {
            name: "stress-can-fail",
            mmu: Some(Mmu::Shadow),
            lane: Lane::Zoo,
            what: "the audited stress with bugs 1, 2, 7, 11 (7 and 11 need a race; checkers.rs has sequential cases for the others), 12 and 16 re-introduced: it must report violations for each",
            run: Box::new(|o| mutants_caught(MutantRun::Stress, &STRESS_MUTANTS, o.seed)),
        },
        Check {
            name: "conformance-can-fail",
            mmu: Some(Mmu::Shadow),
            lane: Lane::Zoo,
            what: "conformance with bugs 10, 12 and 16 re-introduced: the reference must reject each",
            run: Box::new(conformance_can_fail),
        },
    ]
}

fn audit_scenario(mmu: Mmu) -> CheckOutcome {
    let r = scenario_on(mmu, None);
    if r.problems.is_empty() {
        CheckOutcome::pass(
            r.steps,
            "steps",
            if mmu::shadow_internals(mmu) {
                "audit clean after every step; counters settled"
            } else {
                "every call succeeded; drain settled"
            },
        )
    } else {
        CheckOutcome::fail(r.steps, "steps", r.problems.join("\n"))
    }
}

/// The mutants the scripted scenario must expose through the audit.
pub const AUDIT_MUTANTS: [Mutant; 3] = [
    Mutant::SkipRmapForObsolete,
    Mutant::ObsoleteIgnoresInvalid,
    Mutant::FaultIntoObsoleteRoot,
];

fn mutants_caught(kind: MutantRun, mutants: &[Mutant], seed: u64) -> CheckOutcome {
    let mut caught = 0;
    let mut detail = Vec::new();
    for m in mutants {
        match run_child(kind, *m, seed) {
            Ok(r) => {
                let ended = match r.amount {
                    Some(n) => format!(
                        "ran {n} {}",
                        match kind {
                            MutantRun::Scenario | MutantRun::Move | MutantRun::Tlb => "steps",
                            MutantRun::Conformance => "cases",
                            MutantRun::Stress => "ops",
                        }
                    ),
                    None => format!("died: {}", r.status),
                };
                match r.caught {
                    Some(first) => {
                        caught += 1;
                        detail.push(format!("{m:?}: caught, {ended} ({first})"));
                    }
                    None => detail.push(format!("{m:?}: NOT caught, {ended}")),
                }
            }
            Err(e) => detail.push(format!("{m:?}: {e}")),
        }
    }
    let detail = format!(
        "{caught}/{} mutants caught, each in its own process; {}",
        mutants.len(),
        detail.join("; ")
    );
    if caught == mutants.len() {
        CheckOutcome::pass(caught as u64, "mutants", detail)
    } else {
        CheckOutcome::fail(caught as u64, "mutants", detail)
    }
}

fn audit_can_fail(options: &Options) -> CheckOutcome {
    mutants_caught(MutantRun::Scenario, &AUDIT_MUTANTS, options.seed)
}

fn stress_row(config: StressConfig, options: &Options) -> CheckOutcome {
    stress_row_report(config, options).0
}

fn stress_row_report(config: StressConfig, options: &Options) -> (CheckOutcome, StressReport) {
    let r = stress::run(&config);
    let kinds = r
        .ops_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The shadow-page and descriptor counters are the shadow MMU's.
    let counters = if mmu::shadow_internals(config.vm.mmu) {
        format!(
            "; pages alloc/retired/freed {}/{}/{}, descs {}/{}/{}",
            r.counts.pages.allocated,
            r.counts.pages.retired,
            r.counts.pages.freed,
            r.counts.descs.allocated,
            r.counts.descs.retired,
            r.counts.descs.freed,
        )
    } else {
        String::new()
    };
    let detail = format!(
        "{} ops in {:.2}s ({:.0} ops/s){}{counters}; {} MMU; {kinds}{}",
        r.total_ops,
        r.duration.as_secs_f64(),
        r.total_ops as f64 / r.duration.as_secs_f64().max(1e-9),
        if r.stopped_by_time {
            ", STOPPED BY THE WALL-CLOCK BOUND"
        } else {
            ""
        },
        config.vm.mmu.name(),
        if r.violations.is_empty() {
            String::new()
        } else {
            format!("\nVIOLATIONS:\n{}", r.violations.join("\n"))
        }
    );
    // Stopping early on the bound is reported, and fails the row only if it
    // left less than the configured budget run.
    let outcome = if r.passed() && r.total_ops >= options.stress_ops {
        CheckOutcome::pass(r.total_ops, "ops", detail)
    } else {
        CheckOutcome::fail(r.total_ops, "ops", detail)
    };
    (outcome, r)
}

/// The long stress: 10 times the budget over 4 vCPU threads and the churn
/// thread. Besides the usual checks, resident memory (sampled every 50 ms) must
/// not grow ([`memory_growth`]). A run too short for
/// [`crate::memory::MEMORY_SAMPLES`]
/// samples is "not judged": the row carries it in
/// [`CheckOutcome::unjudged`], which fails a full run.
fn long_stress_row(options: &Options, mmu: Mmu) -> CheckOutcome {
    let mut long = options.clone();
    long.stress_ops = options.stress_ops * 10;
    let config =
        StressConfig::long(long.stress_ops, options.stress_wall * 3, options.seed ^ 3).on(mmu);
    let (outcome, r) = stress_row_report(config, &long);
    let peak = stress::peak_resident_kib().unwrap_or(0);
    long_stress_outcome(outcome, memory_growth(&r.rss_kib), peak)
}

fn conformance_run(options: &Options, mmu: Mmu) -> CheckOutcome {
    let r = conformance::run_many_on(mmu, options.cases, options.seed);
    let s = r.stats;
    let missing: Vec<&str> = conformance::Invalid::ALL
        .iter()
        .filter(|c| **c != conformance::Invalid::Other && s.invalid(**c) == 0)
        .map(|c| c.name())
        .collect();
    let detail = format!(
        "{} cases, {} transitions ({}..={} per case), {} calls ({} failed calls checked unchanged: {}), {} Mapped translations, {} generation wraps{}",
        r.cases,
        s.transitions,
        conformance::TRANSITIONS.start(),
        conformance::TRANSITIONS.end(),
        s.steps,
        s.errors,
        s.invalid_summary(),
        s.mapped,
        s.wraps,
        if missing.is_empty() {
            String::new()
        } else {
            format!("; NEVER GENERATED: {}", missing.join(", "))
        }
    );
    // A class of invalid call that never occurs means the generator stopped
    // producing it; over 100 cases that is a failure, not bad luck.
    let generated = missing.is_empty() || r.cases < 100;
    match r.failure {
        None if r.cases >= options.cases && generated => {
            CheckOutcome::pass(u64::from(r.cases), "cases", detail)
        }
        None => CheckOutcome::fail(u64::from(r.cases), "cases", detail),
        Some(why) => CheckOutcome::fail(u64::from(r.cases), "cases", format!("{detail}\n{why}")),
    }
}

/// The mutants the audited native stress must expose. Bugs 2, 7 and 11 need
/// a race: the stress finds them on real threads. Bug 1 leaves rmap entries into
/// freed pages; under a mutant the core never gives poisoned memory back, so
/// the stress reads poison instead of crashing. Bug 6 (`NoSlotsLock`) is not
/// here: the stress saw it only through the in-flight audit's survivor check,
/// which took a free `slots_lock` for "no zap in flight" (the very thing the
/// bug breaks); with that check confined to the quiescent audit, the stress
/// does not see it, and its zoo row is S8 under shuttle.
pub const STRESS_MUTANTS: [Mutant; 6] = [
    Mutant::SkipRmapForObsolete,
    Mutant::ReloadOutsideLock,
    Mutant::ZapFromHead,
    Mutant::InvalidSlotFaultInstallsMmio,
    Mutant::FaultIntoObsoleteRoot,
    Mutant::MmioCacheIgnoresGen,
];

/// The mutants the reference must reject (their bugs show to one caller).
pub const CONFORMANCE_MUTANTS: [Mutant; 3] = [
    Mutant::MoveReusesMetadata,
    Mutant::FaultIntoObsoleteRoot,
    Mutant::MmioCacheIgnoresGen,
];

fn conformance_can_fail(options: &Options) -> CheckOutcome {
    mutants_caught(MutantRun::Conformance, &CONFORMANCE_MUTANTS, options.seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each check that builds a VM runs on every MMU; the shadow MMU's audit
    /// rows (and the mutants' rows) on it alone; a TDP row never claims the
    /// audit, which the report's coverage reads from "what".
    #[test]
    fn every_vm_check_runs_on_every_mmu() {
        let all = all();
        let names = |mmu: Mmu| -> Vec<&str> {
            all.iter()
                .filter(|c| c.mmu == Some(mmu) && c.lane != Lane::Zoo)
                .map(|c| c.name)
                .collect()
        };
        let shadow = names(Mmu::Shadow);
        let tdp = names(Mmu::Tdp);
        assert!(tdp.contains(&"conformance") && tdp.contains(&"native-stress"));
        assert!(tdp.contains(&"audit-scenario"));
        for name in &shadow {
            assert!(
                tdp.contains(name) || *name == "native-stress-audited",
                "{name} does not run on the TDP MMU"
            );
        }
        assert!(!tdp.contains(&"native-stress-audited"));
        assert!(all.iter().all(|c| c.mmu.is_some()));
        for c in all.iter().filter(|c| c.lane == Lane::Zoo) {
            assert_eq!(c.mmu, Some(Mmu::Shadow), "{}", c.name);
        }
        for c in all.iter().filter(|c| c.mmu == Some(Mmu::Tdp)) {
            assert!(!c.what.contains("audit"), "{}: {}", c.name, c.what);
        }
    }
}

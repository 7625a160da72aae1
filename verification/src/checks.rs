//! # The checks `fastzap verify` runs
//!
//! [`all`] lists them. Each one is a [`Check`] with a run function that
//! returns measured amounts. Later lanes (loom, shuttle, the bug zoo) add
//! their rows here.

use fastzap::checking::Mutant;
use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, Hva, MmuError, SlotId, SlotSpec, Translation, VcpuId, Vm,
};

use crate::conformance;
use crate::memory::{long_stress_outcome, memory_growth};
use crate::report::{Check, CheckOutcome, Lane, Options};
use crate::stress::{self, StressConfig, StressReport};

/// Every check, in run order.
pub fn all() -> Vec<Check> {
    vec![
        Check {
            name: "audit-scenario",
            lane: Lane::Native,
            what: "a scripted scenario over every operation on the model config; the full audit after every step, drain at the end",
            run: Box::new(|_| audit_scenario()),
        },
        Check {
            name: "audit-can-fail",
            lane: Lane::Zoo,
            what: "the same scenario with bugs 1, 5 and 12 re-introduced: the audit must report violations for each",
            run: Box::new(audit_can_fail),
        },
        Check {
            name: "native-stress",
            lane: Lane::Native,
            what: "2 vCPU threads + 1 churn thread (slots, zaps, notifiers, shrinker); final audit; drain settles the counters",
            run: Box::new(|o| {
                stress_row(StressConfig::new(o.stress_ops, o.stress_wall, o.seed), o)
            }),
        },
        Check {
            name: "native-stress-audited",
            lane: Lane::Native,
            what: "the same stress with the audit points on: the locked audit at every commit, fault and memslot update, under contention",
            run: Box::new(|o| {
                stress_row(
                    StressConfig::new(o.stress_ops, o.stress_wall, o.seed ^ 3).audited(),
                    o,
                )
            }),
        },
        Check {
            name: "native-stress-kernel",
            lane: Lane::Native,
            what: "the same stress on kernel-sized tables (512 sptes per page, 3 levels) over 16384 gfns",
            run: Box::new(|o| {
                stress_row(
                    StressConfig::kernel_sized(o.stress_ops, o.stress_wall, o.seed ^ 1),
                    o,
                )
            }),
        },
        Check {
            name: "native-stress-small-ebr",
            lane: Lane::Native,
            what: "the same stress with the facade's small EBR in place of crossbeam-epoch",
            run: Box::new(|o| {
                stress_row(
                    StressConfig::small_ebr(o.stress_ops, o.stress_wall, o.seed ^ 2),
                    o,
                )
            }),
        },
        Check {
            name: "native-stress-long",
            lane: Lane::Native,
            what: "4 vCPU threads + 1 churn thread, 10x the stress budget; resident memory must not grow over the run",
            run: Box::new(long_stress_row),
        },
        Check {
            name: "stress-can-fail",
            lane: Lane::Zoo,
            what: "the audited stress with bugs 1, 2, 7, 11 (7 and 11 need a race; checkers.rs has sequential cases for the others), 12 and 16 re-introduced: it must report violations for each",
            run: Box::new(|o| mutants_caught(MutantRun::Stress, &STRESS_MUTANTS, o.seed)),
        },
        Check {
            name: "conformance",
            lane: Lane::Reference,
            what: "proptest-state-machine: 50-80 transitions per case over the whole API (every invalid-call class on purpose) against the sequential reference; audit and unchanged-on-error after every call; shrunk counterexamples",
            run: Box::new(conformance_run),
        },
        Check {
            name: "conformance-can-fail",
            lane: Lane::Zoo,
            what: "conformance with bugs 10, 12 and 16 re-introduced: the reference must reject each",
            run: Box::new(conformance_can_fail),
        },
    ]
}

/// The result of a scripted scenario: steps run, and what went wrong.
#[derive(Debug, Default)]
pub struct ScenarioResult {
    /// Steps run.
    pub steps: u64,
    /// Violations and unexpected errors, with the step that showed them.
    pub problems: Vec<String>,
}

/// A scripted scenario on `Config::model()` (4 gfns, 2-bit generation):
/// slots, faults in both address spaces, MMIO, the fast and the eager zap,
/// faults on an obsolete root, every notifier, the shrinker, MOVE, DELETE with
/// both strategies, generation wraparound. The audit runs after every step.
pub fn scenario(mutant: Option<Mutant>) -> ScenarioResult {
    scenario_reporting(mutant, &mut |_| {})
}

/// [`scenario`], calling `report` with each problem as soon as it is found (a
/// mutant may corrupt memory and crash the process before the end).
pub fn scenario_reporting(mutant: Option<Mutant>, report: &mut dyn FnMut(&str)) -> ScenarioResult {
    let mut config = Config::model();
    config.mutant = mutant;
    let mut result = ScenarioResult::default();
    let vm = match Vm::new(config) {
        Ok(vm) => vm,
        Err(e) => {
            result.problems.push(format!("Vm::new: {e}"));
            return result;
        }
    };
    let (v0, v1) = (VcpuId(0), VcpuId(1));
    let slot = |id: u16, base_gfn: u64, npages: u64, page: u64| SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base_gfn),
        npages,
        userspace_addr: Hva(0x10_0000 + page * 4096),
    };
    let mut step = |name: &str, run: &dyn Fn(&Vm) -> Result<(), MmuError>| {
        result.steps += 1;
        if let Err(e) = run(&vm) {
            report(&format!("{name}: {e}"));
            result.problems.push(format!("{name}: {e}"));
        }
        if let Err(violations) = fastzap::check::audit(&vm) {
            for v in violations.into_iter().take(4) {
                report(&format!("after {name}: {v}"));
                result.problems.push(format!("after {name}: {v}"));
            }
        }
    };
    let access = |vm: &Vm, v: VcpuId, gfn: u64, write: bool| -> Result<(), MmuError> {
        for _ in 0..4 {
            match vm.translate(v, Gfn(gfn))? {
                Translation::RequestPending => {
                    vm.handle_requests(v)?;
                }
                Translation::Miss => {
                    if let Fault::Retry(_) = vm.page_fault(v, Gfn(gfn), write)? {
                        vm.handle_requests(v)?;
                    }
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    };
    let fill = |vm: &Vm| -> Result<(), MmuError> {
        for gfn in 0..4 {
            access(vm, v0, gfn, gfn % 2 == 0)?;
            access(vm, v1, gfn, false)?;
        }
        Ok(())
    };
    step("create slot 0", &|vm| vm.create_memslot(slot(0, 0, 2, 0)));
    step("create slot 1", &|vm| vm.create_memslot(slot(1, 2, 1, 8)));
    step("first accesses", &fill);
    step("fast zap", &|vm| vm.invalidate_zap_all_pages().map(drop));
    step("fault on the obsolete root", &|vm| {
        vm.page_fault(v0, Gfn(1), true).map(drop)
    });
    step("fault on the obsolete root (smm)", &|vm| {
        vm.page_fault(v1, Gfn(3), false).map(drop)
    });
    step("accesses after reload", &fill);
    step("young", &|vm| {
        vm.test_young(Hva(0x10_0000), Hva(0x10_0000 + 16 * 4096))?;
        vm.clear_flush_young(Hva(0x10_0000), Hva(0x10_0000 + 16 * 4096))
            .map(drop)
    });
    step("change_pte", &|vm| vm.change_pte(Hva(0x10_0000)).map(drop));
    step("accesses after change_pte", &fill);
    step("invalidate_range", &|vm| {
        vm.invalidate_range(Hva(0x10_0000), Hva(0x10_0000 + 4096))
            .map(drop)
    });
    step("accesses after invalidate_range", &fill);
    step("eager zap", &|vm| vm.zap_all().map(drop));
    step("fault on the zapped root", &|vm| {
        vm.page_fault(v0, Gfn(0), false).map(drop)
    });
    step("accesses after eager zap", &fill);
    step("shrink", &|vm| vm.shrink(1).map(drop));
    step("accesses after shrink", &fill);
    step("move slot 1", &|vm| vm.move_memslot(SlotId(1), Gfn(3)));
    step("accesses after move", &fill);
    step("delete slot 0 (merged 3.11)", &|vm| {
        vm.delete_memslot_with(SlotId(0), DeletionStrategy::Merged311)
    });
    step("accesses after delete", &fill);
    step("create slot 0 again", &|vm| {
        vm.create_memslot(slot(0, 0, 2, 4))
    });
    step("accesses after create", &fill);
    step("delete slot 0 (seed v3)", &|vm| {
        vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3)
    });
    step("accesses after delete", &fill);
    step("fault before the wrap", &|vm| access(vm, v0, 0, true));
    for _ in 0..4 {
        step("fast zap with the vCPUs out", &|vm| {
            vm.invalidate_zap_all_pages().map(drop)
        });
    }
    step(
        "fault on a root invalid a full generation cycle ago",
        &|vm| vm.page_fault(v0, Gfn(1), true).map(drop),
    );
    step("translate after the wrap", &|vm| {
        vm.translate(v0, Gfn(1)).map(drop)
    });
    for _ in 0..5 {
        step("fast zap (generation wraps)", &|vm| {
            vm.invalidate_zap_all_pages().map(drop)
        });
        step("accesses", &fill);
    }
    if !vm.drain(64) {
        result
            .problems
            .push(format!("drain did not settle: {:?}", vm.counts()));
    }
    result
}

/// One step of a scripted case.
type Step<'a> = dyn Fn(&Vm) -> Result<(), MmuError> + 'a;

/// Bug 10's sequential case: a slot of two pages at gfn 0, a write fault on
/// gfn 1, the slot MOVEd to gfn 1, a fault on gfn 2 (the moved slot's second
/// page); the audit after every step. A MOVE that keeps the old rmap and
/// lpage_info arrays leaves the new mapping on the old slot's rmap (I1).
pub fn move_case(mutant: Option<Mutant>) -> ScenarioResult {
    let mut config = Config::model();
    config.mutant = mutant;
    let mut result = ScenarioResult::default();
    let vm = match Vm::new(config) {
        Ok(vm) => vm,
        Err(e) => {
            result.problems.push(format!("Vm::new: {e}"));
            return result;
        }
    };
    let enter = |vm: &Vm| -> Result<(), MmuError> {
        for v in 0..2 {
            vm.handle_requests(VcpuId(v))?;
        }
        Ok(())
    };
    let steps: [(&str, &Step<'_>); 5] = [
        ("create slot 0", &|vm| {
            vm.create_memslot(SlotSpec {
                id: SlotId(0),
                base_gfn: Gfn(0),
                npages: 2,
                userspace_addr: Hva(0x10_0000),
            })?;
            enter(vm)
        }),
        ("write fault gfn 1", &|vm| {
            vm.page_fault(VcpuId(0), Gfn(1), true).map(drop)
        }),
        ("move slot 0 to gfn 1", &|vm| {
            vm.move_memslot(SlotId(0), Gfn(1))?;
            enter(vm)
        }),
        ("fault gfn 2", &|vm| {
            vm.page_fault(VcpuId(0), Gfn(2), false).map(drop)
        }),
        ("drain", &|vm| {
            vm.drain(8);
            Ok(())
        }),
    ];
    for (name, run) in steps {
        result.steps += 1;
        if let Err(e) = run(&vm) {
            result.problems.push(format!("{name}: {e}"));
        }
        if let Err(violations) = fastzap::check::audit(&vm) {
            for v in violations.into_iter().take(4) {
                result.problems.push(format!("after {name}: {v}"));
            }
        }
    }
    result
}

fn audit_scenario() -> CheckOutcome {
    let r = scenario(None);
    if r.problems.is_empty() {
        CheckOutcome::pass(
            r.steps,
            "steps",
            "audit clean after every step; counters settled",
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

/// The hidden command that runs one mutant in a child process: a mutant may
/// free memory that is still in use, and its corruption must not crash the
/// runner or leak into the next check.
pub const CHILD_COMMAND: &str = "__mutant";

/// Which mutant run a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutantRun {
    /// [`scenario`] with the audit after every step.
    Scenario,
    /// [`move_case`]: a MOVE then a fault into the moved range, audited.
    Move,
    /// [`conformance::run_many_with`], 500 cases.
    Conformance,
    /// The audited native stress, 200,000 operations within 20 s.
    Stress,
}

impl MutantRun {
    /// The run's name.
    pub fn name(self) -> &'static str {
        match self {
            MutantRun::Scenario => "scenario",
            MutantRun::Move => "move",
            MutantRun::Conformance => "conformance",
            MutantRun::Stress => "stress",
        }
    }
}

/// The body of the child process: runs `kind` with the mutant named `mutant`
/// and prints `CAUGHT <what>` lines as soon as it finds something, then
/// `DONE <amount>`. Returns the exit code.
pub fn child_main(args: &[String]) -> u8 {
    let (Some(kind), Some(name), Some(seed)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: fastzap {CHILD_COMMAND} scenario|conformance|stress MUTANT SEED");
        return 2;
    };
    let Some(mutant) = Mutant::ALL.into_iter().find(|m| format!("{m:?}") == *name) else {
        eprintln!("unknown mutant {name}");
        return 2;
    };
    let seed = seed.parse().unwrap_or(0);
    let say = |line: &str| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.replace('\n', " | "));
        let _ = out.flush();
    };
    match kind.as_str() {
        "scenario" => {
            let r = scenario_reporting(Some(mutant), &mut |p| say(&format!("CAUGHT {p}")));
            say(&format!("DONE {}", r.steps));
        }
        "move" => {
            let r = move_case(Some(mutant));
            for p in &r.problems {
                say(&format!("CAUGHT {p}"));
            }
            say(&format!("DONE {}", r.steps));
        }
        "conformance" => {
            let r = conformance::run_many_with(500, seed, Some(mutant));
            if let Some(why) = r.failure {
                // The lengths first: the runner keeps 300 characters.
                let shrunk = r.shrunk.unwrap_or_default();
                say(&format!(
                    "CAUGHT shrunk to {} transitions from {}: {why}",
                    shrunk.to, shrunk.from
                ));
            }
            say(&format!("DONE {}", r.cases));
        }
        "stress" => {
            let mut config =
                StressConfig::new(200_000, std::time::Duration::from_secs(20), seed).audited();
            config.vm.mutant = Some(mutant);
            let r = stress::run(&config);
            if let Some(first) = r.violations.first() {
                say(&format!("CAUGHT {first}"));
            }
            say(&format!("DONE {}", r.total_ops));
        }
        other => {
            eprintln!("unknown run {other}");
            return 2;
        }
    }
    0
}

/// What a child process found: the first problem, the amount it reported,
/// and how it ended.
#[derive(Debug, Clone)]
pub struct ChildResult {
    /// The first `CAUGHT` line.
    pub caught: Option<String>,
    /// The `DONE` amount, if it got that far.
    pub amount: Option<u64>,
    /// The exit status, as text.
    pub status: String,
}

/// Runs one mutant in a child process of the current executable.
pub fn run_child(kind: MutantRun, mutant: Mutant, seed: u64) -> Result<ChildResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let output = std::process::Command::new(exe)
        .args([
            CHILD_COMMAND,
            kind.name(),
            &format!("{mutant:?}"),
            &seed.to_string(),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let caught = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CAUGHT "))
        .map(|s| s.chars().take(300).collect());
    let amount = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DONE "))
        .and_then(|n| n.trim().parse().ok());
    Ok(ChildResult {
        caught,
        amount,
        status: output.status.to_string(),
    })
}

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
                            MutantRun::Scenario | MutantRun::Move => "steps",
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
    let detail = format!(
        "{} ops in {:.2}s ({:.0} ops/s){}; pages alloc/retired/freed {}/{}/{}, descs {}/{}/{}; {kinds}{}",
        r.total_ops,
        r.duration.as_secs_f64(),
        r.total_ops as f64 / r.duration.as_secs_f64().max(1e-9),
        if r.stopped_by_time {
            ", STOPPED BY THE WALL-CLOCK BOUND"
        } else {
            ""
        },
        r.counts.pages.allocated,
        r.counts.pages.retired,
        r.counts.pages.freed,
        r.counts.descs.allocated,
        r.counts.descs.retired,
        r.counts.descs.freed,
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
fn long_stress_row(options: &Options) -> CheckOutcome {
    let mut long = options.clone();
    long.stress_ops = options.stress_ops * 10;
    let config = StressConfig::long(long.stress_ops, options.stress_wall * 3, options.seed ^ 3);
    let (outcome, r) = stress_row_report(config, &long);
    let peak = stress::peak_resident_kib().unwrap_or(0);
    long_stress_outcome(outcome, memory_growth(&r.rss_kib), peak)
}

fn conformance_run(options: &Options) -> CheckOutcome {
    let r = conformance::run_many(options.cases, options.seed);
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

    #[test]
    fn the_move_case_passes_without_the_mutant_and_fails_with_it() {
        let clean = move_case(None);
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        let bug = move_case(Some(Mutant::MoveReusesMetadata));
        assert!(
            bug.problems.iter().any(|p| p.contains("I1 rmap integrity")),
            "{:?}",
            bug.problems
        );
    }
}

//! # The whole verdict
//!
//! [`verify`] runs what a [`Plan`] selects: the native checks in-process,
//! the loom and shuttle lanes through `cargo` ([`crate::lanes`]), and the bug
//! zoo ([`crate::zoo`]), whose loom and shuttle rows read the model results of
//! the lane runs and whose native rows run in child processes, and Miri
//! (`.ci/miri`, [`lanes::run_miri`]). It returns a [`Verdict`], which
//! [`crate::report`] writes as the report directory; [`crate::evidence`]
//! holds what a PASS needs besides nothing failing.

use std::time::{Duration, Instant};

use fastzap_models::results::{ModelResult, Verdict as ModelVerdict, reported_in};

use crate::checks;
use crate::child::{self, MutantRun};
use crate::lanes::{self, LaneRun, ModelLane};
use crate::progress::Progress;
use crate::report::{Plan, Verdict, ZooOutcome, run_checks};
use crate::zoo::{self, Checker, ZooRow};

/// The cheap loom models `--quick` runs besides the zoo's loom rows (every
/// scenario runs in `--quick`'s shuttle lane; these are the loom models
/// under ten seconds). Each must run: a name the loom lane does not report
/// (a renamed test) fails the run.
pub const QUICK_LOOM: &[&str] = &[
    "s2_translate_vs_reclaim",
    "s3s_seed_v3_delete_vs_shrinker",
    "s2b_translate_vs_per_batch_commit",
    "s6_fault_into_passed_root",
    "s9_mmio_generation",
    "s9w_mmio_generation_wrap",
    "s11_fault_vs_invalidate_range",
    "s11c_fault_vs_change_pte_and_aging",
    "s12_tlb_vs_invalidate_range",
    "s2019_slot_only_delete_vs_vcpu",
    "s2019f_flushing_delete_vs_vcpu",
    "s2019q_quirk_off_delete_vs_vcpu",
    "ebr_grace_period_is_respected",
    "ebr_synchronize_waits_for_readers",
    "litmus_l1_request_vs_walk",
    "reclaim_used_correctly_passes",
];

/// Shuttle executions per scheduler in `--quick` (`FASTZAP_SHUTTLE_ITERS`;
/// the full run uses the tests' own 2,500). The zoo's twins keep their own
/// settings in both.
pub const QUICK_SHUTTLE_ITERS: usize = 250;

fn lane_filters(plan: &Plan, lane: ModelLane, rows: &[ZooRow]) -> Option<(Vec<String>, bool)> {
    let zoo_tests: Vec<String> = rows
        .iter()
        .filter_map(|r| match (r.checker, lane) {
            (Checker::Loom(t), ModelLane::Loom) | (Checker::Shuttle(t), ModelLane::Shuttle) => {
                Some(t.to_string())
            }
            _ => None,
        })
        .collect();
    let selected = match lane {
        ModelLane::Loom => plan.loom,
        ModelLane::Shuttle => plan.shuttle,
    };
    if !selected {
        // Only the zoo's rows, by exact name.
        return (!zoo_tests.is_empty()).then_some((zoo_tests, true));
    }
    if let Some(s) = &plan.scenario {
        // Every test of the scenario: its name starts with `s4_`.
        return Some((vec![format!("{}_", s.to_ascii_lowercase())], false));
    }
    if plan.options.quick && lane == ModelLane::Loom {
        let mut tests: Vec<String> = QUICK_LOOM.iter().map(|t| t.to_string()).collect();
        tests.extend(zoo_tests);
        tests.sort();
        tests.dedup();
        return Some((tests, true));
    }
    Some((Vec::new(), false))
}

/// Runs the plan.
pub fn verify(plan: &Plan, progress: &Progress) -> Verdict {
    let started = Instant::now();
    let rows = if plan.zoo || plan.mutant.is_some() {
        zoo::select(plan.scenario.as_deref(), plan.mutant.as_deref())
    } else {
        Vec::new()
    };
    let mut verdict = Verdict {
        plan: plan.clone(),
        native: None,
        lanes: Vec::new(),
        lane_errors: Vec::new(),
        miri: None,
        zoo: Vec::new(),
        total: Duration::ZERO,
    };
    if plan.native && plan.mutant.is_none() {
        let all = checks::all();
        let bar = progress.lane("native", Some(all.len() as u64));
        let report = run_checks(&all, &plan.options, &bar);
        bar.finish(&format!(
            "{} checks in {:.1}s: {}",
            report.rows.len(),
            report.total.as_secs_f64(),
            if report.passed() { "PASS" } else { "FAIL" }
        ));
        verdict.native = Some(report);
    }
    for lane in [ModelLane::Shuttle, ModelLane::Loom] {
        let Some((filters, exact)) = lane_filters(plan, lane, &rows) else {
            continue;
        };
        let len = exact.then_some(filters.len() as u64);
        let bar = progress.lane(lane.name(), len);
        bar.running(&format!("cargo {} (building)", lane.name()));
        let mut env = Vec::new();
        if plan.options.quick && lane == ModelLane::Shuttle {
            env.push((
                "FASTZAP_SHUTTLE_ITERS".to_string(),
                QUICK_SHUTTLE_ITERS.to_string(),
            ));
        }
        let run = lanes::run_lane(lane, &filters, exact, &env, &plan.out, &mut |line| {
            if let Some(t) = lanes::parse_test_line(line) {
                bar.done(&format!(
                    "{} {}",
                    t.name,
                    if t.ok { "ok" } else { "FAILED" }
                ));
            } else if let Some(name) = line.strip_prefix("     Running ") {
                bar.running(name);
            }
        });
        match run {
            Ok(run) => {
                bar.finish(&format!(
                    "{} tests, {} failed, {} model results in {:.1}s",
                    run.tests.len(),
                    run.failed().len(),
                    run.results.len(),
                    run.time.as_secs_f64()
                ));
                verdict.lanes.push(run);
            }
            Err(e) => {
                bar.finish(&format!("could not run cargo {}: {e}", lane.name()));
                verdict
                    .lane_errors
                    .push(format!("cargo {}: {e}", lane.name()));
            }
        }
    }
    if !rows.is_empty() {
        let bar = progress.lane("zoo", Some(rows.len() as u64));
        for row in &rows {
            bar.running(&row.subject.name());
            let outcome = run_row(row, &verdict.lanes, plan.options.seed);
            bar.done(&format!(
                "{}: {} ({})",
                row.subject.name(),
                outcome.verdict,
                outcome.reported.as_deref().unwrap_or("nothing reported")
            ));
            verdict.zoo.push(outcome);
        }
        let caught = verdict.zoo.iter().filter(|z| z.caught()).count();
        bar.finish(&format!("{caught}/{} caught", rows.len()));
    }
    if plan.miri && plan.mutant.is_none() {
        let bar = progress.lane("miri", None);
        bar.running(".ci/miri (building)");
        match lanes::run_miri(&plan.out, &mut |line| {
            if let Some(t) = lanes::parse_test_line(line) {
                bar.done(&format!(
                    "{} {}",
                    t.name,
                    if t.ok { "ok" } else { "FAILED" }
                ));
            }
        }) {
            Ok(run) => {
                bar.finish(&run.summary);
                verdict.miri = Some(run);
            }
            Err(e) => {
                bar.finish(&format!("could not run .ci/miri: {e}"));
                verdict.lane_errors.push(format!(".ci/miri: {e}"));
            }
        }
    }
    if let Some(m) = &plan.mutant
        && rows.is_empty()
    {
        verdict.lane_errors.push(format!(
            "no zoo row named {m:?} (see `fastzap verify --help`)"
        ));
    }
    verdict.total = started.elapsed();
    verdict
}

fn model_verdict(row: &ZooRow, r: &ModelResult) -> &'static str {
    let expected = row.expected.name();
    match (r.verdict, r.reported.as_deref()) {
        (ModelVerdict::Escaped, _) | (ModelVerdict::Pass, _) => "ESCAPED",
        (_, Some(rep)) if rep == expected => "caught",
        (_, Some("loom causality violation")) if row.loom_race_counts => "caught",
        _ => "WRONG INVARIANT",
    }
}

fn run_row(row: &ZooRow, lanes_run: &[LaneRun], seed: u64) -> ZooOutcome {
    let mut outcome = ZooOutcome {
        row: *row,
        reported: None,
        amount: None,
        unit: "executions",
        seconds: None,
        settings: String::new(),
        verdict: "NOT RUN",
        counterexample: None,
        detail: String::new(),
    };
    match row.checker {
        Checker::Loom(test) | Checker::Shuttle(test) => {
            let lane = if matches!(row.checker, Checker::Loom(_)) {
                ModelLane::Loom
            } else {
                ModelLane::Shuttle
            };
            let Some(run) = lanes_run.iter().find(|l| l.lane == lane) else {
                outcome.detail = format!("the {} lane did not run", lane.name());
                return outcome;
            };
            let Some(r) = run.result_of(test) else {
                outcome.detail = match run.tests.iter().find(|t| t.name == test) {
                    Some(t) => format!(
                        "{test} {} but wrote no result (see {})",
                        if t.ok { "passed" } else { "FAILED" },
                        run.log.display()
                    ),
                    None => format!("{test} did not run (see {})", run.log.display()),
                };
                return outcome;
            };
            outcome.reported = r.reported.clone();
            outcome.amount = Some(r.executions);
            outcome.seconds = Some(r.seconds);
            outcome.settings = r.settings.clone();
            outcome.counterexample = r.counterexample.clone();
            outcome.verdict = model_verdict(row, r);
            outcome.detail = r.message.clone().unwrap_or_default();
        }
        Checker::Native(kind) => {
            let mutant = match row.subject {
                zoo::Subject::Protocol(m) => m,
                _ => {
                    outcome.detail = "a native checker runs protocol mutants only".to_string();
                    return outcome;
                }
            };
            let t = Instant::now();
            let child = child::run_child(kind, mutant, seed);
            outcome.seconds = Some(t.elapsed().as_secs_f64());
            outcome.unit = match kind {
                MutantRun::Scenario | MutantRun::Move | MutantRun::Tlb => "steps",
                MutantRun::Conformance => "cases",
                MutantRun::Stress => "ops",
            };
            outcome.settings = match kind {
                MutantRun::Scenario => "the scripted scenario, audit after every step".to_string(),
                MutantRun::Move => "bug 10's sequential case, audit after every step".to_string(),
                MutantRun::Tlb => "the flush-site twins' cases, audit after every step".to_string(),
                MutantRun::Conformance => format!("500 proptest cases, seed {seed:#x}"),
                MutantRun::Stress => {
                    format!("audited stress, 200,000 ops within 20 s, seed {seed:#x}")
                }
            };
            match child {
                Ok(c) => {
                    outcome.amount = c.amount;
                    outcome.reported = c.caught.as_deref().and_then(reported_in);
                    outcome.verdict = match &outcome.reported {
                        None => "ESCAPED",
                        Some(r) if r == row.expected.name() => "caught",
                        Some(_) => "WRONG INVARIANT",
                    };
                    outcome.detail = c.caught.unwrap_or_else(|| format!("exit {}", c.status));
                }
                Err(e) => outcome.detail = e,
            }
        }
    }
    outcome
}

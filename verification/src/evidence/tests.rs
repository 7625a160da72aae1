//! The verdict's evidence rules, on hand-made verdicts: each gap fails a run
//! that would otherwise pass.

use std::path::PathBuf;
use std::time::Duration;

use fastzap_models::results::{ModelResult, Verdict as ModelVerdict};

use super::*;
use crate::lanes::{LaneRun, TestLine};
use crate::report::{CheckOutcome, Lane, Plan, Report, Row};

fn plan() -> Plan {
    Plan {
        native: false,
        loom: true,
        shuttle: false,
        zoo: false,
        miri: false,
        knobs: Vec::new(),
        allow_bounded: false,
        scenario: None,
        mutant: None,
        options: Options::full(),
        out: PathBuf::from("unused"),
    }
}

fn result(model: &str, executions: u64, floor: u64, verdict: ModelVerdict) -> ModelResult {
    ModelResult {
        lane: "loom".into(),
        test: model.into(),
        model: model.into(),
        scenario: "s2".into(),
        mutant: None,
        invariants: vec![],
        expected: vec![],
        executions,
        floor,
        seconds: 0.1,
        settings: "preemption bound 2".into(),
        verdict,
        reported: None,
        message: (verdict == ModelVerdict::Bounded)
            .then(|| "LOOM_MAX_DURATION=1 s elapsed".to_string()),
        counterexample: None,
    }
}

fn loom_run(tests: &[&str], results: Vec<ModelResult>) -> LaneRun {
    LaneRun {
        lane: ModelLane::Loom,
        results,
        tests: tests
            .iter()
            .map(|t| TestLine {
                name: t.to_string(),
                ok: true,
            })
            .collect(),
        success: true,
        status: "exit status: 0".into(),
        log: PathBuf::from("loom.log"),
        time: Duration::from_secs(1),
    }
}

fn verdict(plan: Plan, lanes: Vec<LaneRun>) -> Verdict {
    Verdict {
        plan,
        native: None,
        lanes,
        lane_errors: Vec::new(),
        miri: None,
        zoo: Vec::new(),
        total: Duration::from_secs(1),
    }
}

fn gap_names(v: &Verdict) -> Vec<Gap> {
    v.gaps().into_iter().map(|(g, _)| g).collect()
}

#[test]
fn a_model_at_its_floor_passes_and_one_under_it_is_under_checked() {
    let good = verdict(
        plan(),
        vec![loom_run(
            &["s2_translate_vs_reclaim"],
            vec![result("s2", 5_926, 5_000, ModelVerdict::Pass)],
        )],
    );
    assert!(good.passed(), "{:?}", good.gaps());
    assert_eq!(good.mode(), "full");
    let under = verdict(
        plan(),
        vec![loom_run(
            &["s2_translate_vs_reclaim"],
            vec![result("s2", 12, 5_000, ModelVerdict::Pass)],
        )],
    );
    assert!(!under.passed());
    assert_eq!(gap_names(&under), vec![Gap::UnderChecked]);
    assert!(under.status_words().starts_with("FAIL: UNDER-CHECKED"));
}

#[test]
fn a_selected_lane_that_ran_nothing_fails() {
    let empty = verdict(plan(), vec![loom_run(&[], vec![])]);
    assert!(!empty.passed());
    assert_eq!(gap_names(&empty), vec![Gap::NothingRun]);
    assert!(empty.status_words().contains("NOTHING RUN"));
    // An empty zoo selection, and native checks of which none ran.
    let zoo = verdict(
        Plan {
            loom: false,
            zoo: true,
            ..plan()
        },
        vec![],
    );
    assert_eq!(gap_names(&zoo), vec![Gap::NothingRun]);
    let native = Verdict {
        native: Some(Report::default()),
        ..verdict(
            Plan {
                loom: false,
                native: true,
                ..plan()
            },
            vec![],
        )
    };
    assert_eq!(gap_names(&native), vec![Gap::NothingRun]);
}

#[test]
fn a_bounded_model_fails_unless_allowed_and_then_the_headline_says_so() {
    let lanes = vec![loom_run(
        &["s2_translate_vs_reclaim"],
        vec![result("s2", 3_000, 5_000, ModelVerdict::Bounded)],
    )];
    let bounded = verdict(plan(), lanes.clone());
    assert!(!bounded.passed());
    // Bounded, not also under-checked: the floor is for complete runs.
    assert_eq!(gap_names(&bounded), vec![Gap::Bounded]);
    let allowed = verdict(
        Plan {
            allow_bounded: true,
            knobs: vec!["LOOM_MAX_DURATION=1".into()],
            ..plan()
        },
        lanes,
    );
    assert!(allowed.passed(), "{:?}", allowed.gaps());
    let words = allowed.status_words();
    assert!(words.contains("BOUNDED allowed"), "{words}");
    assert!(words.contains("reduced: LOOM_MAX_DURATION=1"), "{words}");
}

#[test]
fn a_quick_loom_name_that_did_not_run_fails() {
    assert_eq!(
        quick_missing(&["a", "b"], &["a".to_string()]),
        vec!["b"],
        "a listed name missing from the lane's tests"
    );
    let mut quick = plan();
    quick.options = Options::quick();
    quick.knobs = vec!["--quick".into()];
    // Every QUICK_LOOM name ran but the first.
    let ran: Vec<&str> = QUICK_LOOM.iter().skip(1).copied().collect();
    let v = verdict(quick.clone(), vec![loom_run(&ran, vec![])]);
    assert!(!v.passed());
    assert_eq!(gap_names(&v), vec![Gap::Missing]);
    let v = verdict(quick, vec![loom_run(QUICK_LOOM, vec![])]);
    assert!(v.passed(), "{:?}", v.gaps());
}

#[test]
fn an_unjudged_check_fails_a_full_run_and_is_listed_in_a_reduced_one() {
    let row = Row {
        name: "native-stress-long",
        mmu: Some(fastzap::Mmu::Tdp),
        lane: Lane::Native,
        what: "the long stress",
        outcome: CheckOutcome {
            unjudged: Some("resident memory growth not judged: 1 samples".into()),
            ..CheckOutcome::pass(10, "ops", "10 ops")
        },
        time: Duration::from_secs(1),
    };
    let native = Report {
        rows: vec![row],
        total: Duration::from_secs(1),
    };
    let full = Verdict {
        native: Some(native.clone()),
        ..verdict(
            Plan {
                native: true,
                loom: false,
                ..plan()
            },
            vec![],
        )
    };
    assert!(!full.passed());
    assert_eq!(gap_names(&full), vec![Gap::NotJudged]);
    // The gap names the row's MMU.
    assert!(
        full.gaps()
            .iter()
            .any(|(_, w)| w.starts_with("native-stress-long [tdp]: ")),
        "{:?}",
        full.gaps()
    );
    let reduced = Verdict {
        plan: Plan {
            knobs: vec!["--stress-ops 1".into()],
            ..full.plan.clone()
        },
        ..full
    };
    assert!(reduced.passed(), "{:?}", reduced.gaps());
    assert_eq!(reduced.allowed().len(), 1);
    assert!(reduced.status_words().contains("NOT JUDGED allowed"));
}

#[test]
fn every_shrinking_knob_is_listed_and_the_defaults_are_full() {
    let none = |_: &str| None;
    assert!(knobs(&Selection::default(), &Options::full(), &none).is_empty());
    let sel = Selection {
        stress_ops: Some(1),
        cases: Some(("--cases", 1)),
        ..Selection::default()
    };
    let k = knobs(&sel, &Options::full(), &none);
    assert_eq!(k, vec!["--stress-ops 1", "--cases 1"]);
    // More work than the defaults is not a reduction.
    let more = Selection {
        stress_ops: Some(5_000_000),
        ..Selection::default()
    };
    assert!(knobs(&more, &Options::full(), &none).is_empty());
    let env = |v: &str| match v {
        "LOOM_MAX_DURATION" => Some("1".to_string()),
        "LOOM_MAX_PREEMPTIONS" => Some("1".to_string()),
        "FASTZAP_SHUTTLE_ITERS" => Some("100".to_string()),
        "PROPTEST_CASES" => Some("5".to_string()),
        _ => None,
    };
    let k = knobs(
        &Selection {
            cases: Some(("PROPTEST_CASES", 5)),
            miri_skipped: Some("FASTZAP_SKIP_MIRI=1".into()),
            ..Selection::default()
        },
        &Options::full(),
        &env,
    );
    for want in [
        "PROPTEST_CASES=5",
        "LOOM_MAX_DURATION=1",
        "LOOM_MAX_PREEMPTIONS=1",
        "FASTZAP_SHUTTLE_ITERS=100",
        "Miri skipped (FASTZAP_SKIP_MIRI=1)",
    ] {
        assert!(k.iter().any(|x| x == want), "{want} not in {k:?}");
    }
    // One MMU's native checks are a reduced run; every MMU is the full one.
    for mmu in fastzap::Mmu::ALL {
        let one = Options {
            mmus: vec![mmu],
            ..Options::full()
        };
        let k = knobs(&Selection::default(), &one, &none);
        assert_eq!(k, vec![format!("--mmu {}", mmu.name())]);
    }
    // A higher preemption bound explores more.
    let higher = |v: &str| (v == "LOOM_MAX_PREEMPTIONS").then(|| "3".to_string());
    assert!(knobs(&Selection::default(), &Options::full(), &higher).is_empty());
}

#[test]
fn names_that_match_nothing_are_refused_with_the_valid_ones() {
    assert!(check_names(Some("S4"), None).is_ok());
    assert!(check_names(Some("s3s"), None).is_ok());
    let e = check_names(Some("S99"), None).expect_err("S99 is no scenario");
    assert!(e.contains("s1") && e.contains("s11"), "{e}");
    let e = check_names(None, Some("NoSuchMutant")).expect_err("no such mutant");
    assert!(e.contains("ReloadOutsideLock"), "{e}");
    assert!(check_names(None, Some("ReloadOutsideLock")).is_ok());
}

//! The conformance state-machine test at `cargo test` size. `FASTZAP_CASES`
//! or proptest's own `PROPTEST_CASES` overrides the number of cases of the
//! main test (`fastzap verify` runs more). A failure is persisted, as
//! proptest does by default, in `verification/tests/proptest-regressions/`
//! and replayed first by the next run.

use std::collections::BTreeSet;

use fastzap::checking::Mutant;
use fastzap::{DeletionStrategy, Mmu};
use fastzap_reference::reference::Op;
use fastzap_verification::conformance::machine::setup_strategy_on;
use fastzap_verification::conformance::{
    Conformance, Invalid, Model, Step, TRANSITIONS, run_case, run_many, run_many_on, run_many_with,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::prop_state_machine;

fn cases() -> u32 {
    std::env::var("FASTZAP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| std::env::var_os("PROPTEST_CASES").map(|_| Config::default().cases))
        // 1,024 cases: a bug hunt found a fault path bug
        // (`FaultIgnoresNotifierSeq`) only after several hundred cases.
        .unwrap_or(1024)
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        ..Config::default()
    })]

    /// Every call agrees with the reference and passes the audit; failed calls
    /// change nothing; the counters settle at the end.
    #[test]
    fn vm_conforms_to_reference(sequential TRANSITIONS => Conformance);
}

/// The generator produces every class of invalid call on purpose, the
/// generation wraps, translations find mappings, and cases are long enough.
#[test]
fn every_invalid_class_occurs() {
    let cases = 64;
    let r = run_many(cases, 7);
    assert!(r.failure.is_none(), "{}", r.failure.unwrap_or_default());
    assert_eq!(r.cases, cases);
    let s = r.stats;
    println!(
        "{} cases, {} transitions, {} calls, {} failed: {}; {} Mapped, {} wraps",
        r.cases,
        s.transitions,
        s.steps,
        s.errors,
        s.invalid_summary(),
        s.mapped,
        s.wraps
    );
    for class in Invalid::ALL {
        if class == Invalid::Other {
            assert_eq!(s.invalid(class), 0, "an error of no known class");
        } else {
            assert!(s.invalid(class) > 0, "no {} in {cases} cases", class.name());
        }
    }
    assert!(s.transitions >= u64::from(cases) * 50, "{s:?}");
    assert!(s.wraps > 0 && s.mapped > 0, "{s:?}");
}

/// Shrinking works: a bug shows as a short, 1-minimal sequence, which
/// replays. (The mutant VMs run in this process, single-threaded: under a
/// mutant the core never gives poisoned memory back, so a dangling pointer
/// reads poison rather than reused memory.)
#[test]
fn shrinking_gives_short_counterexamples() {
    for mutant in [
        Mutant::FaultIntoObsoleteRoot,
        Mutant::MmioCacheIgnoresGen,
        Mutant::MoveReusesMetadata,
    ] {
        let r = run_many_with(500, 1, Some(mutant));
        let (Some(failure), Some(shrunk), Some(case)) = (r.failure, r.shrunk, r.counterexample)
        else {
            panic!("{mutant:?} was not caught in 500 cases");
        };
        println!("{mutant:?}: {shrunk:?}\n{failure}\n");
        assert!(
            shrunk.to <= 12,
            "{mutant:?}: shrunk only to {} transitions",
            shrunk.to
        );
        assert!(
            run_case(&case).is_err(),
            "{mutant:?}: the counterexample does not replay"
        );
        // 1-minimal: without any one of its transitions the case passes.
        for i in 0..case.steps.len() {
            let mut shorter = case.clone();
            shorter.steps.remove(i);
            assert!(
                run_case(&shorter).is_ok(),
                "{mutant:?}: still fails without transition {}",
                i + 1
            );
        }
    }
}

/// Conformance runs on every MMU against the one reference: each MMU's cases
/// pass, and every invalid class occurs on each.
#[test]
fn conformance_runs_on_every_mmu() {
    for mmu in Mmu::ALL {
        let r = run_many_on(mmu, 48, 7);
        assert!(
            r.failure.is_none(),
            "{}: {}",
            mmu.name(),
            r.failure.unwrap_or_default()
        );
        assert_eq!(r.cases, 48, "{}", mmu.name());
        assert!(
            r.stats.mapped > 0,
            "{}: no translation found a mapping",
            mmu.name()
        );
    }
}

/// A case's setup is the MMU's, and neither the configured deletion nor any
/// DELETE a case calls is one the MMU lacks; on the shadow MMU every deletion
/// is drawn.
#[test]
fn no_deletion_an_mmu_lacks_is_drawn_for_it() {
    let mut runner = TestRunner::deterministic();
    for mmu in Mmu::ALL {
        let mut drawn = BTreeSet::new();
        let setups = setup_strategy_on(mmu, None);
        for _ in 0..200 {
            let setup = setups.new_tree(&mut runner).expect("setup").current();
            assert_eq!(setup.mmu, mmu);
            assert_eq!(setup.config().mmu, mmu);
            drawn.insert(format!("{:?}", setup.deletion));
            let model = Model::new(setup);
            let steps = model.transition();
            for _ in 0..50 {
                if let Step::Call(Op::DeleteSlot {
                    strategy: Some(s), ..
                }) = steps.new_tree(&mut runner).expect("step").current()
                {
                    drawn.insert(format!("{s:?}"));
                }
            }
        }
        let want: BTreeSet<String> = DeletionStrategy::ALL
            .into_iter()
            .filter(|d| mmu.supports(*d))
            .map(|d| format!("{d:?}"))
            .collect();
        assert_eq!(drawn, want, "{}", mmu.name());
    }
}

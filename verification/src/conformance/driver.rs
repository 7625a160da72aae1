//! The state-machine glue: [`Conformance`] is the [`StateMachineTest`] whose
//! system under test is a [`Sut`], and [`run_case`] runs one case through it,
//! a disagreement's panic turned into an `Err` (and silenced while a run
//! shrinks).

use std::cell::{Cell, RefCell};

use proptest::test_runner::Config as RunnerConfig;
use proptest_state_machine::StateMachineTest;

use super::machine::{Machine, Model};
use super::ops::{Case, Step};
use super::stats::CaseStats;
use super::sut::Sut;

thread_local! {
    /// The statistics of the last case [`Conformance::teardown`] finished on
    /// this thread.
    static LAST_STATS: Cell<Option<CaseStats>> = const { Cell::new(None) };
    /// While set, the panic hook stays silent and records where a panic
    /// happened in [`PANICKED_AT`] instead.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic happened.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The [`StateMachineTest`]: the SUT is a [`Sut`]. A disagreement panics
/// with its description (proptest-state-machine's way to fail a
/// transition); [`run_many`](super::run_many) catches it.
#[derive(Debug, Clone, Copy)]
pub struct Conformance;

impl StateMachineTest for Conformance {
    type SystemUnderTest = Sut;
    type Reference = Machine;

    fn init_test(model: &Model) -> Sut {
        Sut::new(&model.setup).unwrap_or_else(|why| panic!("opening: {why}"))
    }

    fn apply(mut sut: Sut, _after: &Model, step: Step) -> Sut {
        // Numbered from 1, as `describe` numbers them.
        let t = sut.stats.transitions + 1;
        if let Err(why) = sut.step(&step) {
            panic!("transition {t} {step:?}: {why}");
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(
            model.slots(),
            &sut.reference.slots[..],
            "the generation model's slot table left the reference's"
        );
    }

    fn teardown(sut: Sut, _model: Model) {
        if let Err(why) = sut.finish() {
            panic!("teardown: {why}");
        }
        LAST_STATS.with(|s| s.set(Some(sut.stats)));
    }
}

/// Runs `f` with panic messages silenced on this thread (other threads keep
/// the previous hook): a shrinking run panics once per failing attempt.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(|l| l.to_string());
                PANICKED_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    f()
}

/// Runs one generated case through [`StateMachineTest::test_sequential`],
/// turning its panic into an `Err` with the panic's message and place.
/// (`seen` is the strategy's own counter of transitions run, which its
/// shrinking uses; its type names `std::sync`, which the workspace's clippy
/// configuration forbids outside the facade.)
#[allow(clippy::disallowed_types)]
pub(super) fn run_sequence(
    model: Model,
    steps: Vec<Step>,
    seen: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) -> Result<CaseStats, String> {
    LAST_STATS.with(|s| s.set(None));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        quietly(|| Conformance::test_sequential(RunnerConfig::default(), model, steps, seen))
    }));
    match run {
        Ok(()) => LAST_STATS
            .with(Cell::take)
            .ok_or_else(|| "the case ended without its teardown".to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            let at = PANICKED_AT.with(|p| p.borrow_mut().take());
            Err(match at {
                Some(at) if !at.contains(file!()) => {
                    format!("{message} (panicked at {at})")
                }
                _ => message,
            })
        }
    }
}

/// Runs one fixed case: its statistics, or the first disagreement.
pub fn run_case(case: &Case) -> Result<CaseStats, String> {
    run_sequence(Model::new(case.setup.clone()), case.steps.clone(), None)
}

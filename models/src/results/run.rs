//! # Running a model and writing its result
//!
//! [`record`] wraps one model's whole exploration: it catches the failing
//! execution's panic, reads the harness's report from the mailbox
//! ([`crate::mailbox`]), concludes the verdict and writes the
//! [`ModelResult`] line.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Instant;

use super::{Info, ModelResult, conclude, reported_in};
use crate::mailbox;
use crate::tally::Tally;

/// Runs `explore` (one model's whole exploration in `lane`, with `settings`),
/// writes its [`ModelResult`], and returns how it ended: `Ok(seconds)` when
/// every execution passed, `Err(message)` with the failing execution's report
/// otherwise. A correct model that fails is recorded as
/// [`Verdict::Fail`](super::Verdict::Fail) and its panic re-raised; a
/// mutant's verdict is [`Verdict::Caught`](super::Verdict::Caught),
/// [`Verdict::WrongInvariant`](super::Verdict::WrongInvariant) or
/// [`Verdict::Escaped`](super::Verdict::Escaped), and the caller asserts on
/// it. The report is the harness's last failure message when there is one
/// (shuttle replaces a task's panic payload by its own), else the panic's
/// text.
pub fn record(
    lane: &str,
    info: &Info,
    tally: &Tally,
    settings: String,
    explore: impl FnOnce(),
) -> Result<f64, String> {
    record_bounded(lane, info, tally, settings, &|_, _| None, explore)
}

/// [`record`] for a checker that can stop early: `cut_short(executions,
/// seconds)` says why the exploration may have ended on a bound rather than
/// by exhausting the model (`None` when it cannot have). A run with no
/// failing execution that was cut short is
/// [`Verdict::Bounded`](super::Verdict::Bounded); a failure found before the
/// bound counts as usual.
pub fn record_bounded(
    lane: &str,
    info: &Info,
    tally: &Tally,
    settings: String,
    cut_short: &dyn Fn(u64, f64) -> Option<String>,
    explore: impl FnOnce(),
) -> Result<f64, String> {
    let started = Instant::now();
    mailbox::set_last_counterexample(None);
    let _ = mailbox::take_last_failure();
    let outcome = catch_unwind(AssertUnwindSafe(explore));
    let seconds = started.elapsed().as_secs_f64();
    let message = outcome
        .as_ref()
        .err()
        .map(|p| mailbox::take_last_failure().unwrap_or_else(|| panic_text(&**p)));
    let reported = message.as_deref().and_then(reported_in);
    let executions = tally.executions() as u64;
    let bounded = if message.is_none() {
        cut_short(executions, seconds)
    } else {
        None
    };
    let pinned = info.mutant.is_some() && info.expected.is_empty();
    let verdict = conclude(info, message.as_deref(), bounded.is_some());
    ModelResult {
        lane: lane.to_string(),
        test: test_name(&info.key),
        model: info.key.clone(),
        scenario: info.scenario.clone(),
        mutant: info.mutant.clone(),
        invariants: info.invariants.clone(),
        expected: info.expected.clone(),
        executions,
        floor: info.floor,
        seconds,
        settings,
        verdict,
        reported,
        message: message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(str::to_string)
            .or(bounded),
        counterexample: mailbox::take_last_counterexample(),
    }
    .write();
    match outcome {
        Ok(()) => Ok(seconds),
        Err(panic) if info.mutant.is_none() || pinned => resume_unwind(panic),
        Err(_) => Err(message.unwrap_or_default()),
    }
}
/// The name of the running test (libtest names each test's thread after it;
/// with one test thread it runs on `main`, and `fallback` is used).
pub fn test_name(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => fallback.to_string(),
    }
}
/// The text of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

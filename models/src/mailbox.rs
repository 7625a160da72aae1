//! # The last failure, per thread
//!
//! What a failed execution leaves for the code that ran the model: the
//! harness ([`crate::harness`]) posts the failure's message and its
//! counterexample file here, and the results ([`crate::results`]) and the
//! model runners take them after the exploration. Shuttle replaces a task's
//! panic payload with its own ("Task panicked, and early return is
//! enabled"), so the message cannot travel in the panic.
//!
//! Per OS thread: loom and shuttle run an execution's threads as coroutines
//! on the test's own thread, and tests running in parallel must not see each
//! other's failures.

use std::cell::RefCell;
use std::path::PathBuf;

std::thread_local! {
    static LAST_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
    static LAST_COUNTEREXAMPLE: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Records `message` as the last failure of this thread (see [`take_last_failure`]).
pub fn set_last_failure(message: String) {
    LAST_FAILURE.with(|slot| *slot.borrow_mut() = Some(message));
}

/// Takes the message of the last failed execution in this process. Shuttle
/// replaces a task's panic payload with its own ("Task panicked, and early
/// return is enabled"), so a mutant twin reads the violated invariant here.
pub fn take_last_failure() -> Option<String> {
    LAST_FAILURE.with(|slot| slot.borrow_mut().take())
}

/// Records the counterexample file of this thread's last failed execution.
pub fn set_last_counterexample(path: Option<PathBuf>) {
    LAST_COUNTEREXAMPLE.with(|slot| *slot.borrow_mut() = path);
}

/// Takes the counterexample file of this thread's last failed execution.
pub fn take_last_counterexample() -> Option<PathBuf> {
    LAST_COUNTEREXAMPLE.with(|slot| slot.borrow_mut().take())
}

/// The counterexample file of this thread's last failed execution, left in
/// place.
pub fn last_counterexample() -> Option<PathBuf> {
    LAST_COUNTEREXAMPLE.with(|slot| slot.borrow().clone())
}

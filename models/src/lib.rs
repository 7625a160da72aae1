//! # fastzap-models: the races of `SPEC.md`, for loom and shuttle
//!
//! The scenarios ([`scenarios`]) are plain functions, one model execution each,
//! written against `fastzap` and its sync facade only. The loom tests
//! (`tests/loom_scenarios.rs`, `tests/loom_ebr.rs`, `--cfg loom`) and the shuttle
//! tests (`tests/shuttle_scenarios.rs`, `--cfg shuttle`) call the same
//! functions; natively they run on std threads as a smoke test
//! (`tests/native_smoke.rs`).
//!
//! Every execution ends with the full audit ([`harness::finish`]): every invariant,
//! every violation recorded at run time, the scenario's own observations, and a
//! drain that must free everything retired. A failure prints the violated
//! invariant and the execution's per-actor timeline ([`timeline`]) and writes it
//! as a Mermaid diagram under `target/counterexamples/`. Every model counts its
//! executions and the interleavings it reached ([`tally`]), and its test
//! asserts floors on both, so that a model that shrinks or never reaches its
//! race fails.
//!
//! # Lanes
//!
//! | lane | command | what runs |
//! |---|---|---|
//! | loom | `cargo loom --test loom_scenarios --test loom_ebr` | every scenario, preemption bound 2 (the code's value unless `LOOM_MAX_PREEMPTIONS` is set: `loom_run`), crossbeam-epoch for two actors, the small EBR for three; the small EBR itself and its two mutants |
//! | loom | `cargo loom -- litmus_` | the [`litmus`] models: each fence pair alone, with its weak-memory twins |
//! | shuttle | `cargo shuttle --test shuttle_scenarios` | every scenario wide, `check_random` plus PCT at depths 1 to 3, 2,500 executions each (`FASTZAP_SHUTTLE_ITERS`), the PCT bound printed |
//! | native | `cargo test -p fastzap-models` | the timeline's unit tests and a smoke run of every scenario |
//!
//! Under `fastzap verify` (`FASTZAP_RESULTS_DIR` set) every model run also
//! writes a machine-readable result and every failure a counterexample file
//! ([`results`]). A failed execution leaves its report in a per-thread
//! [`mailbox`]: the harness posts it there and the results take it, so the
//! results do not depend on the harness.
//!
//! A failing shuttle run prints its schedule on one line and the command that
//! replays it (`FASTZAP_REPLAY=<model> FASTZAP_SCHEDULE=<schedule> cargo shuttle
//! --test shuttle_scenarios -- replay --exact --nocapture --include-ignored`).

pub mod harness;
pub mod mailbox;
pub mod litmus;
pub mod results;
pub mod scenarios;
pub mod tally;
pub mod timeline;

#[cfg(shuttle)]
pub mod shuttle_run;

#[cfg(loom)]
pub mod loom_run;

#[cfg(shuttle)]
pub mod history;
#[cfg(shuttle)]
pub mod linearizable;

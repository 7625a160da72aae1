//! # fastzap-models: the races of `SPEC.md`, for loom and shuttle
//!
//! The scenarios ([`scenarios`]) are plain functions, one model execution each,
//! written against `fastzap` and its sync facade only. The loom tests
//! (`tests/loom_*.rs`, `--cfg loom`) and the shuttle tests
//! (`tests/shuttle_scenarios.rs`, feature `shuttle`) call the same functions;
//! natively they run on std threads as a smoke test.
//!
//! Every execution ends with the full audit ([`harness::finish`]); a failure
//! prints the violated invariant and the execution's per-actor timeline
//! ([`timeline`]) and writes it as a Mermaid diagram. Every model counts its
//! executions and the interleavings it reached ([`tally`]), and its test asserts
//! floors on both.

pub mod harness;
pub mod scenarios;
pub mod tally;
pub mod timeline;

#[cfg(feature = "shuttle")]
pub mod shuttle_run;

//! # fastzap-reference
//!
//! The specification that fastzap's checks judge observed results against:
//!
//! - [`reference`](mod@reference): the sequential reference model, the
//!   specification of what callers of a [`fastzap::Vm`] may observe. It tracks
//!   only what the public API shows (memslots, host pages, translations,
//!   pending requests, `mmu_valid_gen`), never shadow pages, rmaps or epochs,
//!   and it accepts or rejects each observed outcome of each call;
//! - [`linearizability`]: a checker in the style of Wing and Gong (1993) that
//!   decides whether a concurrent history (each call with its invocation and
//!   response instants) has a sequential order, consistent with real time,
//!   that the reference model accepts.
//!
//! Two crates use it: `fastzap-verification`, whose conformance test runs
//! random operation sequences against the VM and the reference model, and
//! `fastzap-models`, whose shuttle lane records histories and checks them for
//! linearizability. This crate depends on `fastzap` alone, so that the model
//! lanes can reach the specification without depending on the `verify` runner.
//!
//! The two public modules are the crate's face: each re-exports its items
//! from private modules of one idea each, and its documentation lists them.
//! A module's `crate::` references name only modules below it, in the
//! order they are declared here (the model's first, then the checker's),
//! so that the files read bottom up with no cycle.

#![warn(missing_docs)]

// The sequential reference model, bottom up.
mod host;
mod op;
mod overlap;
mod state;
mod zap;
mod slot_zap;
mod requests;
mod tail;
mod memslot;
mod fault;
mod walk;
mod notifier;
mod step;
pub mod reference;

// The linearizability checker, bottom up.
mod call;
mod history;
mod verdict;
mod search;
pub mod linearizability;

#[cfg(test)]
mod bounded_loop_tests;
#[cfg(test)]
mod tdp_yield_tests;

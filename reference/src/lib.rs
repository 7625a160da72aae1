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

#![warn(missing_docs)]

pub mod linearizability;
pub mod reference;

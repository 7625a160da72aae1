//! # Ghost state: what the checkers observe, and the run-time checks on it
//!
//! The protocol writes ghost state, and reads back one answer only: whether
//! what a walker is about to read was freed ([`Ghost::saw_freed`]; always
//! false in the plain build). A walker of the checking build stops after
//! recording a use after free, so a poisoned object is never dereferenced;
//! SPEC.md ("Where the code is") lists the sites, and `core/tests/builds_agree.rs`
//! checks that both builds give the same results wherever nothing is recorded.
//! Everything here is checking code, compiled in by the `ghost` feature (on by
//! default, and in every model, test and `verify` build):
//!
//! - [`Ghost`], one per VM and shared with deferred frees: allocation counters,
//!   the event log, the violations seen at run time, the ghost clock of I4 and
//!   the invalidations it has seen, and the zap history of I6;
//! - per-object halves: [`PageGhost`] (a page's lifecycle, the install time of
//!   each spte), [`DescGhost`], [`VcpuGhost`], and the unmasked generation
//!   count [`GenEpoch`] that lets the audit see through a wrapped generation;
//! - the run-time checks that need only ghost state: a translation that returns
//!   an invalidated mapping (I4, [`Ghost::check_not_stale`]), a reader that
//!   reads freed memory ([`Ghost::saw_freed`]), a page freed while a reader was
//!   inside it ([`Ghost::check_outlived`]).
//!
//! Checks that need the protocol's own state (the page table, the rmaps) are in
//! the audit, which the protocol reaches through one hook
//! (`checkpoint.rs`).
//!
//! Without the `ghost` feature the same names are empty types whose methods do
//! nothing (`off.rs`), so the protocol source has no `cfg` and, compiled, no
//! ghost atomics, no event log and no ghost clock.
//!
//! The ghost primitives use plain std atomics and mutexes (from
//! [`sync::ghost`](crate::sync::ghost)), so that they add no scheduling points to
//! a loom or shuttle model.

#[cfg(feature = "ghost")]
mod objects;
#[cfg(feature = "ghost")]
mod on;
#[cfg(feature = "ghost")]
mod progress;
#[cfg(feature = "ghost")]
mod quarantine;
#[cfg(feature = "ghost")]
mod times;
#[cfg(feature = "ghost")]
pub(crate) use on::*;
#[cfg(feature = "ghost")]
pub use on::{Counts, LifeCounts};

#[cfg(not(feature = "ghost"))]
mod off;
#[cfg(not(feature = "ghost"))]
pub(crate) use off::*;

/// Whether the checking code is compiled in.
pub(crate) const ENABLED: bool = cfg!(feature = "ghost");

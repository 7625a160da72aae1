//! # fastzap: KVM's fast invalidation of all shadow pages, as a checkable model
//!
//! In 2013 KVM stopped zapping every shadow page under `mmu_lock` when all of
//! them had to go. It bumps a generation number (`mmu_valid_gen`), asks every
//! vCPU to reload its root, and frees the obsolete pages later, in batches, while
//! vCPUs and mmu-notifiers may still be walking them. This crate is that protocol,
//! with the kernel's names, over a sync facade that lets loom and shuttle explore
//! it, and with an audit (`fastzap::audit`) of the invariants I1 to I11 of
//! `SPEC.md`.
//!
//! Start at [`Vm`].
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ghost` | on | the checking code: ghost state, the event log, the run-time checks, `audit`, `Vm::counts` and the other observations; the bug zoo's mutants |
//! | `hold-timing` | on | `mmu_lock` hold times in [`ZapStats`] |
//!
//! Without `ghost` the protocol carries only what it needs to run, which is
//! what the benchmarks measure.
//!
//! # Reading order
//!
//! The modules follow `mmu.c` and `SPEC.md`: the structures (`spte`, `page`,
//! `rmap`, `memslot`, `vcpu`, `mmu`, `vm`), then one file per kernel event in
//! the order of `SPEC.md`'s "Reaction to events" (`walk`, `fault`, `request`,
//! `zap`, `memslot_update`, `notifier`), then the checking code (`ghost`,
//! `checkpoint`, `audit`, `observe`).

#![warn(missing_docs)]

// Leaves: names, numbers and what every layer reports.
mod addr;
mod config;
mod error;
mod event;
mod ids;
mod invariant;
mod lockdep;
mod mutant;
mod stats;
mod timing;

// The sync facade lives in the hidden `checking` module; the crate names it
// `crate::sync`.
#[doc(hidden)]
pub mod checking;
use checking::sync;

// The structures.
mod ghost;
mod host;
mod memslot;
mod mmu;
mod page;
mod rmap;
mod shadow;
mod spte;
mod vcpu;
mod vm;

// The events, in SPEC.md's order.
mod walk;
mod fault;
mod request;
mod zap;
mod memslot_update;
mod notifier;

// The checking code's hook into the audit, and the audit.
mod checkpoint;
#[cfg(feature = "ghost")]
mod audit;
#[cfg(feature = "ghost")]
mod observe;

pub use addr::GfnRange;
pub use addr::{Gfn, Hva, PAGE_SIZE, Pfn};
pub use config::{Config, DeletionStrategy, ZapCommit};
pub use error::ConfigError;
pub use error::MmuError;
pub use fault::{Fault, RetryReason};
pub use ids::{PageId, SlotId, VcpuId};
pub use invariant::{FIRST_DETECTED, Invariant, Violation, detection_order};
pub use memslot::{Memslot, Memslots, MemslotsRef, SlotSpec};
pub use request::Handled;
pub use stats::{HoldHistogram, ZapStats, retain_bound, zap_step_bound};
pub use sync::ReclaimBackend;
pub use vcpu::Requests;
pub use vm::{RootInfo, Vm};
pub use walk::{ClaimedVcpu, Translation};

#[cfg(feature = "ghost")]
pub use audit::audit;
#[cfg(feature = "ghost")]
pub use event::{Actor, Event, What};
#[cfg(feature = "ghost")]
pub use ghost::{Counts, LifeCounts};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "ghost"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

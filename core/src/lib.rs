//! # fastzap: KVM's fast invalidation of all shadow pages, as a checkable model
//!
//! In 2013 KVM stopped zapping every shadow page under `mmu_lock` when all of
//! them had to go. It bumps a generation number (`mmu_valid_gen`), asks every
//! vCPU to reload its root, and frees the obsolete pages later, in batches, while
//! vCPUs and mmu-notifiers may still be walking them. This crate is that protocol,
//! with the kernel's names, over a sync facade that lets loom and shuttle explore
//! it, and with an [`audit`] of the invariants I1 to I7 of `SPEC.md`.
//!
//! Start at [`Vm`].

#![warn(missing_docs)]

pub mod audit;
pub mod config;
pub mod error;
pub mod event;
pub mod host;
pub mod memslot;
pub mod mmu;
pub mod mutant;
pub mod page;
pub mod rmap;
pub mod spte;
pub mod sync;
pub mod vcpu;
pub mod vm;

pub use audit::{Invariant, Violation};
pub use config::{Config, DeletionStrategy};
pub use error::MmuError;
pub use event::{Actor, Event, What};
pub use memslot::{Memslot, Memslots, SlotId, SlotSpec};
pub use mmu::ZapStats;
pub use mutant::Mutant;
pub use page::{PageId, ShadowPage};
pub use vcpu::VcpuId;
pub use vm::{Counts, Fault, Handled, RetryReason, Translation, Vm};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

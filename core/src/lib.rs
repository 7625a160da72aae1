//! # fastzap: KVM's fast invalidation of all shadow pages, as a checkable model
//!
//! In 2013 KVM stopped zapping every shadow page under `mmu_lock` when all of
//! them had to go. It bumps a generation number (`mmu_valid_gen`), asks every
//! vCPU to reload its root, and frees the obsolete pages later, in batches, while
//! vCPUs and mmu-notifiers may still be walking them. This crate is that protocol,
//! with the kernel's names, over a sync facade that lets loom and shuttle explore
//! it. `SPEC.md` states it step by step, with the invariants I1 to I11 that the
//! checking build (feature `ghost`, module `check`) audits.
//!
//! Start at [`Vm`].
//!
//! # A tour
//!
//! One VM, one memslot, a vCPU that faults a page in; then the fast
//! invalidation, an mmu-notifier taking a host page away, and a memslot
//! delete. This runs with the default features: the protocol alone.
//!
//! ```
//! use fastzap::{Config, Fault, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, Translation, VcpuId, Vm};
//!
//! let vm = Vm::new(Config::native())?;
//! let base = Hva(0x7f00_0000_0000);
//! vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 1024, userspace_addr: base })?;
//! let vcpu = VcpuId(0);
//!
//! // A fault: vCPUs start with a reload request, so load a root first; the
//! // fault then maps gfn 42 to the host page behind its slot.
//! vm.handle_requests(vcpu)?;
//! let Fault::Mapped { pfn } = vm.page_fault(vcpu, Gfn(42), true)? else { unreachable!() };
//! assert_eq!(pfn, vm.hva_to_pfn(base + 42 * PAGE_SIZE)?);
//! assert!(matches!(vm.translate(vcpu, Gfn(42))?, Translation::Mapped { .. }));
//!
//! // The fast invalidation: bump `mmu_valid_gen`, ask every vCPU to reload,
//! // zap the obsolete pages in batches. The vCPU must reload before it
//! // translates again, and its new root maps nothing yet.
//! let gen_before = vm.mmu_valid_gen();
//! vm.invalidate_zap_all_pages()?;
//! assert_ne!(vm.mmu_valid_gen(), gen_before);
//! assert_eq!(vm.translate(vcpu, Gfn(42))?, Translation::RequestPending);
//! vm.handle_requests(vcpu)?;
//! assert_eq!(vm.translate(vcpu, Gfn(42))?, Translation::Miss);
//!
//! // An mmu-notifier: the host takes gfn 7's page away. The spte that
//! // mapped it is gone when `invalidate_range` returns, and the vCPU must
//! // flush its TLB before it translates again.
//! vm.page_fault(vcpu, Gfn(7), false)?;
//! assert_eq!(vm.invalidate_range(base + 7 * PAGE_SIZE, base + 8 * PAGE_SIZE)?, 1);
//! assert_eq!(vm.translate(vcpu, Gfn(7))?, Translation::RequestPending);
//! vm.handle_requests(vcpu)?;
//! assert_eq!(vm.translate(vcpu, Gfn(7))?, Translation::Miss);
//!
//! // A memslot delete (Linux 3.11's strategy by default): the slot goes,
//! // and with it every mapping of its gfns; a fault there is now MMIO.
//! vm.page_fault(vcpu, Gfn(9), true)?;
//! vm.delete_memslot(SlotId(0))?;
//! vm.handle_requests(vcpu)?;
//! assert_eq!(vm.translate(vcpu, Gfn(9))?, Translation::Miss);
//! assert_eq!(vm.page_fault(vcpu, Gfn(9), true)?, Fault::Mmio);
//! assert_eq!(vm.slot_count(), 0);
//! # Ok::<(), fastzap::MmuError>(())
//! ```
//!
//! `SPEC.md` takes each of these operations step by step ("Reaction to
//! events"), with the locks it takes and the invariants it keeps.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ghost` | off | the checking code: the module `fastzap::check` (the invariants, `audit`, the event log's types), the ghost state and its run-time checks (with a quarantine of freed memory, 64 MiB per VM), `Vm::counts`, `Vm::events` and the other observations, the bug zoo's mutants |
//! | `hold-timing` | off | `mmu_lock` hold times in [`ZapStats`] (one clock read per hold) |
//!
//! The default build is the protocol alone, which is what a VMM links and
//! what the benchmarks measure; the root names the same items in every build
//! (with `ghost`, the `#[non_exhaustive]` [`MmuError`] has one variant more,
//! `ZapLivelock`, the checking build's progress bound). The workspace's
//! models, tests and `verify` enable `ghost` themselves.
//!
//! # Reading order
//!
//! The modules follow `mmu.c` and `SPEC.md`: the structures (`spte`, `page`,
//! `rmap`, `memslot`, `vcpu`, `mmu`, `vm`), then one file per kernel event in
//! the order of `SPEC.md`'s "Reaction to events" (`walk`, `fault`, `request`,
//! `zap`, `memslot_update`, `notifier`), the vCPU claimed across `KVM_RUN`
//! (`claimed`), then the checking code (`ghost`,
//! `checkpoint`, `audit`, `observe`, `check`).

#![warn(missing_docs)]

// Leaves: names, numbers and what every layer reports.
mod addr;
mod config;
mod design;
mod error;
mod event;
mod ids;
// Named by the protocol's run-time checks, which compile to nothing without
// `ghost`; public through `check`.
#[cfg_attr(not(feature = "ghost"), allow(dead_code))]
mod invariant;
mod lockdep;
mod mutant;
mod stats;
mod timing;

// The sync facade (core/src/sync/): the only code that names the lanes'
// primitives. Its reclaimer is public as `reclaim`; the whole facade is
// reachable, hidden, as `checking::sync` for the models.
mod sync;
#[doc(hidden)]
pub mod checking;

// The structures.
mod ghost;
mod host;
mod memslot;
mod mmu;
mod page;
mod rmap;
mod shadow;
mod spte;
mod tlb;
mod vcpu;
mod vm;
mod tdp;
mod vm_tdp;

// The events, in SPEC.md's order.
mod walk;
mod fault;
mod request;
mod zap;
mod memslot_update;
mod memslot_zap;
mod notifier;
// The vCPU events, on a vCPU claimed once for a `KVM_RUN` loop.
mod claimed;

// The checking code's hook into the audit, and the audit.
mod checkpoint;
#[cfg(feature = "ghost")]
mod audit;
#[cfg(feature = "ghost")]
mod observe;
#[cfg(feature = "ghost")]
pub mod check;

pub use addr::GfnRange;
pub use addr::{Gfn, Hva, PAGE_SIZE, Pfn};
pub use claimed::ClaimedVcpu;
pub use config::{Config, ZapCommit};
pub use design::{DeletionStrategy, Mmu};
pub use error::ConfigError;
pub use error::MmuError;
pub use fault::{Fault, RetryReason};
pub use ids::{PageId, SlotId, VcpuId};
pub use memslot::{Memslot, Memslots, MemslotsRef, SlotSpec};
pub use request::Handled;
pub use stats::{HoldHistogram, ZapStats};
pub use sync::ReclaimBackend;
pub use sync::reclaim;
pub use vcpu::Requests;
pub use vm::{RootInfo, Vm};
pub use walk::Translation;

/// The README's example, compiled and run as a doctest (in every build: it
/// uses the protocol alone).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

//! # The checking vocabulary (feature `ghost`)
//!
//! Everything a checker names, in one module that exists only with the
//! `ghost` feature: the invariants I1 to I11 of `SPEC.md` and what breaking
//! one looks like ([`Invariant`], [`Violation`]), the [`audit`] that checks
//! them on a quiescent VM, the bounds the progress and retention invariants
//! are stated over ([`zap_step_bound`], [`retain_bound`], [`breaks_i6`]), and
//! the ghost state's observations: the event log ([`Event`], [`Actor`],
//! [`What`], from [`Vm::events`](crate::Vm::events)) and the allocation
//! counters ([`Counts`], from [`Vm::counts`](crate::Vm::counts)).
//!
//! The crate root is the protocol alone and names the same items in both
//! builds; this module, the observations on [`Vm`](crate::Vm) (`counts`,
//! `events`, `runtime_violations`, `zap_history`, `drain`), the checking
//! fields of [`Config`](crate::Config) (`events`, `audit_points`) and the zap
//! loop's progress bound (`MmuError::ZapLivelock`) are what `ghost` adds.
//!
//! ```
//! use fastzap::check::{Invariant, audit};
//! use fastzap::{Config, VcpuId, Vm};
//!
//! let vm = Vm::new(Config::model())?;
//! vm.handle_requests(VcpuId(0))?;
//! vm.invalidate_zap_all_pages()?;
//! assert_eq!(audit(&vm), Ok(()));
//! assert_eq!(Invariant::I3.name(), "I3 page lifetime");
//! # Ok::<(), fastzap::MmuError>(())
//! ```

pub use crate::audit::audit;
pub use crate::event::{Actor, Event, What};
pub use crate::ghost::{Counts, LifeCounts};
pub use crate::invariant::{FIRST_DETECTED, Invariant, Violation, detection_order};
pub use crate::stats::{retain_bound, zap_step_bound};

use crate::stats::ZapStats;

/// Whether the zap `stats` describes broke I6 (progress): more steps than
/// [`zap_step_bound`], or more pages prepared in one `mmu_lock` hold than
/// `batch` (a zap that never broke the lock is the eager one, which may
/// prepare everything in its one hold). The one definition the ghost's zap
/// history and the audit share.
pub fn breaks_i6(stats: &ZapStats, batch: usize, vcpus: usize) -> bool {
    stats.breaks_i6(batch, vcpus)
}

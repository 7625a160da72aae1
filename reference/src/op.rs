//! # The calls: one [`Op`] per public operation of a `Vm`, and its [`Outcome`]
//!
//! Mirrors the public face of `core/src/vm.rs` (the operations a VMM calls,
//! each implemented in the core file of its kernel event) and
//! `core/src/error.rs` (every failed call returns an `MmuError`). A
//! [`Divergence`] is the reference's verdict when an outcome is not one the
//! specification allows; `ensure`, `expect_ok` and `expect_err` are how every
//! operation's file states its rules.

use fastzap::{
    DeletionStrategy, Fault, Handled, MmuError, Requests, SlotId, SlotSpec, Translation, VcpuId,
    ZapStats,
};

/// One call of the public API, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// [`Vm::handle_requests`](fastzap::Vm::handle_requests).
    HandleRequests(VcpuId),
    /// [`Vm::page_fault`](fastzap::Vm::page_fault).
    PageFault {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
        /// A write fault.
        write: bool,
    },
    /// [`Vm::translate`](fastzap::Vm::translate).
    Translate {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
    },
    /// [`Vm::translate_unsynchronized`](fastzap::Vm::translate_unsynchronized).
    TranslateUnsynchronized {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
    },
    /// [`Vm::translate_run`](fastzap::Vm::translate_run).
    TranslateRun {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfns, in order.
        gfns: Vec<u64>,
    },
    /// [`Vm::pending_requests`](fastzap::Vm::pending_requests).
    PendingRequests(VcpuId),
    /// [`Vm::invalidate_zap_all_pages`](fastzap::Vm::invalidate_zap_all_pages).
    ZapAllFast,
    /// [`Vm::zap_all`](fastzap::Vm::zap_all).
    ZapAllEager,
    /// [`Vm::create_memslot`](fastzap::Vm::create_memslot).
    CreateSlot(SlotSpec),
    /// [`Vm::delete_memslot`](fastzap::Vm::delete_memslot) (`None`: the
    /// configured strategy) or [`Vm::delete_memslot_with`](fastzap::Vm::delete_memslot_with).
    DeleteSlot {
        /// The slot.
        id: SlotId,
        /// The strategy, or `None` for the configured one.
        strategy: Option<DeletionStrategy>,
    },
    /// [`Vm::move_memslot`](fastzap::Vm::move_memslot).
    MoveSlot {
        /// The slot.
        id: SlotId,
        /// Its new base gfn.
        base_gfn: u64,
    },
    /// [`Vm::invalidate_range`](fastzap::Vm::invalidate_range).
    InvalidateRange {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::clear_flush_young`](fastzap::Vm::clear_flush_young).
    ClearFlushYoung {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::test_young`](fastzap::Vm::test_young).
    TestYoung {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::change_pte`](fastzap::Vm::change_pte).
    ChangePte {
        /// The host address.
        hva: u64,
    },
    /// [`Vm::shrink`](fastzap::Vm::shrink).
    Shrink(usize),
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `handle_requests`.
    Handled(Result<Handled, MmuError>),
    /// `page_fault`.
    Fault(Result<Fault, MmuError>),
    /// `translate`.
    Translation(Result<Translation, MmuError>),
    /// `translate_run`.
    Translations(Result<Vec<Translation>, MmuError>),
    /// `pending_requests`.
    Requests(Result<Requests, MmuError>),
    /// The zaps.
    Zap(Result<ZapStats, MmuError>),
    /// The memslot calls.
    Unit(Result<(), MmuError>),
    /// `invalidate_range`, `change_pte`, `shrink`.
    Count(Result<usize, MmuError>),
    /// `clear_flush_young`, `test_young`.
    Young(Result<bool, MmuError>),
}

impl Outcome {
    /// The error, if the call failed.
    pub fn error(&self) -> Option<MmuError> {
        match self {
            Outcome::Handled(r) => r.err(),
            Outcome::Fault(r) => r.err(),
            Outcome::Translation(r) => r.err(),
            Outcome::Translations(r) => r.as_ref().err().copied(),
            Outcome::Requests(r) => r.err(),
            Outcome::Zap(r) => r.err(),
            Outcome::Unit(r) => r.err(),
            Outcome::Count(r) => r.err(),
            Outcome::Young(r) => r.err(),
        }
    }
}

/// A disagreement between the implementation and the reference.
pub type Divergence = String;

/// A rule: `Err(why())` unless `ok`.
pub(crate) fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), Divergence> {
    if ok { Ok(()) } else { Err(why()) }
}

/// The call must have failed with exactly `want`.
pub(crate) fn expect_err<T: std::fmt::Debug>(
    got: &Result<T, MmuError>,
    want: MmuError,
) -> Result<(), Divergence> {
    match got {
        Err(e) if *e == want => Ok(()),
        other => Err(format!("expected Err({want:?}), got {other:?}")),
    }
}

/// The call must have succeeded: its value.
pub(crate) fn expect_ok<T: Clone + std::fmt::Debug>(
    got: &Result<T, MmuError>,
) -> Result<T, Divergence> {
    got.clone()
        .map_err(|e| format!("expected success, got Err({e:?})"))
}

//! # Recording what every actor saw
//!
//! A [`Recorder`] wraps each public call an actor makes: it reads a ghost
//! clock (the invocation), calls through the [`Vm`], reads the clock again (the
//! response) and appends the [`Record`] to a ghost log. Clock and log are the
//! facade's ghost types, std-based and invisible to loom and shuttle, so
//! recording adds no scheduling point. Shuttle runs one thread at a time and
//! switches only at scheduling points, so no other thread runs between the
//! first clock read and the call's first synchronizing step, or between its
//! last one and the second read: every effect of a call lies inside its
//! recorded interval, and two calls' intervals order them exactly as real time
//! does.
//!
//! The history is checked with
//! [`fastzap_reference::linearizability`].

use fastzap::checking::sync::ghost::{GhostCounter, GhostMutex};
use fastzap::{
    DeletionStrategy, Fault, Handled, MmuError, Requests, SlotId, SlotSpec, Translation, VcpuId, Vm,
};
use fastzap_reference::linearizability::{History, Record, apply_shared};
use fastzap_reference::reference::{Op, Outcome};

/// The ghost clock and log of one execution.
#[derive(Debug, Default)]
pub struct Recorder {
    clock: GhostCounter,
    log: GhostMutex<Vec<Record>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Makes the call `op` on `vm` as `actor` and records it.
    pub fn call(&self, vm: &Vm, actor: &str, op: Op) -> Outcome {
        let call = self.clock.next();
        let outcome = apply_shared(vm, &op);
        let ret = self.clock.next();
        let record = Record {
            actor: actor.to_string(),
            op,
            call,
            ret,
            outcome: outcome.clone(),
        };
        self.log.with(|log| log.push(record));
        outcome
    }

    /// The calls recorded so far.
    pub fn history(&self) -> History {
        History::new(self.log.with(|log| log.clone()))
    }

    /// A handle that records calls on `vm` as `actor`.
    pub fn actor<'a>(&'a self, vm: &'a Vm, actor: &'static str) -> Caller<'a> {
        Caller {
            recorder: self,
            vm,
            actor,
        }
    }
}

/// One actor's recorded view of the VM: the public calls the scenarios make,
/// each recorded.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    recorder: &'a Recorder,
    vm: &'a Vm,
    actor: &'static str,
}

macro_rules! unwrap_outcome {
    ($outcome:expr, $variant:ident) => {
        match $outcome {
            Outcome::$variant(result) => result,
            other => unreachable!("outcome {other:?} for a {} call", stringify!($variant)),
        }
    };
}

impl Caller<'_> {
    fn call(&self, op: Op) -> Outcome {
        self.recorder.call(self.vm, self.actor, op)
    }

    /// `handle_requests`.
    pub fn handle_requests(&self, vcpu: VcpuId) -> Result<Handled, MmuError> {
        unwrap_outcome!(self.call(Op::HandleRequests(vcpu)), Handled)
    }

    /// `page_fault`.
    pub fn page_fault(&self, vcpu: VcpuId, gfn: u64, write: bool) -> Result<Fault, MmuError> {
        unwrap_outcome!(self.call(Op::PageFault { vcpu, gfn, write }), Fault)
    }

    /// `translate`.
    pub fn translate(&self, vcpu: VcpuId, gfn: u64) -> Result<Translation, MmuError> {
        unwrap_outcome!(self.call(Op::Translate { vcpu, gfn }), Translation)
    }

    /// `pending_requests`.
    pub fn pending_requests(&self, vcpu: VcpuId) -> Result<Requests, MmuError> {
        unwrap_outcome!(self.call(Op::PendingRequests(vcpu)), Requests)
    }

    /// `invalidate_zap_all_pages`.
    pub fn invalidate_zap_all_pages(&self) -> Result<fastzap::ZapStats, MmuError> {
        unwrap_outcome!(self.call(Op::ZapAllFast), Zap)
    }

    /// `create_memslot`.
    pub fn create_memslot(&self, spec: SlotSpec) -> Result<(), MmuError> {
        unwrap_outcome!(self.call(Op::CreateSlot(spec)), Unit)
    }

    /// `delete_memslot_with`.
    pub fn delete_memslot_with(
        &self,
        id: SlotId,
        strategy: DeletionStrategy,
    ) -> Result<(), MmuError> {
        unwrap_outcome!(
            self.call(Op::DeleteSlot {
                id,
                strategy: Some(strategy),
            }),
            Unit
        )
    }

    /// `invalidate_range`.
    pub fn invalidate_range(&self, start: u64, end: u64) -> Result<usize, MmuError> {
        unwrap_outcome!(self.call(Op::InvalidateRange { start, end }), Count)
    }

    /// `clear_flush_young`.
    pub fn clear_flush_young(&self, start: u64, end: u64) -> Result<bool, MmuError> {
        unwrap_outcome!(self.call(Op::ClearFlushYoung { start, end }), Young)
    }

    /// `test_young`.
    pub fn test_young(&self, start: u64, end: u64) -> Result<bool, MmuError> {
        unwrap_outcome!(self.call(Op::TestYoung { start, end }), Young)
    }

    /// `change_pte`.
    pub fn change_pte(&self, hva: u64) -> Result<usize, MmuError> {
        unwrap_outcome!(self.call(Op::ChangePte { hva }), Count)
    }
}

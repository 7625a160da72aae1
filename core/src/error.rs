//! # Typed errors
//!
//! Every public operation validates its input before it changes anything, so an
//! `Err` always means "nothing happened".

use crate::addr::Gfn;
use crate::ids::SlotId;

/// Why an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MmuError {
    /// The configuration is unusable.
    InvalidConfig(&'static str),
    /// No vCPU has this index.
    UnknownVcpu(usize),
    /// Another thread is running an operation on this vCPU (`vcpu->mutex`).
    VcpuBusy(usize),
    /// The gfn is beyond what the shadow page table maps.
    GfnOutOfRange {
        /// The gfn asked for.
        gfn: Gfn,
        /// The first gfn that is out of range.
        limit: Gfn,
    },
    /// No memslot has this id.
    UnknownSlot(SlotId),
    /// A memslot with this id already exists.
    SlotExists(SlotId),
    /// The slot would overlap another slot's gfns.
    SlotOverlap {
        /// The slot being created or moved.
        slot: SlotId,
        /// The slot it would overlap.
        other: SlotId,
    },
    /// Creating the slot would exceed `KVM_USER_MEM_SLOTS` slots
    /// ([`Memslots::MAX_SLOTS`](crate::Memslots::MAX_SLOTS)).
    TooManySlots {
        /// The slot being created.
        slot: SlotId,
        /// The most slots a VM may have.
        limit: usize,
    },
    /// A slot must have at least one page.
    EmptySlot,
    /// The host address is not page aligned, or the range overflows.
    BadHostRange,
    /// A notifier was given an empty or reversed hva range.
    BadHvaRange,
    /// `zap_obsolete_pages` exceeded its progress bound (I6): a livelock.
    ZapLivelock {
        /// Steps taken when it gave up.
        steps: u64,
        /// The bound computed when it began.
        bound: u64,
    },
}

impl std::fmt::Display for MmuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MmuError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            MmuError::UnknownVcpu(id) => write!(f, "no vCPU {id}"),
            MmuError::VcpuBusy(id) => write!(f, "vCPU {id} is in use by another thread"),
            MmuError::GfnOutOfRange { gfn, limit } => {
                write!(f, "gfn {:#x} is out of range (limit {:#x})", gfn.0, limit.0)
            }
            MmuError::UnknownSlot(id) => write!(f, "no memslot {}", id.0),
            MmuError::SlotExists(id) => write!(f, "memslot {} already exists", id.0),
            MmuError::SlotOverlap { slot, other } => {
                write!(f, "memslot {} would overlap memslot {}", slot.0, other.0)
            }
            MmuError::TooManySlots { slot, limit } => {
                write!(f, "memslot {}: a VM has at most {limit} memslots", slot.0)
            }
            MmuError::EmptySlot => f.write_str("a memslot needs at least one page"),
            MmuError::BadHostRange => f.write_str("host address not page aligned or overflows"),
            MmuError::BadHvaRange => f.write_str("empty or reversed hva range"),
            MmuError::ZapLivelock { steps, bound } => {
                write!(
                    f,
                    "zap_obsolete_pages livelocked: {steps} steps, bound {bound}"
                )
            }
        }
    }
}

impl std::error::Error for MmuError {}

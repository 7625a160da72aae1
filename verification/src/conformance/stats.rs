//! What cases did: the classes of invalid call ([`Invalid`]) and the counts
//! of a case ([`CaseStats`]), so that a generator that stops producing a
//! class shows.

use fastzap::{MmuError, SlotId};
use fastzap_reference::reference::Op;

/// The classes of invalid call the generator produces on purpose, by the
/// error they must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Create over another slot's gfns: `SlotOverlap`.
    OverlappingSlot,
    /// Move onto another slot: `SlotOverlap`.
    MoveOntoSlot,
    /// Create with an id in use: `SlotExists`.
    DuplicateSlotId,
    /// Create with no pages: `EmptySlot`.
    ZeroSizedSlot,
    /// Delete a slot already deleted: `UnknownSlot`.
    DoubleDelete,
    /// Delete or move an id never created: `UnknownSlot`.
    UnknownSlot,
    /// Any call on a vCPU that does not exist: `UnknownVcpu`.
    UnknownVcpu,
    /// A gfn, or a slot's end, past the last gfn: `GfnOutOfRange`.
    GfnOutOfRange,
    /// An unaligned or too high host range for a slot: `BadHostRange`.
    BadHostRange,
    /// An empty or reversed notifier range (`BadHvaRange`), or a notifier
    /// address outside the host's address space (`HvaOutOfRange`).
    BadHvaRange,
    /// Any other error (the reference allows none).
    Other,
}

impl Invalid {
    /// Every class, in the order of [`CaseStats::invalid`].
    pub const ALL: [Invalid; 11] = [
        Invalid::OverlappingSlot,
        Invalid::MoveOntoSlot,
        Invalid::DuplicateSlotId,
        Invalid::ZeroSizedSlot,
        Invalid::DoubleDelete,
        Invalid::UnknownSlot,
        Invalid::UnknownVcpu,
        Invalid::GfnOutOfRange,
        Invalid::BadHostRange,
        Invalid::BadHvaRange,
        Invalid::Other,
    ];

    /// The class of the error `e` returned by `op`; `deleted` lists the ids
    /// deleted and not created again.
    pub fn of(op: &Op, e: MmuError, deleted: &[SlotId]) -> Invalid {
        match (op, e) {
            (Op::CreateSlot(_), MmuError::SlotOverlap { .. }) => Invalid::OverlappingSlot,
            (Op::MoveSlot { .. }, MmuError::SlotOverlap { .. }) => Invalid::MoveOntoSlot,
            (_, MmuError::SlotExists(_)) => Invalid::DuplicateSlotId,
            (_, MmuError::EmptySlot) => Invalid::ZeroSizedSlot,
            (Op::DeleteSlot { .. }, MmuError::UnknownSlot(id)) if deleted.contains(&id) => {
                Invalid::DoubleDelete
            }
            (_, MmuError::UnknownSlot(_)) => Invalid::UnknownSlot,
            (_, MmuError::UnknownVcpu(_)) => Invalid::UnknownVcpu,
            (_, MmuError::GfnOutOfRange { .. }) => Invalid::GfnOutOfRange,
            (_, MmuError::BadHostRange) => Invalid::BadHostRange,
            (_, MmuError::BadHvaRange | MmuError::HvaOutOfRange { .. }) => Invalid::BadHvaRange,
            _ => Invalid::Other,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Invalid::OverlappingSlot => "overlapping slot",
            Invalid::MoveOntoSlot => "move onto another slot",
            Invalid::DuplicateSlotId => "duplicate slot id",
            Invalid::ZeroSizedSlot => "zero-sized slot",
            Invalid::DoubleDelete => "double delete",
            Invalid::UnknownSlot => "unknown slot",
            Invalid::UnknownVcpu => "unknown vCPU",
            Invalid::GfnOutOfRange => "gfn out of range",
            Invalid::BadHostRange => "bad host range",
            Invalid::BadHvaRange => "bad hva range",
            Invalid::Other => "other",
        }
    }
}

/// What cases did, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseStats {
    /// Transitions run (the opening not included).
    pub transitions: u64,
    /// Calls run and checked, the opening included (a guest access is
    /// several calls).
    pub steps: u64,
    /// Calls that returned an error (and were checked to change nothing).
    pub errors: u64,
    /// Failed calls per class, in the order of [`Invalid::ALL`].
    pub invalid: [u64; Invalid::ALL.len()],
    /// Translations that returned `Mapped`.
    pub mapped: u64,
    /// `mmu_valid_gen` wraparounds.
    pub wraps: u64,
}

impl CaseStats {
    /// Failed calls of class `class`.
    pub fn invalid(&self, class: Invalid) -> u64 {
        self.invalid[class as usize]
    }

    /// "name count" for every class but [`Invalid::Other`], then `Other` if
    /// it is not zero.
    pub fn invalid_summary(&self) -> String {
        Invalid::ALL
            .iter()
            .filter(|c| **c != Invalid::Other || self.invalid(**c) > 0)
            .map(|c| format!("{} {}", c.name(), self.invalid(*c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::ops::AddAssign for CaseStats {
    fn add_assign(&mut self, o: CaseStats) {
        self.transitions += o.transitions;
        self.steps += o.steps;
        self.errors += o.errors;
        for (a, b) in self.invalid.iter_mut().zip(o.invalid) {
            *a += b;
        }
        self.mapped += o.mapped;
        self.wraps += o.wraps;
    }
}

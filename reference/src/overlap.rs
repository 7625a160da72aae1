//! # What overlaps an operation of a concurrent history
//!
//! No core file answers this one: [`Overlap`] names what core's locks let run
//! while an operation runs, for the outcomes only concurrency produces. A
//! memslot DELETE or MOVE publishes an INVALID copy first
//! (`core/src/memslot_update.rs`), a notifier moves `mmu_notifier_seq`
//! (`core/src/notifier.rs`), and a translate checks the requests and walks at
//! two instants (`core/src/walk.rs`). [`Op::writes_sptes`] lists the
//! operations that remove or change sptes and then request something of
//! every vCPU: the ones with a tail (`tail.rs`).

use crate::op::Op;

/// What overlaps, in real time, an operation of a concurrent history: the
/// context in which [`Reference::step_overlapping`] judges outcomes that only
/// concurrency can produce.
///
/// [`Reference::step_overlapping`]: crate::reference::Reference::step_overlapping
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Overlap {
    /// A memslot DELETE or MOVE, which publishes a copy with the slot INVALID
    /// before it zaps: justifies a fault's `Retry(InvalidSlot)`.
    pub slot_invalidation: bool,
    /// An mmu-notifier (`invalidate_range`, `change_pte`, `clear_flush_young`,
    /// `test_young`), which moves `mmu_notifier_seq`: justifies a fault's
    /// `Retry(NotifierRace)`.
    pub notifier: bool,
    /// An operation that removes or changes sptes and then requests a TLB
    /// flush or a reload (the zaps, DELETE, MOVE, a create that may wrap the
    /// MMIO generation, the notifiers, the shrinker): it may fall between a
    /// translation's requests check and its walk.
    pub spte_writer: bool,
    /// An operation that removes leaves (a DELETE or MOVE, a zap of every
    /// page, `invalidate_range` or `change_pte`): it may take leaves of a
    /// notifier's range while the notifier yields at a lock break (the TDP
    /// MMU's `tdp_mmu_zap_leafs`, core/src/tdp/notifier.rs), so the notifier
    /// may count fewer than the leaves it removes.
    pub leaf_remover: bool,
}

impl Overlap {
    /// Nothing overlaps: one caller, one operation at a time.
    pub const NONE: Overlap = Overlap {
        slot_invalidation: false,
        notifier: false,
        spte_writer: false,
        leaf_remover: false,
    };

    /// Adds what `op` contributes when it overlaps another operation.
    pub fn add(&mut self, op: &Op) {
        match op {
            Op::DeleteSlot { .. } | Op::MoveSlot { .. } => self.slot_invalidation = true,
            Op::InvalidateRange { .. }
            | Op::ChangePte { .. }
            | Op::ClearFlushYoung { .. }
            | Op::TestYoung { .. } => self.notifier = true,
            _ => {}
        }
        self.spte_writer |= op.writes_sptes();
        self.leaf_remover |= matches!(
            op,
            Op::DeleteSlot { .. }
                | Op::MoveSlot { .. }
                | Op::ZapAllFast
                | Op::ZapAllEager
                | Op::InvalidateRange { .. }
                | Op::ChangePte { .. }
        );
    }
}

impl Op {
    /// Whether the operation may remove or change sptes and then request
    /// something of every vCPU: the zaps, the memslot updates (a create may
    /// wrap the MMIO generation), the notifiers that unmap, change or age,
    /// and the shrinker.
    pub fn writes_sptes(&self) -> bool {
        matches!(
            self,
            Op::ZapAllFast
                | Op::ZapAllEager
                | Op::CreateSlot(_)
                | Op::DeleteSlot { .. }
                | Op::MoveSlot { .. }
                | Op::InvalidateRange { .. }
                | Op::ChangePte { .. }
                | Op::ClearFlushYoung { .. }
                | Op::Shrink(_)
        )
    }
}

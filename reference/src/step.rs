//! # One step: an operation and its outcome, judged by its family's rules
//!
//! Mirrors `core/src/vm.rs`, whose public methods each enter the core file
//! of one kernel event: [`Reference::step`] (one caller, one operation at a
//! time) and [`Reference::step_overlapping`] (one operation of a concurrent
//! history, placed by the linearizability checker) send each [`Op`] to the
//! file of its family, which checks the outcome and updates the model:
//! `memslot.rs`, `fault.rs`, `walk.rs`, `requests.rs`, `zap.rs` and
//! `notifier.rs`. Before and after, `step_overlapping` keeps the books of
//! the operations with a tail (`tail.rs`).

use crate::op::{Divergence, Op, Outcome};
use crate::overlap::Overlap;
use crate::state::{InFlight, Reference};

impl Reference {
    /// Checks the outcome of `op` and updates the model. An `Err` means the
    /// implementation did something the specification does not allow.
    pub fn step(&mut self, op: &Op, got: &Outcome) -> Result<(), Divergence> {
        self.step_overlapping(op, got, Overlap::NONE, None)
    }

    /// [`Reference::step`] for one operation of a concurrent history, placed
    /// by the linearizability checker, with what overlaps it in real time
    /// and, if the checker will end it later with
    /// [`Reference::end_invalidation`], the key of its tail. The allowances,
    /// each for an outcome only concurrency can produce:
    ///
    /// - a fault may return `Retry(InvalidSlot)` if a DELETE or MOVE overlaps
    ///   it, and `Retry(NotifierRace)` if a notifier does; either is then a
    ///   no-op (the fault returned before touching the page tables);
    /// - a translate overlapping an spte writer may be judged as a bare walk
    ///   ([`Overlap::spte_writer`], `walked`);
    /// - an operation with a tail ([`Reference::has_tail`]) is placed at its
    ///   atomic step (the generation bump and the emptied page tables, one
    ///   `mmu_lock` hold in core, or the notifier's unmap), but the requests it
    ///   makes land on each vCPU at some instant before its tail: until then
    ///   they are only *maybe* pending for a vCPU that did not have them (and
    ///   a vCPU that handled its requests without reloading keeps its
    ///   obsolete root). A fault that finds its root obsolete still proves the
    ///   reload (the fault takes `mmu_lock`, and the requests are made in the
    ///   bump's hold). While a fast invalidation's batches run, every vCPU's
    ///   requests are at least maybe pending before each step, and the
    ///   notifiers may still find the obsolete pages' leaves: their count has
    ///   no upper bound and `*_young` may say true;
    /// - a `handle_requests` that reloaded while an spte writer overlaps it
    ///   may return with a TLB flush pending for its own vCPU: its request
    ///   loop is bounded, and its last round may free a root the writer made
    ///   invalid, whose commit flushes every TLB after the vCPU's last look;
    /// - `invalidate_range` overlapping an operation that removes leaves
    ///   ([`Overlap::leaf_remover`]) may count fewer than the certain leaves
    ///   of its range: it yields at lock breaks, and the other operation may
    ///   take some first. The leaves are removed all the same;
    /// - while a `SlotOnlyQuirkOff` DELETE with a tail is in flight, a
    ///   translate of a gfn of the deleted slot (no slot maps it now) may
    ///   still return the mapping of a leaf its zap removed: the zap yields
    ///   at lock breaks and flushes before each, so the vCPU may handle that
    ///   flush before the zap reaches the gfn. The tail (the DELETE's return)
    ///   ends it, and so does a notifier that unmaps the gfn's host page.
    ///
    /// pfns, memslots, errors and generations stay exact, and every
    /// invalidation removes its leaves when it is placed, so no stale pfn
    /// becomes allowed. With [`Overlap::NONE`] and no tail this is exactly
    /// [`Reference::step`].
    pub fn step_overlapping(
        &mut self,
        op: &Op,
        got: &Outcome,
        overlap: Overlap,
        tail: Option<u64>,
    ) -> Result<(), Divergence> {
        if self.in_flight.iter().any(|f| f.zaps) {
            self.weaken_all_pending();
        }
        let before = self.requests_now();
        let tail = tail.filter(|_| Self::has_tail(op, got));
        self.deferring = tail.map(|_| 0);
        let stepped = self.step_inner(op, got, overlap);
        let bumps = self.deferring.take().unwrap_or(0);
        let unreached = std::mem::take(&mut self.unreached);
        stepped?;
        let Some(key) = tail else {
            return Ok(());
        };
        let owed = self.soften(&before);
        self.in_flight.push(InFlight {
            key,
            zaps: Self::zaps(op),
            owed,
            bumps,
            unreached,
        });
        Ok(())
    }

    /// Sends `op` to its family's rules; an outcome of another operation is
    /// a divergence.
    fn step_inner(&mut self, op: &Op, got: &Outcome, overlap: Overlap) -> Result<(), Divergence> {
        match (op, got) {
            (Op::HandleRequests(v), Outcome::Handled(r)) => {
                self.step_handle_requests(*v, r, overlap)
            }
            (Op::PendingRequests(v), Outcome::Requests(r)) => self.step_pending_requests(*v, r),
            (Op::PageFault { vcpu, gfn, write }, Outcome::Fault(r)) => {
                self.step_page_fault(*vcpu, *gfn, *write, r, overlap)
            }
            (Op::Translate { vcpu, gfn }, Outcome::Translation(r)) => {
                self.step_translate(*vcpu, *gfn, r, overlap)
            }
            (Op::TranslateUnsynchronized { vcpu, gfn }, Outcome::Translation(r)) => {
                self.step_translate_unsynchronized(*vcpu, *gfn, r)
            }
            (Op::TranslateRun { vcpu, gfns }, Outcome::Translations(r)) => {
                self.step_translate_run(*vcpu, gfns, r)
            }
            (Op::ZapAllFast, Outcome::Zap(r)) => self.step_zap_all_fast(r),
            (Op::ZapAllEager, Outcome::Zap(r)) => self.step_zap_all_eager(r),
            (Op::CreateSlot(spec), Outcome::Unit(r)) => self.step_create_slot(spec, r),
            (Op::DeleteSlot { id, strategy }, Outcome::Unit(r)) => {
                self.step_delete_slot(*id, *strategy, r)
            }
            (Op::MoveSlot { id, base_gfn }, Outcome::Unit(r)) => {
                self.step_move_slot(*id, *base_gfn, r)
            }
            (Op::InvalidateRange { start, end }, Outcome::Count(r)) => {
                self.step_invalidate_range(*start, *end, r, overlap)
            }
            (Op::ChangePte { hva }, Outcome::Count(r)) => self.step_change_pte(*hva, r),
            (Op::ClearFlushYoung { start, end }, Outcome::Young(r)) => {
                self.step_clear_flush_young(*start, *end, r)
            }
            (Op::TestYoung { start, end }, Outcome::Young(r)) => {
                self.step_test_young(*start, *end, r)
            }
            (Op::Shrink(nr), Outcome::Count(r)) => self.step_shrink(*nr, r),
            (op, got) => Err(format!("outcome {got:?} does not belong to {op:?}")),
        }
    }
}

//! # Tails: what an operation does after its atomic step
//!
//! Mirrors the second half of `core/src/zap.rs` (`zap_obsolete_pages` zaps
//! in batches, each committed with a TLB flush request, with `mmu_lock`
//! broken in between) and `make_all_cpus_request` in `core/src/vcpu.rs`
//! (requests land on one vCPU at a time). In a concurrent history the
//! linearizability checker places such an operation at its atomic step and
//! ends it at a later event of its own, its *tail*
//! ([`Reference::end_invalidation`]); a memslot update's generation bump
//! made at an instant of its own is a third event in between
//! ([`Reference::deferred_bump`]). Until the tail the operation's requests
//! are only maybe pending for a vCPU, and while a fast invalidation's
//! batches run, notifiers may still meet the obsolete leaves. In sequential
//! use no operation has a tail and none of this applies.

use crate::op::{Op, Outcome};
use crate::state::{Reference, Root, Tri};

impl Reference {
    /// Whether `op`, which returned `got`, does things after its
    /// linearization point that other callers can see: it requests something
    /// of every vCPU (one vCPU at a time, `make_all_cpus_request`), and the
    /// invalidations among them zap in batches with lock breaks, each batch
    /// committed with a TLB flush request. (Every such operation that
    /// succeeded counts, whatever it removed: a tail can only make the
    /// reference more permissive.)
    pub fn has_tail(op: &Op, got: &Outcome) -> bool {
        got.error().is_none() && op.writes_sptes()
    }

    /// Whether `op` runs `zap_obsolete_pages` (a fast invalidation).
    pub(crate) fn zaps(op: &Op) -> bool {
        matches!(
            op,
            Op::ZapAllFast | Op::CreateSlot(_) | Op::DeleteSlot { .. } | Op::MoveSlot { .. }
        )
    }

    /// The tail `key` (given to [`Reference::step_overlapping`]) ends: the
    /// operation's requests have landed on every vCPU, and its batches are
    /// done (the last commits may have requested TLB flushes). A vCPU that
    /// has not looked at its requests since the operation was placed now
    /// certainly has them, and so does one that still holds a root the
    /// operation made obsolete: it cannot have handled the reload.
    pub fn end_invalidation(&mut self, key: u64) {
        let Some(at) = self.in_flight.iter().position(|f| f.key == key) else {
            return;
        };
        if self.in_flight[at].bumps > 0 {
            self.deferred_bump(key);
        }
        let done = self.in_flight.remove(at);
        if done.zaps {
            self.weaken_all_pending();
        }
        for (v, (pending, reload, consumed)) in done.owed.into_iter().enumerate() {
            let vm = &mut self.vcpus[v];
            // The reload has landed: a vCPU that still holds the root it made
            // obsolete has it pending, looked or not (I5).
            let still_obsolete = reload && vm.root == Root::Obsolete;
            if self.consumed[v] == consumed || still_obsolete {
                if pending || still_obsolete {
                    vm.pending = Tri::Set;
                }
                if reload {
                    vm.reload = Tri::Set;
                }
            }
        }
    }

    /// Whether a fast invalidation's batches may be running.
    pub(crate) fn zapping(&self) -> bool {
        self.in_flight.iter().any(|f| f.zaps)
    }

    /// Each vCPU's (pending, reload) now.
    pub(crate) fn requests_now(&self) -> Vec<(Tri, Tri)> {
        self.vcpus.iter().map(|v| (v.pending, v.reload)).collect()
    }

    /// Requests made since `before` land later: only maybe pending for now.
    /// Returns, per vCPU, what is owed and the vCPU's `consumed` count.
    pub(crate) fn soften(&mut self, before: &[(Tri, Tri)]) -> Vec<(bool, bool, u64)> {
        let mut owed = Vec::with_capacity(self.vcpus.len());
        for (v, &(pending, reload)) in before.iter().enumerate() {
            let vm = &mut self.vcpus[v];
            let new_pending = vm.pending == Tri::Set && pending != Tri::Set;
            let new_reload = vm.reload == Tri::Set && reload != Tri::Set;
            if new_pending {
                vm.pending = pending.weaken();
            }
            if new_reload {
                vm.reload = reload.weaken();
            }
            owed.push((new_pending, new_reload, self.consumed[v]));
        }
        owed
    }

    /// Whether `op` may make a generation bump at an instant of its own
    /// ([`Reference::deferred_bump`]): the memslot updates.
    pub fn may_defer_bump(op: &Op) -> bool {
        matches!(
            op,
            Op::CreateSlot(_) | Op::DeleteSlot { .. } | Op::MoveSlot { .. }
        )
    }

    /// The generation bumps of the memslot update with tail `key` that core
    /// makes at an instant of their own, placed by the checker between the
    /// operation and its tail: the invalidation before a publish that wraps
    /// the MMIO generation (a second bump after a DELETE's or MOVE's own),
    /// and the seed v3 DELETE's bump, which follows its unpublish (a fault
    /// in between finds the slot gone and its root current). A no-op if
    /// there is none.
    pub fn deferred_bump(&mut self, key: u64) {
        let Some(at) = self.in_flight.iter().position(|f| f.key == key) else {
            return;
        };
        let bumps = std::mem::take(&mut self.in_flight[at].bumps);
        if bumps == 0 {
            return;
        }
        let before = self.requests_now();
        for _ in 0..bumps {
            self.invalidate_all();
        }
        let owed = self.soften(&before);
        for (v, (pending, reload, consumed)) in owed.into_iter().enumerate() {
            let o = &mut self.in_flight[at].owed[v];
            if pending || reload {
                *o = (o.0 || pending, o.1 || reload, consumed);
            }
        }
    }
}

//! # Memslot updates: create, delete, move
//!
//! Mirrors `core/src/memslot_update.rs` (`__kvm_set_memory_region`) and
//! `core/src/memslot.rs` (the memslots and their generation). Every memslot
//! call returns exactly the error core's validation order gives
//! ([`Reference::create_memslot`], [`Reference::move_memslot`]), or
//! succeeds; the slots and the memslots generation are exact. A DELETE or a
//! MOVE makes one fast invalidation (`zap.rs`), and so does a publish whose
//! generation wraps the MMIO generation to 0 (the fix for bug 15). The seed
//! v3 DELETE unpublishes its slot before it bumps: in a concurrent history
//! the slot is a zombie until the bump is placed. The slot-only DELETEs
//! (`slot_zap.rs`) bump nothing: between their two publishes they zap what
//! belongs to the slot.

use fastzap::{DeletionStrategy, Gfn, Hva, MmuError, SlotId, SlotSpec};

use crate::host::PAGE_SIZE;
use crate::op::{Divergence, expect_err, expect_ok};
use crate::state::Reference;

impl Reference {
    /// `create_memslot(spec)`.
    pub(crate) fn step_create_slot(
        &mut self,
        spec: &SlotSpec,
        r: &Result<(), MmuError>,
    ) -> Result<(), Divergence> {
        match self.create_memslot(spec) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                expect_ok(r)?;
                self.slots.push(*spec);
                self.slots.sort_by_key(|s| s.base_gfn);
                self.publish();
                Ok(())
            }
        }
    }

    /// `delete_memslot(id)` (`strategy` `None`: the configured one) or
    /// `delete_memslot_with(id, strategy)`.
    pub(crate) fn step_delete_slot(
        &mut self,
        id: SlotId,
        strategy: Option<DeletionStrategy>,
        r: &Result<(), MmuError>,
    ) -> Result<(), Divergence> {
        if !self.slots.iter().any(|s| s.id == id) {
            return expect_err(r, MmuError::UnknownSlot(id));
        }
        expect_ok(r)?;
        match strategy.unwrap_or(self.deletion) {
            // The INVALID copy, the zap, the final slots.
            DeletionStrategy::Merged311 => {
                self.publish();
                self.invalidate_all();
                self.slots.retain(|s| s.id != id);
                self.publish();
            }
            // The final slots, then the zap (`SeedV3`) or the zap left for
            // later (`SeedV3Deferred`: the notifiers may still find the
            // retained leaves).
            seed @ (DeletionStrategy::SeedV3 | DeletionStrategy::SeedV3Deferred) => {
                let gone = self.slots.iter().find(|s| s.id == id).copied();
                self.slots.retain(|s| s.id != id);
                self.publish();
                if self.deferring.is_some() {
                    self.zombies.extend(gone);
                }
                if seed == DeletionStrategy::SeedV3 {
                    self.invalidate_or_defer();
                } else {
                    self.invalidate_all_deferred(gone);
                }
            }
            // 4e103134b862 and its descendants: the INVALID copy, the zap of
            // what belongs to the slot (`slot_zap.rs`), the final slots.
            slot_only @ (DeletionStrategy::SlotOnly2019
            | DeletionStrategy::SlotOnlyFlushing2020
            | DeletionStrategy::SlotOnlyQuirkOff) => {
                let gone = *self
                    .slots
                    .iter()
                    .find(|s| s.id == id)
                    .expect("checked above");
                self.publish();
                self.zap_slot_only(gone, slot_only);
                self.slots.retain(|s| s.id != id);
                self.publish();
            }
        }
        Ok(())
    }

    /// `move_memslot(id, base_gfn)`.
    pub(crate) fn step_move_slot(
        &mut self,
        id: SlotId,
        base_gfn: u64,
        r: &Result<(), MmuError>,
    ) -> Result<(), Divergence> {
        match self.move_memslot(id, base_gfn) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                expect_ok(r)?;
                self.publish();
                self.invalidate_all();
                for s in &mut self.slots {
                    if s.id == id {
                        s.base_gfn = Gfn(base_gfn);
                    }
                }
                self.slots.sort_by_key(|s| s.base_gfn);
                self.publish();
                Ok(())
            }
        }
    }

    /// Publishes the next memslots; a publish that wraps the MMIO generation
    /// to 0 invalidates everything first.
    fn publish(&mut self) {
        self.slots_generation += 1;
        if self.slots_generation & self.mmio_mask == 0 {
            self.invalidate_or_defer();
        }
    }

    fn overlaps(s: &SlotSpec, base: u64, npages: u64) -> bool {
        base < s.base_gfn.0 + s.npages && s.base_gfn.0 < base + npages
    }

    /// `validate_range`: a slot needs pages, and must fit below `max_gfn`.
    fn validate_range(&self, base: u64, npages: u64) -> Result<(), MmuError> {
        if npages == 0 {
            return Err(MmuError::EmptySlot);
        }
        match base.checked_add(npages) {
            Some(end) if end <= self.max_gfn => Ok(()),
            _ => Err(MmuError::GfnOutOfRange {
                gfn: Gfn(base.saturating_add(npages - 1)),
                limit: Gfn(self.max_gfn),
            }),
        }
    }

    /// The error `create_memslot(spec)` must return, if any. The order is
    /// core's: size and gfn range, then the host range (page aligned, no
    /// overflow, ending at or below 2^48), then a duplicate id, then an
    /// overlap with the first slot in base order.
    pub fn create_memslot(&self, spec: &SlotSpec) -> Result<(), MmuError> {
        self.validate_range(spec.base_gfn.0, spec.npages)?;
        let end = spec
            .npages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| spec.userspace_addr.0.checked_add(len));
        if !spec.userspace_addr.0.is_multiple_of(PAGE_SIZE) || end.is_none_or(|e| e > Hva::LIMIT.0)
        {
            return Err(MmuError::BadHostRange);
        }
        if self.slots.iter().any(|s| s.id == spec.id) {
            return Err(MmuError::SlotExists(spec.id));
        }
        if let Some(other) = self
            .slots
            .iter()
            .find(|s| Self::overlaps(s, spec.base_gfn.0, spec.npages))
        {
            return Err(MmuError::SlotOverlap {
                slot: spec.id,
                other: other.id,
            });
        }
        Ok(())
    }

    /// The error `move_memslot(id, base)` must return, if any: unknown slot,
    /// then the gfn range, then an overlap with another slot.
    pub fn move_memslot(&self, id: SlotId, base: u64) -> Result<(), MmuError> {
        let slot = self
            .slots
            .iter()
            .find(|s| s.id == id)
            .ok_or(MmuError::UnknownSlot(id))?;
        self.validate_range(base, slot.npages)?;
        if let Some(other) = self
            .slots
            .iter()
            .find(|s| s.id != id && Self::overlaps(s, base, slot.npages))
        {
            return Err(MmuError::SlotOverlap {
                slot: id,
                other: other.id,
            });
        }
        Ok(())
    }
}

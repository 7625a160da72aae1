//! # Memslot updates (`__kvm_set_memory_region`): create, delete, move
//!
//! Every update is serialized by `slots_lock` and publishes a whole new
//! generation of the memslots. A DELETE has two strategies
//! ([`DeletionStrategy`]): Linux 3.11 as merged (publish the slot INVALID,
//! wait, fast invalidate-all, publish without it, wait), and the seed's v3
//! (unpublish, then in one `mmu_lock` hold bump the generation and make the
//! slot's rmap remove-only, unmap it outside the lock, wait, zap). A MOVE is
//! the 3.11 DELETE's first half followed by a publish at the new base, with new
//! rmap and `lpage_info` arrays.

use crate::addr::{Gfn, Hva, PAGE_SIZE};
use crate::checkpoint::AuditPoint;
use crate::design::DeletionStrategy;
use crate::error::{ConfigError, MmuError};
use crate::event::{Actor, What};
use crate::ghost::Visited;
use crate::ids::SlotId;
use crate::memslot::{LpageInfo, Memslot, Memslots, SLOT_INVALID, SlotSpec};
use crate::mutant::Mutant;
use crate::rmap::Rmap;
use crate::spte::Spte;
use crate::sync::{Arc, Ordering};
use crate::vm::Vm;
use crate::zap::ZapNow;

impl Vm {
    /// KVM_SET_USER_MEMORY_REGION, create. MMIO sptes for the new gfns stop being
    /// trusted because the memslots generation changes.
    ///
    /// # Errors
    ///
    /// Checked in this order, the first broken rule's error returned:
    ///
    /// 1. [`MmuError::EmptySlot`]: `npages` is 0;
    /// 2. [`MmuError::GfnOutOfRange`]: the gfns pass the last one the shadow
    ///    page table maps (reporting the slot's last gfn);
    /// 3. [`MmuError::BadHostRange`]: `userspace_addr` is not page aligned, or
    ///    the host range overflows or ends above [`Hva::LIMIT`] (ending
    ///    exactly at it is fine);
    /// 4. [`MmuError::SlotExists`]: the id is in use;
    /// 5. [`MmuError::TooManySlots`]: the VM has
    ///    [`Memslots::MAX_SLOTS`] slots;
    /// 6. [`MmuError::SlotOverlap`]: the gfns overlap a slot (the first by
    ///    base gfn);
    ///
    /// and last, after the checks, with the `ghost` feature only,
    /// `MmuError::ZapLivelock` if the invalidation that a wrap of the memslots
    /// generation runs before the publish breaks its progress bound (the slot
    /// is then not created; only a mutant of the checking build can do that).
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, MmuError, SlotId, SlotSpec, Vm, PAGE_SIZE};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// // One page ending exactly at the top of the host's address space.
    /// let top = SlotSpec {
    ///     id: SlotId(0),
    ///     base_gfn: Gfn(0),
    ///     npages: 1,
    ///     userspace_addr: Hva::LIMIT.checked_sub(PAGE_SIZE).unwrap(),
    /// };
    /// vm.create_memslot(top)?;
    /// // No pages and an unaligned host address: the page count is checked first.
    /// let bad = SlotSpec { id: SlotId(1), npages: 0, userspace_addr: Hva(1), ..top };
    /// assert_eq!(vm.create_memslot(bad), Err(MmuError::EmptySlot));
    /// # Ok::<(), MmuError>(())
    /// ```
    pub fn create_memslot(&self, spec: SlotSpec) -> Result<(), MmuError> {
        let (base_gfn, hva) = (spec.base_gfn.0, spec.userspace_addr.0);
        self.validate_range(base_gfn, spec.npages)?;
        // The range [hva, end) may end exactly at the limit: `end` is exclusive.
        if !hva.is_multiple_of(PAGE_SIZE)
            || spec
                .npages
                .checked_mul(PAGE_SIZE)
                .and_then(|len| hva.checked_add(len))
                .is_none_or(|end| end > Hva::LIMIT.0)
        {
            return Err(MmuError::BadHostRange);
        }
        let _slots = self.slots_lock.lock();
        let current = self.memslots.load_full();
        if current.by_id(spec.id).is_some() {
            return Err(MmuError::SlotExists(spec.id));
        }
        if current.len() >= Memslots::MAX_SLOTS {
            return Err(MmuError::TooManySlots {
                slot: spec.id,
                limit: Memslots::MAX_SLOTS,
            });
        }
        if let Some(other) = current.first_overlapping(base_gfn, spec.npages, None) {
            return Err(MmuError::SlotOverlap {
                slot: spec.id,
                other: other.id,
            });
        }
        let (rmap, lpage_info) = self.new_slot_arrays(base_gfn, spec.npages);
        let slot = Memslot {
            id: spec.id,
            base_gfn,
            npages: spec.npages,
            userspace_addr: hva,
            flags: 0,
            rmap,
            lpage_info,
        };
        self.install_memslots(current.next(|m| m.insert(slot)), Actor::Memslot)
    }

    /// KVM_SET_USER_MEMORY_REGION, delete, with the configured strategy.
    ///
    /// # Errors
    ///
    /// [`MmuError::UnknownSlot`] if no slot has `id`, before anything
    /// changes; then, once the delete has begun, with the `ghost` feature
    /// only, `MmuError::ZapLivelock` if its invalidation breaks its progress
    /// bound (only a mutant of the checking build can do that).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::{Fault, MmuError};
    ///
    /// vm.handle_requests(vcpu)?;
    /// vm.page_fault(vcpu, Gfn(2), true)?;
    /// vm.delete_memslot(SlotId(0))?;
    /// assert_eq!(vm.slot_count(), 0);
    /// vm.handle_requests(vcpu)?; // the delete asked every vCPU to reload
    /// assert_eq!(vm.page_fault(vcpu, Gfn(2), true)?, Fault::Mmio);
    /// assert_eq!(vm.delete_memslot(SlotId(0)), Err(MmuError::UnknownSlot(SlotId(0))));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn delete_memslot(&self, id: SlotId) -> Result<(), MmuError> {
        self.delete_memslot_with(id, self.config.deletion)
    }

    /// Delete with an explicit strategy. Errors as
    /// [`delete_memslot`](Vm::delete_memslot).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::{DeletionStrategy, Translation};
    ///
    /// vm.handle_requests(vcpu)?;
    /// vm.page_fault(vcpu, Gfn(2), true)?;
    /// // The seed's v3: zap only the slot's pages, under `mmu_lock`.
    /// vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3)?;
    /// vm.handle_requests(vcpu)?;
    /// assert_eq!(vm.translate(vcpu, Gfn(2))?, Translation::Miss);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn delete_memslot_with(
        &self,
        id: SlotId,
        strategy: DeletionStrategy,
    ) -> Result<(), MmuError> {
        let _slots = self.slots_lock.lock();
        let current = self.memslots.load_full();
        let slot = current
            .by_id(id)
            .cloned()
            .ok_or(MmuError::UnknownSlot(id))?;
        drop(current);
        if !self.config.mmu.supports(strategy) {
            return Err(MmuError::InvalidConfig(ConfigError::Deletion {
                mmu: self.config.mmu,
                deletion: strategy,
            }));
        }
        let cut = match strategy {
            DeletionStrategy::Merged311 => {
                let cut = self.retire_slot_merged(&slot)?;
                let next = self.memslots.load_full().next(|m| {
                    m.remove(id);
                });
                self.install_memslots(next, Actor::Memslot)?;
                self.synchronize(Actor::Memslot);
                cut
            }
            DeletionStrategy::SeedV3 => self.delete_seed_v3(slot.clone(), ZapNow::Yes)?,
            DeletionStrategy::SeedV3Deferred => self.delete_seed_v3(slot.clone(), ZapNow::Defer)?,
            // 4e103134b862 and its descendants: the 3.11 shape, with
            // `kvm_arch_flush_shadow_memslot` zapping only the slot's own
            // (core/src/memslot_zap.rs) instead of everything.
            DeletionStrategy::SlotOnly2019
            | DeletionStrategy::SlotOnlyFlushing2020
            | DeletionStrategy::SlotOnlyQuirkOff => {
                let cut = self.retire_slot_only(&slot, strategy)?;
                let next = self.memslots.load_full().next(|m| {
                    m.remove(id);
                });
                self.install_memslots(next, Actor::Memslot)?;
                self.synchronize(Actor::Memslot);
                cut
            }
        };
        self.ghost.kill_runs(
            std::iter::once(slot.base_gfn..slot.base_gfn + slot.npages),
            cut,
        );
        Ok(())
    }

    /// KVM_SET_USER_MEMORY_REGION, move: the 3.11 procedure, with new rmap and
    /// lpage_info arrays for the new base (bug 10 kept the old ones).
    ///
    /// # Errors
    ///
    /// Checked in this order, the first broken rule's error returned:
    ///
    /// 1. [`MmuError::UnknownSlot`]: no slot has `id`;
    /// 2. [`MmuError::GfnOutOfRange`]: at `new_base_gfn` the slot would pass
    ///    the last gfn the shadow page table maps;
    /// 3. [`MmuError::SlotOverlap`]: at `new_base_gfn` it would overlap
    ///    another slot (the first by base gfn);
    ///
    /// then, once the move has begun, with the `ghost` feature only,
    /// `MmuError::ZapLivelock` if its invalidation breaks its progress bound
    /// (only a mutant of the checking build can do that).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::{Fault, MmuError};
    ///
    /// vm.handle_requests(vcpu)?;
    /// vm.move_memslot(SlotId(0), Gfn(64))?;
    /// vm.handle_requests(vcpu)?;
    /// // gfn 64 is now the slot's first page, backed by the same host page as gfn 0 was.
    /// let Fault::Mapped { pfn } = vm.page_fault(vcpu, Gfn(64), false)? else { unreachable!() };
    /// assert_eq!(pfn, vm.hva_to_pfn(base)?);
    /// assert_eq!(vm.page_fault(vcpu, Gfn(0), false)?, Fault::Mmio);
    /// assert_eq!(vm.move_memslot(SlotId(7), Gfn(0)), Err(MmuError::UnknownSlot(SlotId(7))));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn move_memslot(&self, id: SlotId, new_base_gfn: Gfn) -> Result<(), MmuError> {
        let new_base_gfn = new_base_gfn.0;
        let _slots = self.slots_lock.lock();
        let current = self.memslots.load_full();
        let slot = current
            .by_id(id)
            .cloned()
            .ok_or(MmuError::UnknownSlot(id))?;
        self.validate_range(new_base_gfn, slot.npages)?;
        if let Some(other) = current.first_overlapping(new_base_gfn, slot.npages, Some(id)) {
            return Err(MmuError::SlotOverlap {
                slot: id,
                other: other.id,
            });
        }
        drop(current);
        let cut = self.retire_slot_merged(&slot)?;
        let (rmap, lpage_info) = if self.config.mutant_is(Mutant::MoveReusesMetadata) {
            (slot.rmap.clone(), slot.lpage_info.clone())
        } else {
            self.new_slot_arrays(new_base_gfn, slot.npages)
        };
        let moved = Memslot {
            base_gfn: new_base_gfn,
            flags: 0,
            rmap,
            lpage_info,
            ..slot.clone()
        };
        let next = self.memslots.load_full().next(|m| {
            m.remove(id);
            m.insert(moved);
        });
        self.install_memslots(next, Actor::Memslot)?;
        self.synchronize(Actor::Memslot);
        self.ghost.kill_runs(
            std::iter::once(slot.base_gfn..slot.base_gfn + slot.npages),
            cut,
        );
        Ok(())
    }

    /// Publishes `next`. If its MMIO generation wraps to 0, every page is
    /// invalidated first, so that no MMIO spte from a full cycle ago can match the
    /// new generation (bug 15 is doing it after the publish).
    fn install_memslots(&self, next: Memslots, actor: Actor) -> Result<(), MmuError> {
        let generation = next.generation;
        // Set before the wrap's zap, on the memslots faults are reading now.
        self.memslots.load().begin_update();
        let wraps = generation & self.mmio_mask() == 0;
        let after = self.config.mutant_is(Mutant::WrapZapAfterPublish);
        if wraps && !after {
            self.invalidate_all_locked(actor, |_| {}, || {})?;
        }
        self.memslots.store(Arc::new(next));
        self.event(actor, || What::Publish { generation });
        self.audit_point_unlocked(actor, AuditPoint::AfterMemslotUpdate);
        if wraps && after {
            self.invalidate_all_locked(actor, |_| {}, || {})?;
        }
        Ok(())
    }

    /// `synchronize_srcu_expedited(&kvm->srcu)`, logged.
    fn synchronize(&self, actor: Actor) {
        self.event(actor, || What::Synchronize { done: false });
        self.reclaimer.synchronize();
        self.event(actor, || What::Synchronize { done: true });
    }

    fn validate_range(&self, base_gfn: u64, npages: u64) -> Result<(), MmuError> {
        if npages == 0 {
            return Err(MmuError::EmptySlot);
        }
        let limit = self.config.max_gfn();
        match base_gfn.checked_add(npages) {
            Some(end) if end <= limit => Ok(()),
            _ => Err(MmuError::GfnOutOfRange {
                gfn: Gfn(base_gfn.saturating_add(npages - 1)),
                limit: Gfn(limit),
            }),
        }
    }

    /// `kvm_arch_create_memslot`: a new rmap and `lpage_info` for a slot at
    /// `base_gfn` of `npages`.
    fn new_slot_arrays(&self, base_gfn: u64, npages: u64) -> (Arc<Rmap>, Arc<LpageInfo>) {
        let lpage_info = LpageInfo::new(base_gfn, npages, self.config.index_bits());
        (
            Arc::new(Rmap::new(
                Memslot::rmap_len(npages, &lpage_info, self.config.large_pages),
                self.config.desc_capacity,
                self.config.mutant_is(Mutant::RemoveOnlyRmapCompacts),
                self.ghost.clone(),
            )),
            Arc::new(lpage_info),
        )
    }

    /// Linux 3.11, first half of DELETE and MOVE: publish a copy with the slot
    /// INVALID, wait for readers, zap all (fast). Returns the ghost cut time.
    fn retire_slot_merged(&self, slot: &Memslot) -> Result<u64, MmuError> {
        let invalid = self
            .memslots
            .load_full()
            .next(|m| m.set_flags(slot.id, SLOT_INVALID));
        self.install_memslots(invalid, Actor::Memslot)?;
        let cut = self.ghost.tick();
        self.synchronize(Actor::Memslot);
        self.invalidate_all_locked(Actor::Memslot, |_| {}, || {})?;
        Ok(cut)
    }

    /// `__kvm_set_memory_region`'s DELETE with a slot-only
    /// `kvm_arch_flush_shadow_memslot`: publish a copy with the slot INVALID,
    /// wait for readers, zap the slot's own. Returns the ghost cut time.
    fn retire_slot_only(
        &self,
        slot: &Memslot,
        strategy: DeletionStrategy,
    ) -> Result<u64, MmuError> {
        let invalid = self
            .memslots
            .load_full()
            .next(|m| m.set_flags(slot.id, SLOT_INVALID));
        self.install_memslots(invalid, Actor::Memslot)?;
        let cut = self.ghost.tick();
        self.synchronize(Actor::Memslot);
        match self.tdp() {
            Some(ctx) => {
                crate::tdp::memslot::kvm_mmu_zap_memslot(&ctx, slot);
            }
            None => self.zap_memslot(slot, strategy),
        }
        Ok(cut)
    }

    /// The seed's v3 delete (`kvm_mmu_invalid_memslot_pages`), then the zap
    /// of the obsolete pages now or, as the seed posted it, later. Returns the
    /// ghost cut time.
    fn delete_seed_v3(&self, slot: Memslot, zap: ZapNow) -> Result<u64, MmuError> {
        let actor = Actor::Memslot;
        // rmap_remove must still find the slot's rmap once it is unpublished.
        self.lock_mmu(actor).zombies.push(slot.clone());
        let next = self.memslots.load_full().next(|m| {
            m.remove(slot.id);
        });
        self.install_memslots(next, actor)?;
        let cut = self.ghost.tick();
        // kvm_mmu_invalid_memslot_pages: bump, remove-only rmap, reset lpage_info
        // and request reload, all in one mmu_lock hold; then, outside the lock,
        // unmap the rmap and wait for every walker, and only then zap.
        let result = self.invalidate_all_with(
            actor,
            zap,
            |lk| {
                slot.rmap.set_remove_only(lk);
                slot.lpage_info.reset(lk);
            },
            || {
                self.unmap_memslot_rmap_nolock(&slot);
                self.synchronize(actor);
                self.audit_point_unlocked(actor, AuditPoint::SeedV3Unmapped(&slot));
            },
        );
        self.lock_mmu(actor).zombies.retain(|s| s.id != slot.id);
        result.map(|_| cut)
    }

    /// `unmap_memslot_rmap_nolock`: outside `mmu_lock`, take every entry of the
    /// remove-only rmap and clear its spte atomically. Walkers under `mmu_lock`
    /// may clear the same entries; both tolerate finding them gone.
    fn unmap_memslot_rmap_nolock(&self, slot: &Memslot) {
        self.ghost.unmapper_begin();
        let guard = self.reclaimer.pin();
        // Ghost: the pages this unmapper reached. The shrinker may zap and
        // commit them meanwhile, and the commit's flush waits only for vCPUs:
        // the pin alone must keep them (I3, "shadow pages outlive their
        // readers"), until the guard is dropped.
        let mut touched = Visited::default();
        for index in 0..slot.rmap.len() {
            slot.rmap.take_all(&guard, index, |sptep| {
                let page = sptep.page.get(&guard);
                touched.push(&page.ghost);
                let spte = &page.sptes[sptep.index];
                let mut raw = spte.load(Ordering::Acquire);
                while Spte::is_leaf(raw) {
                    match spte.compare_exchange(raw, 0, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => break,
                        Err(now) => raw = now,
                    }
                }
            });
        }
        self.ghost.check_outlived(&touched, |sp| {
            format!(
                "{sp} freed while the seed's lockless unmapper of slot {} held it",
                slot.id.0
            )
        });
        drop(guard);
        self.ghost.unmapper_end();
    }
}

#[cfg(all(test, feature = "ghost", not(any(loom, shuttle))))]
mod tests {
    use crate::addr::{Gfn, Hva, PAGE_SIZE};
    use crate::config::Config;
    use crate::ids::SlotId;
    use crate::memslot::SlotSpec;
    use crate::vm::Vm;
    use proptest::prelude::*;

    proptest! {
        /// The hva index agrees with a scan of every slot, with host ranges
        /// that overlap or not, across creates, moves and deletes.
        #[test]
        #[cfg_attr(miri, ignore = "proptest reads the working directory, which Miri's isolation forbids; no unsafe code here")]
        fn hva_query_matches_a_scan(
            slots in prop::collection::vec((0u64..48, 1u64..6), 1..24),
            ops in prop::collection::vec((0u16..24, 0u8..3), 0..12),
            queries in prop::collection::vec((0u64..56, 1u64..8), 1..16),
        ) {
            let mut cfg = Config::native();
            cfg.audit_points = false;
            let vm = Vm::new(cfg).unwrap();
            for (id, &(page, npages)) in slots.iter().enumerate() {
                let spec = SlotSpec {
                    id: SlotId(id as u16),
                    base_gfn: Gfn(8 * id as u64),
                    npages,
                    userspace_addr: Hva(page * PAGE_SIZE),
                };
                vm.create_memslot(spec).unwrap();
            }
            for op in std::iter::once(None).chain(ops.iter().map(Some)) {
                let _ = match op {
                    Some(&(id, 0)) => vm.delete_memslot(SlotId(id)),
                    Some(&(id, 1)) => vm.move_memslot(SlotId(id), Gfn(8 * (24 + u64::from(id)))),
                    _ => Ok(()),
                };
                let slots = vm.memslots();
                for &(page, len) in &queries {
                    let (start, end) = (page * PAGE_SIZE, (page + len) * PAGE_SIZE);
                    let got: Vec<SlotId> =
                        slots.in_hva_range(start, end).iter().map(|s| s.id).collect();
                    let want: Vec<SlotId> = slots
                        .iter()
                        .filter(|s| s.hva_range().0 < end && start < s.hva_range().1)
                        .map(|s| s.id)
                        .collect();
                    prop_assert_eq!(got, want, "[{:#x}, {:#x})", start, end);
                }
            }
        }
    }
}

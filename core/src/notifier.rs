//! # mmu-notifiers (`kvm_mmu_notifier_*`): the host changes its page tables
//!
//! The host tells KVM before it takes a page away (`invalidate_range_start`
//! and `_end`), when it ages pages (`clear_flush_young`, `test_young`), and
//! when it replaces one (`change_pte`). Each walks the rmaps of every slot
//! whose host range intersects the range, published or unpublished-but-not-
//! reclaimed, so that sptes of obsolete and invalid pages are reached too
//! (bug 13 skipped them). On a remove-only rmap every handler unmaps instead
//! of rewriting (bug 4).

use crate::addr::{Hva, PAGE_SIZE};
use crate::checkpoint::AuditPoint;
use crate::error::MmuError;
use crate::event::{Actor, What};
use crate::host::check_hva;
use crate::memslot::Memslot;
use crate::mmu::MmuLock;
use crate::mutant::Mutant;
use crate::page::PagePtr;
use crate::rmap::SptePtr;
use crate::spte::{self, Spte};
use crate::sync::{Guard, Ordering, yield_now};
use crate::vm::Vm;

impl Vm {
    /// `invalidate_range_start` + `invalidate_range_end`: unmap every spte that
    /// maps a host page in `[start, end)`, on every rmap, the remove-only ones and
    /// those of invalid or obsolete pages included; flush; then the host remaps
    /// the range. Returns the number of sptes unmapped.
    ///
    /// # Errors
    ///
    /// [`MmuError::BadHvaRange`] if the range is empty or reversed (`start >=
    /// end`), then [`MmuError::HvaOutOfRange`] if it ends above
    /// [`Hva::LIMIT`] (reporting its first address at or above the limit).
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// vm.handle_requests(VcpuId(0))?;
    /// vm.page_fault(VcpuId(0), Gfn(2), true)?;
    /// vm.translate(VcpuId(0), Gfn(2))?; // the guest touches it: accessed
    /// let old = vm.hva_to_pfn(base + 2 * PAGE_SIZE)?;
    /// assert_eq!(vm.invalidate_range(base, base + 16 * PAGE_SIZE)?, 1);
    /// assert_ne!(vm.hva_to_pfn(base + 2 * PAGE_SIZE)?, old); // the host remapped it
    /// assert_eq!(vm.invalidate_range(base + PAGE_SIZE, base), Err(fastzap::MmuError::BadHvaRange));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn invalidate_range(&self, start: Hva, end: Hva) -> Result<usize, MmuError> {
        let (start, end) = (start.0, end.0);
        let cut = self.notifier_begin(start, end)?;
        if let Some(ctx) = self.tdp() {
            return Ok(crate::tdp::notifier::kvm_tdp_mmu_unmap_gfn_range(
                &ctx, start, end, cut,
            ));
        }
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Notifier);
        lk.notifier_count += 1;
        let begun = self.ghost.notifier_locked_begin(start..end);
        let targets = self.hva_targets(&lk, start, end);
        let mut unmapped = 0;
        for (slot, gfn) in &targets {
            // Every level's rmap: a large spte over the gfn goes whole.
            let levels = if self.config.mutant_is(Mutant::NotifierMissesLargeSpte) {
                1
            } else {
                2
            };
            for head in slot.rmap_heads(*gfn).take(levels) {
                for sptep in slot.rmap.entries(&guard, head) {
                    if self.config.mutant_is(Mutant::NotifierSkipsObsolete)
                        && self.is_obsolete_ptr(&lk, &guard, sptep.page)
                    {
                        continue;
                    }
                    unmapped += usize::from(self.unmap_one(&lk, &guard, slot, *gfn, head, sptep));
                }
            }
        }
        let late = self
            .config
            .mutant_is(Mutant::InvalidateRangeFlushAfterUnlock);
        if unmapped > 0 && !late && !self.config.mutant_is(Mutant::InvalidateRangeWithoutFlush) {
            self.flush_remote_tlbs(&lk);
        }
        self.audit_point(&lk, &guard, AuditPoint::InvalidateRangeReturns(&targets));
        drop(lk);
        if unmapped > 0 && late {
            // The flush after `mmu_lock` is dropped (a835429cda91's shape),
            // with the window open to other threads.
            yield_now();
            crate::vcpu::make_all_cpus_request(
                &self.vcpus,
                crate::vcpu::Requests::TLB_FLUSH,
                &self.config,
            );
        }
        // The host remaps the pages KVM can see: those backing a slot. (Pages
        // outside every slot have no spte to go stale, and remapping them one by
        // one would make a huge range cost memory proportional to its size.)
        for (slot, gfn) in &targets {
            let hva = slot.gfn_to_hva(*gfn);
            self.host.remap(hva, hva + PAGE_SIZE);
        }
        self.notifier_end(guard, start..end, begun);
        self.ghost
            .kill_gfns(targets.iter().map(|(_, gfn)| *gfn), cut);
        Ok(unmapped)
    }

    /// `kvm_mmu_notifier_clear_flush_young`: clear the accessed bits of the
    /// sptes mapping `[start, end)`, flush if any was set; returns whether any was.
    ///
    /// # Errors
    ///
    /// [`MmuError::BadHvaRange`] if the range is empty or reversed (`start >=
    /// end`), then [`MmuError::HvaOutOfRange`] if it ends above
    /// [`Hva::LIMIT`] (reporting its first address at or above the limit).
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// vm.handle_requests(VcpuId(0))?;
    /// vm.page_fault(VcpuId(0), Gfn(2), true)?;
    /// vm.translate(VcpuId(0), Gfn(2))?; // the guest touches it: accessed
    /// let range = (base + 2 * PAGE_SIZE, base + 3 * PAGE_SIZE);
    /// assert!(vm.clear_flush_young(range.0, range.1)?); // the access set the bit
    /// assert!(!vm.clear_flush_young(range.0, range.1)?);
    /// assert!(!vm.test_young(range.0, range.1)?);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn clear_flush_young(&self, start: Hva, end: Hva) -> Result<bool, MmuError> {
        self.age_range(start.0, end.0, true)
    }

    /// `kvm_mmu_notifier_test_young`: whether any spte mapping `[start, end)` has
    /// its accessed bit set.
    ///
    /// # Errors
    ///
    /// [`MmuError::BadHvaRange`] if the range is empty or reversed (`start >=
    /// end`), then [`MmuError::HvaOutOfRange`] if it ends above
    /// [`Hva::LIMIT`] (reporting its first address at or above the limit).
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// vm.handle_requests(VcpuId(0))?;
    /// vm.page_fault(VcpuId(0), Gfn(2), true)?;
    /// vm.translate(VcpuId(0), Gfn(2))?; // the guest touches it: accessed
    /// let (start, end) = (base, base + 16 * PAGE_SIZE);
    /// assert!(vm.test_young(start, end)?);
    /// assert!(vm.test_young(start, end)?); // testing clears nothing
    /// vm.clear_flush_young(start, end)?;
    /// assert!(!vm.test_young(start, end)?);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn test_young(&self, start: Hva, end: Hva) -> Result<bool, MmuError> {
        self.age_range(start.0, end.0, false)
    }

    /// `kvm_mmu_notifier_change_pte`: the host replaced the page at `hva` (KSM,
    /// copy-on-write). Sptes on a normal rmap are pointed at the new pfn,
    /// read-only; sptes on a remove-only rmap are unmapped.
    ///
    /// # Errors
    ///
    /// [`MmuError::HvaOutOfRange`] if `hva` is at or above [`Hva::LIMIT`].
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// vm.handle_requests(VcpuId(0))?;
    /// vm.page_fault(VcpuId(0), Gfn(2), true)?;
    /// vm.translate(VcpuId(0), Gfn(2))?; // the guest touches it: accessed
    /// let hva = base + 2 * PAGE_SIZE;
    /// let old = vm.hva_to_pfn(hva)?;
    /// assert_eq!(vm.change_pte(hva + 0x10)?, 1); // one spte now maps the new page
    /// let new = vm.hva_to_pfn(hva)?;
    /// assert_ne!(new, old);
    /// assert!(matches!(vm.change_pte(Hva::LIMIT), Err(fastzap::MmuError::HvaOutOfRange { .. })));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn change_pte(&self, hva: Hva) -> Result<usize, MmuError> {
        // Below the limit, the page has an end that does not overflow.
        let page = Hva(check_hva(hva)?).page().0;
        let end = page + PAGE_SIZE;
        let cut = self.notifier_begin(page, end)?;
        if let Some(ctx) = self.tdp() {
            return Ok(crate::tdp::notifier::kvm_tdp_mmu_set_spte_gfn(
                &ctx, page, cut,
            ));
        }
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Notifier);
        lk.notifier_count += 1;
        let begun = self.ghost.notifier_locked_begin(page..end);
        self.host.remap(page, end);
        let new_pfn = self.host.hva_to_pfn(page);
        let targets = self.hva_targets(&lk, page, end);
        let mut changed = 0;
        for (slot, gfn) in &targets {
            // A large spte over the page is dropped whole (the host page is
            // no longer part of a large one), and counted.
            if let Some(head) = slot.gfn_to_rmap(*gfn, 2) {
                for sptep in slot.rmap.entries(&guard, head) {
                    changed += usize::from(self.unmap_one(&lk, &guard, slot, *gfn, head, sptep));
                }
            }
            let head = slot.rmap_index(*gfn);
            for sptep in slot.rmap.entries(&guard, head) {
                if slot.rmap.is_remove_only() {
                    self.unmap_one(&lk, &guard, slot, *gfn, head, sptep);
                    continue;
                }
                let page = sptep.page.get(&guard);
                let spte = &page.sptes[sptep.index];
                if Spte::is_leaf(spte.load(Ordering::Acquire)) {
                    page.ghost.installed_at(sptep.index, self.ghost.tick());
                    spte.store(Spte::leaf(new_pfn, false), Ordering::Release);
                    self.event(lk.actor, || {
                        What::spte(
                            page.body().id,
                            sptep.index,
                            Some(*gfn),
                            Spte::leaf(new_pfn, false),
                            "change_pte",
                        )
                    });
                    changed += 1;
                }
            }
        }
        if changed > 0 && !self.config.mutant_is(Mutant::ChangePteWithoutFlush) {
            self.flush_remote_tlbs(&lk);
        }
        drop(lk);
        self.notifier_end(guard, page..end, begun);
        self.ghost
            .kill_gfns(targets.iter().map(|(_, gfn)| *gfn), cut);
        Ok(changed)
    }

    /// The aging handlers' shared walk. On a remove-only rmap every handler
    /// unmaps instead of rewriting: writing a present spte back could resurrect
    /// one the lockless unmapper just cleared (the seed's point, bug 4).
    fn age_range(&self, start: u64, end: u64, clear: bool) -> Result<bool, MmuError> {
        self.notifier_begin(start, end)?;
        if let Some(ctx) = self.tdp() {
            return Ok(crate::tdp::notifier::kvm_tdp_mmu_age_gfn_range(
                &ctx, start, end, clear,
            ));
        }
        let guard = self.reclaimer.pin();
        let lk = self.lock_mmu(Actor::Notifier);
        let mut young = false;
        let entries = |slot: &Memslot, gfn: u64| {
            slot.rmap_heads(gfn)
                .flat_map(|head| {
                    slot.rmap
                        .entries(&guard, head)
                        .into_iter()
                        .map(move |s| (head, s))
                })
                .collect::<Vec<_>>()
        };
        for (slot, gfn) in self.hva_targets(&lk, start, end) {
            for (head, sptep) in entries(&slot, gfn) {
                let spte = sptep.spte(&guard);
                if slot.rmap.is_remove_only() {
                    if self.config.mutant_is(Mutant::NotifierRewritesInvalidRmap) && clear {
                        let raw = spte.load(Ordering::Acquire);
                        if Spte::is_leaf(raw) && raw & spte::ACCESSED != 0 {
                            young = true;
                            yield_now();
                            spte.store(raw & !spte::ACCESSED, Ordering::Release);
                            self.event(lk.actor, || {
                                What::spte(
                                    sptep.page.get(&guard).body().id,
                                    sptep.index,
                                    Some(gfn),
                                    raw & !spte::ACCESSED,
                                    "clear_flush_young (plain store)",
                                )
                            });
                        }
                    } else {
                        self.unmap_one(&lk, &guard, &slot, gfn, head, sptep);
                    }
                    continue;
                }
                let mut raw = spte.load(Ordering::Acquire);
                while Spte::is_leaf(raw) && raw & spte::ACCESSED != 0 {
                    young = true;
                    if !clear {
                        break;
                    }
                    match spte.compare_exchange(
                        raw,
                        raw & !spte::ACCESSED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(now) => raw = now,
                    }
                }
            }
        }
        if young && clear {
            self.flush_remote_tlbs(&lk);
        }
        Ok(young)
    }

    /// Every (slot, gfn) whose host page intersects `[start, end)`, over the
    /// published slots (INVALID included) and the unpublished ones whose rmaps
    /// may still hold entries.
    pub(crate) fn hva_targets(
        &self,
        lk: &MmuLock<'_>,
        start: u64,
        end: u64,
    ) -> Vec<(Memslot, u64)> {
        let slots = self.memslots.load();
        // A seed-v3 DELETE makes its slot a zombie just before it unpublishes
        // it: in between, the slot is in both lists and must be visited once.
        let zombies = lk.zombies.iter().filter(|z| slots.by_id(z.id).is_none());
        slots
            .in_hva_range(start, end)
            .into_iter()
            .chain(zombies)
            .flat_map(|slot| {
                slot.gfns_in_hva(start, end)
                    .map(move |gfn| (slot.clone(), gfn))
            })
            .collect()
    }

    /// Unmaps `sptep`, found on rmap head `head` while handling `gfn`.
    fn unmap_one(
        &self,
        lk: &MmuLock<'_>,
        guard: &Guard<'_>,
        slot: &Memslot,
        gfn: u64,
        head: usize,
        sptep: SptePtr,
    ) -> bool {
        let old = sptep.spte(guard).swap(0, Ordering::AcqRel);
        slot.rmap.remove(lk, guard, head, sptep);
        let sp = sptep.page.get(guard).body().id;
        self.event(lk.actor, || What::Unmap { gfn, sp });
        Spte::is_leaf(old)
    }

    fn is_obsolete_ptr(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, ptr: PagePtr) -> bool {
        let id = ptr.get(guard).body().id;
        lk.pages.get(&id).is_none_or(|meta| lk.is_obsolete(meta))
    }

    /// Checks a notifier's range, in the order its callers document, and
    /// stamps the ghost time it began.
    fn notifier_begin(&self, start: u64, end: u64) -> Result<u64, MmuError> {
        if start >= end {
            return Err(MmuError::BadHvaRange);
        }
        if end > Hva::LIMIT.0 {
            return Err(MmuError::HvaOutOfRange {
                hva: Hva(start).max(Hva::LIMIT),
                limit: Hva::LIMIT,
            });
        }
        Ok(self.ghost.tick())
    }

    /// `invalidate_range_end`: bump `mmu_notifier_seq` and drop the count, so
    /// that a fault which read its pfn before or during the invalidation
    /// retries (`mmu_notifier_retry`). `hvas` and `begun` are for the ghost.
    fn notifier_end(&self, guard: Guard<'_>, hvas: std::ops::Range<u64>, begun: u64) {
        drop(guard);
        let mut lk = self.lock_mmu(Actor::Notifier);
        self.ghost.notifier_locked_end(hvas, begun);
        lk.notifier_seq += 1;
        let seq = lk.notifier_seq;
        self.notifier_seq.store(seq, Ordering::Release);
        lk.notifier_count -= 1;
    }
}

//! # The slot-only zap of a memslot DELETE (2019, its 2020 proposal, today's quirk off)
//!
//! What `kvm_arch_flush_shadow_memslot` does between the INVALID copy and
//! the final memslots when it zaps only what belongs to the deleted slot
//! ([`DeletionStrategy::SlotOnly2019`], [`DeletionStrategy::SlotOnlyFlushing2020`],
//! [`DeletionStrategy::SlotOnlyQuirkOff`]). The caller
//! (`core/src/memslot_update.rs`) holds `slots_lock`, has published the
//! INVALID copy and waited for readers, and publishes the final memslots
//! afterwards.
//!
//! The three share the kernel's lock breaks: `need_resched() ||
//! spin_needbreak()` is modelled, as in `zap.rs`, by a budget of
//! [`Config::batch`](crate::Config) gfns per `mmu_lock` hold, and
//! `cond_resched_lock` by dropping `mmu_lock`, yielding and taking it again.
//! 4e103134b862's rmap pass breaks the lock without a flush; that break is
//! reachable here exactly where the kernel had it.

use crate::design::DeletionStrategy;
use crate::event::{Actor, What};
use crate::ids::PageId;
use crate::memslot::Memslot;
use crate::mmu::MmuLock;
use crate::page::Role;
use crate::rmap::SptePtr;
use crate::sync::{Guard, yield_now};
use crate::vm::Vm;

/// When the rmap pass flushes what it zapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RmapFlush {
    /// 4e103134b862's `slot_handle_level_range` with `lock_flush_tlb`
    /// false: never; the flush owed is returned.
    Carried,
    /// The same with `lock_flush_tlb` true (the June 2020 proposal): before
    /// each lock break and at the end.
    AtBreaksAndEnd,
    /// Today's `__walk_slot_rmaps` with `flush_on_yield`: before each lock
    /// break; the flush owed at the end is returned.
    AtBreaks,
}

/// `need_resched() || spin_needbreak(&kvm->mmu_lock)`: due once a hold has
/// visited `batch` gfns.
struct Resched {
    budget: usize,
    used: usize,
}

impl Resched {
    /// One gfn visited in this hold; whether a lock break is due.
    fn due(&mut self) -> bool {
        self.used += 1;
        self.used >= self.budget
    }
}

impl Vm {
    /// `kvm_arch_flush_shadow_memslot` for the slot-only strategies; does
    /// nothing for the others. `slot` is the deleted slot (its INVALID copy
    /// is still published, so `rmap_remove` finds its rmap).
    pub(crate) fn zap_memslot(&self, slot: &Memslot, strategy: DeletionStrategy) {
        match strategy {
            DeletionStrategy::SlotOnly2019 => {
                self.invalidate_zap_pages_in_memslot(slot, RmapFlush::Carried);
            }
            DeletionStrategy::SlotOnlyFlushing2020 => {
                self.invalidate_zap_pages_in_memslot(slot, RmapFlush::AtBreaksAndEnd);
            }
            DeletionStrategy::SlotOnlyQuirkOff => self.kvm_mmu_zap_memslot(slot),
            DeletionStrategy::Merged311
            | DeletionStrategy::SeedV3
            | DeletionStrategy::SeedV3Deferred => {}
        }
    }

    /// `kvm_mmu_invalidate_zap_pages_in_memslot` as 4e103134b862 merged it
    /// (`lock_flush_tlb` false), or with the rmap zap flushing at its lock
    /// breaks and at its end (`lock_flush_tlb` true, the June 2020 proposal).
    fn invalidate_zap_pages_in_memslot(&self, slot: &Memslot, lock_flush_tlb: RmapFlush) {
        let actor = Actor::Memslot;
        let guard = self.reclaimer.pin();
        // spin_lock(&kvm->mmu_lock);
        let mut lk = self.lock_mmu(actor);
        // if (list_empty(&kvm->arch.active_mmu_pages)) goto out_unlock;
        if lk.active.is_empty() {
            return;
        }
        let mut resched = self.resched();
        // flush = slot_handle_all_level(kvm, slot, kvm_zap_rmapp, lock_flush_tlb);
        let (relocked, mut flush) =
            self.slot_handle_all_level_zap(lk, &guard, slot, lock_flush_tlb, &mut resched);
        lk = relocked;
        let mut invalid_list = Vec::new();
        // for (i = 0; i < slot->npages; i++)
        for gfn in slot.base_gfn..slot.base_gfn + slot.npages {
            // for_each_valid_sp(kvm, sp, gfn) { if (sp->gfn != gfn) continue; ... }:
            // the model's hash is keyed by (gfn, role), so a bucket holds only
            // pages whose `sp->gfn` is `gfn`; 5.1's `for_each_valid_sp` skips
            // `role.invalid` pages.
            for id in self.hashed_by(&lk, gfn, |lk, id| !lk.pages[&id].invalid) {
                // kvm_mmu_prepare_zap_page(kvm, sp, &invalid_list);
                self.prepare_zap_page(&mut lk, &guard, id, &mut invalid_list);
            }
            if resched.due() {
                // kvm_mmu_remote_flush_or_zap(kvm, &invalid_list, flush);
                self.remote_flush_or_zap(&mut lk, &guard, &mut invalid_list, flush);
                flush = false;
                // cond_resched_lock(&kvm->mmu_lock);
                lk = self.cond_resched_lock(lk, &mut resched);
            }
        }
        // kvm_mmu_remote_flush_or_zap(kvm, &invalid_list, flush);
        self.remote_flush_or_zap(&mut lk, &guard, &mut invalid_list, flush);
        // out_unlock: spin_unlock(&kvm->mmu_lock);
    }

    /// `kvm_mmu_zap_memslot` (aa8d1f48d353, with fcd1ec9cb59c): the slot's
    /// leaves through `kvm_unmap_gfn_range`, then
    /// `kvm_mmu_zap_memslot_pages_and_flush`.
    fn kvm_mmu_zap_memslot(&self, slot: &Memslot) {
        let actor = Actor::Memslot;
        let guard = self.reclaimer.pin();
        // write_lock(&kvm->mmu_lock);
        let mut lk = self.lock_mmu(actor);
        let mut resched = self.resched();
        // flush = kvm_unmap_gfn_range(kvm, &range); the shadow MMU's
        // `kvm_handle_gfn_range(.., kvm_zap_rmap)` flushes at its lock breaks
        // (`flush_on_yield` true) and returns what is left to flush.
        let (relocked, mut flush) =
            self.slot_handle_all_level_zap(lk, &guard, slot, RmapFlush::AtBreaks, &mut resched);
        lk = relocked;
        // kvm_mmu_zap_memslot_pages_and_flush(kvm, slot, flush):
        let mut invalid_list = Vec::new();
        // if (list_empty(&kvm->arch.active_mmu_pages)) goto out_flush;
        if !lk.active.is_empty() {
            for gfn in slot.base_gfn..slot.base_gfn + slot.npages {
                // for_each_gfn_valid_sp_with_gptes(kvm, sp, gfn): valid (not
                // obsolete), `sp->gfn == gfn`, and `sp_has_gptes` (not direct).
                // fastzap's pages are all direct, so none matches: today's
                // quirk-off delete zaps only leaves here.
                let with_gptes = |lk: &MmuLock<'_>, id: PageId| {
                    let meta = &lk.pages[&id];
                    !lk.is_obsolete(meta) && !meta.role.direct
                };
                for id in self.hashed_by(&lk, gfn, with_gptes) {
                    self.prepare_zap_page(&mut lk, &guard, id, &mut invalid_list);
                }
                if resched.due() {
                    self.remote_flush_or_zap(&mut lk, &guard, &mut invalid_list, flush);
                    flush = false;
                    // cond_resched_rwlock_write(&kvm->mmu_lock);
                    lk = self.cond_resched_lock(lk, &mut resched);
                }
            }
        }
        // out_flush: kvm_mmu_remote_flush_or_zap(kvm, &invalid_list, flush);
        self.remote_flush_or_zap(&mut lk, &guard, &mut invalid_list, flush);
        // write_unlock(&kvm->mmu_lock);
    }

    /// `slot_handle_all_level(kvm, slot, kvm_zap_rmapp, lock_flush_tlb)`:
    /// `slot_handle_level_range` over the slot's rmap, each present head
    /// zapped (`kvm_zap_rmapp`: `drop_spte` of every entry), a lock break when
    /// due, flushing first and at the end as `lock_flush_tlb` says. Returns the lock (taken again at each break) and
    /// whether a flush is still owed. Every level's rmap, as the kernel's
    /// `for_each_slot_rmap_range` from `PG_LEVEL_4K` up: a large spte is on
    /// its level-2 head only, so a walk of level 1 alone would leave it
    /// mapped after the delete (I4).
    fn slot_handle_all_level_zap<'a>(
        &'a self,
        mut lk: MmuLock<'a>,
        guard: &Guard<'_>,
        slot: &Memslot,
        lock_flush_tlb: RmapFlush,
        resched: &mut Resched,
    ) -> (MmuLock<'a>, bool) {
        let mut flush = false;
        // for (level = PG_LEVEL_4K; level <= max_level; ++level): each head
        // once (a level-2 head covers the gfns of its large page).
        let heads = (1..=2u8).flat_map(|level| {
            let mut last = None;
            (slot.base_gfn..slot.base_gfn + slot.npages).filter_map(move |gfn| {
                let head = slot.gfn_to_rmap(gfn, level)?;
                (last.replace(head) != Some(head)).then_some((head, gfn))
            })
        });
        for (head, gfn) in heads {
            // if (*iterator.rmap) flush |= fn(kvm, iterator.rmap);
            flush |= self.kvm_zap_rmapp(&lk, guard, slot, head, gfn);
            // if (need_resched() || spin_needbreak(&kvm->mmu_lock)) {
            if resched.due() {
                if flush && lock_flush_tlb != RmapFlush::Carried {
                    self.flush_remote_tlbs(&lk);
                    flush = false;
                }
                // cond_resched_lock(&kvm->mmu_lock): with `lock_flush_tlb`
                // false (4e103134b862), the lock is dropped with zapped
                // entries not yet flushed.
                lk = self.cond_resched_lock(lk, resched);
            }
        }
        if flush && lock_flush_tlb == RmapFlush::AtBreaksAndEnd {
            self.flush_remote_tlbs(&lk);
            flush = false;
        }
        (lk, flush)
    }

    /// `kvm_zap_rmapp`: drop every spte on rmap head `head`, which files
    /// `gfn` (any gfn of its large page for a level-2 head). Returns whether
    /// any was dropped (a flush is owed).
    fn kvm_zap_rmapp(
        &self,
        lk: &MmuLock<'_>,
        guard: &Guard<'_>,
        slot: &Memslot,
        head: usize,
        gfn: u64,
    ) -> bool {
        let entries: Vec<SptePtr> = slot.rmap.entries(guard, head);
        for &sptep in &entries {
            self.drop_spte(lk, guard, sptep, gfn);
        }
        !entries.is_empty()
    }

    /// `kvm_mmu_remote_flush_or_zap`: commit what was prepared (its commit
    /// flushes), else flush if one is owed.
    fn remote_flush_or_zap(
        &self,
        lk: &mut MmuLock<'_>,
        guard: &Guard<'_>,
        invalid_list: &mut Vec<PageId>,
        flush: bool,
    ) {
        if !invalid_list.is_empty() {
            self.commit_zap_page(lk, guard, invalid_list);
        } else if flush {
            self.flush_remote_tlbs(lk);
        }
    }

    /// The valid pages (as `keep` judges them) hashed by `gfn`, at every level
    /// and address space: `for_each_valid_sp` over the bucket of `gfn`,
    /// keeping those whose `sp->gfn` is `gfn`.
    fn hashed_by(
        &self,
        lk: &MmuLock<'_>,
        gfn: u64,
        keep: impl Fn(&MmuLock<'_>, PageId) -> bool,
    ) -> Vec<PageId> {
        let mut out = Vec::new();
        for level in 1..=self.config.levels {
            for (direct, smm) in [(true, false), (true, true), (false, false), (false, true)] {
                let role = Role { level, direct, smm };
                if let Some(ids) = lk.hash.get(&(gfn, role)) {
                    out.extend(ids.iter().copied().filter(|id| keep(lk, *id)));
                }
            }
        }
        out
    }

    fn resched(&self) -> Resched {
        Resched {
            budget: self.config.batch.max(1),
            used: 0,
        }
    }

    /// `cond_resched_lock(&kvm->mmu_lock)`: drop the lock, let others run,
    /// take it again. The caller's epoch pin stays (the kernel holds
    /// `kvm->srcu` across).
    fn cond_resched_lock<'a>(&'a self, lk: MmuLock<'a>, resched: &mut Resched) -> MmuLock<'a> {
        let actor = lk.actor;
        self.event(actor, || What::LockBreak {
            zapped: resched.used,
        });
        drop(lk);
        yield_now();
        resched.used = 0;
        self.lock_mmu(actor)
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use crate::addr::{Gfn, Hva};
    use crate::config::Config;
    use crate::design::DeletionStrategy;
    use crate::event::Actor;
    use crate::ids::{SlotId, VcpuId};
    use crate::memslot::SlotSpec;
    use crate::vcpu::Requests;
    use crate::vm::Vm;
    use crate::walk::Translation;

    /// A model VM (4 gfns, 2 per page) with slot 0 at gfns 0..2 mapped by
    /// vCPU 0, slot 1 at gfn 3 mapped too, gfn 2 in no slot, requests handled.
    fn mapped(batch: usize) -> Vm {
        let mut config = Config::model();
        config.batch = batch;
        // No wrap of the MMIO generation (whose invalidation zaps everything).
        config.mmio_gen_bits = 20;
        let vm = Vm::new(config).unwrap();
        for (id, base, npages, hva) in [(0, 0, 2, 0x10_000), (1, 3, 1, 0x20_000)] {
            let spec = SlotSpec {
                id: SlotId(id),
                base_gfn: Gfn(base),
                npages,
                userspace_addr: Hva(hva),
            };
            vm.create_memslot(spec).unwrap();
        }
        for v in [VcpuId(0), VcpuId(1)] {
            vm.handle_requests(v).unwrap();
        }
        for gfn in [0, 1, 3] {
            vm.page_fault(VcpuId(0), Gfn(gfn), true).unwrap();
        }
        vm
    }

    /// `slot_handle_all_level` with `lock_flush_tlb` false breaks the lock
    /// between zapped leaves and asks no vCPU to flush, and returns the
    /// flush owed; with true, or as today's rmap walk, it flushes at the
    /// breaks (with one gfn per hold, a break follows the last gfn too).
    #[test]
    fn the_2019_rmap_pass_breaks_the_lock_without_a_flush() {
        use super::RmapFlush;
        for (how, flushed) in [
            (RmapFlush::Carried, false),
            (RmapFlush::AtBreaksAndEnd, true),
            (RmapFlush::AtBreaks, true),
        ] {
            let mut vm = mapped(1);
            let slot = vm.memslots().by_id(SlotId(0)).cloned().unwrap();
            let guard = vm.reclaimer.pin();
            let lk = vm.lock_mmu(Actor::Memslot);
            let mut resched = vm.resched();
            let (lk, owed) = vm.slot_handle_all_level_zap(lk, &guard, &slot, how, &mut resched);
            drop(lk);
            drop(guard);
            assert_eq!(owed, how == RmapFlush::Carried, "{how:?}");
            let requests = vm.pending_requests(VcpuId(1)).unwrap();
            assert_eq!(requests.contains(Requests::TLB_FLUSH), flushed, "{how:?}");
            // Both leaves are gone from the page table.
            for gfn in [0, 1] {
                let t = vm.translate_unsynchronized(VcpuId(0), Gfn(gfn)).unwrap();
                assert_eq!(t, Translation::Miss, "gfn {gfn}, {how:?}");
            }
        }
    }

    /// Deleting slot 1 (gfn 3): the 2019 hash walk finds no page keyed by
    /// gfn 3 (the last-level page is keyed by gfn 2), so it zaps the leaf
    /// alone; slot 0 stays mapped under every slot-only strategy.
    #[test]
    fn a_slot_only_delete_keeps_the_other_slot_mapped() {
        for strategy in [
            DeletionStrategy::SlotOnly2019,
            DeletionStrategy::SlotOnlyFlushing2020,
            DeletionStrategy::SlotOnlyQuirkOff,
        ] {
            let vm = mapped(2);
            let pages = vm.shadow_pages();
            vm.delete_memslot_with(SlotId(1), strategy).unwrap();
            assert_eq!(vm.shadow_pages(), pages, "{strategy:?} zapped a page");
            vm.handle_requests(VcpuId(0)).unwrap();
            assert!(matches!(
                vm.translate(VcpuId(0), Gfn(0)).unwrap(),
                Translation::Mapped { .. }
            ));
            assert_eq!(vm.translate(VcpuId(0), Gfn(3)).unwrap(), Translation::Miss);
        }
    }

    /// Deleting slot 0 (gfns 0..2): the 2019 hash walk zaps every page keyed
    /// by gfn 0, the roots included, and asks every vCPU to reload; today's
    /// quirk-off delete zaps only the leaves.
    #[test]
    fn the_2019_hash_walk_zaps_the_roots_keyed_by_gfn_0() {
        for (strategy, reload) in [
            (DeletionStrategy::SlotOnly2019, true),
            (DeletionStrategy::SlotOnlyFlushing2020, true),
            (DeletionStrategy::SlotOnlyQuirkOff, false),
        ] {
            let vm = mapped(2);
            vm.delete_memslot_with(SlotId(0), strategy).unwrap();
            let requests = vm.pending_requests(VcpuId(1)).unwrap();
            assert_eq!(requests.contains(Requests::RELOAD), reload, "{strategy:?}");
            vm.handle_requests(VcpuId(0)).unwrap();
            assert_eq!(vm.translate(VcpuId(0), Gfn(0)).unwrap(), Translation::Miss);
            let three = vm.translate(VcpuId(0), Gfn(3)).unwrap();
            assert_eq!(
                matches!(three, Translation::Mapped { .. }),
                !reload,
                "{strategy:?}"
            );
        }
    }

    /// The models' geometry (models/src/scenarios/slot2019.rs): slot 0 at
    /// gfn 0, slot 1 at gfns 1..3, gfn 3 in no slot. The 2019 hash walk
    /// misses the page keyed by gfn 0, which holds gfn 1, and zaps the page
    /// keyed by gfn 2 with gfn 3's MMIO spte; the rmap pass alone unmaps
    /// gfn 1. Today's quirk-off delete zaps no page.
    #[test]
    fn the_2019_hash_walk_misses_the_shared_page_and_zaps_the_mmio_one() {
        for (strategy, zapped) in [
            (DeletionStrategy::SlotOnly2019, 1),
            (DeletionStrategy::SlotOnlyFlushing2020, 1),
            (DeletionStrategy::SlotOnlyQuirkOff, 0),
        ] {
            let mut config = Config::model();
            config.mmio_gen_bits = 20;
            config.vcpus = 1;
            config.address_spaces = 1;
            let mut vm = Vm::new(config).unwrap();
            for (id, base, npages, hva) in [(0, 0, 1, 0x10_000), (1, 1, 2, 0x20_000)] {
                let spec = SlotSpec {
                    id: SlotId(id),
                    base_gfn: Gfn(base),
                    npages,
                    userspace_addr: Hva(hva),
                };
                vm.create_memslot(spec).unwrap();
            }
            vm.handle_requests(VcpuId(0)).unwrap();
            for gfn in 0..4 {
                vm.page_fault(VcpuId(0), Gfn(gfn), true).unwrap();
            }
            assert_eq!(vm.shadow_pages(), 3, "a root and two last-level pages");
            vm.delete_memslot_with(SlotId(1), strategy).unwrap();
            assert_eq!(vm.shadow_pages(), 3 - zapped, "{strategy:?}");
            let walk = |vm: &mut Vm, gfn| vm.translate_unsynchronized(VcpuId(0), Gfn(gfn)).unwrap();
            assert!(matches!(walk(&mut vm, 0), Translation::Mapped { .. }));
            assert_eq!(walk(&mut vm, 1), Translation::Miss, "{strategy:?}");
            // Gfn 3's MMIO spte, zapped or not, is of an older memslots
            // generation: a walk misses it either way.
            assert_eq!(walk(&mut vm, 3), Translation::Miss, "{strategy:?}");
        }
    }
}

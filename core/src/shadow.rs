//! # Shadow page management (`mmu.c`: `kvm_mmu_get_page`, `drop_spte`, `rmap_remove`)
//!
//! The `mmu_lock`-side helpers that every event shares: finding or creating a
//! shadow page of the current generation, deciding whether a page is obsolete,
//! and taking a leaf spte out of its rmap. The zap primitives
//! (`prepare_zap_page`, `commit_zap_page`) are in `zap.rs`.

use crate::event::What;
use crate::ids::PageId;
use crate::invariant::Invariant;
use crate::memslot::Memslot;
use crate::mmu::MmuLock;
use crate::mutant::Mutant;
use crate::page::{PageBody, PageMeta, PagePtr, Role, ShadowPage};
use crate::rmap::SptePtr;
use crate::spte::Spte;
use crate::sync::{Guard, Ordering};
use crate::vm::Vm;

impl Vm {
    /// The page with `id`, while pinned. `None` if it is not in the page table.
    pub(crate) fn sp<'g>(
        &self,
        lk: &MmuLock<'_>,
        guard: &'g Guard<'_>,
        id: PageId,
    ) -> Option<&'g ShadowPage> {
        lk.pages.get(&id).map(|meta| meta.ptr.get(guard))
    }

    /// `is_obsolete_sp`: invalid, or created in another generation (bug 5,
    /// [`Mutant::ObsoleteIgnoresInvalid`], forgets the first half).
    pub(crate) fn is_obsolete_sp(&self, lk: &MmuLock<'_>, meta: &PageMeta) -> bool {
        // Bug 5: `is_obsolete_sp` as Linux 3.11 wrote it.
        if self.config.mutant_is(Mutant::ObsoleteIgnoresInvalid) {
            return is_obsolete_gen(lk, meta);
        }
        lk.is_obsolete(meta)
    }

    /// `kvm_mmu_get_page`: a valid page for (gfn, level) of the current
    /// generation, found in the hash or created. Obsolete pages are skipped and
    /// never returned (I5). A new page goes to the head of the active list, which
    /// keeps the list ordered by generation.
    pub(crate) fn get_page(&self, lk: &mut MmuLock<'_>, gfn: u64, role: Role) -> (PageId, PagePtr) {
        let level = role.level;
        if let Some(ids) = lk.hash.get(&(gfn, role)) {
            for id in ids {
                let meta = &lk.pages[id];
                if !self.is_obsolete_sp(lk, meta) {
                    let (id, ptr, generation) = (*id, meta.ptr, meta.mmu_valid_gen);
                    self.event(lk.actor, || What::GetPage {
                        gfn,
                        level,
                        sp: id,
                        generation,
                        created: false,
                    });
                    return (id, ptr);
                }
            }
        }
        let id = PageId(lk.next_page_id);
        lk.next_page_id += 1;
        let generation = lk.mmu_valid_gen;
        let born_epoch = lk.gen_epoch;
        let ptr = PagePtr::alloc(
            PageBody {
                id,
                gfn,
                role,
                mmu_valid_gen: generation,
                poisoned: false,
            },
            self.config.spte_count,
        );
        self.ghost.pages().alloc();
        let key = lk.next_active_key;
        lk.next_active_key += 1;
        lk.active.insert(key, id);
        lk.hash.entry((gfn, role)).or_default().push(id);
        lk.pages.insert(
            id,
            PageMeta {
                ptr,
                gfn,
                role,
                mmu_valid_gen: generation,
                born_epoch,
                root_count: 0,
                parent_ptes: Vec::new(),
                active_key: Some(key),
                invalid: false,
                on_zap_list: false,
            },
        );
        self.event(lk.actor, || What::GetPage {
            gfn,
            level,
            sp: id,
            generation,
            created: true,
        });
        (id, ptr)
    }

    /// The slot whose rmap holds `gfn`'s sptes: the published memslots first
    /// (INVALID copies included), then the slots a seed-v3 delete unpublished.
    pub(crate) fn gfn_to_slot(&self, lk: &MmuLock<'_>, gfn: u64) -> Option<Memslot> {
        let slots = self.memslots.load();
        if let Some(slot) = slots.search(gfn) {
            return Some(slot.clone());
        }
        lk.zombies.iter().find(|s| s.contains(gfn)).cloned()
    }

    /// `drop_spte`: clears a present leaf and removes it from its rmap.
    pub(crate) fn drop_spte(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, sptep: SptePtr, gfn: u64) {
        let old = sptep.spte(guard).swap(0, Ordering::AcqRel);
        self.event(lk.actor, || {
            What::spte(
                sptep.page.get(guard).body().id,
                sptep.index,
                Some(gfn),
                0,
                "drop_spte",
            )
        });
        if !Spte::is_leaf(old) {
            return;
        }
        self.rmap_remove(lk, guard, sptep, gfn);
    }

    /// `rmap_remove`. A present leaf whose rmap cannot be found is an I1
    /// violation: the rmap and the sptes disagree.
    pub(crate) fn rmap_remove(
        &self,
        lk: &MmuLock<'_>,
        guard: &Guard<'_>,
        sptep: SptePtr,
        gfn: u64,
    ) {
        match self.gfn_to_slot(lk, gfn) {
            Some(slot) => {
                // `__gfn_to_rmap(gfn, sp->role.level, slot)`. Without large
                // pages every leaf is at level 1 (and the body is not read).
                let level = if self.config.large_pages {
                    sptep.page.get(guard).body().role.level
                } else {
                    1
                };
                let head = slot.gfn_to_rmap(gfn, level).unwrap_or(usize::MAX);
                let found = slot.rmap.remove(lk, guard, head, sptep);
                if !found && !slot.rmap.is_remove_only() {
                    self.ghost.violate(Invariant::I1, || {
                        format!(
                            "rmap_remove: gfn {gfn} spte not on slot {}'s rmap",
                            slot.id.0
                        )
                    });
                }
            }
            None => self.ghost.violate(Invariant::I1, || {
                format!("rmap_remove: no slot holds gfn {gfn}")
            }),
        }
    }

    /// The gfn a spte of `page` at `index` translates.
    pub(crate) fn spte_gfn(&self, body: &PageBody, index: usize) -> u64 {
        let shift = self.config.index_bits() * u32::from(body.role.level - 1);
        body.gfn + ((index as u64) << shift)
    }
}

/// `sp->mmu_valid_gen != kvm->arch.mmu_valid_gen`: `is_obsolete_sp` as Linux
/// 3.11 wrote it, before the 2019 fix made an invalid page obsolete too. Only
/// the mutants use it alone (bugs 5 and 8); the protocol's `is_obsolete_sp` is
/// `MmuState::is_obsolete`, which also checks `role.invalid`.
pub(crate) fn is_obsolete_gen(lk: &MmuLock<'_>, meta: &PageMeta) -> bool {
    meta.mmu_valid_gen != lk.mmu_valid_gen
}

//! # The `mmu_lock` side of the protocol
//!
//! [`MmuState`] is everything `kvm->mmu_lock` protects: `mmu_valid_gen`, the
//! page table of shadow pages with their lock-protected halves, the FIFO active
//! list (`active_mmu_pages`), the gfn hash (`mmu_page_hash`), the
//! `zapped_obsolete_pages` list, the vCPUs' roots, the mmu-notifier sequence and
//! count, and the slots being deleted whose rmaps may still hold entries.
//!
//! Every function here that needs the lock takes `&mut MmuLock` (or `&MmuLock`):
//! holding one is the only way to reach the state, so the type system does what
//! `lockdep_assert_held(&kvm->mmu_lock)` does in the kernel. Functions that also
//! dereference shadow pages take an epoch [`Guard`], pinned before the lock was
//! taken, as the kernel holds `kvm->srcu` around `mmu_lock`.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};

use crate::audit::{AuditPoint, Invariant, Violation};
use crate::event::{Actor, What};
use crate::memslot::Memslot;
use crate::mutant::Mutant;
use crate::page::{PageBody, PageId, PageMeta, PagePtr, Role, free_page};
use crate::rmap::SptePtr;
use crate::spte::Spte;
use crate::sync::{Guard, MutexGuard, Ordering, fence, yield_now};
use crate::vcpu::{REQ_RELOAD, REQ_TLB_FLUSH, VcpuMode};
use crate::vm::Vm;

/// What `kvm->mmu_lock` protects.
#[derive(Debug)]
pub struct MmuState {
    /// `kvm->arch.mmu_valid_gen`.
    pub(crate) mmu_valid_gen: u64,
    /// Ghost: how many times the generation was bumped, unmasked, so that the
    /// audit can tell a page of this generation from one of a wrapped-around one.
    pub(crate) gen_epoch: u64,
    pub(crate) next_page_id: u64,
    /// Every shadow page that is not yet retired, with its lock-protected half.
    pub(crate) pages: HashMap<PageId, PageMeta>,
    /// `kvm->arch.active_mmu_pages`: key order is age; the largest key is the head.
    pub(crate) active: BTreeMap<u64, PageId>,
    pub(crate) next_active_key: u64,
    /// `kvm->arch.mmu_page_hash`, keyed by (gfn, role).
    pub(crate) hash: HashMap<(u64, Role), Vec<PageId>>,
    /// `kvm->arch.zapped_obsolete_pages`.
    pub(crate) zapped_obsolete: Vec<PageId>,
    /// Each vCPU's root page (the lock-side mirror of `root_hpa`).
    pub(crate) roots: Vec<Option<PageId>>,
    /// `kvm->mmu_notifier_seq`.
    pub(crate) notifier_seq: u64,
    /// `kvm->mmu_notifier_count`.
    pub(crate) notifier_count: u64,
    /// Slots unpublished by a seed-v3 delete whose remove-only rmaps may still
    /// hold entries; `rmap_remove` and the notifiers look here too.
    pub(crate) zombies: Vec<Memslot>,
}

impl MmuState {
    pub(crate) fn new(vcpus: usize) -> MmuState {
        MmuState {
            mmu_valid_gen: 0,
            gen_epoch: 0,
            next_page_id: 0,
            pages: HashMap::new(),
            active: BTreeMap::new(),
            next_active_key: 0,
            hash: HashMap::new(),
            zapped_obsolete: Vec::new(),
            roots: vec![None; vcpus],
            notifier_seq: 0,
            notifier_count: 0,
            zombies: Vec::new(),
        }
    }

    /// `is_obsolete_sp`: invalid, or created in another generation. Treating an
    /// invalid page as obsolete is what keeps a wrapped generation from reviving
    /// an invalid root that a vCPU still holds (bug 5).
    pub(crate) fn is_obsolete(&self, meta: &PageMeta, mutant: Option<Mutant>) -> bool {
        let invalid = meta.invalid && mutant != Some(Mutant::ObsoleteIgnoresInvalid);
        invalid || meta.mmu_valid_gen != self.mmu_valid_gen
    }
}

/// A held `mmu_lock`: the state, plus who holds it (for the event log).
pub struct MmuLock<'a> {
    state: MutexGuard<'a, MmuState>,
    pub(crate) vm: &'a Vm,
    pub(crate) actor: Actor,
}

impl Deref for MmuLock<'_> {
    type Target = MmuState;
    fn deref(&self) -> &MmuState {
        &self.state
    }
}

impl DerefMut for MmuLock<'_> {
    fn deref_mut(&mut self) -> &mut MmuState {
        &mut self.state
    }
}

impl Drop for MmuLock<'_> {
    fn drop(&mut self) {
        self.vm.event(self.actor, || What::Unlock);
    }
}

/// Work done by one zap, for I6 and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZapStats {
    /// Pages in the VM when the zap began.
    pub pages_at_start: u64,
    /// Pages prepared (zapped).
    pub zapped: u64,
    /// Lock holds taken by the zap loop.
    pub holds: u64,
    /// The most pages prepared in one hold.
    pub max_batch: u64,
    /// Loop steps (pages examined).
    pub steps: u64,
    /// Pages retired through the epoch by the final commit.
    pub committed: u64,
    /// Nanoseconds `mmu_lock` was held for the generation bump and the reload
    /// requests (0 for the eager zap).
    pub bump_hold_ns: u64,
    /// The longest single `mmu_lock` hold of the zap loop, in nanoseconds (for
    /// the eager zap: its one hold).
    pub max_hold_ns: u64,
    /// Nanoseconds from the start of the operation until its last page was
    /// committed.
    pub total_ns: u64,
}

/// The most steps (pages examined, plus one per pass) `zap_obsolete_pages` may
/// take, for a zap that began with `pages_at_start` pages (I6). A pass examines
/// at most the invalid roots still in use (one per vCPU), the page it zaps and
/// the page it stops at; there is at most one pass per zapped page and one per
/// lock break. Pages created during the zap are of the new generation, at the
/// head, and never examined.
pub fn zap_step_bound(pages_at_start: u64, vcpus: usize) -> u64 {
    (2 * pages_at_start + 2) * (vcpus as u64 + 4) + 16
}

/// Moves the zap loop's prepared pages onto `zapped_obsolete_pages` for a lock
/// break: O(1) when the list is empty (it is, unless the shrinker ran), so the
/// breaks of one zap cost O(pages) in all, not O(pages^2 / batch).
fn park(zapped_obsolete: &mut Vec<PageId>, zap_list: &mut Vec<PageId>) {
    if zapped_obsolete.is_empty() {
        std::mem::swap(zapped_obsolete, zap_list);
    } else {
        zapped_obsolete.append(zap_list);
    }
}

/// Whether one zap broke I6: more steps than its bound, or more pages prepared
/// in one hold than the batch (a zap that never broke the lock is the eager one).
pub(crate) fn zap_breaks_i6(stats: &ZapStats, batch: usize, vcpus: usize) -> bool {
    stats.steps > zap_step_bound(stats.pages_at_start, vcpus)
        || (stats.holds > 1 && stats.max_batch > batch as u64)
}

pub(crate) fn elapsed_ns(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Vm {
    /// Takes `mmu_lock` as `actor`.
    pub(crate) fn lock_mmu(&self, actor: Actor) -> MmuLock<'_> {
        let state = self.mmu.lock();
        self.event(actor, || What::Lock);
        MmuLock {
            state,
            vm: self,
            actor,
        }
    }

    /// The page with `id`, while pinned. `None` if it is not in the page table.
    pub(crate) fn sp<'g>(
        &self,
        lk: &MmuLock<'_>,
        guard: &'g Guard<'_>,
        id: PageId,
    ) -> Option<&'g crate::page::ShadowPage> {
        lk.pages.get(&id).map(|meta| meta.ptr.get(guard))
    }

    /// `kvm_mmu_get_page`: a valid page for (gfn, level) of the current
    /// generation, found in the hash or created. Obsolete pages are skipped and
    /// never returned (I5). A new page goes to the head of the active list, which
    /// keeps the list ordered by generation.
    pub(crate) fn get_page(&self, lk: &mut MmuLock<'_>, gfn: u64, role: Role) -> (PageId, PagePtr) {
        let mutant = self.config.mutant;
        let level = role.level;
        if let Some(ids) = lk.hash.get(&(gfn, role)) {
            for id in ids {
                let meta = &lk.pages[id];
                if !lk.is_obsolete(meta, mutant) {
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
        self.ghost.pages.alloc();
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
        if let Some(slot) = slots.lookup(gfn) {
            return Some(slot.clone());
        }
        lk.zombies.iter().find(|s| s.contains(gfn)).cloned()
    }

    /// `drop_spte`: clears a present leaf and removes it from its rmap.
    pub(crate) fn drop_spte(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, sptep: SptePtr, gfn: u64) {
        let old = sptep.spte(guard).swap(0, Ordering::AcqRel);
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
                let found = slot.rmap.remove(lk, guard, slot.rmap_index(gfn), sptep);
                if !found && !slot.rmap.is_remove_only() {
                    self.ghost.violate(Violation::new(
                        Invariant::I1,
                        format!(
                            "rmap_remove: gfn {gfn} spte not on slot {}'s rmap",
                            slot.id.0
                        ),
                    ));
                }
            }
            None => self.ghost.violate(Violation::new(
                Invariant::I1,
                format!("rmap_remove: no slot holds gfn {gfn}"),
            )),
        }
    }

    /// The gfn a spte of `page` at `index` translates.
    pub(crate) fn spte_gfn(&self, body: &PageBody, index: usize) -> u64 {
        let shift = self.config.index_bits() * u32::from(body.role.level - 1);
        body.gfn + ((index as u64) << shift)
    }

    /// `kvm_mmu_prepare_zap_page`: unlink the page's children and parents, mark
    /// it invalid, and move it to `invalid_list`, or to the head of the active
    /// list if it is a root still in use. Returns the number of pages moved to
    /// `invalid_list` (0 for a kept root). Needs `mmu_lock`: the unlinking edits
    /// other pages' parent lists and the rmaps.
    pub(crate) fn prepare_zap_page(
        &self,
        lk: &mut MmuLock<'_>,
        guard: &Guard<'_>,
        id: PageId,
        invalid_list: &mut Vec<PageId>,
    ) -> usize {
        let mutant = self.config.mutant;
        let Some(meta) = lk.pages.get(&id) else {
            return 0;
        };
        let ptr = meta.ptr;
        let page = ptr.get(guard);
        let body = page.body();
        let obsolete = lk.is_obsolete(meta, mutant);
        // kvm_mmu_page_unlink_children
        for index in 0..page.sptes.len() {
            let raw = page.sptes[index].load(Ordering::Acquire);
            match Spte::decode(raw) {
                Spte::Leaf { .. } => {
                    let gfn = self.spte_gfn(&body, index);
                    if mutant == Some(Mutant::SkipRmapForObsolete) && obsolete {
                        page.sptes[index].store(0, Ordering::Release);
                        continue;
                    }
                    self.drop_spte(lk, guard, SptePtr { page: ptr, index }, gfn);
                }
                Spte::NonLeaf(addr) => {
                    page.sptes[index].store(0, Ordering::Release);
                    if let Some(child) = PagePtr::from_addr(addr) {
                        let child_id = child.get(guard).body().id;
                        if let Some(child_meta) = lk.pages.get_mut(&child_id) {
                            child_meta.parent_ptes.retain(|p| *p != (id, index));
                        }
                    }
                }
                Spte::Mmio { .. } => page.sptes[index].store(0, Ordering::Release),
                Spte::None => {}
            }
        }
        // kvm_mmu_unlink_parents
        let parents = std::mem::take(&mut lk.pages.get_mut(&id).expect("page present").parent_ptes);
        for (parent, index) in parents {
            if let Some(parent_page) = self.sp(lk, guard, parent) {
                parent_page.sptes[index].store(0, Ordering::Release);
            }
        }
        let was_valid = !lk.pages[&id].invalid;
        page.invalid.store(true, Ordering::Release);
        let current_gen = lk.mmu_valid_gen;
        let meta = lk.pages.get_mut(&id).expect("page present");
        meta.invalid = true;
        let kept_root = meta.root_count > 0;
        let key = meta.active_key.take();
        let page_gen = meta.mmu_valid_gen;
        if let Some(key) = key {
            lk.active.remove(&key);
        }
        let zapped = if kept_root {
            // An in-use root moves to the head and stays until mmu_free_roots.
            let key = lk.next_active_key;
            lk.next_active_key += 1;
            lk.active.insert(key, id);
            lk.pages.get_mut(&id).expect("page present").active_key = Some(key);
            if was_valid && page_gen == current_gen {
                self.reload_remote_mmus(lk);
            }
            0
        } else {
            lk.pages.get_mut(&id).expect("page present").on_zap_list = true;
            invalid_list.push(id);
            1
        };
        self.event(lk.actor, || What::PrepareZap { sp: id, kept_root });
        zapped
    }

    /// `kvm_mmu_commit_zap_page`: flush remote TLBs, which also waits for every
    /// vCPU inside a lockless walk, then retire each page through the epoch. The
    /// kernel's `WARN_ON(!sp->role.invalid || sp->root_count)` is an I3 violation
    /// here, and such a page is not freed.
    pub(crate) fn commit_zap_page(
        &self,
        lk: &mut MmuLock<'_>,
        guard: &Guard<'_>,
        invalid_list: &mut Vec<PageId>,
    ) -> usize {
        if invalid_list.is_empty() {
            return 0;
        }
        let mutant = self.config.mutant;
        if mutant != Some(Mutant::FreeBeforeFlush) {
            self.flush_remote_tlbs(lk);
        }
        let mut retired = Vec::with_capacity(invalid_list.len());
        for id in invalid_list.drain(..) {
            let Some(meta) = lk.pages.get(&id) else {
                continue;
            };
            if !meta.invalid || meta.root_count > 0 {
                let root_count = meta.root_count;
                self.ghost.violate(Violation::new(
                    Invariant::I3,
                    format!(
                        "commit_zap_page of {id}: invalid={} root_count={root_count}",
                        meta.invalid
                    ),
                ));
                continue;
            }
            let meta = lk.pages.remove(&id).expect("page present");
            if let Some(list) = lk.hash.get_mut(&(meta.gfn, meta.role)) {
                list.retain(|p| *p != id);
                if list.is_empty() {
                    lk.hash.remove(&(meta.gfn, meta.role));
                }
            }
            if let Some(key) = meta.active_key {
                lk.active.remove(&key);
            }
            free_page(
                meta.ptr,
                guard,
                &self.ghost,
                matches!(
                    mutant,
                    Some(Mutant::FreeWithoutGrace | Mutant::FreeBeforeFlush)
                ),
            );
            retired.push(id);
        }
        let count = retired.len();
        self.event(lk.actor, || What::CommitZap { sps: retired });
        guard.flush();
        self.audit_point(lk, guard, AuditPoint::AfterCommitZap);
        count
    }

    /// `kvm_reload_remote_mmus`: request a reload from every vCPU. Called with
    /// `mmu_lock` held, in the same hold as the generation bump, "otherwise, vcpu
    /// would purge shadow page but miss tlb flush".
    pub(crate) fn reload_remote_mmus(&self, lk: &MmuLock<'_>) {
        self.make_all_cpus_request(lk.actor, REQ_RELOAD | REQ_TLB_FLUSH, "reload");
    }

    /// `kvm_flush_remote_tlbs`.
    pub(crate) fn flush_remote_tlbs(&self, lk: &MmuLock<'_>) {
        self.make_all_cpus_request(lk.actor, REQ_TLB_FLUSH, "tlb flush");
    }

    /// `make_all_cpus_request`: set the request bit, then kick and wait for every
    /// vCPU that is inside a lockless walk. The vCPU sets its mode and then reads
    /// its requests; this sets the request and then reads the mode; the two
    /// `SeqCst` fences make sure at least one side sees the other.
    pub(crate) fn make_all_cpus_request(&self, actor: Actor, request: u64, what: &'static str) {
        for vcpu in self.vcpus.iter() {
            vcpu.requests.fetch_or(request, Ordering::AcqRel);
        }
        fence(Ordering::SeqCst);
        for vcpu in self.vcpus.iter() {
            while vcpu.mode() == VcpuMode::ReadingShadowPageTables {
                yield_now();
            }
        }
        self.event(actor, || What::Request { what });
    }

    /// `mmu_free_roots`: drop the vCPU's root. An invalid root whose count reaches
    /// 0 is zapped and committed here: nobody else will.
    pub(crate) fn mmu_free_roots(&self, lk: &mut MmuLock<'_>, guard: &Guard<'_>, vcpu: usize) {
        let Some(id) = lk.roots[vcpu].take() else {
            return;
        };
        self.vcpus[vcpu].root.store(0, Ordering::Release);
        self.event(lk.actor, || What::FreeRoot { sp: id });
        let Some(meta) = lk.pages.get_mut(&id) else {
            self.ghost.violate(Violation::new(
                Invariant::I3,
                format!("vcpu{vcpu} held freed root {id}"),
            ));
            return;
        };
        meta.root_count = meta.root_count.saturating_sub(1);
        if meta.root_count == 0 && meta.invalid {
            let mut invalid_list = Vec::new();
            self.prepare_zap_page(lk, guard, id, &mut invalid_list);
            self.commit_zap_page(lk, guard, &mut invalid_list);
        }
    }

    /// `mmu_alloc_direct_roots`: load a root of the current generation.
    pub(crate) fn mmu_alloc_roots(&self, lk: &mut MmuLock<'_>, vcpu: usize) -> PageId {
        let smm = self.config.address_spaces == 2 && vcpu % 2 == 1;
        let role = Role {
            level: self.config.levels,
            direct: true,
            smm,
        };
        let (id, ptr) = self.get_page(lk, 0, role);
        let meta = lk.pages.get_mut(&id).expect("page present");
        meta.root_count += 1;
        let generation = meta.mmu_valid_gen;
        lk.roots[vcpu] = Some(id);
        self.vcpus[vcpu]
            .root
            .store(ptr.addr() as u64, Ordering::Release);
        self.event(lk.actor, || What::LoadRoot { sp: id, generation });
        id
    }

    /// `kvm_zap_obsolete_pages`: walk the active list from its tail (oldest),
    /// prepare every obsolete page, skip invalid ones (in-use roots already
    /// prepared), stop at the first page of the current generation, and break the
    /// lock after every `batch` pages. Pages of the new generation are added at
    /// the head, so they never lengthen the walk: progress is bounded by the
    /// pages that existed when the zap began (I6).
    pub(crate) fn zap_obsolete_pages(&self, actor: Actor) -> Result<ZapStats, crate::MmuError> {
        let mutant = self.config.mutant;
        let guard = self.reclaimer.pin();
        let mut stats = ZapStats::default();
        let mut lk = self.lock_mmu(actor);
        let mut hold_start = std::time::Instant::now();
        stats.holds = 1;
        stats.pages_at_start = lk.pages.len() as u64;
        let bound = zap_step_bound(stats.pages_at_start, self.config.vcpus);
        let mut batch = 0usize;
        // Ghost: pages prepared in this hold, counted independently of `batch`
        // (which bug 9 miscounts), so that I6 can see a hold that did too much.
        let mut prepared_in_hold = 0u64;
        let mut zap_list = std::mem::take(&mut lk.zapped_obsolete);
        loop {
            stats.steps += 1;
            if stats.steps > bound {
                park(&mut lk.zapped_obsolete, &mut zap_list);
                self.ghost.record_zap(stats);
                return Err(crate::MmuError::ZapLivelock {
                    steps: stats.steps,
                    bound,
                });
            }
            // The next page to zap, walking from the tail.
            let mut next = None;
            let order: Box<dyn Iterator<Item = (&u64, &PageId)>> =
                if mutant == Some(Mutant::ZapFromHead) {
                    Box::new(lk.active.iter().rev())
                } else {
                    Box::new(lk.active.iter())
                };
            for (_, id) in order {
                stats.steps += 1;
                let meta = &lk.pages[id];
                if meta.mmu_valid_gen == lk.mmu_valid_gen && !meta.invalid {
                    if mutant == Some(Mutant::ZapFromHead) {
                        continue;
                    }
                    break;
                }
                if meta.invalid && mutant != Some(Mutant::RezapInUseRoots) {
                    continue;
                }
                if meta.mmu_valid_gen == lk.mmu_valid_gen {
                    continue;
                }
                next = Some(*id);
                break;
            }
            let Some(id) = next else { break };
            if batch >= self.config.batch {
                // Break the lock so vCPUs can fault; the pages prepared so far
                // stay on zapped_obsolete_pages where the shrinker can free them.
                self.event(actor, || What::LockBreak { zapped: batch });
                park(&mut lk.zapped_obsolete, &mut zap_list);
                drop(lk);
                stats.max_hold_ns = stats.max_hold_ns.max(elapsed_ns(hold_start));
                yield_now();
                lk = self.lock_mmu(actor);
                hold_start = std::time::Instant::now();
                zap_list = std::mem::take(&mut lk.zapped_obsolete);
                stats.holds += 1;
                batch = 0;
                prepared_in_hold = 0;
                continue;
            }
            let prepared = self.prepare_zap_page(&mut lk, &guard, id, &mut zap_list);
            stats.zapped += 1;
            batch += if mutant == Some(Mutant::BatchNotAdvancing) {
                prepared
            } else {
                1
            };
            prepared_in_hold += 1;
            stats.max_batch = stats.max_batch.max(prepared_in_hold);
        }
        stats.committed = self.commit_zap_page(&mut lk, &guard, &mut zap_list) as u64;
        self.audit_point(&lk, &guard, AuditPoint::AfterZapObsolete);
        drop(lk);
        stats.max_hold_ns = stats.max_hold_ns.max(elapsed_ns(hold_start));
        Ok(stats)
    }
}

//! # Zapping: fast invalidate-all, `zap_obsolete_pages`, the eager zap, the shrinker
//!
//! The fast path ([`Vm::invalidate_zap_all_pages`]): under `mmu_lock`, bump
//! `mmu_valid_gen` and request a reload from every vCPU, in one hold; then
//! `zap_obsolete_pages` walks the active list from its oldest end in batches,
//! with lock breaks, and commits (flush, then retire through the epoch). The
//! eager baseline ([`Vm::zap_all`]) does the same work in one hold. The
//! shrinker ([`Vm::shrink`]) frees what a lock break parked first.
//!
//! `prepare_zap_page` and `commit_zap_page` are the primitives all of them,
//! and `mmu_free_roots`, share.

use crate::checkpoint::AuditPoint;
use crate::config::ZapCommit;
use crate::error::MmuError;
use crate::event::{Actor, What};
use crate::ghost::ZapWatch;
use crate::ids::PageId;
use crate::invariant::Invariant;
use crate::mmu::MmuLock;
use crate::mutant::Mutant;
use crate::page::{PageMeta, PagePtr, free_page};
use crate::rmap::SptePtr;
use crate::shadow::is_obsolete_gen;
use crate::spte::Spte;
use crate::stats::ZapStats;
#[cfg(feature = "ghost")]
use crate::stats::zap_step_bound;
use crate::sync::{Guard, Ordering, yield_now};
use crate::timing::Stopwatch;
use crate::vcpu::{Requests, make_all_cpus_request};
use crate::vm::Vm;

impl Vm {
    /// The fast path: under `mmu_lock`, bump `mmu_valid_gen` and request a reload
    /// from every vCPU; then `zap_obsolete_pages` in batches with lock breaks,
    /// and commit (flush, then retire through the epoch). Serialized with memslot
    /// updates by `slots_lock`, so at most one obsolete generation exists.
    ///
    /// # Errors
    ///
    /// None without the `ghost` feature: the zap runs to completion, as the
    /// kernel's does. With the `ghost` feature only, `MmuError::ZapLivelock`
    /// if `zap_obsolete_pages` breaks its progress bound (I6), which only a
    /// mutant of the checking build can make it do; unlike an input error it
    /// comes after the generation bump and the reload requests, which stand.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::Translation;
    ///
    /// vm.handle_requests(vcpu)?;
    /// vm.page_fault(vcpu, Gfn(3), true)?;
    /// let gen_before = vm.mmu_valid_gen();
    /// let stats = vm.invalidate_zap_all_pages()?;
    /// assert_ne!(vm.mmu_valid_gen(), gen_before);
    /// assert!(stats.zapped >= 1);
    /// assert_eq!(vm.translate(vcpu, Gfn(3))?, Translation::RequestPending);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    #[doc(alias = "kvm_mmu_invalidate_zap_all_pages")]
    pub fn invalidate_zap_all_pages(&self) -> Result<ZapStats, MmuError> {
        let _slots = (!self.config.mutant_is(Mutant::NoSlotsLock)).then(|| self.slots_lock.lock());
        self.invalidate_all_locked(Actor::Zapper, |_| {}, || {})
    }

    /// The body of invalidate-all; the caller holds `slots_lock`. `under_lock`
    /// runs in the same `mmu_lock` hold as the generation bump; `before_zap`
    /// runs after that hold and before `zap_obsolete_pages`.
    pub(crate) fn invalidate_all_locked(
        &self,
        actor: Actor,
        under_lock: impl FnOnce(&MmuLock<'_>),
        before_zap: impl FnOnce(),
    ) -> Result<ZapStats, MmuError> {
        self.invalidate_all_with(actor, ZapNow::Yes, under_lock, before_zap)
    }

    /// [`Vm::invalidate_all_locked`], with the zap done now or left for later
    /// (`ZapNow::Defer`: the seed's v3 as posted). Either way, obsolete pages
    /// an earlier deferred invalidation left are zapped first, before the
    /// bump: without that, every deferred invalidation would add a table to
    /// what is retained, and a generation that wraps around would make the
    /// oldest of them valid again.
    pub(crate) fn invalidate_all_with(
        &self,
        actor: Actor,
        zap: ZapNow,
        under_lock: impl FnOnce(&MmuLock<'_>),
        before_zap: impl FnOnce(),
    ) -> Result<ZapStats, MmuError> {
        if self.tdp.is_some() {
            return Ok(self.tdp_invalidate_all(actor, before_zap));
        }
        let started = Stopwatch::start();
        let mut drained = ZapStats::default();
        let (cut, bump_hold_ns) = {
            let mut lk = self.lock_mmu(actor);
            let drain = lk.obsolete_left && !self.config.mutant_is(Mutant::DeferNeverDrains);
            if drain {
                drop(lk);
                drained = self.zap_obsolete_pages(actor)?;
                lk = self.lock_mmu(actor);
            }
            let hold = Stopwatch::start();
            let from = lk.mmu_valid_gen;
            let to = (from + 1) & self.gen_mask();
            lk.mmu_valid_gen = to;
            lk.gen_epoch.bump();
            self.mmu_valid_gen.store(to, Ordering::Release);
            let cut = self.ghost.tick();
            self.event(actor, || What::GenBump { from, to });
            under_lock(&lk);
            if !self.config.mutant_is(Mutant::ReloadOutsideLock)
                && !self.config.mutant_is(Mutant::BumpWithoutReload)
            {
                self.reload_remote_mmus(&lk);
            }
            if zap == ZapNow::Defer {
                lk.obsolete_left = true;
            }
            drop(lk);
            (cut, hold.ns())
        };
        if drained.holds > 0 {
            self.ghost.record_zap(drained);
        }
        before_zap();
        let zapped = match zap {
            ZapNow::Yes => self.zap_obsolete_pages(actor),
            ZapNow::Defer => {
                // What a zap's return checks (I8), for the zap left for later:
                // checking code only, so the protocol takes no extra lock.
                if cfg!(feature = "ghost") {
                    let guard = self.reclaimer.pin();
                    let lk = self.lock_mmu(actor);
                    self.audit_point(&lk, &guard, AuditPoint::ZapReturns);
                }
                Ok(ZapStats {
                    max_hold_ns: drained.max_hold_ns,
                    ..ZapStats::default()
                })
            }
        };
        let stats = zapped.map(|mut stats| {
            stats.bump_hold_ns = bump_hold_ns;
            stats.total_ns = started.ns();
            self.ghost.record_zap(stats);
            stats
        });
        if self.config.mutant_is(Mutant::ReloadOutsideLock) {
            // `kvm_reload_remote_mmus` after `mmu_lock` is dropped (bug 2).
            make_all_cpus_request(
                &self.vcpus,
                Requests::RELOAD | Requests::TLB_FLUSH,
                &self.config,
            );
            self.event(actor, || What::Request { what: "reload" });
        }
        self.ghost.kill_all(cut);
        stats
    }

    /// `kvm_zap_obsolete_pages`: walk the active list from its tail (oldest),
    /// prepare every obsolete page, skip invalid ones (in-use roots already
    /// prepared), stop at the first page of the current generation, and break the
    /// lock after every `batch` pages. Pages of the new generation are added at
    /// the head, so they never lengthen the walk: progress is bounded by the
    /// pages that existed when the zap began (I6). Like the kernel's, the loop
    /// runs to completion; with the `ghost` feature only, it gives up with
    /// `MmuError::ZapLivelock` past `zap_step_bound` steps, which only a
    /// mutant reaches.
    pub(crate) fn zap_obsolete_pages(&self, actor: Actor) -> Result<ZapStats, MmuError> {
        let rezap_roots = self.config.mutant_is(Mutant::RezapInUseRoots);
        let mut guard = self.reclaimer.pin();
        let mut stats = ZapStats::default();
        let mut lk = self.lock_mmu(actor);
        let mut hold = Stopwatch::start();
        stats.holds = 1;
        stats.pages_at_start = lk.pages.len() as u64;
        let watch = self.ghost.watch_zap(actor, lk.pages.len());
        #[cfg(feature = "ghost")]
        let bound = zap_step_bound(stats.pages_at_start, self.config.vcpus);
        let mut batch = 0usize;
        // Pages prepared in this hold, counted independently of `batch` (which
        // bug 9 miscounts), so that I6 can see a hold that did too much.
        let mut prepared_in_hold = 0u64;
        let mut zap_list = std::mem::take(&mut lk.zapped_obsolete);
        loop {
            stats.steps += 1;
            // The checking build's progress bound (I6): a livelocked walk
            // (bugs 7 and 8) gives up here, so that a model reports it instead
            // of spinning. The kernel's loop has no such exit, and neither
            // has the production build's.
            #[cfg(feature = "ghost")]
            if stats.steps > bound {
                park(&mut lk.zapped_obsolete, &mut zap_list);
                self.ghost.record_zap(stats);
                return Err(MmuError::ZapLivelock {
                    steps: stats.steps,
                    bound,
                });
            }
            let next = self.next_to_zap(&lk, rezap_roots, &mut stats.steps, &watch);
            let Some(id) = next else { break };
            if batch >= self.config.batch {
                // Break the lock so vCPUs can fault. Per batch, what this hold
                // prepared is committed first, so no hold grows with the guest;
                // in the 3.11 shape it stays on zapped_obsolete_pages, where the
                // shrinker can free it, until the final commit.
                self.event(actor, || What::LockBreak { zapped: batch });
                let leave_parked = self.config.mutant_is(Mutant::ZapLeavesParked);
                match self.config.commit {
                    ZapCommit::PerBatch if !leave_parked => {
                        stats.committed +=
                            self.commit_zap_page(&mut lk, &guard, &mut zap_list) as u64;
                    }
                    _ => park(&mut lk.zapped_obsolete, &mut zap_list),
                }
                drop(lk);
                let held = hold.ns();
                stats.max_hold_ns = stats.max_hold_ns.max(held);
                stats.max_batch_hold_ns = stats.max_batch_hold_ns.max(held);
                if cfg!(feature = "hold-timing") {
                    stats.batch_holds.push(held);
                }
                // Per batch, unpin across the break too, so that what was
                // committed can be reclaimed while the zap goes on (the 3.11
                // shape retires nothing before its final commit).
                if self.config.commit == ZapCommit::PerBatch {
                    drop(guard);
                    yield_now();
                    guard = self.reclaimer.pin();
                } else {
                    yield_now();
                }
                lk = self.lock_mmu(actor);
                hold = Stopwatch::start();
                if !self.config.mutant_is(Mutant::ZapLeavesParked) {
                    zap_list = std::mem::take(&mut lk.zapped_obsolete);
                }
                stats.holds += 1;
                batch = 0;
                prepared_in_hold = 0;
                continue;
            }
            let prepared = self.prepare_zap_page(&mut lk, &guard, id, &mut zap_list);
            stats.zapped += 1;
            batch += if self.config.mutant_is(Mutant::BatchNotAdvancing) {
                prepared
            } else {
                1
            };
            prepared_in_hold += 1;
            stats.max_batch = stats.max_batch.max(prepared_in_hold);
        }
        stats.committed += self.commit_zap_page(&mut lk, &guard, &mut zap_list) as u64;
        lk.obsolete_left = false;
        self.audit_point(&lk, &guard, AuditPoint::AfterZapObsolete);
        self.audit_point(&lk, &guard, AuditPoint::ZapReturns);
        drop(lk);
        stats.final_hold_ns = hold.ns();
        stats.max_hold_ns = stats.max_hold_ns.max(stats.final_hold_ns);
        Ok(stats)
    }

    /// The next page `zap_obsolete_pages` prepares, counting every page it
    /// examines in `steps`. The plain walk in every build; only a checking
    /// build has bug 7's walk from the head, so that the protocol alone pays
    /// nothing for the mutant (core/tests/protocol_build.rs keeps it so).
    #[inline]
    fn next_to_zap(
        &self,
        lk: &MmuLock<'_>,
        rezap_roots: bool,
        steps: &mut u64,
        watch: &ZapWatch<'_>,
    ) -> Option<PageId> {
        #[cfg(feature = "ghost")]
        if self.config.mutant_is(Mutant::ZapFromHead) {
            return mutant_next_from_head(lk, rezap_roots, steps, watch);
        }
        next_from_tail(lk, rezap_roots, steps, watch)
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
        let Some(meta) = lk.pages.get(&id) else {
            return 0;
        };
        let ptr = meta.ptr;
        let page = ptr.get(guard);
        let body = page.body();
        let skip_rmap =
            self.config.mutant_is(Mutant::SkipRmapForObsolete) && self.is_obsolete_sp(lk, meta);
        // kvm_mmu_page_unlink_children
        for index in 0..page.sptes.len() {
            let raw = page.sptes[index].load(Ordering::Acquire);
            match Spte::decode(raw) {
                Spte::Leaf { .. } => {
                    if skip_rmap {
                        page.sptes[index].store(0, Ordering::Release);
                        self.event(lk.actor, || {
                            What::spte(body.id, index, None, 0, "zap, no rmap_remove")
                        });
                        continue;
                    }
                    let gfn = self.spte_gfn(&body, index);
                    self.drop_spte(lk, guard, SptePtr { page: ptr, index }, gfn);
                }
                Spte::NonLeaf(addr) => {
                    page.sptes[index].store(0, Ordering::Release);
                    self.event(lk.actor, || {
                        What::spte(body.id, index, None, 0, "unlink child")
                    });
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
                self.event(lk.actor, || {
                    What::spte(parent, index, None, 0, "unlink from parent")
                });
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
            if was_valid
                && page_gen == current_gen
                && !self.config.mutant_is(Mutant::ZapRootWithoutReload)
            {
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
        let free_before_flush = self.config.mutant_is(Mutant::FreeBeforeFlush);
        let poison_now = free_before_flush || self.config.mutant_is(Mutant::FreeWithoutGrace);
        if !free_before_flush && !self.config.mutant_is(Mutant::CommitWithoutFlush) {
            self.flush_remote_tlbs(lk);
        }
        let mut retired = Vec::with_capacity(invalid_list.len());
        for id in invalid_list.drain(..) {
            let Some(meta) = lk.pages.get(&id) else {
                continue;
            };
            if !meta.invalid || meta.root_count > 0 {
                let (invalid, root_count) = (meta.invalid, meta.root_count);
                self.ghost.violate(Invariant::I3, || {
                    format!("commit_zap_page of {id}: invalid={invalid} root_count={root_count}")
                });
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
            free_page(meta.ptr, guard, &self.ghost, poison_now);
            retired.push(id);
        }
        let count = retired.len();
        self.event(lk.actor, || What::CommitZap { sps: retired });
        guard.flush();
        self.audit_point(lk, guard, AuditPoint::AfterCommitZap);
        count
    }

    /// The eager baseline (`kvm_mmu_zap_all` before 2013): prepare every page and
    /// commit, all in one `mmu_lock` hold. Same result as the fast path, with the
    /// lock held for time proportional to the number of pages.
    ///
    /// # Errors
    ///
    /// None: the `Result` is the shape every zap shares.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// vm.handle_requests(vcpu)?;
    /// vm.page_fault(vcpu, Gfn(3), true)?;
    /// let gen_before = vm.mmu_valid_gen();
    /// let stats = vm.zap_all()?;
    /// assert_eq!(stats.holds, 1); // one `mmu_lock` hold for everything
    /// assert_eq!(vm.mmu_valid_gen(), gen_before); // no generation bump
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    #[doc(alias = "kvm_mmu_zap_all")]
    pub fn zap_all(&self) -> Result<ZapStats, MmuError> {
        let _slots = self.slots_lock.lock();
        if self.tdp.is_some() {
            return Ok(self.tdp_zap_all());
        }
        let guard = self.reclaimer.pin();
        let started = Stopwatch::start();
        let mut lk = self.lock_mmu(Actor::Zapper);
        let cut = self.ghost.tick();
        let mut stats = ZapStats {
            pages_at_start: lk.pages.len() as u64,
            holds: 1,
            ..ZapStats::default()
        };
        let ids: Vec<_> = lk.active.values().copied().collect();
        let mut invalid_list = Vec::new();
        for id in ids {
            stats.steps += 1;
            if lk.pages.get(&id).is_some_and(|m| !m.invalid) {
                self.prepare_zap_page(&mut lk, &guard, id, &mut invalid_list);
                stats.zapped += 1;
            }
        }
        stats.max_batch = stats.zapped;
        stats.committed = self.commit_zap_page(&mut lk, &guard, &mut invalid_list) as u64;
        drop(lk);
        stats.max_hold_ns = started.ns();
        stats.total_ns = stats.max_hold_ns;
        self.ghost.record_zap(stats);
        self.ghost.kill_all(cut);
        Ok(stats)
    }

    /// The shrinker (`mmu_shrink_scan`): free the zapped-obsolete pages first
    /// (365c886860c4); if there are none, zap up to `nr` of the oldest pages.
    /// Returns pages freed. Freeing the parked pages first is what keeps a zap's
    /// retention bounded while memory is short (I8).
    ///
    /// # Errors
    ///
    /// None: the `Result` is the shape every zap shares.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::DeletionStrategy;
    ///
    /// vm.handle_requests(vcpu)?;
    /// vm.page_fault(vcpu, Gfn(3), true)?;
    /// // A delete that leaves the obsolete pages for the shrinker.
    /// vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3Deferred)?;
    /// vm.handle_requests(vcpu)?;
    /// let pages = vm.shadow_pages();
    /// let freed = vm.shrink(1)?; // the parked pages go first
    /// assert!(freed >= 1);
    /// assert_eq!(vm.shadow_pages(), pages - freed);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    #[doc(alias = "mmu_shrink_scan")]
    pub fn shrink(&self, nr: usize) -> Result<usize, MmuError> {
        if self.tdp.is_some() {
            return Ok(0); // `mmu_shrink_scan` never touches TDP tables
        }
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Shrinker);
        let active_first = self.config.mutant_is(Mutant::ShrinkerZapsActiveFirst);
        if !lk.zapped_obsolete.is_empty() && !active_first {
            let mut list = std::mem::take(&mut lk.zapped_obsolete);
            return Ok(self.commit_zap_page(&mut lk, &guard, &mut list));
        }
        let mut invalid_list = Vec::new();
        for _ in 0..nr {
            let oldest = lk
                .active
                .values()
                .find(|id| !lk.pages[*id].invalid)
                .copied();
            let Some(id) = oldest else { break };
            self.audit_point(&lk, &guard, AuditPoint::ShrinkerZapsActive);
            self.prepare_zap_page(&mut lk, &guard, id, &mut invalid_list);
        }
        let mut freed = self.commit_zap_page(&mut lk, &guard, &mut invalid_list);
        if active_first && !lk.zapped_obsolete.is_empty() {
            let mut list = std::mem::take(&mut lk.zapped_obsolete);
            freed += self.commit_zap_page(&mut lk, &guard, &mut list);
        }
        Ok(freed)
    }
}

/// Whether an invalidation zaps the obsolete pages before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZapNow {
    /// `zap_obsolete_pages` now (Linux 3.11, and every invalidation but one).
    Yes,
    /// Leave them for the shrinker or the next invalidation
    /// ([`DeletionStrategy::SeedV3Deferred`](crate::DeletionStrategy)).
    Defer,
}

/// `kvm_zap_obsolete_pages`' walk: from the tail of the active list (oldest),
/// the first obsolete page to prepare; `None` at the first page that is not
/// obsolete, since everything after it is newer. The two protocol lines are
/// the kernel's:
///
/// ```c
/// if (!is_obsolete_sp(kvm, sp))
///         break;
/// if (sp->role.invalid)
///         continue;
/// ```
///
/// `is_obsolete_sp` is the protocol's, `MmuState::is_obsolete` (invalid, or
/// of another generation), not `Vm::is_obsolete_sp`, whose bug 5 switch
/// (`ObsoleteIgnoresInvalid`) would stop this walk at an invalid root of the
/// current generation, which it skips: that mutant changes the root checks
/// and `get_page`, not the zap's walk.
fn next_from_tail(
    lk: &MmuLock<'_>,
    rezap_roots: bool,
    steps: &mut u64,
    watch: &ZapWatch<'_>,
) -> Option<PageId> {
    for id in lk.active.values() {
        *steps += 1;
        watch.examined();
        let sp = &lk.pages[id];
        if !lk.is_obsolete(sp) {
            return None;
        }
        if skip_invalid(lk, sp, rezap_roots) {
            continue;
        }
        return Some(*id);
    }
    None
}

/// Bug 7 (002c5f73c508): the walk restarts from the head, where vCPUs add
/// pages of the new generation, and skips them instead of stopping. Checking
/// builds only.
#[cfg(feature = "ghost")]
fn mutant_next_from_head(
    lk: &MmuLock<'_>,
    rezap_roots: bool,
    steps: &mut u64,
    watch: &ZapWatch<'_>,
) -> Option<PageId> {
    for id in lk.active.values().rev() {
        *steps += 1;
        watch.examined();
        let sp = &lk.pages[id];
        // Bug 7: a page that is not obsolete is skipped, not the end.
        if !lk.is_obsolete(sp) {
            continue;
        }
        if skip_invalid(lk, sp, rezap_roots) {
            continue;
        }
        return Some(*id);
    }
    None
}

/// `if (sp->role.invalid) continue;`: an invalid obsolete page is an in-use
/// root already prepared, which `prepare_zap_page` moved to the head, where it
/// stays until `mmu_free_roots`. Preparing it again would move it again, and
/// the walk would never end.
fn skip_invalid(lk: &MmuLock<'_>, sp: &PageMeta, rezap_roots: bool) -> bool {
    // Bug 8 (`RezapInUseRoots`): no skip for an invalid root of an older
    // generation, obsolete as Linux 3.11 judged it; it is prepared again.
    if rezap_roots && is_obsolete_gen(lk, sp) {
        return false;
    }
    sp.invalid
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

//! # The lockless read path: what the guest sees
//!
//! [`Vm::translate`] is what the hardware does when the guest touches a gfn:
//! walk the vCPU's root without `mmu_lock`. The vCPU announces the walk in
//! `vcpu->mode` (`walk_shadow_page_lockless_begin`, the vCPU half of the
//! handshake in `vcpu.rs`), checks its requests, consults its TLB (`tlb.rs`)
//! and its MMIO cache, pins an epoch, loads its root, checks the root's
//! generation and walks; a walk that maps a gfn writable fills the TLB.
//! [`Vm::translate_run`] does the entry once for a run of gfns, as a running
//! vCPU does.

use crate::addr::{Gfn, Pfn};
use crate::error::MmuError;
use crate::event::{Actor, What};
use crate::ghost;
use crate::ids::VcpuId;
use crate::invariant::Invariant;
use crate::memslot::Memslots;
use crate::mutant::Mutant;
use crate::page::{PagePtr, ShadowPage};
use crate::spte::{self, Spte};
use crate::sync::{Guard, Ordering};
use crate::vcpu::Vcpu;
use crate::vm::Vm;

/// What a lockless translation returned.
///
/// ```
/// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
/// # let vm = Vm::new(Config::native())?;
/// # let base = Hva(0x7f00_0000_0000);
/// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
/// # let vcpu = VcpuId(0);
/// use fastzap::Translation;
///
/// assert_eq!(vm.translate(vcpu, Gfn(4))?, Translation::RequestPending);
/// vm.handle_requests(vcpu)?;
/// assert_eq!(vm.translate(vcpu, Gfn(4))?, Translation::Miss);
/// vm.page_fault(vcpu, Gfn(4), false)?;
/// assert!(matches!(vm.translate(vcpu, Gfn(4))?, Translation::Mapped { writable: false, .. }));
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// The gfn maps `pfn`.
    Mapped {
        /// The host page frame.
        pfn: Pfn,
        /// Whether the mapping is writable.
        writable: bool,
    },
    /// The gfn is MMIO (a trusted MMIO spte, or the vCPU's MMIO cache).
    Mmio,
    /// Nothing usable is mapped: the vCPU would fault.
    Miss,
    /// Requests are pending: the vCPU must handle them before entering the guest.
    RequestPending,
}

/// A TDP translate's answer, as the shadow MMU's.
fn seen_to_translation(seen: crate::tdp::walk::Seen) -> Translation {
    use crate::tdp::walk::Seen;
    match seen {
        Seen::Mapped { pfn, writable } => Translation::Mapped {
            pfn: Pfn(pfn),
            writable,
        },
        Seen::Mmio => Translation::Mmio,
        Seen::Miss => Translation::Miss,
        Seen::RequestPending => Translation::RequestPending,
    }
}

impl Vm {
    /// The lockless read path: what the guest would see at `gfn` now. It never
    /// takes `mmu_lock`. Claims the vCPU for the call; [`Vm::claim_vcpu`]
    /// claims it once for many.
    ///
    /// # Errors
    ///
    /// Checked in this order: [`MmuError::GfnOutOfRange`], then
    /// [`MmuError::UnknownVcpu`], then [`MmuError::VcpuBusy`] (another thread
    /// holds the vCPU).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::{MmuError, Translation};
    ///
    /// vm.handle_requests(vcpu)?;
    /// let fastzap::Fault::Mapped { pfn } = vm.page_fault(vcpu, Gfn(9), true)? else { unreachable!() };
    /// assert_eq!(vm.translate(vcpu, Gfn(9))?, Translation::Mapped { pfn, writable: true });
    /// assert!(matches!(vm.translate(vcpu, Gfn(u64::MAX)), Err(MmuError::GfnOutOfRange { .. })));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn translate(&self, vcpu: VcpuId, gfn: Gfn) -> Result<Translation, MmuError> {
        let gfn = self.check_gfn(gfn)?;
        let claim = self.claim(vcpu)?;
        Ok(self.translate_claimed(claim.0, vcpu, gfn))
    }

    /// Translates a run of gfns the way a vCPU runs: one entry (mode, fence,
    /// requests check), one epoch pin and one root check for the whole run, then
    /// one walk per gfn. Results are appended to `out`.
    ///
    /// # Errors
    ///
    /// Checked in this order: [`MmuError::GfnOutOfRange`] (for the first gfn
    /// out of range, in the order given), then
    /// [`MmuError::UnknownVcpu`], then [`MmuError::VcpuBusy`] (another thread
    /// holds the vCPU).
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
    /// vm.page_fault(vcpu, Gfn(1), false)?;
    /// let mut out = Vec::new();
    /// vm.translate_run(vcpu, &[Gfn(1), Gfn(2)], &mut out)?;
    /// assert!(matches!(out[0], Translation::Mapped { .. }));
    /// assert_eq!(out[1], Translation::Miss);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn translate_run(
        &self,
        vcpu: VcpuId,
        gfns: &[Gfn],
        out: &mut Vec<Translation>,
    ) -> Result<(), MmuError> {
        for &gfn in gfns {
            self.check_gfn(gfn)?;
        }
        let claim = self.claim(vcpu)?;
        self.translate_run_claimed(claim.0, gfns, out);
        Ok(())
    }

    /// [`Vm::translate`] on a vCPU the caller has claimed.
    #[inline]
    pub(crate) fn translate_claimed(&self, v: &Vcpu, vcpu: VcpuId, gfn: u64) -> Translation {
        if let Some(ctx) = self.tdp() {
            let mut result = Translation::Miss;
            crate::tdp::walk::translate_run(&ctx, v, vcpu.0, std::iter::once(gfn), &mut |seen| {
                result = seen_to_translation(seen);
            });
            self.event(Actor::Vcpu(vcpu.0), || What::Translate {
                gfn,
                result: format!("{result:?}"),
            });
            return result;
        }
        let start = self.walk_lockless_begin(v);
        let result = self.translate_walk(v, gfn, start);
        v.walk_lockless_end();
        self.event(Actor::Vcpu(vcpu.0), || What::Translate {
            gfn,
            result: format!("{result:?}"),
        });
        result
    }

    /// [`Vm::translate_run`] on a vCPU the caller has claimed, its gfns checked.
    pub(crate) fn translate_run_claimed(&self, v: &Vcpu, gfns: &[Gfn], out: &mut Vec<Translation>) {
        if let Some(ctx) = self.tdp() {
            let index = self
                .vcpus
                .iter()
                .position(|x| std::ptr::eq(x, v))
                .unwrap_or(0);
            let gfns = gfns.iter().map(|g| g.0);
            crate::tdp::walk::translate_run(&ctx, v, index, gfns, &mut |seen| {
                out.push(seen_to_translation(seen));
            });
            return;
        }
        let start = self.walk_lockless_begin(v);
        // Requests, then the TLB, then the walk: see `translate_walk`.
        if !v.requests().is_empty() {
            out.extend(gfns.iter().map(|_| Translation::RequestPending));
        } else {
            let guard = self.reclaimer.pin();
            let root = self.current_root(v, &guard);
            out.extend(gfns.iter().map(|&gfn| {
                if let Some(hit) = self.tlb_hit(v, gfn.0, start) {
                    return hit;
                }
                match root {
                    Ok(root) => self
                        .mmio_cache_hit(v, gfn.0)
                        .unwrap_or_else(|| self.walk(v, root, gfn.0, start, |ptr| ptr.get(&guard))),
                    Err(miss) => miss,
                }
            }));
        }
        v.walk_lockless_end();
    }

    /// The hardware drops `vcpu`'s TLB entry of `gfn`, if it holds one: what
    /// a TLB may do at any time (capacity, a context switch). For the stress
    /// and the models, which let a thread or the schedule decide when; no
    /// correct protocol relies on an entry staying. Returns whether an entry
    /// was dropped.
    ///
    /// # Errors
    ///
    /// As [`Vm::translate`]: [`MmuError::GfnOutOfRange`], then
    /// [`MmuError::UnknownVcpu`], then [`MmuError::VcpuBusy`].
    #[doc(hidden)]
    pub fn tlb_evict(&self, vcpu: VcpuId, gfn: Gfn) -> Result<bool, MmuError> {
        let gfn = self.check_gfn(gfn)?;
        let claim = self.claim(vcpu)?;
        Ok(claim.0.tlb.evict(gfn))
    }

    /// How many TLB entries `vcpu` holds (for tests).
    ///
    /// # Errors
    ///
    /// [`MmuError::UnknownVcpu`], then [`MmuError::VcpuBusy`].
    #[doc(hidden)]
    pub fn tlb_entries(&self, vcpu: VcpuId) -> Result<usize, MmuError> {
        let claim = self.claim(vcpu)?;
        Ok(claim.0.tlb.len())
    }

    /// The same walk with no synchronization at all: no mode, no fence, no
    /// requests check, no epoch pin, no generation check. Sound only because
    /// `&mut self` excludes every other operation; it exists to measure what
    /// the synchronization of [`Vm::translate`] costs (benchmark B4).
    #[doc(hidden)]
    pub fn translate_unsynchronized(
        &mut self,
        vcpu: VcpuId,
        gfn: Gfn,
    ) -> Result<Translation, MmuError> {
        let gfn = self.check_gfn(gfn)?;
        let v = self.vcpus.get(vcpu.0).ok_or(MmuError::UnknownVcpu(vcpu))?;
        if let Some(ctx) = self.tdp() {
            let seen = crate::tdp::walk::translate_unsynchronized(&ctx, v, vcpu.0, gfn);
            return Ok(seen_to_translation(seen));
        }
        let Some(root) = PagePtr::from_addr(v.root.load(Ordering::Relaxed)) else {
            return Ok(Translation::Miss);
        };
        let deref = |ptr: PagePtr| ptr.get_exclusive(self);
        // Ghost: with no requests check, a root made obsolete by a deferring
        // DELETE still leads to the retained pages, and the walk reads them
        // as they are; the stale-translation check (I4) judges only walks
        // from a current root.
        let obsolete = cfg!(feature = "ghost")
            && deref(root).body().mmu_valid_gen != self.mmu_valid_gen.load(Ordering::Relaxed);
        let start = if obsolete { 0 } else { u64::MAX };
        Ok(self.walk(v, deref(root), gfn, start, deref))
    }

    /// `walk_shadow_page_lockless_begin` ([`Vcpu::walk_lockless_begin`]).
    /// Returns the ghost time the walk began (for I4). The caller ends the
    /// walk with [`Vcpu::walk_lockless_end`].
    #[inline]
    pub(crate) fn walk_lockless_begin(&self, v: &Vcpu) -> u64 {
        v.walk_lockless_begin(&self.config);
        self.ghost.now()
    }

    #[inline]
    fn translate_walk(&self, v: &Vcpu, gfn: u64, start: u64) -> Translation {
        // Requests first, then the TLB, then the walk, as the hardware runs: a
        // vCPU with requests pending is outside guest mode and handles them
        // (a flush or reload empties its TLB) before it runs again. This order
        // is what makes the TLB safe: `kvm_flush_remote_tlbs` sets TLB_FLUSH
        // and returns only after every vCPU has left guest mode (the handshake
        // in `vcpu.rs`), so a translate that begins after an invalidation
        // returned sees the invalidation's request before it can hit an entry
        // the invalidation made stale.
        if !v.requests().is_empty() {
            return Translation::RequestPending;
        }
        if let Some(hit) = self.tlb_hit(v, gfn, start) {
            return hit;
        }
        if let Some(hit) = self.mmio_cache_hit(v, gfn) {
            return hit;
        }
        let guard = self.reclaimer.pin();
        match self.current_root(v, &guard) {
            Ok(root) => self.walk(v, root, gfn, start, |ptr| ptr.get(&guard)),
            Err(miss) => miss,
        }
    }

    /// The vCPU's TLB, consulted after its requests ([`Tlb`](crate::tlb::Tlb)).
    #[inline]
    fn tlb_hit(&self, v: &Vcpu, gfn: u64, start: u64) -> Option<Translation> {
        v.tlb
            .lookup(&self.ghost, gfn, start)
            .map(|hit| Translation::Mapped {
                pfn: Pfn(hit.pfn),
                writable: hit.writable,
            })
    }

    /// The vCPU's MMIO cache (`vcpu_match_mmio_gpa`): trusted only while the
    /// memslots generation it was taken in is current.
    #[inline]
    fn mmio_cache_hit(&self, v: &Vcpu, gfn: u64) -> Option<Translation> {
        if v.mmio_gfn.load(Ordering::Relaxed) != gfn + 1 {
            return None;
        }
        let cached = v.mmio_gen.load(Ordering::Relaxed);
        let slots = self.memslots.load();
        if cached != slots.generation && !self.config.mutant_is(Mutant::MmioCacheIgnoresGen) {
            return None;
        }
        // The checker looks at the answer, not at the compare: whatever decided
        // to trust the entry, the memslots it was checked against must map no
        // slot at `gfn` (I7).
        if ghost::ENABLED
            && let Some(slot) = slots.search(gfn)
        {
            let (slot, current) = (slot.id.0, slots.generation);
            self.ghost.violate(Invariant::I7, || {
                format!(
                    "MMIO cache for gfn {gfn} (taken at slots gen {cached}) answered MMIO at gen \
                     {current}, where slot {slot} maps it"
                )
            });
        }
        Some(Translation::Mmio)
    }

    /// The vCPU's root, if it is a live page of the current generation.
    #[inline]
    pub(crate) fn current_root<'g>(
        &self,
        v: &Vcpu,
        guard: &'g Guard<'_>,
    ) -> Result<&'g ShadowPage, Translation> {
        // Acquire, pairing with mmu_alloc_roots' Release: the root's body and
        // sptes, written before it was published, are visible (litmus L2).
        let order = if self.config.mutant_is(Mutant::RootLoadRelaxed) {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        let ptr = PagePtr::from_addr(v.root.load(order)).ok_or(Translation::Miss)?;
        let root = ptr.get(guard);
        let body = root.body();
        if self.ghost.saw_freed(
            Invariant::I3,
            || body.poisoned,
            || format!("translate read freed root {}", body.id),
        ) {
            return Err(Translation::Miss);
        }
        if body.mmu_valid_gen != self.mmu_valid_gen.load(Ordering::Acquire) || root.is_invalid() {
            return Err(Translation::Miss);
        }
        Ok(root)
    }

    /// The walk itself, from `root` down to `gfn`'s spte. `deref` turns a child
    /// pointer into a page: through the epoch guard, or through `&mut Vm` for
    /// [`Vm::translate_unsynchronized`].
    fn walk<'g>(
        &self,
        v: &Vcpu,
        root: &'g ShadowPage,
        gfn: u64,
        start: u64,
        deref: impl Fn(PagePtr) -> &'g ShadowPage,
    ) -> Translation {
        let mut page = root;
        let mut level = self.config.levels;
        // Acquire, pairing with the Release store that linked a child page
        // (`__direct_map`): the child's body and sptes are visible (litmus L2b).
        let order = if self.config.mutant_is(Mutant::WalkSpteLoadRelaxed) {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        loop {
            let body = page.body();
            if self.ghost.saw_freed(
                Invariant::I3,
                || body.poisoned,
                || format!("translate read freed page {}", body.id),
            ) {
                return Translation::Miss;
            }
            let index = self.spte_index(gfn, level);
            let raw = page.sptes[index].load(order);
            match Spte::decode(raw) {
                Spte::NonLeaf(addr) if level > 1 => match PagePtr::from_addr(addr) {
                    Some(child) => {
                        page = deref(child);
                        level -= 1;
                    }
                    None => return Translation::Miss,
                },
                Spte::Leaf {
                    pfn,
                    writable,
                    accessed,
                } => {
                    // A large leaf (`is_large_pte`, above level 1) maps
                    // `gfn` at its offset in the large page.
                    let pfn = if level > 1 && Spte::is_large_pte(raw) {
                        pfn + (gfn - self.child_gfn(gfn, level - 1))
                    } else {
                        pfn
                    };
                    if !accessed {
                        // The hardware sets the accessed bit, only on a present spte.
                        let _ = page.sptes[index].compare_exchange(
                            raw,
                            raw | spte::ACCESSED,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    self.ghost.check_not_stale(
                        gfn,
                        pfn,
                        page.ghost.installed(index),
                        start,
                        body.id,
                    );
                    v.tlb
                        .fill(&self.ghost, gfn, pfn, writable, page.ghost.installed(index));
                    return Translation::Mapped {
                        pfn: Pfn(pfn),
                        writable,
                    };
                }
                Spte::Mmio {
                    generation,
                    ghost_generation,
                } => {
                    let slots = self.memslots.load();
                    return if self.check_mmio_spte(v, &slots, gfn, generation, ghost_generation) {
                        Translation::Mmio
                    } else {
                        Translation::Miss
                    };
                }
                _ => return Translation::Miss,
            }
        }
    }

    /// `check_mmio_spte`: an MMIO spte is trusted only if its generation is the
    /// current memslots generation (masked to the spte's bits). A trusted one
    /// fills the vCPU's MMIO cache (`vcpu_cache_mmio_info`). The ghost checks
    /// that no slot maps the gfn and that the spte was built from the slots of
    /// this generation (I7).
    pub(crate) fn check_mmio_spte(
        &self,
        v: &Vcpu,
        slots: &Memslots,
        gfn: u64,
        generation: u64,
        ghost_generation: u64,
    ) -> bool {
        let current = slots.generation;
        if generation != current & self.mmio_mask() {
            return false;
        }
        if ghost::ENABLED
            && let Some(slot) = slots.search(gfn)
        {
            self.ghost.violate(Invariant::I7, || {
                format!(
                    "trusted an MMIO spte for gfn {gfn}, which slot {} maps",
                    slot.id.0
                )
            });
        }
        if ghost_generation != current & 0xffff_ffff {
            self.ghost.violate(Invariant::I7, || {
                format!(
                    "MMIO spte for gfn {gfn} built from slots gen {ghost_generation} trusted at gen {current}"
                )
            });
        }
        v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
        v.mmio_gen.store(current, Ordering::Relaxed);
        true
    }
}

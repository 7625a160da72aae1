//! # Page fault (`tdp_page_fault`, `__direct_map`, `handle_mmio_page_fault`)
//!
//! A fault finds the gfn's slot in the memslots it loaded, takes `mmu_lock`,
//! checks that nothing made it stale while it waited (its root became
//! obsolete, an mmu-notifier ran), walks down from the root creating missing
//! pages with `get_page`, and installs a leaf spte plus its rmap entry, or an
//! MMIO spte where no slot maps the gfn. A fault on a gfn no slot maps first
//! tries the lockless MMIO fast path.

use crate::addr::{Gfn, PAGE_SIZE, Pfn};
use crate::checkpoint::AuditPoint;
use crate::error::MmuError;
use crate::event::{Actor, What};
use crate::ghost::Visited;
use crate::ids::VcpuId;
use crate::invariant::Invariant;
use crate::memslot::{Memslot, Memslots};
use crate::mutant::Mutant;
use crate::page::{PagePtr, Role};
use crate::rmap::SptePtr;
use crate::spte::{self, Spte};
use crate::sync::{Guard, Ordering};
use crate::vcpu::Vcpu;
use crate::vm::Vm;

/// What a page fault did.
///
/// ```
/// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
/// # let vm = Vm::new(Config::native())?;
/// # let base = Hva(0x7f00_0000_0000);
/// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
/// # let vcpu = VcpuId(0);
/// use fastzap::{Fault, RetryReason};
///
/// // A vCPU without a root must handle its requests first.
/// assert_eq!(vm.page_fault(vcpu, Gfn(3), false)?, Fault::Retry(RetryReason::NoRoot));
/// vm.handle_requests(vcpu)?;
/// assert!(matches!(vm.page_fault(vcpu, Gfn(3), false)?, Fault::Mapped { .. }));
/// // No slot maps gfn 100: MMIO.
/// assert_eq!(vm.page_fault(vcpu, Gfn(100), false)?, Fault::Mmio);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A leaf spte now maps the gfn to `pfn`.
    Mapped {
        /// The host page frame.
        pfn: Pfn,
    },
    /// No slot maps the gfn: an MMIO spte was installed (or, while the
    /// memslots are being updated, the access was handled without one).
    Mmio,
    /// The fault must be retried after handling requests.
    Retry(RetryReason),
}

/// Why a fault gave up.
///
/// ```
/// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
/// # let vm = Vm::new(Config::native())?;
/// # let base = Hva(0x7f00_0000_0000);
/// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
/// # let vcpu = VcpuId(0);
/// use fastzap::{Fault, RetryReason};
///
/// let Fault::Retry(reason) = vm.page_fault(vcpu, Gfn(1), true)? else { unreachable!() };
/// assert_eq!(reason, RetryReason::NoRoot);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The vCPU has no root: handle requests first.
    NoRoot,
    /// The root became obsolete while the fault waited (`is_page_fault_stale`).
    ObsoleteRoot,
    /// The slot is INVALID (being deleted or moved).
    InvalidSlot,
    /// An mmu-notifier invalidation ran or is running (`mmu_notifier_retry`).
    NotifierRace,
}

impl RetryReason {
    fn as_str(self) -> &'static str {
        match self {
            RetryReason::NoRoot => "no root",
            RetryReason::ObsoleteRoot => "root obsolete",
            RetryReason::InvalidSlot => "slot INVALID",
            RetryReason::NotifierRace => "mmu_notifier_retry",
        }
    }
}

/// What the fault will install, decided from the memslots before the lock.
enum Target {
    /// A leaf at `level` (2: a large page, whose first pfn is `pfn` and whose
    /// first page is at `hva`).
    Leaf {
        pfn: u64,
        hva: u64,
        slot: Memslot,
        level: u8,
    },
    Mmio {
        generation: u64,
    },
}

impl Vm {
    /// A page fault on `gfn`, a write if `write`.
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
    /// use fastzap::{Fault, MmuError, Translation};
    ///
    /// vm.handle_requests(vcpu)?;
    /// let Fault::Mapped { pfn } = vm.page_fault(vcpu, Gfn(5), true)? else { unreachable!() };
    /// assert_eq!(vm.translate(vcpu, Gfn(5))?, Translation::Mapped { pfn, writable: true });
    /// assert_eq!(vm.page_fault(VcpuId(99), Gfn(5), true), Err(MmuError::UnknownVcpu(VcpuId(99))));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn page_fault(&self, vcpu: VcpuId, gfn: Gfn, write: bool) -> Result<Fault, MmuError> {
        let gfn = self.check_gfn(gfn)?;
        let claim = self.claim(vcpu)?;
        Ok(self.page_fault_claimed(claim.0, vcpu, gfn, write))
    }

    /// [`Vm::page_fault`] on a vCPU the caller has claimed, its gfn checked.
    pub(crate) fn page_fault_claimed(
        &self,
        v: &Vcpu,
        vcpu: VcpuId,
        gfn: u64,
        write: bool,
    ) -> Fault {
        let actor = Actor::Vcpu(vcpu.0);
        self.event(actor, || What::Fault { gfn });
        if let Some(ctx) = self.tdp() {
            use crate::tdp::fault::{Outcome, Stale};
            return match crate::tdp::fault::kvm_tdp_page_fault(&ctx, v, vcpu.0, gfn, write) {
                Outcome::Mapped(pfn) => {
                    self.event(actor, || {
                        What::Note(format!("tdp map gfn {gfn} -> pfn {pfn:#x}"))
                    });
                    Fault::Mapped { pfn: Pfn(pfn) }
                }
                Outcome::Mmio => Fault::Mmio,
                Outcome::Retry(stale) => {
                    let reason = match stale {
                        Stale::NoRoot => RetryReason::NoRoot,
                        Stale::ObsoleteRoot => RetryReason::ObsoleteRoot,
                        Stale::InvalidSlot => RetryReason::InvalidSlot,
                        Stale::NotifierRace => RetryReason::NotifierRace,
                    };
                    self.retry(actor, gfn, reason)
                }
            };
        }
        // A page fault drops the faulting address's TLB entry (as x86 does): a
        // write to a read-only entry re-walks after the fault makes it writable.
        v.tlb.evict(gfn);
        let guard = self.reclaimer.pin();
        let mmu_seq = self.notifier_seq.load(Ordering::Acquire);
        let snapshot = self.ghost.now();
        let slots = self.memslots.load();
        let target = match slots.search(gfn) {
            Some(slot) if slot.is_invalid() => {
                if !self.config.mutant_is(Mutant::InvalidSlotFaultInstallsMmio) {
                    return self.retry(actor, gfn, RetryReason::InvalidSlot);
                }
                Target::Mmio {
                    generation: slots.generation,
                }
            }
            Some(slot) => {
                if slot.lpage_info.index(slot.base_gfn, gfn).is_none()
                    || slot.rmap_index(gfn) >= slot.rmap.len()
                {
                    self.ghost.violate(Invariant::I1, || {
                        format!("slot {} metadata not sized for gfn {gfn}", slot.id.0)
                    });
                    return self.retry(actor, gfn, RetryReason::InvalidSlot);
                }
                match self.mapping_level(slot, gfn) {
                    Some((pfn, hva)) => Target::Leaf {
                        pfn,
                        hva,
                        slot: slot.clone(),
                        level: 2,
                    },
                    None => {
                        let hva = slot.gfn_to_hva(gfn);
                        Target::Leaf {
                            pfn: self.host.hva_to_pfn(hva),
                            hva,
                            slot: slot.clone(),
                            level: 1,
                        }
                    }
                }
            }
            None if slots.update_in_progress() => {
                // Do not cache MMIO while the memslots are in flux (the 2019
                // fix): handle the access, install nothing.
                self.event(actor, || {
                    What::Note(format!("mmio gfn {gfn} not cached: memslots in flux"))
                });
                return Fault::Mmio;
            }
            None => {
                if let Some(fault) = self.handle_mmio_page_fault(v, &guard, &slots, actor, gfn) {
                    return fault;
                }
                Target::Mmio {
                    generation: slots.generation,
                }
            }
        };
        drop(slots);
        let mut lk = self.lock_mmu(actor);
        let Some(root_id) = lk.roots[vcpu.0] else {
            return self.retry(actor, gfn, RetryReason::NoRoot);
        };
        let root_meta = &lk.pages[&root_id];
        if self.is_obsolete_sp(&lk, root_meta)
            && !self.config.mutant_is(Mutant::FaultIntoObsoleteRoot)
        {
            return self.retry(actor, gfn, RetryReason::ObsoleteRoot);
        }
        let seq_moved =
            lk.notifier_seq != mmu_seq && !self.config.mutant_is(Mutant::FaultIgnoresNotifierSeq);
        if lk.notifier_count > 0 || seq_moved {
            return self.retry(actor, gfn, RetryReason::NotifierRace);
        }
        // __direct_map: walk down to the target level, creating and linking
        // missing pages.
        let mut target_level = match target {
            Target::Leaf { level, .. } => level,
            Target::Mmio { .. } => 1,
        };
        let (mut id, mut ptr) = (root_id, root_meta.ptr);
        let mut level = self.config.levels;
        // The spte the walk stops at, read once.
        let old = loop {
            let page = ptr.get(&guard);
            let index = self.spte_index(gfn, level);
            let raw = page.sptes[index].load(Ordering::Acquire);
            if level == target_level {
                if level == 1 || !matches!(Spte::decode(raw), Spte::NonLeaf(_)) {
                    break raw;
                }
                // A page table already maps this large page's gfns small. The
                // kernel's `mmu_set_spte` would unlink it (`drop_parent_pte`)
                // and leave the orphan to the next zap; fastzap maps small.
                target_level = 1;
            }
            match Spte::decode(raw) {
                Spte::NonLeaf(addr) => {
                    ptr = PagePtr::from_addr(addr).expect("non-leaf spte has a child");
                    id = ptr.get(&guard).body().id;
                }
                decoded => {
                    if let Spte::Leaf { .. } = decoded {
                        // `drop_large_spte`: a large leaf where a page table
                        // must go.
                        let large = SptePtr { page: ptr, index };
                        let first = self.child_gfn(gfn, level - 1);
                        self.drop_spte(&lk, &guard, large, first);
                    }
                    let role = Role {
                        level: level - 1,
                        ..page.body().role
                    };
                    let (child_id, child) =
                        self.get_page(&mut lk, self.child_gfn(gfn, level - 1), role);
                    if let Some(meta) = lk.pages.get_mut(&child_id) {
                        meta.parent_ptes.push((id, index));
                    }
                    page.sptes[index].store(Spte::non_leaf(child.word()), Ordering::Release);
                    self.event(actor, || {
                        What::spte(id, index, None, Spte::non_leaf(child.word()), "link child")
                    });
                    id = child_id;
                    ptr = child;
                }
            }
            level -= 1;
        };
        let page = ptr.get(&guard);
        let index = self.spte_index(gfn, level);
        let sptep = SptePtr { page: ptr, index };
        match target {
            Target::Leaf {
                pfn,
                hva,
                slot,
                level: decided,
            } => {
                // Mapped small after all (a page table was there): the gfn's
                // own page and pfn.
                let (pfn, hva) = if decided != level {
                    let hva = slot.gfn_to_hva(gfn);
                    (self.host.hva_to_pfn(hva), hva)
                } else {
                    (pfn, hva)
                };
                // The large page's first gfn, and `gfn`'s offset in it.
                let first = self.child_gfn(gfn, level - 1);
                let offset = gfn - first;
                if let Spte::Leaf {
                    pfn: old_pfn,
                    writable,
                    ..
                } = Spte::decode(old)
                {
                    if old_pfn == pfn {
                        if write && !writable {
                            page.sptes[index].fetch_or(spte::WRITABLE, Ordering::AcqRel);
                            self.event(actor, || {
                                What::spte(
                                    id,
                                    index,
                                    Some(gfn),
                                    old | spte::WRITABLE,
                                    "make writable",
                                )
                            });
                        }
                        return Fault::Mapped {
                            pfn: Pfn(pfn + offset),
                        };
                    }
                    self.drop_spte(&lk, &guard, sptep, first);
                }
                let span = if level > 1 {
                    self.config.spte_count as u64
                } else {
                    1
                };
                for i in 0..span {
                    if slot.contains(first + i) {
                        let page_hva = hva + i * PAGE_SIZE;
                        self.ghost
                            .check_pfn_fresh(page_hva, pfn + i, first + i, snapshot);
                    }
                }
                page.ghost.installed_at(index, self.ghost.tick());
                let new = if level > 1 {
                    Spte::large_leaf(pfn, write)
                } else {
                    Spte::leaf(pfn, write)
                };
                page.sptes[index].store(new, Ordering::Release);
                let rmap_level = if self.config.mutant_is(Mutant::LargeSpteInSmallRmap) {
                    1
                } else {
                    level
                };
                let head = slot.gfn_to_rmap(first, rmap_level).unwrap_or(usize::MAX);
                if let Err(violation) = slot.rmap.add(&lk, &guard, head, sptep) {
                    self.ghost.record(violation);
                }
                self.event(actor, || What::InstallLeaf { gfn, sp: id, pfn });
                self.audit_point(&lk, &guard, AuditPoint::AfterFault);
                Fault::Mapped {
                    pfn: Pfn(pfn + offset),
                }
            }
            Target::Mmio { generation } => {
                // The ghost half records the generation of the slots the
                // decision came from, whatever bug 14 stamps in the real half,
                // so that I7 can tell them apart.
                let source = generation;
                let generation = if self.config.mutant_is(Mutant::MmioGenFromNewSlots) {
                    self.memslots.load().generation
                } else {
                    generation
                };
                if Spte::is_leaf(old) {
                    self.drop_spte(&lk, &guard, sptep, gfn);
                }
                page.sptes[index].store(
                    Spte::mmio(generation & self.mmio_mask(), source),
                    Ordering::Release,
                );
                self.audit_point(&lk, &guard, AuditPoint::AfterFault);
                drop(lk);
                v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
                v.mmio_gen.store(generation, Ordering::Relaxed);
                self.event(actor, || What::InstallMmio { gfn, generation });
                Fault::Mmio
            }
        }
    }

    /// `mapping_level` (3.11; `kvm_mmu_max_mapping_level` today): whether
    /// the fault on `gfn` may map the large page at level 2 that holds it,
    /// and if so its first pfn and host address. Both must allow it:
    /// - the slot: the large page's `disallow_lpage` is 0 (3.11's
    ///   `has_wrprotected_page` reads `write_count`). `kvm_arch_create_memslot`
    ///   disallowed the partial large pages at the slot's ends, so an allowed
    ///   one lies wholly inside the slot;
    /// - the host: one large host page backs the range
    ///   ([`HostMm::large_pfn`](crate::host::HostMm::large_pfn), the
    ///   `host_pfn_mapping_level` half).
    ///
    /// Read before `mmu_lock`, as the kernel does: `mmu_notifier_retry`
    /// makes the fault retry if a notifier changed the host since.
    fn mapping_level(&self, slot: &Memslot, gfn: u64) -> Option<(u64, u64)> {
        if !self.config.large_pages || self.config.levels < 2 {
            return None;
        }
        let index = slot.lpage_info.index(slot.base_gfn, gfn)?;
        if slot.lpage_info.disallow_lpage(index) != 0
            && !self.config.mutant_is(Mutant::LargeIgnoresDisallowLpage)
        {
            return None;
        }
        let count = self.config.spte_count as u64;
        let first = self.child_gfn(gfn, 1);
        // The first page's host address, even below the slot (only the
        // mutant gets there: an allowed large page is inside the slot).
        let hva = slot
            .userspace_addr
            .checked_add(first.checked_sub(slot.base_gfn)? * PAGE_SIZE)?;
        let pfn = self.host.large_pfn(hva, count)?;
        Some((pfn, hva))
    }

    fn retry(&self, actor: Actor, gfn: u64, reason: RetryReason) -> Fault {
        self.event(actor, || What::Retry {
            gfn,
            reason: reason.as_str(),
        });
        Fault::Retry(reason)
    }

    /// `handle_mmio_page_fault`: the fault path's lockless walk
    /// (`walk_shadow_page_get_mmio_spte`). If the last spte on `gfn`'s path is
    /// an MMIO spte of the generation of `slots` (which map no slot at `gfn`),
    /// the access is emulated without `mmu_lock`. The kernel takes this path
    /// when the fault's error code says the hardware hit an MMIO spte; fastzap
    /// has no error codes and takes it for every fault on a gfn no slot maps.
    /// Like the kernel's, this walk looks neither at the vCPU's requests nor
    /// at its root's generation: a reload may be pending and the root obsolete
    /// and being zapped. Two things keep the pages it walks alive: the
    /// commit's remote TLB flush, which waits for every vCPU in
    /// `READING_SHADOW_PAGE_TABLES` (the kernel's only protection since
    /// c142786c6291), and the epoch pin (the grace period `kvm->srcu` gave
    /// before it). Without both, this walk reads freed pages (bug 3).
    ///
    /// The ghost checks requirement 3 of the seed review, "shadow pages
    /// outlive their readers": every page the walk visited must still be
    /// unfreed when the walk ends (I3).
    fn handle_mmio_page_fault(
        &self,
        v: &Vcpu,
        guard: &Guard<'_>,
        slots: &Memslots,
        actor: Actor,
        gfn: u64,
    ) -> Option<Fault> {
        self.walk_lockless_begin(v);
        let mut visited = Visited::default();
        let trusted =
            self.get_mmio_spte(v, gfn, guard, &mut visited)
                .is_some_and(|(generation, ghost)| {
                    self.check_mmio_spte(v, slots, gfn, generation, ghost)
                });
        // Still inside the walk: every page it visited must be unfreed.
        self.ghost.check_outlived(&visited, |sp| {
            format!("{sp} freed while page_fault's lockless walk of gfn {gfn} was inside it")
        });
        v.walk_lockless_end();
        if !trusted {
            return None;
        }
        self.event(actor, || What::FastMmio { gfn });
        Some(Fault::Mmio)
    }

    /// `walk_shadow_page_get_mmio_spte`: the MMIO spte (its generation and its
    /// ghost source generation) at the end of `gfn`'s path from the vCPU's
    /// root, if there is one. No side effects: it sets no accessed bit, and it
    /// reads only sptes, never a page's body. `visited` gets the pages walked.
    fn get_mmio_spte<'g>(
        &self,
        v: &Vcpu,
        gfn: u64,
        guard: &'g Guard<'_>,
        visited: &mut Visited<'g>,
    ) -> Option<(u64, u64)> {
        let mut ptr = PagePtr::from_addr(v.root.load(Ordering::Acquire))?;
        for level in (1..=self.config.levels).rev() {
            let page = ptr.get(guard);
            visited.push(&page.ghost);
            match Spte::decode(page.sptes[self.spte_index(gfn, level)].load(Ordering::Acquire)) {
                Spte::NonLeaf(addr) if level > 1 => ptr = PagePtr::from_addr(addr)?,
                Spte::Mmio {
                    generation,
                    ghost_generation,
                } => return Some((generation, ghost_generation)),
                _ => return None,
            }
        }
        None
    }
}

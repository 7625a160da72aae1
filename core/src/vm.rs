//! # The VM: fastzap's public API
//!
//! A [`Vm`] is `struct kvm` reduced to what the MMU needs. Every public
//! operation validates its input first and returns a typed [`MmuError`] without
//! changing anything when the input is bad.
//!
//! | operation | kernel |
//! |---|---|
//! | [`Vm::page_fault`] | `tdp_page_fault` / `__direct_map` |
//! | [`Vm::translate`] | the guest's access through its root, with `walk_shadow_page_lockless_begin/end` |
//! | [`Vm::handle_requests`] | the request loop of `vcpu_enter_guest` |
//! | [`Vm::invalidate_zap_all_pages`] | `kvm_mmu_invalidate_zap_all_pages` |
//! | [`Vm::zap_all`] | `kvm_mmu_zap_all` (the eager baseline) |
//! | [`Vm::create_memslot`], [`Vm::delete_memslot`], [`Vm::move_memslot`] | `__kvm_set_memory_region` |
//! | [`Vm::invalidate_range`], [`Vm::clear_flush_young`], [`Vm::test_young`], [`Vm::change_pte`] | `kvm_mmu_notifier_*` |
//! | [`Vm::shrink`] | `mmu_shrink_scan` |

use crate::audit::{AuditPoint, Invariant, Violation};
use crate::config::{Config, DeletionStrategy};
use crate::error::MmuError;
use crate::event::{Actor, Event, What};
use crate::host::HostMm;
use crate::memslot::{LpageInfo, Memslot, Memslots, PAGE_SIZE, SLOT_INVALID, SlotId, SlotSpec};
use crate::mmu::{MmuLock, MmuState, ZapStats, elapsed_ns};
use crate::mutant::Mutant;
use crate::page::{PageLife, PagePtr, Role, ShadowPage, free_page_now};
use crate::rmap::{Rmap, SptePtr};
use crate::spte::{self, Spte};
use crate::sync::ghost::{
    GhostArc, GhostCounter, GhostLog, GhostMutex, GhostU64, LifeCounter, LifeCounts,
};
use crate::sync::{Arc, AtomicU64, GenRoot, Guard, Mutex, Ordering, Reclaimer, fence};
use crate::vcpu::{REQ_RELOAD, REQ_TLB_FLUSH, Vcpu, VcpuId, VcpuMode};

/// Ghost state shared with deferred frees: counters, the event log, violations
/// seen at run time, and the clocks of the no-stale-translation check (I4).
#[derive(Debug)]
pub struct Ghost {
    pub(crate) pages: LifeCounter,
    pub(crate) descs: LifeCounter,
    pub(crate) rmaps: LifeCounter,
    events: GhostLog<Event>,
    event_seq: GhostCounter,
    violations: GhostLog<Violation>,
    /// The ghost clock: install and invalidation times.
    pub(crate) clock: GhostU64,
    /// Per gfn: (cut, returned) of the latest invalidation that returned.
    pub(crate) kills: GhostMutex<KillMap>,
    /// (cut, returned) of the latest invalidate-all that returned.
    pub(crate) kill_all: GhostMutex<(u64, u64)>,
    pub(crate) zaps: GhostMutex<Vec<ZapStats>>,
    /// Lockless unmappers in flight (the audit points skip rmap checks then).
    pub(crate) lockless_unmappers: GhostU64,
    /// Under a mutant, released objects are poisoned but their memory is never
    /// given back: a mutant may leave pointers to them behind (bug 1 leaves rmap
    /// entries into freed pages), and a later read must see the poison, not
    /// another object or unmapped memory.
    pub(crate) leak_memory: bool,
    /// `Config::batch` and `Config::vcpus`, for the I6 test of `record_zap`.
    batch: usize,
    vcpus: usize,
    /// The latest cut of any invalidation that returned: a mapping installed
    /// at or after it cannot be stale, so `translate` skips the lookups.
    pub(crate) latest_cut: GhostU64,
}

const MAX_VIOLATIONS: usize = 256;

/// How many zaps `Vm::zap_history` keeps (plus every one that broke I6).
const ZAP_HISTORY: usize = 4096;

impl Ghost {
    fn new(config: &Config) -> Ghost {
        let (events, leak_memory) = (config.events, config.mutant.is_some());
        Ghost {
            pages: LifeCounter::default(),
            descs: LifeCounter::default(),
            rmaps: LifeCounter::default(),
            events: GhostLog::new(events),
            event_seq: GhostCounter::default(),
            violations: GhostLog::new(true),
            clock: GhostU64::new(0),
            kills: GhostMutex::new(KillMap::default()),
            kill_all: GhostMutex::new((0, 0)),
            zaps: GhostMutex::new(Vec::new()),
            lockless_unmappers: GhostU64::new(0),
            latest_cut: GhostU64::new(0),
            leak_memory,
            batch: config.batch,
            vcpus: config.vcpus,
        }
    }

    /// Records a violation seen at run time.
    pub(crate) fn violate(&self, violation: Violation) {
        if self.violations.snapshot().len() < MAX_VIOLATIONS {
            self.violations.push_always(violation);
        }
    }

    /// Keeps a zap's stats for I6. The history is bounded: past
    /// `ZAP_HISTORY` entries the oldest one that keeps I6 is dropped, so a long
    /// run does not grow its memory, and no entry that breaks I6 is ever lost.
    pub(crate) fn record_zap(&self, stats: ZapStats) {
        let (batch, vcpus) = (self.batch, self.vcpus);
        self.zaps.with(|z| {
            z.push(stats);
            if z.len() > ZAP_HISTORY
                && let Some(old) = z
                    .iter()
                    .position(|s| !crate::mmu::zap_breaks_i6(s, batch, vcpus))
            {
                z.remove(old);
            }
        });
    }
}

/// Ghost: for runs of gfns, the (cut, returned) times of the latest invalidation
/// that covered them. Non-overlapping intervals keyed by their first gfn.
#[derive(Debug, Default)]
pub(crate) struct KillMap {
    runs: std::collections::BTreeMap<u64, (u64, (u64, u64))>,
}

impl KillMap {
    /// Records `times` for every gfn of `range`, replacing older records there.
    fn insert(&mut self, range: std::ops::Range<u64>, times: (u64, u64)) {
        if range.is_empty() {
            return;
        }
        let overlapping: Vec<u64> = self
            .runs
            .range(..range.end)
            .rev()
            .take_while(|(_, (end, _))| *end > range.start)
            .map(|(start, _)| *start)
            .collect();
        for start in overlapping {
            let (end, old) = self.runs.remove(&start).expect("listed above");
            if start < range.start {
                self.runs.insert(start, (range.start, old));
            }
            if end > range.end {
                self.runs.insert(range.end, (end, old));
            }
        }
        self.runs.insert(range.start, (range.end, times));
    }

    /// The times recorded for `gfn`, if any.
    fn get(&self, gfn: u64) -> Option<(u64, u64)> {
        let (_, (end, times)) = self.runs.range(..=gfn).next_back()?;
        (gfn < *end).then_some(*times)
    }
}

/// Allocation counts of the three reclaimed kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Shadow pages.
    pub pages: LifeCounts,
    /// `PteListDesc`s.
    pub descs: LifeCounts,
    /// Rmap arrays.
    pub rmaps: LifeCounts,
}

impl Counts {
    /// Whether every retired object has been freed.
    pub fn settled(&self) -> bool {
        self.pages.pending() == 0 && self.descs.pending() == 0 && self.rmaps.pending() == 0
    }
}

/// What a page fault did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A leaf spte now maps the gfn to `pfn`.
    Mapped {
        /// The host page frame.
        pfn: u64,
    },
    /// No slot maps the gfn: an MMIO spte was installed.
    Mmio,
    /// The fault must be retried after handling requests.
    Retry(RetryReason),
}

/// Why a fault gave up.
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

/// What a lockless translation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// The gfn maps `pfn`.
    Mapped {
        /// The host page frame.
        pfn: u64,
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

/// What `handle_requests` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handled {
    /// The requests that were pending.
    pub requests: u64,
    /// Whether the root was reloaded.
    pub reloaded: bool,
}

/// A VM: memslots, vCPUs and the shadow MMU.
pub struct Vm {
    pub(crate) config: Config,
    /// `kvm->slots_lock`: serializes memslot updates and invalidate-all.
    pub(crate) slots_lock: Mutex<()>,
    /// `kvm->mmu_lock`.
    pub(crate) mmu: Mutex<MmuState>,
    /// The lockless readers' copy of `mmu_valid_gen`, written under `mmu_lock`.
    pub(crate) mmu_valid_gen: AtomicU64,
    /// The lockless readers' copy of `mmu_notifier_seq`.
    pub(crate) notifier_seq: AtomicU64,
    /// `kvm->memslots`.
    pub(crate) memslots: GenRoot<Memslots>,
    pub(crate) vcpus: Box<[Vcpu]>,
    /// `kvm->srcu`, as an epoch.
    pub(crate) reclaimer: Reclaimer,
    pub(crate) ghost: GhostArc<Ghost>,
    pub(crate) host: HostMm,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("mmu_valid_gen", &self.mmu_valid_gen.load(Ordering::Relaxed))
            .field("reclaimer", &self.reclaimer)
            .finish_non_exhaustive()
    }
}

/// Marks a vCPU busy for the duration of one operation.
struct VcpuClaim<'a>(&'a Vcpu);

impl Drop for VcpuClaim<'_> {
    fn drop(&mut self) {
        self.0.busy.set(0);
    }
}

impl Vm {
    /// Creates a VM with no memslots. Every vCPU starts with a reload request.
    pub fn new(config: Config) -> Result<Vm, MmuError> {
        config.validate()?;
        let reclaimer = Reclaimer::new(config.reclaim).map_err(|_| {
            MmuError::InvalidConfig("crossbeam-epoch is not available in this lane")
        })?;
        Ok(Vm {
            slots_lock: Mutex::new(()),
            mmu: Mutex::new(MmuState::new(config.vcpus)),
            mmu_valid_gen: AtomicU64::new(0),
            notifier_seq: AtomicU64::new(0),
            memslots: GenRoot::new(Arc::new(Memslots::default())),
            vcpus: (0..config.vcpus).map(|_| Vcpu::new()).collect(),
            reclaimer,
            ghost: GhostArc::new(Ghost::new(&config)),
            host: HostMm::default(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn event(&self, actor: Actor, what: impl FnOnce() -> What) {
        if self.ghost.events.enabled() {
            let seq = self.ghost.event_seq.next();
            self.ghost.events.push_with(|| Event {
                seq,
                actor,
                what: what(),
            });
        }
    }

    fn gen_mask(&self) -> u64 {
        (1u64 << self.config.gen_bits) - 1
    }

    fn mmio_mask(&self) -> u64 {
        (1u64 << self.config.mmio_gen_bits) - 1
    }

    fn check_gfn(&self, gfn: u64) -> Result<(), MmuError> {
        let limit = self.config.max_gfn();
        if gfn >= limit {
            return Err(MmuError::GfnOutOfRange { gfn, limit });
        }
        Ok(())
    }

    fn claim(&self, vcpu: VcpuId) -> Result<VcpuClaim<'_>, MmuError> {
        let v = self
            .vcpus
            .get(vcpu.0)
            .ok_or(MmuError::UnknownVcpu(vcpu.0))?;
        if !v.busy.compare_set(0, 1) {
            return Err(MmuError::VcpuBusy(vcpu.0));
        }
        v.ops.increment();
        Ok(VcpuClaim(v))
    }

    fn spte_index(&self, gfn: u64, level: u8) -> usize {
        let bits = self.config.index_bits();
        ((gfn >> (bits * u32::from(level - 1))) & (self.config.spte_count as u64 - 1)) as usize
    }

    fn child_gfn(&self, gfn: u64, child_level: u8) -> u64 {
        let span_bits = self.config.index_bits() * u32::from(child_level);
        gfn & !((1u64 << span_bits) - 1)
    }

    // ----- vCPU operations -------------------------------------------------

    /// Handles pending requests, as `vcpu_enter_guest` does before entry: a
    /// reload drops the root through `mmu_free_roots` and loads a fresh one of the
    /// current generation. A vCPU with no root also loads one.
    pub fn handle_requests(&self, vcpu: VcpuId) -> Result<Handled, MmuError> {
        let _claim = self.claim(vcpu)?;
        let v = &self.vcpus[vcpu.0];
        let actor = Actor::Vcpu(vcpu.0);
        let mut handled = Handled::default();
        // Freeing the old root flushes remote TLBs, which requests a flush from
        // this vCPU too; like vcpu_enter_guest, go round again (a few times at
        // most: another thread may keep making requests).
        for _ in 0..4 {
            let requests = v.requests.swap(0, Ordering::AcqRel);
            let needs_root = v.root.load(Ordering::Acquire) == 0;
            if requests == 0 && !needs_root {
                break;
            }
            handled.requests |= requests;
            if requests & REQ_RELOAD != 0 || needs_root {
                let guard = self.reclaimer.pin();
                let mut lk = self.lock_mmu(actor);
                self.mmu_free_roots(&mut lk, &guard, vcpu.0);
                self.mmu_alloc_roots(&mut lk, vcpu.0);
                handled.reloaded = true;
            }
            self.event(actor, || What::Handled { requests });
        }
        Ok(handled)
    }

    /// The lockless read path: what the guest would see at `gfn` now. It never
    /// takes `mmu_lock`. The vCPU announces the walk in `vcpu->mode`, then checks
    /// its requests, pins an epoch, loads its root, checks the root's generation
    /// and walks.
    pub fn translate(&self, vcpu: VcpuId, gfn: u64) -> Result<Translation, MmuError> {
        self.check_gfn(gfn)?;
        let _claim = self.claim(vcpu)?;
        let v = &self.vcpus[vcpu.0];
        let start = self.walk_lockless_begin(v);
        let result = self.translate_walk(v, gfn, start);
        v.set_mode(VcpuMode::OutsideGuest);
        self.event(Actor::Vcpu(vcpu.0), || What::Translate {
            gfn,
            result: format!("{result:?}"),
        });
        Ok(result)
    }

    /// `walk_shadow_page_lockless_begin`: announce the walk in `vcpu->mode`,
    /// then `fence(SeqCst)`, pairing with the fence in `make_all_cpus_request`:
    /// either this walk sees the request, or the requester waits for the walk.
    /// Returns the ghost time the walk began (for I4). The caller ends the walk
    /// by setting the mode back to `OutsideGuest`.
    fn walk_lockless_begin(&self, v: &Vcpu) -> u64 {
        v.set_mode(VcpuMode::ReadingShadowPageTables);
        fence(Ordering::SeqCst);
        self.ghost.clock.get()
    }

    fn translate_walk(&self, v: &Vcpu, gfn: u64, start: u64) -> Translation {
        if v.requests.load(Ordering::Acquire) != 0 {
            return Translation::RequestPending;
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

    /// The vCPU's MMIO cache (`vcpu_match_mmio_gpa`): trusted only while the
    /// memslots generation it was taken in is current.
    fn mmio_cache_hit(&self, v: &Vcpu, gfn: u64) -> Option<Translation> {
        if v.mmio_gfn.load(Ordering::Relaxed) != gfn + 1 {
            return None;
        }
        let cached = v.mmio_gen.load(Ordering::Relaxed);
        let current = self.memslots.load().generation;
        if cached == current {
            return Some(Translation::Mmio);
        }
        if self.config.mutant == Some(Mutant::MmioCacheIgnoresGen) {
            self.ghost.violate(Violation::new(
                Invariant::I7,
                format!(
                    "MMIO cache for gfn {gfn} from slots gen {cached} trusted at gen {current}"
                ),
            ));
            return Some(Translation::Mmio);
        }
        None
    }

    /// The vCPU's root, if it is a live page of the current generation.
    fn current_root<'g>(
        &self,
        v: &Vcpu,
        guard: &'g Guard<'_>,
    ) -> Result<&'g ShadowPage, Translation> {
        let ptr =
            PagePtr::from_addr(v.root.load(Ordering::Acquire) as usize).ok_or(Translation::Miss)?;
        let root = ptr.get(guard);
        let body = root.body();
        if body.poisoned {
            self.ghost.violate(Violation::new(
                Invariant::I3,
                format!("translate read freed root {}", body.id),
            ));
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
        loop {
            let body = page.body();
            if body.poisoned {
                self.ghost.violate(Violation::new(
                    Invariant::I3,
                    format!("translate read freed page {}", body.id),
                ));
                return Translation::Miss;
            }
            let index = self.spte_index(gfn, level);
            let raw = page.sptes[index].load(Ordering::Acquire);
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
                    if !accessed {
                        // The hardware sets the accessed bit, only on a present spte.
                        let _ = page.sptes[index].compare_exchange(
                            raw,
                            raw | spte::ACCESSED,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    self.check_not_stale(gfn, pfn, page.ghost_install[index].get(), start, body.id);
                    return Translation::Mapped { pfn, writable };
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
    fn check_mmio_spte(
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
        if let Some(slot) = slots.lookup(gfn) {
            self.ghost.violate(Violation::new(
                Invariant::I7,
                format!(
                    "trusted an MMIO spte for gfn {gfn}, which slot {} maps",
                    slot.id.0
                ),
            ));
        }
        if ghost_generation != current & 0xffff_ffff {
            self.ghost.violate(Violation::new(
                Invariant::I7,
                format!(
                    "MMIO spte for gfn {gfn} built from slots gen {ghost_generation} trusted at gen {current}"
                ),
            ));
        }
        v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
        v.mmio_gen.store(current, Ordering::Relaxed);
        true
    }

    /// `handle_mmio_page_fault`: the fault path's lockless walk
    /// (`walk_shadow_page_get_mmio_spte`). If the last spte on `gfn`'s path is
    /// an MMIO spte of the generation of `slots` (which map no slot at `gfn`),
    /// the access is emulated without `mmu_lock`. The kernel takes this path
    /// when the fault's error code says the hardware hit an MMIO spte; fastzap
    /// has no error codes and takes it for every fault on a gfn no slot maps.
    /// Like the kernel's, this walk looks neither at the vCPU's requests nor
    /// at its root's generation: a reload may be pending and the root obsolete
    /// and being zapped. Two things keep the pages it
    /// walks alive: the commit's remote TLB flush, which waits for every vCPU
    /// in `READING_SHADOW_PAGE_TABLES` (the kernel's only protection since
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
        let mut visited = [None; 8];
        let trusted =
            self.get_mmio_spte(v, gfn, guard, &mut visited)
                .is_some_and(|(generation, ghost)| {
                    self.check_mmio_spte(v, slots, gfn, generation, ghost)
                });
        // Still inside the walk: every page it visited must be unfreed.
        for page in visited.iter().flatten() {
            if page.life() == PageLife::Freed {
                self.ghost.violate(Violation::new(
                    Invariant::I3,
                    format!(
                        "{} freed while page_fault's lockless walk of gfn {gfn} was inside it",
                        page.ghost_id
                    ),
                ));
            }
        }
        v.set_mode(VcpuMode::OutsideGuest);
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
        visited: &mut [Option<&'g ShadowPage>; 8],
    ) -> Option<(u64, u64)> {
        let mut ptr = PagePtr::from_addr(v.root.load(Ordering::Acquire) as usize)?;
        for (slot, level) in visited.iter_mut().zip((1..=self.config.levels).rev()) {
            let page = ptr.get(guard);
            *slot = Some(page);
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

    /// Translates a run of gfns the way a vCPU runs: one entry (mode, fence,
    /// requests check), one epoch pin and one root check for the whole run, then
    /// one walk per gfn. Results are appended to `out`.
    pub fn translate_run(
        &self,
        vcpu: VcpuId,
        gfns: &[u64],
        out: &mut Vec<Translation>,
    ) -> Result<(), MmuError> {
        for &gfn in gfns {
            self.check_gfn(gfn)?;
        }
        let _claim = self.claim(vcpu)?;
        let v = &self.vcpus[vcpu.0];
        let start = self.walk_lockless_begin(v);
        if v.requests.load(Ordering::Acquire) != 0 {
            out.extend(gfns.iter().map(|_| Translation::RequestPending));
        } else {
            let guard = self.reclaimer.pin();
            match self.current_root(v, &guard) {
                Ok(root) => out.extend(gfns.iter().map(|&gfn| {
                    self.mmio_cache_hit(v, gfn)
                        .unwrap_or_else(|| self.walk(v, root, gfn, start, |ptr| ptr.get(&guard)))
                })),
                Err(miss) => out.extend(gfns.iter().map(|_| miss)),
            }
        }
        v.set_mode(VcpuMode::OutsideGuest);
        Ok(())
    }

    /// The same walk with no synchronization at all: no mode, no fence, no
    /// requests check, no epoch pin, no generation check. Sound only because
    /// `&mut self` excludes every other operation; it exists to measure what
    /// the synchronization of [`Vm::translate`] costs.
    pub fn translate_unsynchronized(
        &mut self,
        vcpu: VcpuId,
        gfn: u64,
    ) -> Result<Translation, MmuError> {
        self.check_gfn(gfn)?;
        let v = self
            .vcpus
            .get(vcpu.0)
            .ok_or(MmuError::UnknownVcpu(vcpu.0))?;
        let Some(root) = PagePtr::from_addr(v.root.load(Ordering::Relaxed) as usize) else {
            return Ok(Translation::Miss);
        };
        let deref = |ptr: PagePtr| ptr.get_exclusive(self);
        Ok(self.walk(v, deref(root), gfn, u64::MAX, deref))
    }

    /// I4 at run time: a translation that began after an invalidation of `gfn`
    /// returned must not return a mapping installed before that invalidation.
    fn check_not_stale(
        &self,
        gfn: u64,
        pfn: u64,
        installed: u64,
        start: u64,
        sp: crate::page::PageId,
    ) {
        if installed >= self.ghost.latest_cut.get() {
            return;
        }
        let all = self.ghost.kill_all.with(|k| *k);
        let one = self.ghost.kills.with(|k| k.get(gfn)).unwrap_or((0, 0));
        for (cut, returned) in [all, one] {
            if returned != 0 && returned <= start && installed < cut {
                self.ghost.violate(Violation::new(
                    Invariant::I4,
                    format!(
                        "stale translation: gfn {gfn} -> pfn {pfn:#x} in {sp}, installed at t{installed}, \
                         invalidated at t{cut} (returned t{returned}), translate began t{start}"
                    ),
                ));
            }
        }
    }

    /// A page fault on `gfn`: find the slot, take `mmu_lock`, check that nothing
    /// made the fault stale, walk from the root creating missing pages with
    /// `get_page`, and install a leaf spte plus its rmap entry, or an MMIO spte
    /// where no slot maps the gfn.
    pub fn page_fault(&self, vcpu: VcpuId, gfn: u64, write: bool) -> Result<Fault, MmuError> {
        self.check_gfn(gfn)?;
        let _claim = self.claim(vcpu)?;
        let actor = Actor::Vcpu(vcpu.0);
        let mutant = self.config.mutant;
        self.event(actor, || What::Fault { gfn });
        let guard = self.reclaimer.pin();
        let mmu_seq = self.notifier_seq.load(Ordering::Acquire);
        let slots = self.memslots.load();
        enum Target {
            Leaf { pfn: u64, slot: Memslot },
            Mmio { generation: u64 },
        }
        let target = match slots.lookup(gfn) {
            Some(slot) if slot.is_invalid() => {
                if mutant != Some(Mutant::InvalidSlotFaultInstallsMmio) {
                    return Ok(self.retry(actor, gfn, RetryReason::InvalidSlot));
                }
                Target::Mmio {
                    generation: slots.generation,
                }
            }
            Some(slot) => {
                if slot.lpage_info.index(slot.base_gfn, gfn).is_none()
                    || slot.rmap_index(gfn) >= slot.rmap.len()
                {
                    self.ghost.violate(Violation::new(
                        Invariant::I1,
                        format!("slot {} metadata not sized for gfn {gfn}", slot.id.0),
                    ));
                    return Ok(self.retry(actor, gfn, RetryReason::InvalidSlot));
                }
                let pfn = self.host.hva_to_pfn(slot.gfn_to_hva(gfn));
                Target::Leaf {
                    pfn,
                    slot: slot.clone(),
                }
            }
            None if slots.update_in_progress() => {
                // Do not cache MMIO while the memslots are in flux (the 2019
                // fix): handle the access, install nothing.
                self.event(actor, || {
                    What::Note(format!("mmio gfn {gfn} not cached: memslots in flux"))
                });
                return Ok(Fault::Mmio);
            }
            None => {
                let v = &self.vcpus[vcpu.0];
                if let Some(fault) = self.handle_mmio_page_fault(v, &guard, &slots, actor, gfn) {
                    return Ok(fault);
                }
                Target::Mmio {
                    generation: slots.generation,
                }
            }
        };
        drop(slots);
        let mut lk = self.lock_mmu(actor);
        let Some(root_id) = lk.roots[vcpu.0] else {
            return Ok(self.retry(actor, gfn, RetryReason::NoRoot));
        };
        let root_meta = &lk.pages[&root_id];
        if lk.is_obsolete(root_meta, mutant) && mutant != Some(Mutant::FaultIntoObsoleteRoot) {
            return Ok(self.retry(actor, gfn, RetryReason::ObsoleteRoot));
        }
        if lk.notifier_count > 0 || lk.notifier_seq != mmu_seq {
            return Ok(self.retry(actor, gfn, RetryReason::NotifierRace));
        }
        // __direct_map: walk down, creating and linking missing pages.
        let (mut id, mut ptr) = (root_id, root_meta.ptr);
        for level in (2..=self.config.levels).rev() {
            let page = ptr.get(&guard);
            let index = self.spte_index(gfn, level);
            match Spte::decode(page.sptes[index].load(Ordering::Acquire)) {
                Spte::NonLeaf(addr) => {
                    ptr = PagePtr::from_addr(addr).expect("non-leaf spte has a child");
                    id = ptr.get(&guard).body().id;
                }
                _ => {
                    let role = Role {
                        level: level - 1,
                        ..page.body().role
                    };
                    let (child_id, child) =
                        self.get_page(&mut lk, self.child_gfn(gfn, level - 1), role);
                    if let Some(meta) = lk.pages.get_mut(&child_id) {
                        meta.parent_ptes.push((id, index));
                    }
                    page.sptes[index].store(Spte::non_leaf(child.addr()), Ordering::Release);
                    id = child_id;
                    ptr = child;
                }
            }
        }
        let page = ptr.get(&guard);
        let index = self.spte_index(gfn, 1);
        let sptep = SptePtr { page: ptr, index };
        let old = page.sptes[index].load(Ordering::Acquire);
        match target {
            Target::Leaf { pfn, slot } => {
                if let Spte::Leaf {
                    pfn: old_pfn,
                    writable,
                    ..
                } = Spte::decode(old)
                {
                    if old_pfn == pfn {
                        if write && !writable {
                            page.sptes[index].fetch_or(spte::WRITABLE, Ordering::AcqRel);
                        }
                        return Ok(Fault::Mapped { pfn });
                    }
                    self.drop_spte(&lk, &guard, sptep, gfn);
                }
                page.ghost_install[index].set(self.ghost.clock.increment());
                page.sptes[index].store(Spte::leaf(pfn, write), Ordering::Release);
                if let Err(violation) = slot.rmap.add(&lk, &guard, slot.rmap_index(gfn), sptep) {
                    self.ghost.violate(violation);
                }
                self.event(actor, || What::InstallLeaf { gfn, sp: id, pfn });
                self.audit_point(&lk, &guard, AuditPoint::AfterFault);
                Ok(Fault::Mapped { pfn })
            }
            Target::Mmio { generation } => {
                // The ghost half records the generation of the slots the
                // decision came from, whatever bug 14 stamps in the real half,
                // so that I7 can tell them apart.
                let source = generation;
                let generation = if mutant == Some(Mutant::MmioGenFromNewSlots) {
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
                let v = &self.vcpus[vcpu.0];
                v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
                v.mmio_gen.store(generation, Ordering::Relaxed);
                self.event(actor, || What::InstallMmio { gfn, generation });
                Ok(Fault::Mmio)
            }
        }
    }

    fn retry(&self, actor: Actor, gfn: u64, reason: RetryReason) -> Fault {
        self.event(actor, || What::Retry {
            gfn,
            reason: reason.as_str(),
        });
        Fault::Retry(reason)
    }

    // ----- invalidation ----------------------------------------------------

    /// The fast path: under `mmu_lock`, bump `mmu_valid_gen` and request a reload
    /// from every vCPU; then `zap_obsolete_pages` in batches with lock breaks,
    /// and commit (flush, then retire through the epoch). Serialized with memslot
    /// updates by `slots_lock`, so at most one obsolete generation exists.
    pub fn invalidate_zap_all_pages(&self) -> Result<ZapStats, MmuError> {
        let _slots =
            (self.config.mutant != Some(Mutant::NoSlotsLock)).then(|| self.slots_lock.lock());
        self.invalidate_all_locked(Actor::Zapper, |_| {}, || {})
    }

    /// The body of invalidate-all; the caller holds `slots_lock`. `under_lock`
    /// runs in the same `mmu_lock` hold as the generation bump; `before_zap`
    /// runs after that hold and before `zap_obsolete_pages`.
    fn invalidate_all_locked(
        &self,
        actor: Actor,
        under_lock: impl FnOnce(&MmuLock<'_>),
        before_zap: impl FnOnce(),
    ) -> Result<ZapStats, MmuError> {
        let started = std::time::Instant::now();
        let (cut, bump_hold_ns) = {
            let mut lk = self.lock_mmu(actor);
            let hold = std::time::Instant::now();
            let from = lk.mmu_valid_gen;
            let to = (from + 1) & self.gen_mask();
            lk.mmu_valid_gen = to;
            lk.gen_epoch += 1;
            self.mmu_valid_gen.store(to, Ordering::Release);
            let cut = self.ghost.clock.increment();
            self.event(actor, || What::GenBump { from, to });
            under_lock(&lk);
            if self.config.mutant != Some(Mutant::ReloadOutsideLock) {
                self.reload_remote_mmus(&lk);
            }
            drop(lk);
            (cut, elapsed_ns(hold))
        };
        before_zap();
        let stats = self.zap_obsolete_pages(actor).map(|mut stats| {
            stats.bump_hold_ns = bump_hold_ns;
            stats.total_ns = elapsed_ns(started);
            self.ghost.record_zap(stats);
            stats
        });
        if self.config.mutant == Some(Mutant::ReloadOutsideLock) {
            self.make_all_cpus_request(actor, REQ_RELOAD | REQ_TLB_FLUSH, "reload");
        }
        self.kill_all(cut);
        stats
    }

    /// The eager baseline (`kvm_mmu_zap_all` before 2013): prepare every page and
    /// commit, all in one `mmu_lock` hold. Same result as the fast path, with the
    /// lock held for time proportional to the number of pages.
    pub fn zap_all(&self) -> Result<ZapStats, MmuError> {
        let _slots = self.slots_lock.lock();
        let guard = self.reclaimer.pin();
        let started = std::time::Instant::now();
        let mut lk = self.lock_mmu(Actor::Zapper);
        let cut = self.ghost.clock.increment();
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
        stats.max_hold_ns = elapsed_ns(started);
        stats.total_ns = stats.max_hold_ns;
        self.ghost.record_zap(stats);
        self.kill_all(cut);
        Ok(stats)
    }

    /// The shrinker (`mmu_shrink_scan`): free the zapped-obsolete pages first; if
    /// there are none, zap up to `nr` of the oldest pages. Returns pages freed.
    pub fn shrink(&self, nr: usize) -> Result<usize, MmuError> {
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Shrinker);
        if !lk.zapped_obsolete.is_empty() {
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
            self.prepare_zap_page(&mut lk, &guard, id, &mut invalid_list);
        }
        Ok(self.commit_zap_page(&mut lk, &guard, &mut invalid_list))
    }

    // ----- memslots --------------------------------------------------------

    /// The current memslots.
    pub fn memslots(&self) -> Arc<Memslots> {
        self.memslots.load_full()
    }

    /// Publishes `next`. If its MMIO generation wraps to 0, every page is
    /// invalidated first, so that no MMIO spte from a full cycle ago can match the
    /// new generation (bug 15 is doing it after the publish).
    fn install_memslots(&self, next: Memslots, actor: Actor) -> Result<(), MmuError> {
        let generation = next.generation;
        // Set before the wrap's zap, on the memslots faults are reading now.
        self.memslots.load().begin_update();
        let wraps = generation & self.mmio_mask() == 0;
        let after = self.config.mutant == Some(Mutant::WrapZapAfterPublish);
        if wraps && !after {
            self.invalidate_all_locked(actor, |_| {}, || {})?;
        }
        self.memslots.store(Arc::new(next));
        self.event(actor, || What::Publish { generation });
        if self.config.audit_points {
            let guard = self.reclaimer.pin();
            let lk = self.lock_mmu(actor);
            self.audit_point(&lk, &guard, AuditPoint::AfterMemslotUpdate);
        }
        if wraps && after {
            self.invalidate_all_locked(actor, |_| {}, || {})?;
        }
        Ok(())
    }

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
                gfn: base_gfn.saturating_add(npages - 1),
                limit,
            }),
        }
    }

    fn new_slot_arrays(&self, base_gfn: u64, npages: u64) -> (Arc<Rmap>, Arc<LpageInfo>) {
        (
            Arc::new(Rmap::new(
                npages as usize,
                self.config.desc_capacity,
                self.ghost.clone(),
            )),
            Arc::new(LpageInfo::new(base_gfn, npages, self.config.index_bits())),
        )
    }

    /// KVM_SET_USER_MEMORY_REGION, create. MMIO sptes for the new gfns stop being
    /// trusted because the memslots generation changes.
    pub fn create_memslot(&self, spec: SlotSpec) -> Result<(), MmuError> {
        self.validate_range(spec.base_gfn, spec.npages)?;
        if !spec.userspace_addr.is_multiple_of(PAGE_SIZE)
            || spec
                .npages
                .checked_mul(PAGE_SIZE)
                .and_then(|len| spec.userspace_addr.checked_add(len))
                .is_none_or(|end| end >= 1 << 48)
        {
            return Err(MmuError::BadHostRange);
        }
        let _slots = self.slots_lock.lock();
        let current = self.memslots.load_full();
        if current.by_id(spec.id).is_some() {
            return Err(MmuError::SlotExists(spec.id));
        }
        if let Some(other) = current
            .slots
            .iter()
            .find(|s| s.overlaps(spec.base_gfn, spec.npages))
        {
            return Err(MmuError::SlotOverlap {
                slot: spec.id,
                other: other.id,
            });
        }
        let (rmap, lpage_info) = self.new_slot_arrays(spec.base_gfn, spec.npages);
        let slot = Memslot {
            id: spec.id,
            base_gfn: spec.base_gfn,
            npages: spec.npages,
            userspace_addr: spec.userspace_addr,
            flags: 0,
            rmap,
            lpage_info,
        };
        self.install_memslots(current.next(|v| v.push(slot)), Actor::Memslot)
    }

    /// KVM_SET_USER_MEMORY_REGION, delete, with the configured strategy.
    pub fn delete_memslot(&self, id: SlotId) -> Result<(), MmuError> {
        self.delete_memslot_with(id, self.config.deletion)
    }

    /// Delete with an explicit strategy.
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
        let cut = match strategy {
            DeletionStrategy::Merged311 => {
                let cut = self.retire_slot_merged(&slot)?;
                let next = self.memslots.load_full().next(|v| v.retain(|s| s.id != id));
                self.install_memslots(next, Actor::Memslot)?;
                self.synchronize(Actor::Memslot);
                cut
            }
            DeletionStrategy::SeedV3 => self.delete_seed_v3(slot.clone())?,
        };
        self.kill_runs(
            std::iter::once(slot.base_gfn..slot.base_gfn + slot.npages),
            cut,
        );
        Ok(())
    }

    /// Linux 3.11, first half of DELETE and MOVE: publish a copy with the slot
    /// INVALID, wait for readers, zap all (fast). Returns the ghost cut time.
    fn retire_slot_merged(&self, slot: &Memslot) -> Result<u64, MmuError> {
        let invalid = self.memslots.load_full().next(|v| {
            for s in v.iter_mut().filter(|s| s.id == slot.id) {
                s.flags |= SLOT_INVALID;
            }
        });
        self.install_memslots(invalid, Actor::Memslot)?;
        let cut = self.ghost.clock.increment();
        self.synchronize(Actor::Memslot);
        self.invalidate_all_locked(Actor::Memslot, |_| {}, || {})?;
        Ok(cut)
    }

    /// The seed's v3 delete. Returns the ghost cut time.
    fn delete_seed_v3(&self, slot: Memslot) -> Result<u64, MmuError> {
        let actor = Actor::Memslot;
        // rmap_remove must still find the slot's rmap once it is unpublished.
        self.lock_mmu(actor).zombies.push(slot.clone());
        let next = self
            .memslots
            .load_full()
            .next(|v| v.retain(|s| s.id != slot.id));
        self.install_memslots(next, actor)?;
        let cut = self.ghost.clock.increment();
        // kvm_mmu_invalid_memslot_pages: bump, remove-only rmap, reset lpage_info
        // and request reload, all in one mmu_lock hold; then, outside the lock,
        // unmap the rmap and wait for every walker, and only then zap.
        let result = self.invalidate_all_locked(
            actor,
            |lk| {
                slot.rmap.set_remove_only(lk);
                slot.lpage_info.reset();
            },
            || {
                self.unmap_memslot_rmap_nolock(&slot);
                self.synchronize(actor);
                // Not under loom: the extra scan trips loom's own atomic
                // bookkeeping (tokio-rs/loom#252); the shuttle lane runs it.
                if !cfg!(loom) {
                    self.check_slot_unmapped(&slot);
                }
            },
        );
        self.lock_mmu(actor).zombies.retain(|s| s.id != slot.id);
        result.map(|_| cut)
    }

    /// Ghost check of I1 once the seed's unmap and grace period are over: no
    /// present spte maps a gfn of the deleted slot. (A notifier that rewrote a
    /// spte on the remove-only rmap while the unmapper cleared it, bug 4, leaves
    /// one behind, on no rmap.)
    fn check_slot_unmapped(&self, slot: &Memslot) {
        let guard = self.reclaimer.pin();
        let lk = self.lock_mmu(Actor::Memslot);
        for meta in lk.pages.values().filter(|m| m.role.level == 1) {
            let page = meta.ptr.get(&guard);
            let body = page.body();
            for (index, spte) in page.sptes.iter().enumerate() {
                let gfn = self.spte_gfn(&body, index);
                if slot.contains(gfn) && Spte::is_leaf(spte.load(Ordering::Acquire)) {
                    self.ghost.violate(Violation::new(
                        Invariant::I1,
                        format!(
                            "{}[{index}] still maps gfn {gfn} of deleted slot {} after the unmap, on no rmap",
                            body.id, slot.id.0
                        ),
                    ));
                }
            }
        }
    }

    /// `unmap_memslot_rmap_nolock`: outside `mmu_lock`, take every entry of the
    /// remove-only rmap and clear its spte atomically. Walkers under `mmu_lock`
    /// may clear the same entries; both tolerate finding them gone.
    fn unmap_memslot_rmap_nolock(&self, slot: &Memslot) {
        self.ghost.lockless_unmappers.increment();
        let guard = self.reclaimer.pin();
        // Ghost: the pages this unmapper reached. The shrinker may zap and
        // commit them meanwhile, and the commit's flush waits only for vCPUs:
        // the pin alone must keep them (I3, "shadow pages outlive their
        // readers"), until the guard is dropped.
        let mut touched = Vec::new();
        for index in 0..slot.rmap.len() {
            slot.rmap.take_all(&guard, index, |sptep| {
                let page = sptep.page.get(&guard);
                touched.push(page);
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
        for page in touched {
            if page.life() == PageLife::Freed {
                self.ghost.violate(Violation::new(
                    Invariant::I3,
                    format!(
                        "{} freed while the seed's lockless unmapper of slot {} held it",
                        page.ghost_id, slot.id.0
                    ),
                ));
            }
        }
        drop(guard);
        let left = self.ghost.lockless_unmappers.get().saturating_sub(1);
        self.ghost.lockless_unmappers.set(left);
    }

    /// KVM_SET_USER_MEMORY_REGION, move: the 3.11 procedure, with new rmap and
    /// lpage_info arrays for the new base (bug 10 kept the old ones).
    pub fn move_memslot(&self, id: SlotId, new_base_gfn: u64) -> Result<(), MmuError> {
        let _slots = self.slots_lock.lock();
        let current = self.memslots.load_full();
        let slot = current
            .by_id(id)
            .cloned()
            .ok_or(MmuError::UnknownSlot(id))?;
        self.validate_range(new_base_gfn, slot.npages)?;
        if let Some(other) = current
            .slots
            .iter()
            .find(|s| s.id != id && s.overlaps(new_base_gfn, slot.npages))
        {
            return Err(MmuError::SlotOverlap {
                slot: id,
                other: other.id,
            });
        }
        drop(current);
        let cut = self.retire_slot_merged(&slot)?;
        let (rmap, lpage_info) = if self.config.mutant == Some(Mutant::MoveReusesMetadata) {
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
        let next = self.memslots.load_full().next(|v| {
            v.retain(|s| s.id != id);
            v.push(moved);
        });
        self.install_memslots(next, Actor::Memslot)?;
        self.synchronize(Actor::Memslot);
        self.kill_runs(
            std::iter::once(slot.base_gfn..slot.base_gfn + slot.npages),
            cut,
        );
        Ok(())
    }

    /// Ghost: every mapping of a gfn in `runs` installed before `cut` is dead
    /// from now on. Costs O(log n) per run, whatever its length.
    fn kill_runs(&self, runs: impl IntoIterator<Item = std::ops::Range<u64>>, cut: u64) {
        let returned = self.ghost.clock.increment();
        self.ghost.kills.with(|k| {
            for run in runs {
                k.insert(run, (cut, returned));
            }
        });
        self.ghost.latest_cut.raise(cut);
    }

    /// [`Vm::kill_runs`] for a list of gfns, grouped into runs.
    fn kill_gfns(&self, gfns: impl Iterator<Item = u64>, cut: u64) {
        let mut runs: Vec<std::ops::Range<u64>> = Vec::new();
        for gfn in gfns {
            match runs.last_mut() {
                Some(run) if run.end == gfn => run.end += 1,
                _ => runs.push(gfn..gfn + 1),
            }
        }
        self.kill_runs(runs, cut);
    }

    /// Ghost: every mapping installed before `cut` is dead from now on.
    fn kill_all(&self, cut: u64) {
        let returned = self.ghost.clock.increment();
        self.ghost.kill_all.with(|k| *k = (cut, returned));
        self.ghost.latest_cut.raise(cut);
    }

    // ----- mmu notifiers ---------------------------------------------------

    /// Every (slot, gfn) whose host page intersects `[start, end)`, over the
    /// published slots (INVALID included) and the unpublished ones whose rmaps
    /// may still hold entries.
    fn hva_targets(&self, lk: &MmuLock<'_>, start: u64, end: u64) -> Vec<(Memslot, u64)> {
        let slots = self.memslots.load();
        // A seed-v3 DELETE makes its slot a zombie just before it unpublishes
        // it: in between, the slot is in both lists and must be visited once.
        let zombies = lk.zombies.iter().filter(|z| slots.by_id(z.id).is_none());
        slots
            .slots
            .iter()
            .chain(zombies)
            .flat_map(|slot| {
                slot.gfns_in_hva(start, end)
                    .map(move |gfn| (slot.clone(), gfn))
            })
            .collect()
    }

    fn unmap_one(
        &self,
        lk: &MmuLock<'_>,
        guard: &Guard<'_>,
        slot: &Memslot,
        gfn: u64,
        sptep: SptePtr,
    ) -> bool {
        let old = sptep.spte(guard).swap(0, Ordering::AcqRel);
        slot.rmap.remove(lk, guard, slot.rmap_index(gfn), sptep);
        let sp = sptep.page.get(guard).body().id;
        self.event(lk.actor, || What::Unmap { gfn, sp });
        Spte::is_leaf(old)
    }

    fn is_obsolete_ptr(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, ptr: PagePtr) -> bool {
        let id = ptr.get(guard).body().id;
        lk.pages
            .get(&id)
            .is_none_or(|meta| lk.is_obsolete(meta, None))
    }

    fn notifier_begin(&self, start: u64, end: u64) -> Result<u64, MmuError> {
        if start >= end {
            return Err(MmuError::BadHvaRange);
        }
        Ok(self.ghost.clock.increment())
    }

    fn notifier_end(&self, guard: Guard<'_>) {
        drop(guard);
        let mut lk = self.lock_mmu(Actor::Notifier);
        lk.notifier_seq += 1;
        let seq = lk.notifier_seq;
        self.notifier_seq.store(seq, Ordering::Release);
        lk.notifier_count -= 1;
    }

    /// `invalidate_range_start` + `invalidate_range_end`: unmap every spte that
    /// maps a host page in `[start, end)`, on every rmap, the remove-only ones and
    /// those of invalid or obsolete pages included; flush; then the host remaps
    /// the range. Returns the number of sptes unmapped.
    pub fn invalidate_range(&self, start: u64, end: u64) -> Result<usize, MmuError> {
        let cut = self.notifier_begin(start, end)?;
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Notifier);
        lk.notifier_count += 1;
        let targets = self.hva_targets(&lk, start, end);
        let mut unmapped = 0;
        for (slot, gfn) in &targets {
            for sptep in slot.rmap.entries(&guard, slot.rmap_index(*gfn)) {
                if self.config.mutant == Some(Mutant::NotifierSkipsObsolete)
                    && self.is_obsolete_ptr(&lk, &guard, sptep.page)
                {
                    continue;
                }
                unmapped += usize::from(self.unmap_one(&lk, &guard, slot, *gfn, sptep));
            }
        }
        if unmapped > 0 {
            self.flush_remote_tlbs(&lk);
        }
        // Ghost check of I4 before the handler returns: no present spte of the
        // range is left on any rmap, obsolete and invalid pages included (bug 13).
        for (slot, gfn) in &targets {
            for sptep in slot.rmap.entries(&guard, slot.rmap_index(*gfn)) {
                if Spte::is_leaf(sptep.spte(&guard).load(Ordering::Acquire)) {
                    let sp = sptep.page.get(&guard).body().id;
                    self.ghost.violate(Violation::new(
                        Invariant::I4,
                        format!("invalidate_range returned with gfn {gfn} still mapped by {sp}"),
                    ));
                }
            }
        }
        drop(lk);
        // The host remaps the pages KVM can see: those backing a slot. (Pages
        // outside every slot have no spte to go stale, and remapping them one by
        // one would make a huge range cost memory proportional to its size.)
        for (slot, gfn) in &targets {
            let hva = slot.gfn_to_hva(*gfn);
            self.host.remap(hva, hva + PAGE_SIZE);
        }
        self.notifier_end(guard);
        self.kill_gfns(targets.iter().map(|(_, gfn)| *gfn), cut);
        Ok(unmapped)
    }

    /// The aging handlers' shared walk. On a remove-only rmap every handler
    /// unmaps instead of rewriting: writing a present spte back could resurrect
    /// one the lockless unmapper just cleared (the seed's point, bug 4).
    fn age_range(&self, start: u64, end: u64, clear: bool) -> Result<bool, MmuError> {
        self.notifier_begin(start, end)?;
        let guard = self.reclaimer.pin();
        let lk = self.lock_mmu(Actor::Notifier);
        let mut young = false;
        for (slot, gfn) in self.hva_targets(&lk, start, end) {
            for sptep in slot.rmap.entries(&guard, slot.rmap_index(gfn)) {
                let spte = sptep.spte(&guard);
                if slot.rmap.is_remove_only() {
                    if self.config.mutant == Some(Mutant::NotifierRewritesInvalidRmap) && clear {
                        let raw = spte.load(Ordering::Acquire);
                        if Spte::is_leaf(raw) && raw & spte::ACCESSED != 0 {
                            young = true;
                            crate::sync::yield_now();
                            spte.store(raw & !spte::ACCESSED, Ordering::Release);
                        }
                    } else {
                        self.unmap_one(&lk, &guard, &slot, gfn, sptep);
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

    /// `kvm_mmu_notifier_clear_flush_young`: clear the accessed bits of the
    /// sptes mapping `[start, end)`, flush if any was set; returns whether any was.
    pub fn clear_flush_young(&self, start: u64, end: u64) -> Result<bool, MmuError> {
        self.age_range(start, end, true)
    }

    /// `kvm_mmu_notifier_test_young`: whether any spte mapping `[start, end)` has
    /// its accessed bit set.
    pub fn test_young(&self, start: u64, end: u64) -> Result<bool, MmuError> {
        self.age_range(start, end, false)
    }

    /// `kvm_mmu_notifier_change_pte`: the host replaced the page at `hva` (KSM,
    /// copy-on-write). Sptes on a normal rmap are pointed at the new pfn,
    /// read-only; sptes on a remove-only rmap are unmapped.
    pub fn change_pte(&self, hva: u64) -> Result<usize, MmuError> {
        let page = hva & !(PAGE_SIZE - 1);
        // The last page of the address space has no end: refuse it rather than
        // overflow.
        let end = page.checked_add(PAGE_SIZE).ok_or(MmuError::BadHvaRange)?;
        let cut = self.notifier_begin(page, end)?;
        let guard = self.reclaimer.pin();
        let mut lk = self.lock_mmu(Actor::Notifier);
        lk.notifier_count += 1;
        self.host.remap(page, end);
        let new_pfn = self.host.hva_to_pfn(page);
        let targets = self.hva_targets(&lk, page, end);
        let mut changed = 0;
        for (slot, gfn) in &targets {
            for sptep in slot.rmap.entries(&guard, slot.rmap_index(*gfn)) {
                if slot.rmap.is_remove_only() {
                    self.unmap_one(&lk, &guard, slot, *gfn, sptep);
                    continue;
                }
                let page = sptep.page.get(&guard);
                let spte = &page.sptes[sptep.index];
                if Spte::is_leaf(spte.load(Ordering::Acquire)) {
                    page.ghost_install[sptep.index].set(self.ghost.clock.increment());
                    spte.store(Spte::leaf(new_pfn, false), Ordering::Release);
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            self.flush_remote_tlbs(&lk);
        }
        drop(lk);
        self.notifier_end(guard);
        self.kill_gfns(targets.iter().map(|(_, gfn)| *gfn), cut);
        Ok(changed)
    }

    // ----- introspection ---------------------------------------------------

    /// The current `mmu_valid_gen`.
    pub fn mmu_valid_gen(&self) -> u64 {
        self.mmu_valid_gen.load(Ordering::Acquire)
    }

    /// The allocation counters.
    pub fn counts(&self) -> Counts {
        Counts {
            pages: self.ghost.pages.get(),
            descs: self.ghost.descs.get(),
            rmaps: self.ghost.rmaps.get(),
        }
    }

    /// Runs grace periods until every retired object is freed, at most `rounds`
    /// times. Returns whether the counters settled.
    pub fn drain(&self, rounds: usize) -> bool {
        for _ in 0..rounds {
            if self.counts().settled() {
                return true;
            }
            self.reclaimer.synchronize();
        }
        self.counts().settled()
    }

    /// One attempt to advance the epoch and free what is ready, without waiting
    /// (unlike [`Vm::drain`], which waits for readers). Models call it so that
    /// reclamation can happen while a reader is still running.
    pub fn flush_reclaim(&self) {
        self.reclaimer.flush();
    }

    /// The event log so far.
    pub fn events(&self) -> Vec<Event> {
        self.ghost.events.snapshot()
    }

    /// Violations recorded at run time (by readers, walkers and the audit points).
    pub fn runtime_violations(&self) -> Vec<Violation> {
        self.ghost.violations.snapshot()
    }

    /// The zaps run so far, with their work counts.
    pub fn zap_history(&self) -> Vec<ZapStats> {
        self.ghost.zaps.with(|z| z.clone())
    }

    /// Operations run on vCPUs so far.
    pub fn vcpu_operations(&self) -> u64 {
        self.vcpus.iter().map(|v| v.ops.get()).sum()
    }

    /// The number of shadow pages not yet retired.
    pub fn shadow_pages(&self) -> usize {
        self.mmu.lock().pages.len()
    }

    /// The pending requests of `vcpu`.
    pub fn pending_requests(&self, vcpu: VcpuId) -> Result<u64, MmuError> {
        let v = self
            .vcpus
            .get(vcpu.0)
            .ok_or(MmuError::UnknownVcpu(vcpu.0))?;
        Ok(v.requests.load(Ordering::Acquire))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut *self.mmu.lock(), MmuState::new(0));
        for (_, meta) in state.pages {
            free_page_now(meta.ptr, &self.ghost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KillMap;

    #[test]
    fn kill_map_keeps_the_latest_times_per_gfn() {
        let mut k = KillMap::default();
        k.insert(0..10, (1, 2));
        k.insert(4..6, (3, 4));
        k.insert(9..12, (5, 6));
        assert_eq!(k.get(0), Some((1, 2)));
        assert_eq!(k.get(3), Some((1, 2)));
        assert_eq!(k.get(4), Some((3, 4)));
        assert_eq!(k.get(5), Some((3, 4)));
        assert_eq!(k.get(6), Some((1, 2)));
        assert_eq!(k.get(8), Some((1, 2)));
        assert_eq!(k.get(9), Some((5, 6)));
        assert_eq!(k.get(11), Some((5, 6)));
        assert_eq!(k.get(12), None);
        k.insert(0..20, (7, 8));
        assert!((0..20).all(|g| k.get(g) == Some((7, 8))));
        assert_eq!(k.runs.len(), 1);
        k.insert(3..3, (9, 9));
        assert_eq!(k.get(3), Some((7, 8)));
    }
}

//! # The sequential reference model: what a user of a [`Vm`](fastzap::Vm) may observe
//!
//! [`Reference`] is the specification of fastzap's public API for one caller
//! issuing one operation at a time. It knows nothing of shadow pages, rmaps,
//! descriptors or epochs: it tracks only what a user can see.
//!
//! - **Memslots**: id, base gfn, size and host address of every slot, in
//!   base order, and the memslots generation. Every memslot call returns
//!   exactly the error core's `__kvm_set_memory_region` validation order gives
//!   (see [`Reference::create_memslot`]), or succeeds.
//! - **The host**: a version per host page. `invalidate_range` remaps the
//!   host pages in its range that back a slot (only those can be mapped by a
//!   spte; fastzap's host leaves the others alone so that a huge range costs
//!   nothing), and `change_pte` remaps its page. The reference does not know pfn values; it
//!   learns the pfn of each (page, version) the first time it sees it. After
//!   that the pfn must never change, and two different (page, version) pairs
//!   must never share a pfn. So a remapped page gets a new pfn.
//! - **Per address space** (with `address_spaces == 2`, odd vCPUs use the
//!   second): for each gfn, the leaf (pfn, writable, accessed) or the MMIO
//!   entry the current page tables may hold, each either *certain* or only
//!   *possible*.
//! - **Per vCPU**: the root (none, current, obsolete, or maybe obsolete),
//!   whether requests (and a reload in particular) are pending (clear, maybe,
//!   set), and the one-entry MMIO cache.
//! - `mmu_valid_gen`, exactly.
//!
//! [`Reference::step`] checks an observed outcome against the set of outcomes
//! allowed for an operation, then updates the model. It uses the observed
//! outcome to resolve its own uncertainty. For example, a translation that did
//! not return `RequestPending` proves that no request was pending.
//!
//! ## Exact where the protocol is exact
//!
//! - Errors, memslots, the memslots generation and `mmu_valid_gen` are exact.
//!   One fast invalidation per `invalidate_zap_all_pages`, DELETE or MOVE,
//!   plus one per memslots publish whose generation wraps the MMIO generation
//!   to 0 (the fix for bug 15).
//! - A vCPU that faulted gfn X (`Mapped{pfn}`), when nothing has invalidated X
//!   since (fast or eager zap-all, DELETE or MOVE of any slot, the shrinker,
//!   `invalidate_range` covering X's host page), translates X to exactly
//!   `Mapped{pfn, writable}` if no request is pending. `change_pte` on X's
//!   host page changes this to the new pfn, read-only.
//! - A vCPU whose MMIO cache holds X from the current memslots generation, or
//!   whose page tables certainly hold an MMIO spte for X from that generation,
//!   translates X to exactly `Mmio` if no request is pending.
//! - A fault returns `Mapped` with the current host pfn where a slot maps the
//!   gfn, `Mmio` where none does, `Retry(NoRoot)` before the first
//!   `handle_requests`, and `Retry(ObsoleteRoot)` while the root is obsolete.
//!   `Retry(InvalidSlot)` and `Retry(NotifierRace)` need a concurrent memslot
//!   update or notifier, so one caller never sees them (see
//!   [Concurrent histories](#concurrent-histories)).
//!
//! ## Permissive where the implementation may vary (each choice)
//!
//! - **Pending requests.** Freeing an invalid root, committing zapped pages
//!   and the notifiers request TLB flushes from every vCPU when they removed
//!   something. The reference tracks requests as clear, maybe, or set. Maybe
//!   allows `RequestPending` or the normal answer. Observing requests
//!   (`pending_requests`, `translate`, `handle_requests`) makes it exact again.
//! - **The shrinker** zaps some of the oldest pages, which the reference does not
//!   know about. After `shrink(n > 0)`, every leaf and MMIO entry becomes possible
//!   rather than certain, and every current root may be obsolete. A zapped parent
//!   leaves its children, with their leaves, on the active list, and a later
//!   fault may link them again. So a possible leaf stays possible after a
//!   `Miss`: it may reappear without a fault, with its old (still valid) pfn.
//!   It can only be stale after an invalidation, and those clear it.
//! - **Writable and accessed bits** are exact while the leaf is certain. A fault
//!   on a leaf that is only possible may find it or install a fresh one, so the
//!   bit becomes unknown unless both cases agree.
//! - **Counts returned by notifiers** (`invalidate_range`, `change_pte`) lie
//!   between the number of certain leaves and the number of possible leaves in
//!   the range, over all address spaces. `test_young` and `clear_flush_young`
//!   must be true if a certain leaf in the range is certainly accessed. They
//!   must be false if no leaf is possible there.
//! - **`shrink(n)`** returns at most `n` when `n > 0`, and 0 when `n == 0`.
//! - **Page tables are per address space, not per vCPU.** vCPUs of one address
//!   space share its current root. So one vCPU may translate to `Mapped` or
//!   `Mmio` what another vCPU of the same address space faulted. The MMIO
//!   *cache* is per vCPU and exact.
//! - **`translate_unsynchronized`** walks the vCPU's root with no requests
//!   check, so it may answer where `translate` would say `RequestPending`. An
//!   obsolete root was emptied when it was zapped, so it gives `Miss`. A root
//!   the shrinker may have zapped may give `Miss` for anything.
//!
//! ## The security property (I4)
//!
//! A `Mapped{pfn}` translation is allowed only from a leaf the reference holds.
//! Every invalidation of X removes X's leaf from every address space (or, for
//! `change_pte`, points it at the new pfn). So after an invalidation of X has
//! returned, no pfn mapped before it can be returned for X.
//!
//! ## Concurrent histories
//!
//! The linearizability checker ([`crate::linearizability`]) places the
//! operations of a concurrent history one at a time with
//! [`Reference::step_overlapping`], which takes what overlaps the operation in
//! real time ([`Overlap`]) and, for an operation that acts after its atomic
//! step, a *tail* that the checker places later
//! ([`Reference::end_invalidation`]). Sequential use ([`Reference::step`])
//! has no overlap and no tail, and is unchanged. The allowances, each narrow
//! and each for an outcome only concurrency produces:
//!
//! - **Retries.** `Retry(InvalidSlot)` needs an overlapping DELETE or MOVE,
//!   `Retry(NotifierRace)` an overlapping notifier; either is a no-op.
//! - **Requests land one vCPU at a time.** `make_all_cpus_request` sets each
//!   vCPU's bit in turn, and lockless callers (`translate`,
//!   `pending_requests`, a `handle_requests` with nothing to do) can look in
//!   between. The requests of an operation with a tail are only *maybe*
//!   pending for a vCPU until the tail, and certainly pending at the tail
//!   if the vCPU has not looked since. A `handle_requests` that did not
//!   reload keeps an obsolete root. A fault that finds its root obsolete
//!   still proves the reload: it takes `mmu_lock`, and the reload is made in
//!   the hold that bumps the generation.
//! - **Batches.** While a fast invalidation's batches run (until its tail),
//!   requests may appear at any step (each batch's commit flushes), and
//!   notifiers may still meet the obsolete leaves: their count has no upper
//!   bound, and `*_young` may say true.
//! - **Bumps of their own.** A publish that wraps the MMIO generation is
//!   preceded by an invalidation, and the seed v3 DELETE unpublishes its slot
//!   before it bumps: with a tail, such a bump is carried out when the checker
//!   places it ([`Reference::deferred_bump`]), between the operation and its
//!   tail, and until then the seed v3 slot is a zombie whose leaves stay
//!   mapped and which the notifiers still reach (as core's zombies are).
//! - **A translate is two reads.** It checks the requests, then walks. An
//!   operation that removes sptes and then makes a request can fall between
//!   them, so a translate overlapping one may also be judged as a bare walk:
//!   `Miss` is always allowed (it maps nothing), `Mapped` only from a leaf the
//!   reference holds, `Mmio` only from the cache or a current MMIO spte.
//!
//! None of these allows a pfn that an invalidation placed earlier removed:
//! the security property holds for concurrent histories as stated above.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, Handled, Hva, MmuError, Requests, RetryReason, SlotId,
    SlotSpec, Translation, VcpuId, ZapStats,
};

/// Bytes per guest page.
pub const PAGE_SIZE: u64 = 4096;

/// One call of the public API, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// [`Vm::handle_requests`](fastzap::Vm::handle_requests).
    HandleRequests(VcpuId),
    /// [`Vm::page_fault`](fastzap::Vm::page_fault).
    PageFault {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
        /// A write fault.
        write: bool,
    },
    /// [`Vm::translate`](fastzap::Vm::translate).
    Translate {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
    },
    /// [`Vm::translate_unsynchronized`](fastzap::Vm::translate_unsynchronized).
    TranslateUnsynchronized {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
    },
    /// [`Vm::translate_run`](fastzap::Vm::translate_run).
    TranslateRun {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfns, in order.
        gfns: Vec<u64>,
    },
    /// [`Vm::pending_requests`](fastzap::Vm::pending_requests).
    PendingRequests(VcpuId),
    /// [`Vm::invalidate_zap_all_pages`](fastzap::Vm::invalidate_zap_all_pages).
    ZapAllFast,
    /// [`Vm::zap_all`](fastzap::Vm::zap_all).
    ZapAllEager,
    /// [`Vm::create_memslot`](fastzap::Vm::create_memslot).
    CreateSlot(SlotSpec),
    /// [`Vm::delete_memslot`](fastzap::Vm::delete_memslot) (`None`: the
    /// configured strategy) or [`Vm::delete_memslot_with`](fastzap::Vm::delete_memslot_with).
    DeleteSlot {
        /// The slot.
        id: SlotId,
        /// The strategy, or `None` for the configured one.
        strategy: Option<DeletionStrategy>,
    },
    /// [`Vm::move_memslot`](fastzap::Vm::move_memslot).
    MoveSlot {
        /// The slot.
        id: SlotId,
        /// Its new base gfn.
        base_gfn: u64,
    },
    /// [`Vm::invalidate_range`](fastzap::Vm::invalidate_range).
    InvalidateRange {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::clear_flush_young`](fastzap::Vm::clear_flush_young).
    ClearFlushYoung {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::test_young`](fastzap::Vm::test_young).
    TestYoung {
        /// First hva.
        start: u64,
        /// End hva (exclusive).
        end: u64,
    },
    /// [`Vm::change_pte`](fastzap::Vm::change_pte).
    ChangePte {
        /// The host address.
        hva: u64,
    },
    /// [`Vm::shrink`](fastzap::Vm::shrink).
    Shrink(usize),
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `handle_requests`.
    Handled(Result<Handled, MmuError>),
    /// `page_fault`.
    Fault(Result<Fault, MmuError>),
    /// `translate`.
    Translation(Result<Translation, MmuError>),
    /// `translate_run`.
    Translations(Result<Vec<Translation>, MmuError>),
    /// `pending_requests`.
    Requests(Result<Requests, MmuError>),
    /// The zaps.
    Zap(Result<ZapStats, MmuError>),
    /// The memslot calls.
    Unit(Result<(), MmuError>),
    /// `invalidate_range`, `change_pte`, `shrink`.
    Count(Result<usize, MmuError>),
    /// `clear_flush_young`, `test_young`.
    Young(Result<bool, MmuError>),
}

impl Outcome {
    /// The error, if the call failed.
    pub fn error(&self) -> Option<MmuError> {
        match self {
            Outcome::Handled(r) => r.err(),
            Outcome::Fault(r) => r.err(),
            Outcome::Translation(r) => r.err(),
            Outcome::Translations(r) => r.as_ref().err().copied(),
            Outcome::Requests(r) => r.err(),
            Outcome::Zap(r) => r.err(),
            Outcome::Unit(r) => r.err(),
            Outcome::Count(r) => r.err(),
            Outcome::Young(r) => r.err(),
        }
    }
}

/// Three-valued knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tri {
    /// Certainly not.
    Clear,
    /// Perhaps.
    Maybe,
    /// Certainly.
    Set,
}

impl Tri {
    /// At least maybe: `Clear` becomes `Maybe`, `Set` stays `Set`.
    fn weaken(self) -> Tri {
        match self {
            Tri::Clear => Tri::Maybe,
            other => other,
        }
    }
}

/// A vCPU's root, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    /// Never loaded: the vCPU has not handled its first requests.
    None,
    /// A valid root of the current generation.
    Current,
    /// Obsolete or invalid: faults retry until the vCPU reloads.
    Obsolete,
    /// Perhaps zapped by the shrinker.
    MaybeObsolete,
}

/// One vCPU, as the caller can see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VcpuModel {
    /// Its root.
    pub root: Root,
    /// Whether any request is pending.
    pub pending: Tri,
    /// Whether a reload request is pending.
    pub reload: Tri,
    /// The MMIO cache: (gfn, memslots generation), exactly.
    pub mmio_cache: Option<(u64, u64)>,
}

/// A leaf the page tables of one address space may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// The pfn it maps: `None` after `change_pte` pointed it at the new pfn of
    /// its host page, which the reference has not seen yet.
    pub pfn: Option<u64>,
    /// The writable bit, if known.
    pub writable: Option<bool>,
    /// The accessed bit, if known.
    pub accessed: Option<bool>,
    /// Certainly reachable from the address space's current root (else only
    /// possibly present, perhaps unreachable).
    pub certain: bool,
}

/// An MMIO spte one address space may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MmioEntry {
    /// The memslots generation it was built under.
    pub generation: u64,
    /// Certainly reachable from the current root.
    pub certain: bool,
}

/// The page tables of one address space, by gfn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Space {
    /// Leaves.
    pub leaves: BTreeMap<u64, Leaf>,
    /// MMIO sptes.
    pub mmio: BTreeMap<u64, MmioEntry>,
}

/// The host's pfn per host page and version, learned from observation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Host {
    versions: BTreeMap<u64, u64>,
    learned: BTreeMap<(u64, u64), u64>,
    owners: BTreeMap<u64, (u64, u64)>,
}

impl Host {
    fn version(&self, page: u64) -> u64 {
        self.versions.get(&page).copied().unwrap_or(0)
    }

    fn remap_page(&mut self, page: u64) {
        *self.versions.entry(page).or_insert(0) += 1;
    }

    /// Checks that `pfn` is the pfn of `hva` now: consistent with what was
    /// seen before for the same page and version, and different from the pfn of
    /// any other page or version.
    fn observe(&mut self, hva: u64, pfn: u64) -> Result<(), String> {
        let key = (hva / PAGE_SIZE, self.version(hva / PAGE_SIZE));
        if let Some(&known) = self.learned.get(&key) {
            if known != pfn {
                return Err(format!(
                    "host page {:#x} version {} was pfn {known:#x}, now {pfn:#x}",
                    key.0, key.1
                ));
            }
            return Ok(());
        }
        if let Some(owner) = self.owners.get(&pfn) {
            return Err(format!(
                "pfn {pfn:#x} of host page {:#x} v{} already belonged to page {:#x} v{}",
                key.0, key.1, owner.0, owner.1
            ));
        }
        self.learned.insert(key, pfn);
        self.owners.insert(pfn, key);
        Ok(())
    }
}

/// What the reference allows a translation to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `RequestPending` is allowed.
    pub pending: bool,
    /// Only `RequestPending` is allowed.
    pub only_pending: bool,
    /// `Miss` is allowed.
    pub miss: bool,
    /// `Mmio` is allowed.
    pub mmio: bool,
    /// `Mapped` is allowed, with this pfn (`None`: the host page's current pfn,
    /// not yet seen) and, if known, this writable bit.
    pub mapped: Option<(Option<u64>, Option<bool>)>,
}

impl Allowed {
    fn admits(&self, t: Translation) -> bool {
        match t {
            Translation::RequestPending => self.pending,
            _ if self.only_pending => false,
            Translation::Miss => self.miss,
            Translation::Mmio => self.mmio,
            Translation::Mapped { pfn, writable } => self.mapped.is_some_and(|(p, w)| {
                p.is_none_or(|p| p == pfn.0) && w.is_none_or(|w| w == writable)
            }),
        }
    }
}

/// The sequential reference model. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    max_gfn: u64,
    gen_mask: u64,
    mmio_mask: u64,
    address_spaces: usize,
    deletion: DeletionStrategy,
    /// The slots, sorted by base gfn.
    pub slots: Vec<SlotSpec>,
    /// The memslots generation.
    pub slots_generation: u64,
    /// `mmu_valid_gen`.
    pub mmu_valid_gen: u64,
    /// The host.
    pub host: Host,
    /// Per address space.
    pub spaces: Vec<Space>,
    /// Per vCPU.
    pub vcpus: Vec<VcpuModel>,
    /// Operations placed whose tails are not (see
    /// [`Reference::step_overlapping`]): always empty in sequential use.
    in_flight: Vec<InFlight>,
    /// Per vCPU, how many times it looked at its requests.
    consumed: Vec<u64>,
    /// Within [`Reference::step_overlapping`] of an operation with a tail:
    /// the invalidations that core makes at an instant of their own (see
    /// [`Reference::deferred_bump`]) are counted, not carried out.
    deferring: Option<u32>,
    /// Slots a seed v3 DELETE unpublished whose invalidation is deferred:
    /// their leaves are still mapped, and the notifiers still reach them
    /// (core keeps them as zombies). Always empty in sequential use.
    zombies: Vec<SlotSpec>,
    /// Per gfn, the leaves (over every address space) that a deferring DELETE
    /// (`SeedV3Deferred`) left in the previous generation's pages: never
    /// translated through again, but still on the live slots' rmaps, so the
    /// notifiers may find them (possible, never certain) until the next
    /// invalidation or `invalidate_range` over them. Empty otherwise.
    retained: BTreeMap<u64, usize>,
    /// A deferring DELETE left the previous generation's pages in place: an
    /// obsolete root still reaches them, with their leaves and MMIO sptes.
    retains: bool,
}

/// An operation whose tail is still to come.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InFlight {
    /// The checker's key for it.
    key: u64,
    /// It zaps obsolete pages in batches.
    zaps: bool,
    /// Per vCPU: whether it owes it a request, a reload, and the vCPU's
    /// `consumed` count when it was placed.
    owed: Vec<(bool, bool, u64)>,
    /// Invalidations deferred to [`Reference::deferred_bump`].
    bumps: u32,
}

impl Hash for Reference {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.max_gfn.hash(state);
        self.gen_mask.hash(state);
        self.mmio_mask.hash(state);
        self.address_spaces.hash(state);
        matches!(self.deletion, DeletionStrategy::Merged311).hash(state);
        for s in self.slots.iter().chain(&self.zombies) {
            (s.id, s.base_gfn, s.npages, s.userspace_addr).hash(state);
        }
        self.zombies.len().hash(state);
        self.slots_generation.hash(state);
        self.mmu_valid_gen.hash(state);
        self.host.hash(state);
        self.spaces.hash(state);
        self.vcpus.hash(state);
        self.in_flight.hash(state);
        self.consumed.hash(state);
    }
}

/// What overlaps, in real time, an operation of a concurrent history: the
/// context in which [`Reference::step_overlapping`] judges outcomes that only
/// concurrency can produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Overlap {
    /// A memslot DELETE or MOVE, which publishes a copy with the slot INVALID
    /// before it zaps: justifies a fault's `Retry(InvalidSlot)`.
    pub slot_invalidation: bool,
    /// An mmu-notifier (`invalidate_range`, `change_pte`, `clear_flush_young`,
    /// `test_young`), which moves `mmu_notifier_seq`: justifies a fault's
    /// `Retry(NotifierRace)`.
    pub notifier: bool,
    /// An operation that removes or changes sptes and then requests a TLB
    /// flush or a reload (the zaps, DELETE, MOVE, a create that may wrap the
    /// MMIO generation, the notifiers, the shrinker): it may fall between a
    /// translation's requests check and its walk.
    pub spte_writer: bool,
}

impl Overlap {
    /// Nothing overlaps: one caller, one operation at a time.
    pub const NONE: Overlap = Overlap {
        slot_invalidation: false,
        notifier: false,
        spte_writer: false,
    };

    /// Adds what `op` contributes when it overlaps another operation.
    pub fn add(&mut self, op: &Op) {
        match op {
            Op::DeleteSlot { .. } | Op::MoveSlot { .. } => self.slot_invalidation = true,
            Op::InvalidateRange { .. }
            | Op::ChangePte { .. }
            | Op::ClearFlushYoung { .. }
            | Op::TestYoung { .. } => self.notifier = true,
            _ => {}
        }
        self.spte_writer |= op.writes_sptes();
    }
}

impl Op {
    /// Whether the operation may remove or change sptes and then request
    /// something of every vCPU: the zaps, the memslot updates (a create may
    /// wrap the MMIO generation), the notifiers that unmap, change or age,
    /// and the shrinker.
    pub fn writes_sptes(&self) -> bool {
        matches!(
            self,
            Op::ZapAllFast
                | Op::ZapAllEager
                | Op::CreateSlot(_)
                | Op::DeleteSlot { .. }
                | Op::MoveSlot { .. }
                | Op::InvalidateRange { .. }
                | Op::ChangePte { .. }
                | Op::ClearFlushYoung { .. }
                | Op::Shrink(_)
        )
    }
}

/// A disagreement between the implementation and the reference.
pub type Divergence = String;

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), Divergence> {
    if ok { Ok(()) } else { Err(why()) }
}

fn expect_err<T: std::fmt::Debug>(
    got: &Result<T, MmuError>,
    want: MmuError,
) -> Result<(), Divergence> {
    match got {
        Err(e) if *e == want => Ok(()),
        other => Err(format!("expected Err({want:?}), got {other:?}")),
    }
}

fn expect_ok<T: Clone + std::fmt::Debug>(got: &Result<T, MmuError>) -> Result<T, Divergence> {
    got.clone()
        .map_err(|e| format!("expected success, got Err({e:?})"))
}

impl Reference {
    /// The reference for a fresh VM of `config`: no slots, every vCPU without a
    /// root and with a reload request.
    pub fn new(config: &Config) -> Reference {
        Reference {
            max_gfn: config.max_gfn(),
            gen_mask: (1u64 << config.gen_bits) - 1,
            mmio_mask: (1u64 << config.mmio_gen_bits) - 1,
            address_spaces: usize::from(config.address_spaces),
            deletion: config.deletion,
            slots: Vec::new(),
            slots_generation: 0,
            mmu_valid_gen: 0,
            host: Host::default(),
            spaces: vec![Space::default(); usize::from(config.address_spaces)],
            vcpus: (0..config.vcpus)
                .map(|_| VcpuModel {
                    root: Root::None,
                    pending: Tri::Set,
                    reload: Tri::Set,
                    mmio_cache: None,
                })
                .collect(),
            in_flight: Vec::new(),
            consumed: vec![0; config.vcpus],
            deferring: None,
            zombies: Vec::new(),
            retained: BTreeMap::new(),
            retains: false,
        }
    }

    /// The address space vCPU `v` runs in: odd vCPUs use the second (`role.smm`).
    pub fn space_of(&self, v: usize) -> usize {
        if self.address_spaces == 2 { v % 2 } else { 0 }
    }

    fn check_gfn(&self, gfn: u64) -> Result<(), MmuError> {
        if gfn >= self.max_gfn {
            return Err(MmuError::GfnOutOfRange {
                gfn: Gfn(gfn),
                limit: Gfn(self.max_gfn),
            });
        }
        Ok(())
    }

    fn check_vcpu(&self, vcpu: VcpuId) -> Result<(), MmuError> {
        if vcpu.0 >= self.vcpus.len() {
            return Err(MmuError::UnknownVcpu(vcpu));
        }
        Ok(())
    }

    /// The slot whose host pages back `gfn`'s leaves: a published slot, or
    /// a deleted one whose invalidation is deferred.
    fn backing_slot(&self, gfn: u64) -> Option<&SlotSpec> {
        self.slot_of(gfn).or_else(|| {
            self.zombies
                .iter()
                .find(|s| gfn >= s.base_gfn.0 && gfn - s.base_gfn.0 < s.npages)
        })
    }

    fn slot_of(&self, gfn: u64) -> Option<&SlotSpec> {
        self.slots
            .iter()
            .find(|s| gfn >= s.base_gfn.0 && gfn - s.base_gfn.0 < s.npages)
    }

    fn hva_of(slot: &SlotSpec, gfn: u64) -> u64 {
        slot.userspace_addr.0 + (gfn - slot.base_gfn.0) * PAGE_SIZE
    }

    /// Every gfn of a slot whose host page intersects `[start, end)`.
    fn gfns_in_hva(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for s in self.slots.iter().chain(&self.zombies) {
            for i in 0..s.npages {
                let lo = s.userspace_addr.0 + i * PAGE_SIZE;
                if lo < end && start < lo + PAGE_SIZE {
                    out.push(s.base_gfn.0 + i);
                }
            }
        }
        out
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

    /// The error a notifier given `[start, end)` must return, if any: an
    /// empty or reversed range, then one that ends above 2^48 (reporting its
    /// first address at or above it).
    fn check_hva_range(start: u64, end: u64) -> Result<(), MmuError> {
        if start >= end {
            return Err(MmuError::BadHvaRange);
        }
        if end > Hva::LIMIT.0 {
            return Err(MmuError::HvaOutOfRange {
                hva: Hva(start.max(Hva::LIMIT.0)),
                limit: Hva::LIMIT,
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

    // ----- state transitions ------------------------------------------------

    /// A fast invalidation (`invalidate_all_locked`): the generation moves on,
    /// every root is obsolete, every vCPU must reload, the page tables are
    /// empty. MMIO caches survive: they are keyed by the memslots generation.
    fn invalidate_all(&mut self) {
        self.zombies.clear();
        self.retained.clear();
        self.retains = false;
        self.mmu_valid_gen = (self.mmu_valid_gen + 1) & self.gen_mask;
        for v in &mut self.vcpus {
            if v.root != Root::None {
                v.root = Root::Obsolete;
            }
            v.pending = Tri::Set;
            v.reload = Tri::Set;
        }
        self.clear_spaces();
    }

    fn clear_spaces(&mut self) {
        for s in &mut self.spaces {
            *s = Space::default();
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

    /// [`Reference::invalidate_all`], or, for an operation with a tail, count
    /// it for [`Reference::deferred_bump`].
    fn invalidate_or_defer(&mut self) {
        match &mut self.deferring {
            Some(bumps) => *bumps += 1,
            None => self.invalidate_all(),
        }
    }

    /// A deferring DELETE's invalidation (`SeedV3Deferred`): what
    /// [`Reference::invalidate_all`] does to what the API shows, except that
    /// the leaves stay reachable from the live slots' rmaps, as
    /// [`Reference::retained`]. The deleted slot's own leaves (`gone`) were
    /// unmapped before it returned; what an earlier deferring DELETE retained
    /// was zapped before the bump.
    fn invalidate_all_deferred(&mut self, gone: Option<SlotSpec>) {
        if self.deferring.is_some() {
            // Concurrent use: the bump is counted; the retained leaves are
            // unknown, which `zapping()` already allows for.
            self.invalidate_or_defer();
            return;
        }
        let mut retained = BTreeMap::new();
        for s in &self.spaces {
            for g in s.leaves.keys() {
                let deleted =
                    gone.is_some_and(|d| *g >= d.base_gfn.0 && *g - d.base_gfn.0 < d.npages);
                if !deleted {
                    *retained.entry(*g).or_insert(0) += 1;
                }
            }
        }
        self.invalidate_all();
        self.retained = retained;
        self.retains = true;
    }

    fn all_flushed(&mut self) {
        for v in &mut self.vcpus {
            v.pending = Tri::Set;
        }
    }

    fn remove_leaves(&mut self, gfns: &[u64]) {
        for s in &mut self.spaces {
            for g in gfns {
                s.leaves.remove(g);
            }
        }
        for g in gfns {
            self.retained.remove(g);
        }
    }

    /// (certain, possible) leaves over every address space for `gfns`.
    fn leaf_bounds(&self, gfns: &[u64]) -> (usize, usize) {
        let mut certain = 0;
        let mut possible = 0;
        for s in &self.spaces {
            for g in gfns {
                if let Some(l) = s.leaves.get(g) {
                    possible += 1;
                    certain += usize::from(l.certain);
                }
            }
        }
        possible += gfns
            .iter()
            .map(|g| self.retained.get(g).copied().unwrap_or(0))
            .sum::<usize>();
        (certain, possible)
    }

    /// What `translate(vcpu, gfn)` may return now.
    pub fn allowed_translation(&self, v: usize, gfn: u64) -> Allowed {
        let vm = &self.vcpus[v];
        let mut allowed = Allowed {
            pending: vm.pending != Tri::Clear,
            only_pending: vm.pending == Tri::Set,
            miss: false,
            mmio: false,
            mapped: None,
        };
        let space = &self.spaces[self.space_of(v)];
        if vm.mmio_cache == Some((gfn, self.slots_generation)) {
            allowed.mmio = true;
        } else if let Some(l) = space.leaves.get(&gfn) {
            allowed.mapped = Some((l.pfn, l.writable));
            allowed.miss = !l.certain;
        } else if let Some(m) = space
            .mmio
            .get(&gfn)
            .filter(|m| m.generation == self.slots_generation)
        {
            allowed.mmio = true;
            allowed.miss = !m.certain;
        } else {
            allowed.miss = true;
        }
        allowed
    }

    /// What `translate_unsynchronized(vcpu, gfn)` may return now: the bare
    /// walk of the vCPU's root, with no requests check, no generation check and
    /// no MMIO cache. An obsolete root was emptied when it was zapped, so it
    /// gives `Miss`; otherwise it is the walk of [`Reference::allowed_translation`].
    pub fn allowed_unsynchronized(&self, v: usize, gfn: u64) -> Allowed {
        let mut allowed = Allowed {
            pending: false,
            only_pending: false,
            miss: true,
            mmio: false,
            mapped: None,
        };
        if self.vcpus[v].root == Root::Obsolete && self.retains {
            // The obsolete root still leads to the retained pages, which this
            // walk (no generation or request check) reads as they are.
            allowed.mmio = true;
            allowed.mapped = Some((None, None));
            return allowed;
        }
        if matches!(self.vcpus[v].root, Root::None | Root::Obsolete) {
            return allowed;
        }
        // A root the shrinker may have zapped may no longer be the address
        // space's current root, whose contents the reference tracks.
        let current = self.vcpus[v].root == Root::Current;
        let space = &self.spaces[self.space_of(v)];
        if let Some(l) = space.leaves.get(&gfn) {
            allowed.mapped = Some((l.pfn, l.writable));
            allowed.miss = !l.certain || !current;
        } else if let Some(m) = space
            .mmio
            .get(&gfn)
            .filter(|m| m.generation == self.slots_generation)
        {
            allowed.mmio = true;
            allowed.miss = !m.certain || !current;
        }
        allowed
    }

    /// Checks one unsynchronized translation. It learns only what the walk
    /// changed: the accessed bit, and the MMIO cache when it met an MMIO spte.
    fn unsynchronized(&mut self, v: usize, gfn: u64, got: Translation) -> Result<(), Divergence> {
        let allowed = self.allowed_unsynchronized(v, gfn);
        ensure(allowed.admits(got), || {
            format!("translate_unsynchronized(vcpu{v}, gfn {gfn}) = {got:?}, allowed {allowed:?}")
        })?;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { .. } => {
                if let Some(l) = self.spaces[sp].leaves.get_mut(&gfn) {
                    l.accessed = Some(true).filter(|_| l.certain);
                }
            }
            Translation::Mmio => self.vcpus[v].mmio_cache = Some((gfn, self.slots_generation)),
            _ => {}
        }
        Ok(())
    }

    /// Checks one translation and learns from it. With an overlapping spte
    /// writer, a translation that is not `RequestPending` may also be judged
    /// as a bare walk ([`Reference::walked`]).
    fn translation(
        &mut self,
        v: usize,
        gfn: u64,
        got: Translation,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        let allowed = self.allowed_translation(v, gfn);
        if !allowed.admits(got) && overlap.spte_writer && got != Translation::RequestPending {
            return self.walked(v, gfn, got);
        }
        ensure(allowed.admits(got), || {
            format!("translate(vcpu{v}, gfn {gfn}) = {got:?}, allowed {allowed:?}")
        })?;
        if got == Translation::RequestPending {
            self.vcpus[v].pending = Tri::Set;
            return Ok(());
        }
        // No request was pending, so the root is a valid current one (an
        // invalid or obsolete root always comes with a reload request).
        self.no_requests(v);
        let generation = self.slots_generation;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { pfn, writable } => {
                let pfn = pfn.0;
                if allowed.mapped.is_some_and(|(p, _)| p.is_none()) {
                    let slot = self.backing_slot(gfn).copied().ok_or_else(|| {
                        format!("translate(vcpu{v}, gfn {gfn}) = {got:?}: no slot maps the gfn")
                    })?;
                    self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                }
                self.spaces[sp].leaves.insert(
                    gfn,
                    Leaf {
                        pfn: Some(pfn),
                        writable: Some(writable),
                        accessed: Some(true),
                        certain: true,
                    },
                );
            }
            Translation::Mmio => {
                if self.vcpus[v].mmio_cache != Some((gfn, generation)) {
                    // It came from an MMIO spte, which the walk cached.
                    if let Some(m) = self.spaces[sp].mmio.get_mut(&gfn) {
                        m.certain = true;
                    }
                }
                self.vcpus[v].mmio_cache = Some((gfn, generation));
            }
            _ => {}
        }
        Ok(())
    }

    /// A translation judged as a bare walk, for a translate that overlaps an
    /// operation that removes sptes and then requests a flush or a reload.
    /// Lockless walkers see the removal (a zapped spte, or the bumped
    /// `mmu_valid_gen` that fails the root check) before the request made in
    /// the same `mmu_lock` hold: the requester only waits for walkers to end
    /// (`make_all_cpus_request`). So the translate may have checked the
    /// requests before and walked after, at an instant no sequential order
    /// of the two operations has: it may return `Miss` whatever the reference
    /// holds (a miss maps nothing). `Mapped` must still come from a leaf the
    /// reference holds (so never a pfn an invalidation already removed), and
    /// `Mmio` from the cache or an MMIO spte of the current memslots. Nothing
    /// is learnt about the requests.
    fn walked(&mut self, v: usize, gfn: u64, got: Translation) -> Result<(), Divergence> {
        let mut allowed = self.allowed_unsynchronized(v, gfn);
        allowed.miss = true;
        allowed.mmio |= self.vcpus[v].mmio_cache == Some((gfn, self.slots_generation));
        ensure(allowed.admits(got), || {
            format!(
                "translate(vcpu{v}, gfn {gfn}) = {got:?}, allowed {:?}, or as a walk overlapping \
                 an invalidation {allowed:?}",
                self.allowed_translation(v, gfn)
            )
        })?;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { pfn, .. } => {
                let pfn = pfn.0;
                if allowed.mapped.is_some_and(|(p, _)| p.is_none()) {
                    let slot = self.backing_slot(gfn).copied().ok_or_else(|| {
                        format!("translate(vcpu{v}, gfn {gfn}) = {got:?}: no slot maps the gfn")
                    })?;
                    self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                }
                if let Some(l) = self.spaces[sp].leaves.get_mut(&gfn) {
                    l.pfn = Some(pfn);
                    l.accessed = Some(true).filter(|_| l.certain);
                }
            }
            Translation::Mmio => self.vcpus[v].mmio_cache = Some((gfn, self.slots_generation)),
            _ => {}
        }
        Ok(())
    }

    fn no_requests(&mut self, v: usize) {
        let vm = &mut self.vcpus[v];
        vm.pending = Tri::Clear;
        vm.reload = Tri::Clear;
        if vm.root == Root::MaybeObsolete {
            vm.root = Root::Current;
        }
        self.observed(v);
    }

    /// Checks `pending_requests(v) == requests` and learns from it.
    fn requests(&mut self, v: usize, requests: Requests) -> Result<(), Divergence> {
        let vm = &self.vcpus[v];
        let reload = requests.reload();
        let bits = requests.bits();
        ensure(vm.pending != Tri::Set || !requests.is_empty(), || {
            format!("vcpu{v}: requests must be pending, got {bits:#x}")
        })?;
        ensure(vm.pending != Tri::Clear || requests.is_empty(), || {
            format!("vcpu{v}: no request may be pending, got {bits:#x}")
        })?;
        ensure(vm.reload != Tri::Set || reload, || {
            format!("vcpu{v}: a reload must be pending, got {bits:#x}")
        })?;
        ensure(vm.reload != Tri::Clear || !reload, || {
            format!("vcpu{v}: no reload may be pending, got {bits:#x}")
        })?;
        if requests.is_empty() {
            self.no_requests(v);
        } else {
            let vm = &mut self.vcpus[v];
            vm.pending = Tri::Set;
            vm.reload = if reload { Tri::Set } else { Tri::Clear };
            if !reload && vm.root == Root::MaybeObsolete {
                vm.root = Root::Current;
            }
            self.observed(v);
        }
        Ok(())
    }

    /// Checks what `vm.pending_requests` says for every vCPU (an observation
    /// the conformance driver makes after every step).
    pub fn observe_requests(&mut self, v: usize, requests: Requests) -> Result<(), Divergence> {
        self.requests(v, requests)
    }

    fn fault(
        &mut self,
        v: usize,
        gfn: u64,
        write: bool,
        got: Fault,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        let root = self.vcpus[v].root;
        let slot = self.slot_of(gfn).copied();
        match got {
            Fault::Retry(RetryReason::NoRoot) => {
                ensure(root == Root::None, || {
                    format!("fault(vcpu{v}, gfn {gfn}): NoRoot but root is {root:?}")
                })?;
                return Ok(());
            }
            Fault::Retry(RetryReason::ObsoleteRoot) => {
                ensure(matches!(root, Root::Obsolete | Root::MaybeObsolete), || {
                    format!("fault(vcpu{v}, gfn {gfn}): ObsoleteRoot but root is {root:?}")
                })?;
                let vm = &mut self.vcpus[v];
                vm.root = Root::Obsolete;
                vm.reload = Tri::Set;
                vm.pending = Tri::Set;
                return Ok(());
            }
            Fault::Retry(RetryReason::InvalidSlot) if overlap.slot_invalidation => return Ok(()),
            Fault::Retry(RetryReason::NotifierRace) if overlap.notifier => return Ok(()),
            Fault::Retry(reason) => {
                return Err(format!(
                    "fault(vcpu{v}, gfn {gfn}): Retry({reason:?}) needs an overlapping \
                     {}, and none overlaps",
                    if reason == RetryReason::InvalidSlot {
                        "memslot DELETE or MOVE"
                    } else {
                        "notifier"
                    }
                ));
            }
            _ => {}
        }
        ensure(matches!(root, Root::Current | Root::MaybeObsolete), || {
            format!("fault(vcpu{v}, gfn {gfn}) = {got:?} but root is {root:?}")
        })?;
        self.vcpus[v].root = Root::Current;
        let sp = self.space_of(v);
        match (got, slot) {
            (Fault::Mapped { pfn }, Some(slot)) => {
                let pfn = pfn.0;
                self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                // A leaf whose pfn is not known yet maps the current pfn, which
                // `observe` just checked this one is.
                let old = self.spaces[sp].leaves.get(&gfn).map(|l| Leaf {
                    pfn: Some(l.pfn.unwrap_or(pfn)),
                    ..*l
                });
                let (writable, accessed) = match old {
                    Some(l) if l.pfn == Some(pfn) && l.certain => {
                        (l.writable.map(|w| w || write), l.accessed)
                    }
                    Some(l) if l.pfn == Some(pfn) => {
                        // Found again, or installed afresh: known only if both agree.
                        let w = if write {
                            Some(true)
                        } else {
                            l.writable.filter(|w| !w)
                        };
                        (w, l.accessed.filter(|a| !a))
                    }
                    _ => (Some(write), Some(false)),
                };
                let (writable, accessed) = if write && writable.is_none() {
                    (Some(true), accessed)
                } else {
                    (writable, accessed)
                };
                self.spaces[sp].mmio.remove(&gfn);
                self.spaces[sp].leaves.insert(
                    gfn,
                    Leaf {
                        pfn: Some(pfn),
                        writable,
                        accessed,
                        certain: true,
                    },
                );
                Ok(())
            }
            (Fault::Mmio, None) => {
                let generation = self.slots_generation;
                self.spaces[sp].leaves.remove(&gfn);
                self.spaces[sp].mmio.insert(
                    gfn,
                    MmioEntry {
                        generation,
                        certain: true,
                    },
                );
                self.vcpus[v].mmio_cache = Some((gfn, generation));
                Ok(())
            }
            (got, slot) => Err(format!(
                "fault(vcpu{v}, gfn {gfn}) = {got:?} but the gfn's slot is {slot:?}"
            )),
        }
    }

    fn handled(&mut self, v: usize, got: Handled) -> Result<(), Divergence> {
        let vm = self.vcpus[v].clone();
        let must_reload = vm.root == Root::None || vm.reload == Tri::Set;
        let may_reload = vm.root == Root::None || vm.reload != Tri::Clear;
        ensure(!must_reload || got.reloaded, || {
            format!("handle_requests(vcpu{v}) = {got:?}: a reload was due ({vm:?})")
        })?;
        ensure(may_reload || !got.reloaded, || {
            format!("handle_requests(vcpu{v}) = {got:?}: no reload was due ({vm:?})")
        })?;
        ensure(vm.pending != Tri::Set || !got.requests.is_empty(), || {
            format!("handle_requests(vcpu{v}) = {got:?}: requests were pending ({vm:?})")
        })?;
        ensure(vm.pending != Tri::Clear || got.requests.is_empty(), || {
            format!("handle_requests(vcpu{v}) = {got:?}: no request was pending ({vm:?})")
        })?;
        if got.reloaded && vm.root != Root::Current && vm.root != Root::None {
            // Freeing an invalid root commits it, which flushes every TLB; the
            // vCPU itself handles that flush in its request loop.
            for (i, other) in self.vcpus.iter_mut().enumerate() {
                if i != v {
                    other.pending = other.pending.weaken();
                }
            }
        }
        let vm = &mut self.vcpus[v];
        // Sequentially an obsolete root always comes with a reload request, so
        // it is reloaded here; concurrently the request may not have landed
        // yet, and the vCPU keeps its obsolete root.
        if got.reloaded || vm.root != Root::Obsolete {
            vm.root = Root::Current;
        }
        vm.pending = Tri::Clear;
        vm.reload = Tri::Clear;
        self.observed(v);
        Ok(())
    }

    /// `zap_all` (eager): every page is zapped. Roots in use are kept, invalid,
    /// and a reload is requested if one of them was valid and current.
    fn zap_all(&mut self) {
        let any_current = self.vcpus.iter().any(|v| v.root == Root::Current);
        let any_maybe = self.vcpus.iter().any(|v| v.root == Root::MaybeObsolete);
        for v in &mut self.vcpus {
            if any_current {
                v.reload = Tri::Set;
                v.pending = Tri::Set;
            } else {
                if any_maybe {
                    v.reload = v.reload.weaken();
                }
                // Pages without roots may be committed: a flush.
                v.pending = v.pending.weaken();
            }
            if v.root != Root::None {
                v.root = Root::Obsolete;
            }
        }
        self.clear_spaces();
    }

    /// The shrinker zapped some of the oldest pages.
    fn shrunk(&mut self, freed: usize) {
        for v in &mut self.vcpus {
            if v.root == Root::Current {
                v.root = Root::MaybeObsolete;
            }
            v.reload = v.reload.weaken();
            v.pending = if freed > 0 {
                Tri::Set
            } else {
                v.pending.weaken()
            };
        }
        for s in &mut self.spaces {
            for l in s.leaves.values_mut() {
                l.certain = false;
            }
            for m in s.mmio.values_mut() {
                m.certain = false;
            }
        }
    }

    fn young(&self, start: u64, end: u64, got: bool) -> Result<(), Divergence> {
        let gfns = self.gfns_in_hva(start, end);
        let mut must = false;
        let mut may = false;
        for s in &self.spaces {
            for g in &gfns {
                if let Some(l) = s.leaves.get(g) {
                    may = true;
                    must |= l.certain && l.accessed == Some(true);
                }
            }
        }
        ensure(!must || got, || {
            format!("young({start:#x}, {end:#x}) = false, but an accessed leaf is mapped")
        })?;
        // While a fast invalidation runs, the obsolete pages it has not
        // zapped yet are still on the rmaps, with their accessed bits; so are
        // the pages a deferring DELETE retained.
        let may = may || self.zapping() || gfns.iter().any(|g| self.retained.contains_key(g));
        ensure(may || !got, || {
            format!("young({start:#x}, {end:#x}) = true, but no leaf can be mapped there")
        })
    }

    /// Checks the outcome of `op` and updates the model. An `Err` means the
    /// implementation did something the specification does not allow.
    pub fn step(&mut self, op: &Op, got: &Outcome) -> Result<(), Divergence> {
        self.step_overlapping(op, got, Overlap::NONE, None)
    }

    /// Whether `op`, which returned `got`, does things after its
    /// linearization point that other callers can see: it requests something
    /// of every vCPU (one vCPU at a time, `make_all_cpus_request`), and the
    /// invalidations among them zap in batches with lock breaks, each batch
    /// committed with a TLB flush request. (Every such operation that
    /// succeeded counts, whatever it removed: a tail can only make the
    /// reference more permissive.)
    pub fn has_tail(op: &Op, got: &Outcome) -> bool {
        got.error().is_none() && op.writes_sptes()
    }

    /// Whether `op` runs `zap_obsolete_pages` (a fast invalidation).
    fn zaps(op: &Op) -> bool {
        matches!(
            op,
            Op::ZapAllFast | Op::CreateSlot(_) | Op::DeleteSlot { .. } | Op::MoveSlot { .. }
        )
    }

    /// The tail `key` (given to [`Reference::step_overlapping`]) ends: the
    /// operation's requests have landed on every vCPU, and its batches are
    /// done (the last commits may have requested TLB flushes). A vCPU that
    /// has not looked at its requests since the operation was placed now
    /// certainly has them, and so does one that still holds a root the
    /// operation made obsolete: it cannot have handled the reload.
    pub fn end_invalidation(&mut self, key: u64) {
        let Some(at) = self.in_flight.iter().position(|f| f.key == key) else {
            return;
        };
        if self.in_flight[at].bumps > 0 {
            self.deferred_bump(key);
        }
        let done = self.in_flight.remove(at);
        if done.zaps {
            self.weaken_all_pending();
        }
        for (v, (pending, reload, consumed)) in done.owed.into_iter().enumerate() {
            let vm = &mut self.vcpus[v];
            // The reload has landed: a vCPU that still holds the root it made
            // obsolete has it pending, looked or not (I5).
            let still_obsolete = reload && vm.root == Root::Obsolete;
            if self.consumed[v] == consumed || still_obsolete {
                if pending || still_obsolete {
                    vm.pending = Tri::Set;
                }
                if reload {
                    vm.reload = Tri::Set;
                }
            }
        }
    }

    /// Whether a fast invalidation's batches may be running.
    fn zapping(&self) -> bool {
        self.in_flight.iter().any(|f| f.zaps)
    }

    fn weaken_all_pending(&mut self) {
        for v in &mut self.vcpus {
            v.pending = v.pending.weaken();
        }
    }

    /// vCPU `v` looked at its requests: a request an operation still in
    /// flight owes it may land after the look.
    fn observed(&mut self, v: usize) {
        self.consumed[v] += 1;
        for f in &self.in_flight {
            let (pending, reload, _) = f.owed[v];
            let vm = &mut self.vcpus[v];
            if pending {
                vm.pending = vm.pending.weaken();
            }
            if reload {
                vm.reload = vm.reload.weaken();
            }
        }
    }

    /// [`Reference::step`] for one operation of a concurrent history, placed
    /// by the linearizability checker, with what overlaps it in real time
    /// and, if the checker will end it later with
    /// [`Reference::end_invalidation`], the key of its tail. The allowances,
    /// each for an outcome only concurrency can produce:
    ///
    /// - a fault may return `Retry(InvalidSlot)` if a DELETE or MOVE overlaps
    ///   it, and `Retry(NotifierRace)` if a notifier does; either is then a
    ///   no-op (the fault returned before touching the page tables);
    /// - a translate overlapping an spte writer may be judged as a bare walk
    ///   ([`Overlap::spte_writer`], `walked`);
    /// - an operation with a tail ([`Reference::has_tail`]) is placed at its
    ///   atomic step (the generation bump and the emptied page tables, one
    ///   `mmu_lock` hold in core, or the notifier's unmap), but the requests it
    ///   makes land on each vCPU at some instant before its tail: until then
    ///   they are only *maybe* pending for a vCPU that did not have them (and
    ///   a vCPU that handled its requests without reloading keeps its
    ///   obsolete root). A fault that finds its root obsolete still proves the
    ///   reload (the fault takes `mmu_lock`, and the requests are made in the
    ///   bump's hold). While a fast invalidation's batches run, every vCPU's
    ///   requests are at least maybe pending before each step, and the
    ///   notifiers may still find the obsolete pages' leaves: their count has
    ///   no upper bound and `*_young` may say true.
    ///
    /// pfns, memslots, errors and generations stay exact, and every
    /// invalidation removes its leaves when it is placed, so no stale pfn
    /// becomes allowed. With [`Overlap::NONE`] and no tail this is exactly
    /// [`Reference::step`].
    pub fn step_overlapping(
        &mut self,
        op: &Op,
        got: &Outcome,
        overlap: Overlap,
        tail: Option<u64>,
    ) -> Result<(), Divergence> {
        if self.in_flight.iter().any(|f| f.zaps) {
            self.weaken_all_pending();
        }
        let before = self.requests_now();
        let tail = tail.filter(|_| Self::has_tail(op, got));
        self.deferring = tail.map(|_| 0);
        let stepped = self.step_inner(op, got, overlap);
        let bumps = self.deferring.take().unwrap_or(0);
        stepped?;
        let Some(key) = tail else {
            return Ok(());
        };
        let owed = self.soften(&before);
        self.in_flight.push(InFlight {
            key,
            zaps: Self::zaps(op),
            owed,
            bumps,
        });
        Ok(())
    }

    fn requests_now(&self) -> Vec<(Tri, Tri)> {
        self.vcpus.iter().map(|v| (v.pending, v.reload)).collect()
    }

    /// Requests made since `before` land later: only maybe pending for now.
    /// Returns, per vCPU, what is owed and the vCPU's `consumed` count.
    fn soften(&mut self, before: &[(Tri, Tri)]) -> Vec<(bool, bool, u64)> {
        let mut owed = Vec::with_capacity(self.vcpus.len());
        for (v, &(pending, reload)) in before.iter().enumerate() {
            let vm = &mut self.vcpus[v];
            let new_pending = vm.pending == Tri::Set && pending != Tri::Set;
            let new_reload = vm.reload == Tri::Set && reload != Tri::Set;
            if new_pending {
                vm.pending = pending.weaken();
            }
            if new_reload {
                vm.reload = reload.weaken();
            }
            owed.push((new_pending, new_reload, self.consumed[v]));
        }
        owed
    }

    /// Whether `op` may make a generation bump at an instant of its own
    /// ([`Reference::deferred_bump`]): the memslot updates.
    pub fn may_defer_bump(op: &Op) -> bool {
        matches!(
            op,
            Op::CreateSlot(_) | Op::DeleteSlot { .. } | Op::MoveSlot { .. }
        )
    }

    /// The generation bumps of the memslot update with tail `key` that core
    /// makes at an instant of their own, placed by the checker between the
    /// operation and its tail: the invalidation before a publish that wraps
    /// the MMIO generation (a second bump after a DELETE's or MOVE's own),
    /// and the seed v3 DELETE's bump, which follows its unpublish (a fault
    /// in between finds the slot gone and its root current). A no-op if
    /// there is none.
    pub fn deferred_bump(&mut self, key: u64) {
        let Some(at) = self.in_flight.iter().position(|f| f.key == key) else {
            return;
        };
        let bumps = std::mem::take(&mut self.in_flight[at].bumps);
        if bumps == 0 {
            return;
        }
        let before = self.requests_now();
        for _ in 0..bumps {
            self.invalidate_all();
        }
        let owed = self.soften(&before);
        for (v, (pending, reload, consumed)) in owed.into_iter().enumerate() {
            let o = &mut self.in_flight[at].owed[v];
            if pending || reload {
                *o = (o.0 || pending, o.1 || reload, consumed);
            }
        }
    }

    fn step_inner(&mut self, op: &Op, got: &Outcome, overlap: Overlap) -> Result<(), Divergence> {
        match (op, got) {
            (Op::HandleRequests(v), Outcome::Handled(r)) => match self.check_vcpu(*v) {
                Err(e) => expect_err(r, e),
                Ok(()) => {
                    let handled = expect_ok(r)?;
                    self.handled(v.0, handled)
                }
            },
            (Op::PendingRequests(v), Outcome::Requests(r)) => match self.check_vcpu(*v) {
                Err(e) => expect_err(r, e),
                Ok(()) => {
                    let requests = expect_ok(r)?;
                    self.requests(v.0, requests)
                }
            },
            (Op::PageFault { vcpu, gfn, write }, Outcome::Fault(r)) => {
                match self.check_gfn(*gfn).and_then(|_| self.check_vcpu(*vcpu)) {
                    Err(e) => expect_err(r, e),
                    Ok(()) => {
                        let fault = expect_ok(r)?;
                        self.fault(vcpu.0, *gfn, *write, fault, overlap)
                    }
                }
            }
            (Op::Translate { vcpu, gfn }, Outcome::Translation(r)) => {
                match self.check_gfn(*gfn).and_then(|_| self.check_vcpu(*vcpu)) {
                    Err(e) => expect_err(r, e),
                    Ok(()) => {
                        let t = expect_ok(r)?;
                        self.translation(vcpu.0, *gfn, t, overlap)
                    }
                }
            }
            (Op::TranslateUnsynchronized { vcpu, gfn }, Outcome::Translation(r)) => {
                match self.check_gfn(*gfn).and_then(|_| self.check_vcpu(*vcpu)) {
                    Err(e) => expect_err(r, e),
                    Ok(()) => {
                        let t = expect_ok(r)?;
                        self.unsynchronized(vcpu.0, *gfn, t)
                    }
                }
            }
            (Op::TranslateRun { vcpu, gfns }, Outcome::Translations(r)) => {
                let valid = gfns
                    .iter()
                    .try_for_each(|g| self.check_gfn(*g))
                    .and_then(|_| self.check_vcpu(*vcpu));
                match valid {
                    Err(e) => expect_err(r, e),
                    Ok(()) => {
                        let ts = expect_ok(r)?;
                        ensure(ts.len() == gfns.len(), || {
                            format!(
                                "translate_run of {} gfns gave {} results",
                                gfns.len(),
                                ts.len()
                            )
                        })?;
                        let pending = ts.iter().filter(|t| **t == Translation::RequestPending);
                        let pending = pending.count();
                        ensure(pending == 0 || pending == ts.len(), || {
                            format!("translate_run mixed RequestPending with answers: {ts:?}")
                        })?;
                        for (g, t) in gfns.iter().zip(ts) {
                            self.translation(vcpu.0, *g, t, Overlap::NONE)?;
                        }
                        Ok(())
                    }
                }
            }
            (Op::ZapAllFast, Outcome::Zap(r)) => {
                expect_ok(r)?;
                self.invalidate_all();
                Ok(())
            }
            (Op::ZapAllEager, Outcome::Zap(r)) => {
                expect_ok(r)?;
                self.zap_all();
                Ok(())
            }
            (Op::CreateSlot(spec), Outcome::Unit(r)) => match self.create_memslot(spec) {
                Err(e) => expect_err(r, e),
                Ok(()) => {
                    expect_ok(r)?;
                    self.slots.push(*spec);
                    self.slots.sort_by_key(|s| s.base_gfn);
                    self.publish();
                    Ok(())
                }
            },
            (Op::DeleteSlot { id, strategy }, Outcome::Unit(r)) => {
                if !self.slots.iter().any(|s| s.id == *id) {
                    return expect_err(r, MmuError::UnknownSlot(*id));
                }
                expect_ok(r)?;
                match strategy.unwrap_or(self.deletion) {
                    // The INVALID copy, the zap, the final slots.
                    DeletionStrategy::Merged311 => {
                        self.publish();
                        self.invalidate_all();
                        self.slots.retain(|s| s.id != *id);
                        self.publish();
                    }
                    // The final slots, then the zap (`SeedV3`) or the zap
                    // left for later (`SeedV3Deferred`: the notifiers may
                    // still find the retained leaves).
                    seed @ (DeletionStrategy::SeedV3 | DeletionStrategy::SeedV3Deferred) => {
                        let gone = self.slots.iter().find(|s| s.id == *id).copied();
                        self.slots.retain(|s| s.id != *id);
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
                }
                Ok(())
            }
            (Op::MoveSlot { id, base_gfn }, Outcome::Unit(r)) => {
                match self.move_memslot(*id, *base_gfn) {
                    Err(e) => expect_err(r, e),
                    Ok(()) => {
                        expect_ok(r)?;
                        self.publish();
                        self.invalidate_all();
                        for s in &mut self.slots {
                            if s.id == *id {
                                s.base_gfn = Gfn(*base_gfn);
                            }
                        }
                        self.slots.sort_by_key(|s| s.base_gfn);
                        self.publish();
                        Ok(())
                    }
                }
            }
            (Op::InvalidateRange { start, end }, Outcome::Count(r)) => {
                if let Err(e) = Self::check_hva_range(*start, *end) {
                    return expect_err(r, e);
                }
                let unmapped = expect_ok(r)?;
                let gfns = self.gfns_in_hva(*start, *end);
                let (certain, possible) = self.leaf_bounds(&gfns);
                let possible = if self.zapping() { usize::MAX } else { possible };
                ensure(certain <= unmapped && unmapped <= possible, || {
                    format!(
                        "invalidate_range({start:#x}, {end:#x}) unmapped {unmapped}, \
                         expected {certain}..={possible}"
                    )
                })?;
                self.remove_leaves(&gfns);
                // The host remaps the pages that back a slot (once per slot
                // gfn): only those can be mapped by an spte. A page that backs
                // no slot keeps its pfn, as fastzap's host defines it.
                for g in &gfns {
                    if let Some(slot) = self.backing_slot(*g) {
                        let page = Self::hva_of(slot, *g) / PAGE_SIZE;
                        self.host.remap_page(page);
                    }
                }
                if unmapped > 0 {
                    self.all_flushed();
                }
                Ok(())
            }
            (Op::ChangePte { hva }, Outcome::Count(r)) => {
                let page = hva / PAGE_SIZE;
                if *hva >= Hva::LIMIT.0 {
                    return expect_err(
                        r,
                        MmuError::HvaOutOfRange {
                            hva: Hva(*hva),
                            limit: Hva::LIMIT,
                        },
                    );
                }
                let changed = expect_ok(r)?;
                let gfns = self.gfns_in_hva(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
                let (certain, possible) = self.leaf_bounds(&gfns);
                let possible = if self.zapping() { usize::MAX } else { possible };
                ensure(certain <= changed && changed <= possible, || {
                    format!(
                        "change_pte({hva:#x}) changed {changed}, expected {certain}..={possible}"
                    )
                })?;
                self.host.remap_page(page);
                // The new pfn is learned when a fault or a translation shows it;
                // the leaves keep pointing at it, read-only and not accessed.
                for s in &mut self.spaces {
                    for g in &gfns {
                        if let Some(l) = s.leaves.get_mut(g) {
                            l.pfn = None;
                            l.writable = Some(false);
                            l.accessed = Some(false);
                        }
                    }
                }
                if changed > 0 {
                    self.all_flushed();
                }
                Ok(())
            }
            (Op::ClearFlushYoung { start, end }, Outcome::Young(r)) => {
                if let Err(e) = Self::check_hva_range(*start, *end) {
                    return expect_err(r, e);
                }
                let young = expect_ok(r)?;
                self.young(*start, *end, young)?;
                for g in self.gfns_in_hva(*start, *end) {
                    for s in &mut self.spaces {
                        if let Some(l) = s.leaves.get_mut(&g) {
                            l.accessed = Some(false);
                        }
                    }
                }
                if young {
                    self.all_flushed();
                }
                Ok(())
            }
            (Op::TestYoung { start, end }, Outcome::Young(r)) => {
                if let Err(e) = Self::check_hva_range(*start, *end) {
                    return expect_err(r, e);
                }
                let young = expect_ok(r)?;
                self.young(*start, *end, young)
            }
            (Op::Shrink(nr), Outcome::Count(r)) => {
                let freed = expect_ok(r)?;
                ensure(freed <= *nr, || format!("shrink({nr}) freed {freed}"))?;
                if *nr > 0 {
                    self.shrunk(freed);
                }
                Ok(())
            }
            (op, got) => Err(format!("outcome {got:?} does not belong to {op:?}")),
        }
    }
}

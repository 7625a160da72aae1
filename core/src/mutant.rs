//! # The bug zoo's switches
//!
//! Each [`Mutant`] re-introduces one bug from the kernel's history
//! (`kernel-history.md` section 4), one reclamation mistake, one regression a
//! bug hunt wrote (the resource bound of I8, the fault's notifier check), or
//! one removed or weakened fence of the litmus models, chosen at run time
//! through [`Config::mutant`](crate::Config::mutant). The protocol consults
//! [`Mutant`] at exactly the place the original bug lived; the checkers must catch
//! every one of them while the correct protocol passes the same checkers.

/// A deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// Bug 1 (seed review): `prepare_zap_page` skips `rmap_remove` for the leaf
    /// sptes of an obsolete page, leaving rmap entries that point into freed pages.
    SkipRmapForObsolete,
    /// Bug 2 (seed, 5304b8d37c2a): the reload request is sent after `mmu_lock` is
    /// dropped.
    ReloadOutsideLock,
    /// Bug 3, the grace-period half: a zapped page is freed at commit without
    /// waiting for a grace period, while the commit's remote TLB flush still
    /// waits for lockless walkers. This is what c142786c6291 did on purpose
    /// (it replaced RCU by the flush wait), so it is masked for every vCPU
    /// walk. The seed's out-of-lock rmap unmapper is not a vCPU, so the flush
    /// does not wait for it: racing the shrinker, it sees the page freed.
    FreeWithoutGrace,
    /// Bug 3 (f34d251d66ba's comment: "flush tlb before free page tables since
    /// lockless-walking may use the pages"): commit frees before, and without,
    /// the remote TLB flush that waits for lockless walkers. In 3.11 that flush
    /// is the walkers' only protection (c142786c6291), so the page is freed at
    /// once: neither the flush nor a grace period. A fault's lockless MMIO walk
    /// (`handle_mmio_page_fault`), which does not check requests, reads it.
    FreeBeforeFlush,
    /// The seed's requirement 2, "keep pte-list-descs available": removal from
    /// a remove-only rmap takes the normal path of `pte_list_remove`, which
    /// compacts the chain and frees an emptied descriptor at once (the kernel
    /// frees a `pte_list_desc` under `mmu_lock`, with no grace period). The
    /// seed's out-of-lock unmapper, walking the same chain, reads it freed
    /// (I2). The correct protocol clears remove-only entries in place and
    /// frees their descriptors only with the rmap.
    RemoveOnlyRmapCompacts,
    /// Bug 4 (seed): `clear_flush_young` rewrites a spte on a remove-only rmap
    /// with a plain load and store instead of unmapping it.
    NotifierRewritesInvalidRmap,
    /// Bug 5 (2019): `is_obsolete_sp` ignores `role.invalid`, so a wrapped
    /// generation revives an invalid root.
    ObsoleteIgnoresInvalid,
    /// Bug 6 (ca333add6933): invalidations are not serialized by `slots_lock`.
    NoSlotsLock,
    /// Bug 7 (002c5f73c508): `zap_obsolete_pages` restarts from the head of the
    /// active list, where vCPUs add new pages.
    ZapFromHead,
    /// Bug 8 (5304b8d37c2a): `zap_obsolete_pages` does not skip invalid pages and
    /// re-zaps roots that are still in use.
    RezapInUseRoots,
    /// Bug 9 (fbb158cb88b6 fix): the batch counter counts what
    /// `prepare_zap_page` returns, which is 0 for an in-use root.
    BatchNotAdvancing,
    /// Bug 10 (edd4fa37ba): a MOVE keeps the old rmap and lpage_info arrays.
    MoveReusesMetadata,
    /// Bug 11 (e0c378684b65): a fault on an INVALID slot installs an MMIO spte.
    InvalidSlotFaultInstallsMmio,
    /// Bug 12 (a955cad84cda): a fault installs into a root that became obsolete
    /// while it waited for `mmu_lock`.
    FaultIntoObsoleteRoot,
    /// Bug 13 (d62007edf01f): `invalidate_range` skips sptes of invalid or
    /// obsolete pages.
    NotifierSkipsObsolete,
    /// Bug 14 (ee3d1570b586): an MMIO spte is stamped with the memslots
    /// generation read at install time, not the one of the slots it came from.
    MmioGenFromNewSlots,
    /// Bug 15 (152482580a1b): on an MMIO generation wrap, the zap runs after the
    /// new memslots are published.
    WrapZapAfterPublish,
    /// Bug 16 (56f17dd3fbc4): the per-vCPU MMIO cache is trusted without comparing
    /// generations.
    MmioCacheIgnoresGen,
    /// The regression 365c886860c4 fixed ("reclaim the zapped-obsolete page
    /// first"): the shrinker zaps the oldest active pages before it frees what
    /// a zap's lock break parked on `zapped_obsolete_pages`. Every free still
    /// goes through a flush and a grace period, so no safety invariant breaks;
    /// the parked pages are retained while memory is short (I8).
    ShrinkerZapsActiveFirst,
    /// `zap_obsolete_pages` parks each batch on `zapped_obsolete_pages` at a
    /// lock break (in the per-batch shape too, instead of committing it) and
    /// never takes the parked pages back: its final commit frees only the
    /// last batch, and every earlier batch stays allocated until a shrinker
    /// happens to run (I8: retention grows with the guest).
    ZapLeavesParked,
    /// A fault drops the `mmu_notifier_seq` half of `mmu_notifier_retry`: it
    /// installs a pfn it read before an `invalidate_range` that has since
    /// returned (I4, seen where the pfn was read). Not a numbered kernel bug:
    /// a bug hunt wrote it, and at first only linearizability caught it.
    FaultIgnoresNotifierSeq,
    /// A deferring invalidation ([`DeletionStrategy::SeedV3Deferred`]) bumps
    /// the generation without first zapping what the previous deferred
    /// invalidation left: every deferred delete adds a table to what is
    /// retained (I8: two obsolete generations retained at once), and a
    /// generation that wraps around would revive the oldest of them. Not a
    /// kernel bug: the rule that keeps the seed's "until page allocator
    /// reclaims page" bounded.
    ///
    /// [`DeletionStrategy::SeedV3Deferred`]: crate::DeletionStrategy::SeedV3Deferred
    DeferNeverDrains,
    /// Litmus L1, the requester's half of the request/`vcpu->mode` Dekker pair
    /// (the class a bug hunt found escaping every lane): `make_all_cpus_request`
    /// sets the request bits and reads `vcpu->mode` with no `fence(SeqCst)` in
    /// between. Store buffering is then allowed: the walk sees no request
    /// while the requester sees no walk and returns at once,
    /// so `commit_zap_page` frees a page the walker is reading. Breaks I3
    /// (page lifetime: a reader reads a page freed after the flush that
    /// should have waited for it). Natively masked on x86 (`fetch_or` is a
    /// locked instruction) and in shuttle (sequentially consistent).
    RequestWithoutFence,
    /// Litmus L1, the requester's fence weakened: `fence(AcqRel)` in
    /// `make_all_cpus_request` instead of `fence(SeqCst)`. An acquire-release
    /// fence orders nothing between a store and a later load, so the store
    /// buffering of [`Mutant::RequestWithoutFence`] is allowed again. Breaks I3,
    /// as above.
    RequestFenceAcqRel,
    /// Litmus L1, the vCPU's half: `walk_shadow_page_lockless_begin` stores
    /// `READING_SHADOW_PAGE_TABLES` and reads its requests with no
    /// `fence(SeqCst)` in between. The walk may miss a request whose
    /// requester missed the walk. Breaks I3, as above.
    WalkBeginWithoutFence,
    /// Litmus L2, the publisher's half of root publication:
    /// `mmu_alloc_direct_roots` stores the new root's address in `root_hpa`
    /// with `Relaxed` instead of `Release`. A walker that loads the address is
    /// not ordered after the writes that built the page (its body with
    /// `mmu_valid_gen`, its zeroed sptes): it reads a page outside its
    /// lifetime, before the allocation is visible, as a read not ordered
    /// before the free reads it after. Breaks I3 (loom reports the read as a
    /// causality violation on the page's body).
    RootStoreRelaxed,
    /// Litmus L2, the walker's half: `current_root` loads `root_hpa` with
    /// `Relaxed` instead of `Acquire`. Breaks I3, as in
    /// [`Mutant::RootStoreRelaxed`].
    RootLoadRelaxed,
    /// Litmus L3, the request carrying the memslots' in-flux flag:
    /// `make_all_cpus_request` sets the request bits with `Relaxed` instead of
    /// `AcqRel`. The wrap's zap sets the flag on the published memslots, then
    /// requests the reload; a vCPU that takes the reload is no longer ordered
    /// after the flag, reads it clear, and would cache an MMIO decision (an
    /// MMIO spte stamped with the in-flux generation in its fresh root, which
    /// the zap no longer reaches). Breaks I7 (MMIO generation).
    RequestBitRelaxed,
    /// Litmus L3, the vCPU's half: `kvm_check_request` at guest entry
    /// (`take_requests`) swaps the requests out with `Relaxed` instead of
    /// `AcqRel`. Breaks I7, as in [`Mutant::RequestBitRelaxed`].
    TakeRequestsRelaxed,
    /// Litmus L2b, child page publication: the lockless walk loads each spte
    /// with `Relaxed` instead of `Acquire`. A fault on another vCPU sharing
    /// the root builds a child page and links it with a `Release` store of
    /// the non-leaf spte (`__direct_map`); the walk that follows the link is
    /// not ordered after the child's construction and reads the page outside
    /// its lifetime. Breaks I3 (loom reports the read as a causality
    /// violation on the child's body). Unlike L2's root, nothing else orders
    /// this pair in the VM: the two vCPUs share no claim and the walk takes
    /// no lock.
    WalkSpteLoadRelaxed,
    // ----- The flush-site twins: a flush dropped, seen through the vCPU's TLB.
    /// Flush-site twin: `kvm_mmu_notifier_invalidate_range_start` unmaps the
    /// range's sptes and returns without `kvm_flush_remote_tlbs`. The host
    /// then remaps the pages, while a vCPU's TLB still translates to the old
    /// pfn: I4 through a TLB hit. The class of the TDP MMU's missing or late
    /// flushes (a835429cda91, 048f49809c52, bb95dfb9e2df).
    InvalidateRangeWithoutFlush,
    /// Flush-site twin: `kvm_mmu_notifier_change_pte` rewrites the sptes to
    /// the new pfn and returns without `kvm_flush_remote_tlbs`; a vCPU's TLB
    /// still translates to the old one (I4 through a TLB hit).
    ChangePteWithoutFlush,
    /// Flush-site twin: `kvm_mmu_commit_zap_page` frees the zapped pages
    /// after a grace period but without `kvm_flush_remote_tlbs`. The pages
    /// stay safe from walkers (the grace period waits for them); the TLB does
    /// not. A shrinker zaps the leaf page of a gfn a vCPU has cached; a later
    /// `invalidate_range` of that gfn finds no spte, so it has nothing to
    /// flush, and the vCPU's TLB translates to the pfn the host took back
    /// (I4 through a TLB hit). The shape of bb95dfb9e2df: a zap that leaves
    /// the flush to someone who no longer knows it is due.
    CommitWithoutFlush,
    /// Flush-site twin: `kvm_mmu_prepare_zap_page`, zapping a current root a
    /// vCPU still holds (`kvm_mmu_zap_all`, the shrinker), does not request
    /// the reload (which carries the TLB flush). With one level the root
    /// holds the leaves, nothing is committed, so nothing else flushes: I4
    /// through a TLB hit after the zap returns.
    ZapRootWithoutReload,
    /// Flush-site twin: the generation bump of the fast invalidation does not
    /// request `RELOAD | TLB_FLUSH` at all (bug 2, [`Mutant::ReloadOutsideLock`],
    /// only sends it late). A zap that commits pages still flushes; a deferred
    /// one ([`DeletionStrategy::SeedV3Deferred`], the seed's v3 delete) does
    /// not, and the deleted slot's translations stay in the vCPU's TLB (I4
    /// through a TLB hit).
    ///
    /// [`DeletionStrategy::SeedV3Deferred`]: crate::DeletionStrategy::SeedV3Deferred
    BumpWithoutReload,
    /// Flush-site twin, the late flush: `invalidate_range_start` flushes remote
    /// TLBs only after it drops `mmu_lock` (a835429cda91: the TDP MMU yielded
    /// `mmu_lock` with a flush still due). In between, a second invalidation
    /// of the same page takes the lock, finds no spte left to unmap, so
    /// flushes nothing, and returns; the host takes the page back while a
    /// vCPU's TLB still maps it (I4 through a TLB hit). Only a race shows it.
    InvalidateRangeFlushAfterUnlock,
    /// Large pages: the fault enters a large spte in the level-1 rmap head of
    /// its first gfn instead of the level-2 head of its large page. 3.11's
    /// `rmap_add` files a spte under `__gfn_to_rmap(gfn, sp->role.level,
    /// slot)`, one array per level (`slot->arch.rmap[level - 1]`). Breaks I1: the
    /// spte sits on the wrong level's head, and a notifier on any other gfn
    /// of the large page misses it.
    LargeSpteInSmallRmap,
    /// Large pages: `invalidate_range` walks only the level-1 rmaps, as
    /// `kvm_handle_hva` did before it iterated every level
    /// (`kvm_handle_hva_range`'s `for (j = PT_PAGE_TABLE_LEVEL; ...)`): a
    /// large spte over the range survives it. Breaks I4 (the range is left
    /// mapped when the invalidation returns).
    NotifierMissesLargeSpte,
    /// Large pages: `mapping_level` ignores `disallow_lpage` (in 3.11,
    /// `has_wrprotected_page`'s `write_count`), so a slot whose last large
    /// page is partial maps it large anyway, and gfns past the slot's end
    /// translate to host memory. The kernel's guard is the slot-end
    /// alignment `kvm_arch_create_memslot` counts in. Breaks I4: a gfn no
    /// slot maps is mapped to a pfn.
    LargeIgnoresDisallowLpage,
}

impl Mutant {
    /// Every mutant, in bug-number order.
    pub const ALL: [Mutant; 39] = [
        Mutant::SkipRmapForObsolete,
        Mutant::ReloadOutsideLock,
        Mutant::FreeWithoutGrace,
        Mutant::FreeBeforeFlush,
        Mutant::RemoveOnlyRmapCompacts,
        Mutant::NotifierRewritesInvalidRmap,
        Mutant::ObsoleteIgnoresInvalid,
        Mutant::NoSlotsLock,
        Mutant::ZapFromHead,
        Mutant::RezapInUseRoots,
        Mutant::BatchNotAdvancing,
        Mutant::MoveReusesMetadata,
        Mutant::InvalidSlotFaultInstallsMmio,
        Mutant::FaultIntoObsoleteRoot,
        Mutant::NotifierSkipsObsolete,
        Mutant::MmioGenFromNewSlots,
        Mutant::WrapZapAfterPublish,
        Mutant::MmioCacheIgnoresGen,
        Mutant::ShrinkerZapsActiveFirst,
        Mutant::ZapLeavesParked,
        Mutant::FaultIgnoresNotifierSeq,
        Mutant::DeferNeverDrains,
        Mutant::RequestWithoutFence,
        Mutant::RequestFenceAcqRel,
        Mutant::WalkBeginWithoutFence,
        Mutant::RootStoreRelaxed,
        Mutant::RootLoadRelaxed,
        Mutant::RequestBitRelaxed,
        Mutant::TakeRequestsRelaxed,
        Mutant::WalkSpteLoadRelaxed,
        Mutant::InvalidateRangeWithoutFlush,
        Mutant::ChangePteWithoutFlush,
        Mutant::CommitWithoutFlush,
        Mutant::ZapRootWithoutReload,
        Mutant::BumpWithoutReload,
        Mutant::InvalidateRangeFlushAfterUnlock,
        Mutant::LargeSpteInSmallRmap,
        Mutant::NotifierMissesLargeSpte,
        Mutant::LargeIgnoresDisallowLpage,
    ];

    /// The mutant's index in [`Mutant::ALL`]. The `match` names every
    /// variant, so a new one does not compile until it is given an index;
    /// the assertion below fails to compile unless `ALL[i].position() == i`
    /// for every entry of `ALL`, and the structure test
    /// `mutant_all_names_every_variant` compares `ALL` with the enum's
    /// declaration (which catches a new variant given an index another
    /// already has). So `ALL`, and with it the bug zoo's row check
    /// (`verification/src/zoo.rs`), cannot miss a variant.
    pub const fn position(self) -> usize {
        match self {
            Mutant::SkipRmapForObsolete => 0,
            Mutant::ReloadOutsideLock => 1,
            Mutant::FreeWithoutGrace => 2,
            Mutant::FreeBeforeFlush => 3,
            Mutant::RemoveOnlyRmapCompacts => 4,
            Mutant::NotifierRewritesInvalidRmap => 5,
            Mutant::ObsoleteIgnoresInvalid => 6,
            Mutant::NoSlotsLock => 7,
            Mutant::ZapFromHead => 8,
            Mutant::RezapInUseRoots => 9,
            Mutant::BatchNotAdvancing => 10,
            Mutant::MoveReusesMetadata => 11,
            Mutant::InvalidSlotFaultInstallsMmio => 12,
            Mutant::FaultIntoObsoleteRoot => 13,
            Mutant::NotifierSkipsObsolete => 14,
            Mutant::MmioGenFromNewSlots => 15,
            Mutant::WrapZapAfterPublish => 16,
            Mutant::MmioCacheIgnoresGen => 17,
            Mutant::ShrinkerZapsActiveFirst => 18,
            Mutant::ZapLeavesParked => 19,
            Mutant::FaultIgnoresNotifierSeq => 20,
            Mutant::DeferNeverDrains => 21,
            Mutant::RequestWithoutFence => 22,
            Mutant::RequestFenceAcqRel => 23,
            Mutant::WalkBeginWithoutFence => 24,
            Mutant::RootStoreRelaxed => 25,
            Mutant::RootLoadRelaxed => 26,
            Mutant::RequestBitRelaxed => 27,
            Mutant::TakeRequestsRelaxed => 28,
            Mutant::WalkSpteLoadRelaxed => 29,
            Mutant::InvalidateRangeWithoutFlush => 30,
            Mutant::ChangePteWithoutFlush => 31,
            Mutant::CommitWithoutFlush => 32,
            Mutant::ZapRootWithoutReload => 33,
            Mutant::BumpWithoutReload => 34,
            Mutant::InvalidateRangeFlushAfterUnlock => 35,
            Mutant::LargeSpteInSmallRmap => 36,
            Mutant::NotifierMissesLargeSpte => 37,
            Mutant::LargeIgnoresDisallowLpage => 38,
        }
    }

    /// The weak-memory twins of the litmus models (`models/tests/loom_litmus.rs`):
    /// each removes or weakens one fence or ordering, so only loom can see
    /// them. Natively they are masked on x86 (locked read-modify-writes,
    /// total store order), and shuttle is sequentially consistent.
    pub const WEAK_MEMORY: [Mutant; 8] = [
        Mutant::RequestWithoutFence,
        Mutant::RequestFenceAcqRel,
        Mutant::WalkBeginWithoutFence,
        Mutant::RootStoreRelaxed,
        Mutant::RootLoadRelaxed,
        Mutant::RequestBitRelaxed,
        Mutant::TakeRequestsRelaxed,
        Mutant::WalkSpteLoadRelaxed,
    ];
}

// `Mutant::ALL` agrees with `Mutant::position` (an exhaustive match): each
// entry sits at its position.
const _: () = {
    let mut i = 0;
    while i < Mutant::ALL.len() {
        assert!(
            Mutant::ALL[i].position() == i,
            "Mutant::ALL[i] must be the variant whose position() is i"
        );
        i += 1;
    }
};

//! # What `mmu_lock` protects
//!
//! [`MmuState`] is everything `kvm->mmu_lock` protects: `mmu_valid_gen`, the
//! page table of shadow pages with their lock-protected halves, the FIFO active
//! list (`active_mmu_pages`), the gfn hash (`mmu_page_hash`), the
//! `zapped_obsolete_pages` list, the vCPUs' roots, the mmu-notifier sequence and
//! count, and the slots being deleted whose rmaps may still hold entries.
//!
//! Every function that needs the lock takes `&mut MmuLock` (or `&MmuLock`):
//! holding one is the only way to reach the state, so the type system does what
//! `lockdep_assert_held(&kvm->mmu_lock)` does in the kernel. Functions that also
//! dereference shadow pages take an epoch `Guard`, pinned before the lock was
//! taken, as the kernel holds `kvm->srcu` around `mmu_lock`.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};

use crate::event::{Actor, What};
use crate::ghost::{GenEpoch, Ghost};
use crate::ids::PageId;
use crate::lockdep::MmuLockHeld;
use crate::memslot::Memslot;
use crate::page::{PageMeta, Role};
use crate::sync::MutexGuard;

/// What `kvm->mmu_lock` protects.
#[derive(Debug)]
pub(crate) struct MmuState {
    /// `kvm->arch.mmu_valid_gen`.
    pub(crate) mmu_valid_gen: u64,
    /// Ghost: how many times the generation was bumped, unmasked, so that the
    /// audit can tell a page of this generation from one of a wrapped-around one.
    pub(crate) gen_epoch: GenEpoch,
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
    /// An invalidation left the obsolete pages of the previous generation in
    /// place ([`DeletionStrategy::SeedV3Deferred`](crate::DeletionStrategy)).
    /// The next invalidation zaps them before it bumps; a completed
    /// `zap_obsolete_pages` clears it.
    pub(crate) obsolete_left: bool,
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
            gen_epoch: GenEpoch::new(),
            next_page_id: 0,
            pages: HashMap::new(),
            active: BTreeMap::new(),
            next_active_key: 0,
            hash: HashMap::new(),
            zapped_obsolete: Vec::new(),
            obsolete_left: false,
            roots: vec![None; vcpus],
            notifier_seq: 0,
            notifier_count: 0,
            zombies: Vec::new(),
        }
    }

    /// `is_obsolete_sp`: invalid, or created in another generation. Treating an
    /// invalid page as obsolete is what keeps a wrapped generation from reviving
    /// an invalid root that a vCPU still holds (bug 5). The zap walks and the
    /// notifiers call this; the root checks call `Vm::is_obsolete_sp`, where
    /// that bug can be switched back on.
    pub(crate) fn is_obsolete(&self, meta: &PageMeta) -> bool {
        meta.invalid || meta.mmu_valid_gen != self.mmu_valid_gen
    }
}

/// A held `mmu_lock`: the state, plus who holds it and where its lock and
/// unlock events go.
pub(crate) struct MmuLock<'a> {
    state: MutexGuard<'a, MmuState>,
    ghost: &'a Ghost,
    pub(crate) actor: Actor,
}

impl<'a> MmuLock<'a> {
    /// Wraps a guard of `mmu_lock` just taken by `actor`.
    pub(crate) fn new(state: MutexGuard<'a, MmuState>, ghost: &'a Ghost, actor: Actor) -> Self {
        ghost.event(actor, || What::Lock);
        MmuLock {
            state,
            ghost,
            actor,
        }
    }
}

impl MmuLockHeld for MmuLock<'_> {}

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
        self.ghost.event(self.actor, || What::Unlock);
    }
}

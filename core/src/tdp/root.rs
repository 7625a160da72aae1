//! # Roots and their reference counts (since 6.4, edbdb43fc96b; read lock since 6.9)
//!
//! A root is on the root list from its allocation until its last reference
//! is put. Its count starts at 2: one reference for the vCPU that loads it,
//! one for the TDP MMU itself, which keeps the root alive while no vCPU uses
//! it (edbdb43fc96b: before, roots were freed on every vCPU unload and
//! rebuilt). Invalidating the root gifts the MMU's reference to the zapper
//! ([`zap`](super::zap)), which puts it after the zap.
//!
//! - [`TdpRoot::kvm_tdp_mmu_get_root`]: `refcount_inc_not_zero`. The
//!   walkers that want only valid roots skip an invalid one before they try
//!   (`tdp_mmu_next_root` with `only_valid`).
//! - [`kvm_tdp_mmu_put_root`]: the last put unlinks the root from the list
//!   under `tdp_mmu_pages_lock` and frees its table after a grace period. It
//!   does not zap: the root was zapped before its MMU reference was put.
//! - [`kvm_tdp_mmu_alloc_root`]: under the read lock, reuse a valid root of
//!   the vCPU's address space, else allocate one (checking again under
//!   `tdp_mmu_pages_lock`, as another vCPU may have made it meanwhile).
//! - [`handle_requests`]: the request `KVM_REQ_MMU_FREE_OBSOLETE_ROOTS`
//!   (`kvm_mmu_free_obsolete_roots`), then `kvm_mmu_load`.

use crate::event::{Actor, What};
use crate::ids::PageId;
use crate::invariant::Invariant;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Guard, Ordering};
use crate::vcpu::{Requests, Vcpu};

use super::TdpCtx;
use super::lock::Held;
use super::table::{TablePtr, alloc_table, free_table};

/// A root (`struct kvm_mmu_page` with `tdp_mmu_root_count`).
#[derive(Debug)]
pub(crate) struct TdpRoot {
    pub(crate) table: TablePtr,
    pub(crate) id: PageId,
    /// `role.level`.
    pub(crate) level: u8,
    /// `kvm_mmu_role_as_id(role)`.
    pub(crate) as_id: u8,
    /// `mmu_valid_gen` when the root was made.
    pub(crate) generation: u64,
    /// `tdp_mmu_root_count`.
    pub(crate) refcount: AtomicUsize,
    /// `role.invalid`: set only under the write lock.
    pub(crate) invalid: AtomicBool,
    /// `tdp_mmu_scheduled_root_to_zap`: set with `invalid`, under the write
    /// lock; taken by the zapper.
    pub(crate) scheduled_to_zap: AtomicBool,
}

impl TdpRoot {
    /// `role.invalid`.
    pub(crate) fn is_invalid(&self) -> bool {
        self.invalid.load(Ordering::Acquire)
    }

    /// `kvm_tdp_mmu_get_root`: `refcount_inc_not_zero`.
    pub(crate) fn kvm_tdp_mmu_get_root(&self) -> bool {
        let mut count = self.refcount.load(Ordering::Acquire);
        while count != 0 {
            match self.refcount.compare_exchange(
                count,
                count + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => count = now,
            }
        }
        false
    }
}

/// `kvm_tdp_mmu_put_root`: drop one reference; the last one unlinks the
/// root and frees its table after a grace period.
pub(crate) fn kvm_tdp_mmu_put_root(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    root: &Arc<TdpRoot>,
    actor: Actor,
) {
    if root.refcount.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // The MMU holds a reference to every valid root: only an invalid root
    // can lose its last one.
    if !root.is_invalid() {
        ctx.ghost.violate(Invariant::I3, || {
            format!("last reference of valid TDP root {} put", root.id)
        });
    }
    if crate::ghost::ENABLED
        && root
            .table
            .get(guard)
            .sptes
            .iter()
            .any(|s| s.read().is_present())
    {
        ctx.ghost.violate(Invariant::I3, || {
            format!("TDP root {} freed before it was zapped", root.id)
        });
    }
    ctx.tdp.roots.lock().retain(|r| !Arc::ptr_eq(r, root));
    ctx.ghost.event(actor, || {
        What::Note(format!(
            "tdp root {}: last reference put, unlinked",
            root.id
        ))
    });
    free_table(ctx.tdp, guard, ctx.ghost, root.table);
}

/// `kvm_tdp_mmu_alloc_root` (6.9; `kvm_tdp_mmu_get_vcpu_root_hpa` before):
/// under the read lock, a referenced valid root of `vcpu`'s address space.
pub(crate) fn kvm_tdp_mmu_alloc_root(ctx: &TdpCtx<'_>, vcpu: usize) -> Arc<TdpRoot> {
    let as_id = ctx.as_id(vcpu);
    let reuse = |roots: &[Arc<TdpRoot>]| {
        roots
            .iter()
            .find(|r| r.as_id == as_id && !r.is_invalid() && r.kvm_tdp_mmu_get_root())
            .cloned()
    };
    if let Some(root) = reuse(&ctx.tdp.roots_snapshot()) {
        return root;
    }
    let mut roots = ctx.tdp.roots.lock();
    if let Some(root) = reuse(&roots) {
        return root;
    }
    let level = ctx.config.levels;
    let table = alloc_table(ctx.tdp, ctx.ghost, ctx.config.spte_count);
    let root = Arc::new(TdpRoot {
        table,
        id: table_id(ctx, table),
        level,
        as_id,
        generation: ctx.mmu_valid_gen.load(Ordering::Acquire),
        refcount: AtomicUsize::new(2),
        invalid: AtomicBool::new(false),
        scheduled_to_zap: AtomicBool::new(false),
    });
    roots.push(root.clone());
    root
}

fn table_id(ctx: &TdpCtx<'_>, table: TablePtr) -> PageId {
    let guard = ctx.reclaimer.pin();
    table.get(&guard).id
}

/// The vCPU's request loop on a TDP VM (`vcpu_enter_guest`): a reload
/// request stands for `KVM_REQ_MMU_FREE_OBSOLETE_ROOTS` (put the root if it
/// is invalid) and a flush for `KVM_REQ_TLB_FLUSH`; a vCPU without a root
/// then loads one (`kvm_mmu_load`, which flushes the new root's TLB).
/// Returns the requests taken and whether a root was put or loaded.
pub(crate) fn handle_requests(ctx: &TdpCtx<'_>, v: &Vcpu, vcpu: usize) -> (Requests, bool) {
    let mut taken = Requests::NONE;
    let mut reloaded = false;
    let slot = &ctx.tdp.vcpu_roots[vcpu];
    for _ in 0..4 {
        let requests = v.take_requests(ctx.config);
        let mut current = slot.lock();
        let needs_root = current.is_none();
        if requests.is_empty() && !needs_root {
            break;
        }
        taken |= requests;
        if requests.tlb_flush() || requests.reload() || needs_root {
            v.tlb.flush();
        }
        if requests.reload() || needs_root {
            let held = Held::read(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
            // kvm_mmu_free_obsolete_roots.
            if current.as_ref().is_some_and(|r| r.is_invalid())
                && let Some(old) = current.take()
            {
                kvm_tdp_mmu_put_root(ctx, held.guard(), &old, Actor::Vcpu(vcpu));
            }
            if current.is_none() {
                let root = kvm_tdp_mmu_alloc_root(ctx, vcpu);
                ctx.ghost.event(Actor::Vcpu(vcpu), || {
                    What::Note(format!("tdp root {} loaded", root.id))
                });
                *current = Some(root);
            }
            reloaded = true;
        }
    }
    (taken, reloaded)
}

/// The root `vcpu` uses now: its id, generation and validity.
pub(crate) fn vcpu_root(ctx: &TdpCtx<'_>, vcpu: usize) -> Option<(PageId, u64, bool)> {
    ctx.tdp.vcpu_roots[vcpu]
        .lock()
        .as_ref()
        .map(|r| (r.id, r.generation, !r.is_invalid()))
}

//! # Tearing the TDP MMU down (`kvm_mmu_uninit_tdp_mmu`)
//!
//! When the VM goes: each vCPU puts its root (`kvm_mmu_unload`), then every
//! valid root is invalidated and every invalidated root zapped, which puts
//! the last references and frees the root tables after a grace period; then
//! the reclaimer's barrier (`rcu_barrier`) waits until every deferred free
//! has run, so that nothing is left outstanding when the VM's memory goes.

use crate::invariant::Invariant;
use crate::sync::{Ordering, yield_now};

use super::TdpCtx;
use super::lock::Held;
use super::root::kvm_tdp_mmu_put_root;
use super::zap::{ZapCount, kvm_tdp_mmu_invalidate_roots, kvm_tdp_mmu_zap_invalidated_roots};

/// `kvm_mmu_uninit_tdp_mmu`, after every vCPU is gone. Returns the roots
/// left on the list (0 unless a reference leaked).
pub(crate) fn kvm_mmu_uninit_tdp_mmu(ctx: &TdpCtx<'_>) -> usize {
    for slot in ctx.tdp.vcpu_roots.iter() {
        if let Some(root) = slot.lock().take() {
            let held = Held::read(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
            kvm_tdp_mmu_put_root(ctx, held.guard(), &root, crate::event::Actor::Zapper);
        }
    }
    {
        let held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
        kvm_tdp_mmu_invalidate_roots(ctx, &held);
    }
    kvm_tdp_mmu_zap_invalidated_roots(ctx, &mut ZapCount::default());
    rcu_barrier(ctx);
    ctx.tdp.roots.lock().len()
}

/// `rcu_barrier`: wait until every deferred free of a table has run. One
/// barrier of the reclaimer runs what the calling thread deferred; frees
/// that other threads deferred may sit in their own bags a little longer,
/// so the barrier is repeated, a bounded number of times, until none is
/// pending. Returns whether none is.
pub(crate) fn rcu_barrier(ctx: &TdpCtx<'_>) -> bool {
    for _ in 0..BARRIER_ROUNDS {
        if ctx.tdp.pending_frees.load(Ordering::Acquire) == 0 {
            return true;
        }
        ctx.reclaimer.barrier();
        yield_now();
    }
    let left = ctx.tdp.pending_frees.load(Ordering::Acquire);
    if left != 0 {
        ctx.ghost.violate(Invariant::I3, || {
            format!("{left} TDP tables still waiting for their grace period at teardown")
        });
    }
    left == 0
}

/// How many barriers the teardown tries before it reports what is left.
const BARRIER_ROUNDS: usize = 1000;

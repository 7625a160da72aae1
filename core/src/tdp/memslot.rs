//! # Deleting a memslot on the TDP MMU (`kvm_arch_flush_shadow_memslot`)
//!
//! With `KVM_X86_QUIRK_SLOT_ZAP_ALL` set (the default VM type's default):
//! invalidate everything, as [`kvm_mmu_zap_all_fast`](super::zap::kvm_mmu_zap_all_fast)
//! ([`DeletionStrategy::Merged311`](crate::DeletionStrategy::Merged311)'s
//! shape around it: the INVALID copy, the wait, the zap, the publish).
//!
//! With the quirk off (aa8d1f48d353, 6.12;
//! [`DeletionStrategy::SlotOnlyQuirkOff`](crate::DeletionStrategy::SlotOnlyQuirkOff)):
//! [`kvm_mmu_zap_memslot`]: under the write lock, zap the slot's leaves in
//! valid AND invalid roots (`kvm_unmap_gfn_range`), then, if it zapped
//! one, flush before the lock is dropped. Tables above them stay until they are reused or torn
//! down.

use crate::memslot::Memslot;

use super::TdpCtx;
use super::lock::Held;
use super::notifier::tdp_mmu_zap_leafs;
use super::zap::flush_before_unpin;

/// `kvm_mmu_zap_memslot`: the quirk-off delete's zap. Returns the leaves
/// zapped.
pub(crate) fn kvm_mmu_zap_memslot(ctx: &TdpCtx<'_>, slot: &Memslot) -> u64 {
    let mut held = Held::write(&ctx.tdp.mmu_lock, ctx.reclaimer, ctx.config);
    let zapped = tdp_mmu_zap_leafs(ctx, &mut held, slot.base_gfn, slot.base_gfn + slot.npages);
    // `kvm_mmu_remote_flush_or_zap(kvm, &invalid_list, flush)`: a flush only
    // if a leaf was zapped (the TDP MMU puts nothing on `invalid_list`).
    if zapped > 0 {
        flush_before_unpin(ctx.vcpus, ctx.config);
    }
    drop(held);
    zapped
}

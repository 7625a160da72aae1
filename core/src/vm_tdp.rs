//! # The VM's TDP half: the operations whose TDP body needs more than a call
//!
//! On a VM whose [`Config::mmu`](crate::Config::mmu) is
//! [`Mmu::Tdp`](crate::Mmu::Tdp), each public operation of [`Vm`] checks its
//! input as on the shadow MMU and then, at its top, calls into `crate::tdp`
//! with the shared parts of the VM ([`Vm::tdp`]). Most calls are a line in
//! the shadow MMU's event file; the zaps, which also log and record their
//! statistics, are here, so that those files stay short.

use crate::event::{Actor, What};
use crate::stats::ZapStats;
use crate::vm::Vm;

impl Vm {
    /// `kvm_mmu_zap_all_fast` on a TDP VM (invalidate-all, and the zap-all
    /// delete): always zapping before it returns. `before_zap` runs between
    /// the write-lock hold and the zap; the `under_lock` work of the shadow
    /// MMU's seed-v3 deletes has no TDP counterpart (a TDP VM refuses them).
    pub(crate) fn tdp_invalidate_all(&self, actor: Actor, before_zap: impl FnOnce()) -> ZapStats {
        let Some(ctx) = self.tdp() else {
            return ZapStats::default();
        };
        before_zap();
        let stats = crate::tdp::zap::kvm_mmu_zap_all_fast(&ctx, self.gen_mask());
        self.event(actor, || {
            What::Note(format!(
                "tdp invalidate all: {} tables zapped in {} holds",
                stats.zapped, stats.holds
            ))
        });
        self.ghost.record_zap(stats);
        stats
    }

    /// `kvm_tdp_mmu_zap_all` on a TDP VM: every root invalidated and
    /// emptied, a reload requested from every vCPU, remote TLBs flushed.
    pub(crate) fn tdp_zap_all(&self) -> ZapStats {
        let Some(ctx) = self.tdp() else {
            return ZapStats::default();
        };
        let stats = crate::tdp::zap::kvm_tdp_mmu_zap_all(&ctx);
        self.event(Actor::Zapper, || {
            What::Note(format!("tdp zap all: {} tables zapped", stats.zapped))
        });
        self.ghost.record_zap(stats);
        stats
    }
}

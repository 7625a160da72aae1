//! # The protocol's one hook into the audit
//!
//! The protocol never imports the audit. At the points named by
//! [`AuditPoint`] it calls [`Vm::audit_point`] (with `mmu_lock` held) or
//! [`Vm::audit_point_unlocked`] (without it), and with the `ghost` feature
//! those run the checks of `audit.rs` that hold at that point, recording what
//! they find as run-time violations. Without the feature both do nothing, and
//! take no lock.

use crate::event::Actor;
use crate::memslot::Memslot;
use crate::mmu::MmuLock;
use crate::sync::Guard;
use crate::vm::Vm;

/// Named places inside operations where the audit looks.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "ghost"), allow(dead_code))]
pub(crate) enum AuditPoint<'a> {
    /// After `kvm_mmu_commit_zap_page` (if `Config::audit_points`).
    AfterCommitZap,
    /// After `zap_obsolete_pages` finished (if `Config::audit_points`).
    AfterZapObsolete,
    /// After a page fault installed a spte (if `Config::audit_points`).
    AfterFault,
    /// After a memslot update was published (if `Config::audit_points`; takes
    /// `mmu_lock`).
    AfterMemslotUpdate,
    /// `invalidate_range` is about to return, still holding `mmu_lock`: no
    /// present spte of these (slot, gfn) targets is left on any rmap, obsolete
    /// and invalid pages included (I4, bug 13). Always, with the checking code.
    InvalidateRangeReturns(&'a [(Memslot, u64)]),
    /// The seed-v3 delete's unmap and grace period are over: no present spte
    /// maps a gfn of this slot (I1, bug 4). Always, with the checking code,
    /// except under loom; takes `mmu_lock`.
    SeedV3Unmapped(&'a Memslot),
    /// The shrinker is about to zap an active page: nothing may be parked on
    /// `zapped_obsolete_pages` (I8, 365c886860c4). Always, with the checking
    /// code.
    ShrinkerZapsActive,
    /// `zap_obsolete_pages` has committed and is about to drop `mmu_lock`: the
    /// obsolete pages it leaves are within [`retain_bound`](crate::check::retain_bound)
    /// (I8). Always, with the checking code.
    ZapReturns,
}

impl Vm {
    /// The audit at `point`, with `mmu_lock` held.
    #[inline]
    pub(crate) fn audit_point(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, point: AuditPoint<'_>) {
        #[cfg(feature = "ghost")]
        {
            let found = match point {
                AuditPoint::InvalidateRangeReturns(targets) => {
                    crate::audit::check_i4_range_unmapped(lk, guard, targets)
                }
                AuditPoint::SeedV3Unmapped(slot) => {
                    crate::audit::check_i1_slot_unmapped(self, lk, guard, slot)
                }
                AuditPoint::ShrinkerZapsActive => crate::audit::check_i8_shrinker_order(lk),
                AuditPoint::ZapReturns => crate::audit::check_i8_retention(self, lk),
                // The audit reads the shadow MMU's structures under its lock;
                // a TDP VM allocates tables under its own rwlock meanwhile, so
                // an audit inside an operation would count a moving target.
                // TDP VMs have no audit points yet.
                _ if !self.config.audit_points || self.tdp.is_some() => return,
                _ => crate::audit::in_flight(self, lk, guard, point.name()),
            };
            for violation in found {
                self.ghost.record(violation);
            }
        }
        #[cfg(not(feature = "ghost"))]
        let _ = (lk, guard, point);
    }

    /// The audit at `point`, without `mmu_lock`: it takes the lock as `actor`
    /// if the point runs at all.
    #[inline]
    pub(crate) fn audit_point_unlocked(&self, actor: Actor, point: AuditPoint<'_>) {
        #[cfg(feature = "ghost")]
        {
            let runs = match point {
                // Not under loom: the extra scan trips loom's own atomic
                // bookkeeping (tokio-rs/loom#252); the shuttle lane runs it.
                AuditPoint::SeedV3Unmapped(_) => !cfg!(loom),
                _ => self.config.audit_points && self.tdp.is_none(),
            };
            if runs {
                let guard = self.reclaimer.pin();
                let lk = self.lock_mmu(actor);
                self.audit_point(&lk, &guard, point);
            }
        }
        #[cfg(not(feature = "ghost"))]
        let _ = (actor, point);
    }
}

impl AuditPoint<'_> {
    /// The point's name in violation details.
    #[cfg(feature = "ghost")]
    fn name(&self) -> &'static str {
        match self {
            AuditPoint::AfterCommitZap => "AfterCommitZap",
            AuditPoint::AfterZapObsolete => "AfterZapObsolete",
            AuditPoint::AfterFault => "AfterFault",
            AuditPoint::AfterMemslotUpdate => "AfterMemslotUpdate",
            AuditPoint::InvalidateRangeReturns(_) => "InvalidateRangeReturns",
            AuditPoint::SeedV3Unmapped(_) => "SeedV3Unmapped",
            AuditPoint::ShrinkerZapsActive => "ShrinkerZapsActive",
            AuditPoint::ZapReturns => "ZapReturns",
        }
    }
}

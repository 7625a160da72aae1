//! # What the checkers observe (feature `ghost`)
//!
//! The public face of the ghost state: allocation counters, the event log, the
//! violations recorded at run time and the zap history. None of it exists
//! without the checking code, and the protocol reads none of it.

use crate::event::Event;
use crate::ghost::Counts;
use crate::invariant::Violation;
use crate::stats::ZapStats;
use crate::vm::Vm;

impl Vm {
    /// The allocation counters of shadow pages, descriptors and rmaps.
    pub fn counts(&self) -> Counts {
        self.ghost.counts()
    }

    /// Drops the VM (its teardown included: on a TDP VM
    /// `kvm_mmu_uninit_tdp_mmu`, which ends with the reclaimer's barrier) and
    /// returns the allocation counters afterwards: what the teardown left.
    pub fn counts_after_drop(self) -> Counts {
        let ghost = self.ghost.clone();
        drop(self);
        ghost.counts()
    }

    /// On a TDP VM, the roots on the root list: id, reference count and
    /// whether invalid, in list order (empty on a shadow VM).
    pub fn tdp_roots(&self) -> Vec<(crate::ids::PageId, usize, bool)> {
        self.tdp
            .as_ref()
            .map(crate::tdp::TdpMmu::root_summary)
            .unwrap_or_default()
    }

    /// On a TDP VM, every leaf in every root on the root list, valid and
    /// invalid: (root, root invalid, gfn, pfn). Read under the read lock.
    pub fn tdp_leaves(&self) -> Vec<(crate::ids::PageId, bool, u64, u64)> {
        self.tdp()
            .map(|ctx| crate::tdp::leaves(&ctx))
            .unwrap_or_default()
    }

    /// Runs grace periods until every retired object is freed, at most `rounds`
    /// times. Returns whether the counters settled.
    pub fn drain(&self, rounds: usize) -> bool {
        for _ in 0..rounds {
            if self.counts().settled() {
                return true;
            }
            self.reclaimer.barrier();
        }
        self.counts().settled()
    }

    /// The event log so far (empty unless `Config::events`).
    pub fn events(&self) -> Vec<Event> {
        self.ghost.events()
    }

    /// Violations recorded at run time (by readers, walkers and the audit points).
    pub fn runtime_violations(&self) -> Vec<Violation> {
        self.ghost.violations()
    }

    /// The zaps run so far, with their work counts (bounded: see `SPEC.md`, I6).
    pub fn zap_history(&self) -> Vec<ZapStats> {
        self.ghost.zaps()
    }

    /// Operations run on vCPUs so far.
    pub fn vcpu_operations(&self) -> u64 {
        self.vcpus.iter().map(|v| v.ghost.ops()).sum()
    }
}

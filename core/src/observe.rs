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

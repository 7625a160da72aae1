//! Which notifier a fault raced. The churn thread is the only one that runs
//! notifiers, one at a time, so a counter of started and of finished calls
//! per kind says whether a call of that kind overlapped a fault: one started
//! before the fault returned and had not finished when it began. A fault that
//! retried for `mmu_notifier_retry` while only `change_pte` calls overlapped
//! it retried because of `change_pte` (the aging notifiers never bump
//! `mmu_notifier_seq`, and memslot updates do not either).

use fastzap::checking::sync::{AtomicU64, Ordering, yield_now};

/// The notifiers that make a fault retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notifier {
    InvalidateRange,
    ChangePte,
}

/// Started and finished calls of each kind (ghost counters of the stress).
#[derive(Debug, Default)]
pub(super) struct NotifierRaces {
    started: [AtomicU64; 2],
    finished: [AtomicU64; 2],
    /// The gfn a vCPU is faulting on now, plus one (0: none): where the
    /// churn thread aims half its `change_pte` calls, so that they race
    /// faults often.
    in_flight: AtomicU64,
    /// The gfn a vCPU faulted on last, plus one (0: none yet).
    last_fault: AtomicU64,
}

/// What a fault saw when it began: the finished calls of each kind.
#[derive(Debug, Clone, Copy)]
pub(super) struct FaultBegan([u64; 2]);

impl NotifierRaces {
    /// Runs the churn thread's notifier call `f` of kind `kind`, counted.
    pub(super) fn run<T>(&self, kind: Notifier, f: impl FnOnce() -> T) -> T {
        self.started[kind as usize].fetch_add(1, Ordering::SeqCst);
        let result = f();
        self.finished[kind as usize].fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Called just before a fault on `gfn`.
    pub(super) fn fault_begins(&self, gfn: u64) -> FaultBegan {
        self.last_fault.store(gfn + 1, Ordering::Relaxed);
        self.in_flight.store(gfn + 1, Ordering::Relaxed);
        FaultBegan([0, 1].map(|k| self.finished[k].load(Ordering::SeqCst)))
    }

    /// Called just after a fault.
    pub(super) fn fault_ends(&self) {
        self.in_flight.store(0, Ordering::Relaxed);
    }

    /// Whether a call of `kind` overlapped the fault that began at `began`
    /// (called after it ended).
    pub(super) fn overlapped(&self, began: FaultBegan, kind: Notifier) -> bool {
        self.started[kind as usize].load(Ordering::SeqCst) > began.0[kind as usize]
    }

    /// A gfn to aim `change_pte` at: one a vCPU is faulting on, if one
    /// starts within a few yields, else the one it faulted on last.
    pub(super) fn aim(&self) -> Option<u64> {
        for _ in 0..64 {
            if let Some(gfn) = self.in_flight.load(Ordering::Relaxed).checked_sub(1) {
                return Some(gfn);
            }
            yield_now();
        }
        self.last_fault.load(Ordering::Relaxed).checked_sub(1)
    }
}

//! # Ghost state: what the checkers and tests observe, never what the protocol reads
//!
//! Allocation counters, the event log and the record of violations use plain std
//! atomics and a std mutex, so that they add no scheduling points to a loom or
//! shuttle model and cost one relaxed atomic add natively.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering::Relaxed};

/// Allocated / retired / freed counts for one kind of object.
#[derive(Debug, Default)]
pub struct LifeCounter {
    allocated: StdAtomicU64,
    retired: StdAtomicU64,
    freed: StdAtomicU64,
    peak_retired_unfreed: StdAtomicU64,
}

/// A snapshot of a [`LifeCounter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifeCounts {
    /// Objects ever allocated.
    pub allocated: u64,
    /// Objects handed to the reclaimer (unlinked, waiting for a grace period).
    pub retired: u64,
    /// Objects whose memory was released.
    pub freed: u64,
    /// The largest number of retired-but-not-yet-freed objects seen at once.
    pub peak_retired_unfreed: u64,
}

impl LifeCounts {
    /// Objects still allocated. Saturating: the counters of a snapshot taken
    /// while other threads allocate and free are read one after the other,
    /// so a snapshot may count a free whose allocation it missed.
    pub fn live(&self) -> u64 {
        self.allocated.saturating_sub(self.freed)
    }

    /// Objects retired and waiting for a grace period (saturating, as
    /// [`LifeCounts::live`]).
    pub fn pending(&self) -> u64 {
        self.retired.saturating_sub(self.freed)
    }
}

impl LifeCounter {
    /// Counts one allocation.
    pub fn alloc(&self) {
        self.allocated.fetch_add(1, Relaxed);
    }

    /// Counts one retirement.
    pub fn retire(&self) {
        let retired = self.retired.fetch_add(1, Relaxed) + 1;
        let pending = retired.saturating_sub(self.freed.load(Relaxed));
        self.peak_retired_unfreed.fetch_max(pending, Relaxed);
    }

    /// Counts one release of memory.
    pub fn free(&self) {
        self.freed.fetch_add(1, Relaxed);
    }

    /// Reads the counters.
    pub fn get(&self) -> LifeCounts {
        LifeCounts {
            allocated: self.allocated.load(Relaxed),
            retired: self.retired.load(Relaxed),
            freed: self.freed.load(Relaxed),
            peak_retired_unfreed: self.peak_retired_unfreed.load(Relaxed),
        }
    }
}

/// An append-only log kept by the checkers' side of the world.
#[derive(Debug)]
pub struct GhostLog<T> {
    enabled: bool,
    entries: StdMutex<Vec<T>>,
}

impl<T: Clone> GhostLog<T> {
    /// A log that records only when `enabled`.
    pub fn new(enabled: bool) -> Self {
        GhostLog {
            enabled,
            entries: StdMutex::new(Vec::new()),
        }
    }

    /// Whether entries are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Appends `entry` if the log is enabled. `make` runs only then.
    pub fn push_with(&self, make: impl FnOnce() -> T) {
        if self.enabled {
            self.lock().push(make());
        }
    }

    /// Appends `entry` whether or not the log is enabled (for violations).
    pub fn push_always(&self, entry: T) {
        self.lock().push(entry);
    }

    /// A copy of the entries.
    pub fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A monotonic ghost counter (event sequence numbers, operation counts).
#[derive(Debug, Default)]
pub struct GhostCounter(StdAtomicU64);

impl GhostCounter {
    /// Adds one and returns the previous value.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Relaxed)
    }

    /// Reads the value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A ghost 64-bit cell (per-spte install sequence numbers, flags).
#[derive(Debug, Default)]
pub struct GhostU64(StdAtomicU64);

impl GhostU64 {
    /// A cell holding `value`.
    pub const fn new(value: u64) -> Self {
        GhostU64(StdAtomicU64::new(value))
    }

    /// Reads the cell.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes the cell.
    pub fn set(&self, value: u64) {
        self.0.store(value, std::sync::atomic::Ordering::SeqCst)
    }

    /// Adds one and returns the new value.
    pub fn increment(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// Subtracts one (not below 0) and returns the new value.
    pub fn decrement(&self) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        let old = self
            .0
            .fetch_update(SeqCst, SeqCst, |v| Some(v.saturating_sub(1)))
            .unwrap_or(0);
        old.saturating_sub(1)
    }

    /// Sets the cell to `new` if it holds `old`; returns whether it did.
    pub fn compare_set(&self, old: u64, new: u64) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.0.compare_exchange(old, new, SeqCst, SeqCst).is_ok()
    }

    /// Raises the cell to `value` if it is lower.
    pub fn raise(&self, value: u64) {
        self.0.fetch_max(value, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A ghost mutex-protected value, for ghost maps that the protocol never reads.
#[derive(Debug, Default)]
pub struct GhostMutex<T>(StdMutex<T>);

impl<T> GhostMutex<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        GhostMutex(StdMutex::new(value))
    }

    /// Runs `f` with the value locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

/// Shared ownership for ghost state (counters shared with deferred frees).
pub type GhostArc<T> = std::sync::Arc<T>;

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use super::LifeCounts;

    /// A snapshot read while another thread allocates and frees may see the
    /// free and not the allocation: the derived counts saturate at 0.
    #[test]
    fn a_torn_snapshot_does_not_underflow() {
        let torn = LifeCounts {
            allocated: 3,
            retired: 3,
            freed: 4,
            peak_retired_unfreed: 1,
        };
        assert_eq!((torn.live(), torn.pending()), (0, 0));
        let whole = LifeCounts {
            allocated: 5,
            retired: 4,
            freed: 2,
            peak_retired_unfreed: 2,
        };
        assert_eq!((whole.live(), whole.pending()), (3, 2));
    }
}

//! What every stress thread carries: its share of the operation budget
//! ([`Budget`]), the shared [`Stop`] with the wall-clock bound, its random
//! numbers ([`Rng`]) and its [`Tally`] of operations and problems.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fastzap::checking::sync::{Arc, AtomicBool, AtomicU64, Ordering, yield_now};

use super::races::NotifierRaces;

/// xorshift64*: deterministic per thread, no dependency.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Per-thread tallies, merged at the end.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) kinds: BTreeMap<String, u64>,
    pub(super) problems: Vec<String>,
}

impl Tally {
    pub(super) fn count(&mut self, kind: &str) {
        *self.kinds.entry(kind.to_string()).or_default() += 1;
    }

    pub(super) fn problem(&mut self, what: String) {
        if self.problems.len() < 32 {
            self.problems.push(what);
        }
    }
}

/// The shared stop: the wall-clock bound, seen by every thread.
pub(super) struct Stop {
    pub(super) wall: Duration,
    pub(super) started: Instant,
    pub(super) stop: AtomicBool,
    pub(super) timed_out: AtomicBool,
    pub(super) violated: AtomicBool,
    /// Operations the churn thread has done so far.
    pub(super) churn_progress: AtomicU64,
    pub(super) churn_ops: u64,
    /// Which notifier calls overlapped which faults.
    pub(super) races: NotifierRaces,
}

/// One thread's share of the operation budget. vCPU operations are far
/// cheaper than the churn thread's, so each thread has its own share; a shared
/// counter would let the vCPUs spend it all before the churn thread ran.
pub(super) struct Budget {
    pub(super) ops: u64,
    pub(super) taken: u64,
    pub(super) stop: Arc<Stop>,
    /// A vCPU thread keeps pace with the churn thread: it does not run more
    /// than its share in proportion to what the churn thread has done, so the
    /// two kinds of operations overlap for the whole run.
    pub(super) paced: bool,
    pub(super) churn: bool,
}

impl Budget {
    /// Claims one operation, or says stop.
    pub(super) fn take(&mut self) -> bool {
        let stop = &self.stop;
        if self.taken >= self.ops || stop.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.taken.is_multiple_of(64) && stop.started.elapsed() >= stop.wall {
            stop.timed_out.store(true, Ordering::Relaxed);
            stop.stop.store(true, Ordering::Relaxed);
            return false;
        }
        if self.paced {
            loop {
                let done = stop.churn_progress.load(Ordering::Relaxed);
                if done >= stop.churn_ops || stop.stop.load(Ordering::Relaxed) {
                    break;
                }
                let ahead = u128::from(self.taken) * u128::from(stop.churn_ops)
                    > u128::from(done + 1) * u128::from(self.ops);
                if !ahead {
                    break;
                }
                if stop.started.elapsed() >= stop.wall {
                    stop.timed_out.store(true, Ordering::Relaxed);
                    stop.stop.store(true, Ordering::Relaxed);
                    return false;
                }
                yield_now();
            }
        }
        if self.churn {
            stop.churn_progress.store(self.taken, Ordering::Relaxed);
        }
        self.taken += 1;
        true
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        if self.churn {
            // Done (or stopped): release the vCPU threads.
            self.stop.churn_progress.store(u64::MAX, Ordering::Relaxed);
        }
    }
}

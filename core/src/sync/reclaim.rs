//! # Deferred reclamation: the epoch in place of SRCU
//!
//! A [`Reclaimer`] belongs to one VM. Readers ([`Reclaimer::pin`]) play the part
//! of `srcu_read_lock(&kvm->srcu)`; [`Guard::defer`] plays `call_srcu` (free an
//! object once every reader that might hold it is gone); and
//! [`Reclaimer::synchronize`] plays `synchronize_srcu_expedited` (wait until every
//! reader that was pinned when it began has unpinned).
//!
//! Two backends share this API: crossbeam-epoch (native and loom lanes) and the
//! facade's small [`Ebr`] (every lane; the only one under
//! shuttle, which cannot see inside crossbeam-epoch).

use super::ebr::{Ebr, EbrGuard, EbrMutant};
use super::{Arc, AtomicBool, Ordering, yield_now};

/// Which epoch implementation a VM uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimBackend {
    /// crossbeam-epoch. Not available in the shuttle lane.
    Crossbeam,
    /// The facade's small EBR with the given number of participant slots.
    /// Build it with [`ReclaimBackend::small`].
    #[non_exhaustive]
    Small {
        /// Participant slots: at most this many guards pinned at once.
        slots: usize,
        /// A deliberate bug, for the reclamation's own models.
        #[doc(hidden)]
        mutant: EbrMutant,
    },
}

impl ReclaimBackend {
    /// The small EBR with `slots` participant slots (at least 1): at most that
    /// many guards pinned at once, and more wait.
    pub const fn small(slots: usize) -> ReclaimBackend {
        ReclaimBackend::Small {
            slots,
            mutant: EbrMutant::None,
        }
    }

    /// The small EBR with a deliberate bug, for its own models.
    #[doc(hidden)]
    pub const fn small_mutant(slots: usize, mutant: EbrMutant) -> ReclaimBackend {
        ReclaimBackend::Small { slots, mutant }
    }
}

impl Default for ReclaimBackend {
    /// The small EBR under shuttle (which cannot see inside crossbeam-epoch)
    /// and under Miri (which reports UB inside crossbeam-epoch 0.9's own
    /// participant list: SPEC.md, "What the checkers cannot see");
    /// crossbeam-epoch otherwise.
    fn default() -> Self {
        if cfg!(any(shuttle, miri)) {
            ReclaimBackend::small(8)
        } else {
            ReclaimBackend::Crossbeam
        }
    }
}

enum Backend {
    #[cfg(not(shuttle))]
    Crossbeam(crossbeam_epoch::Collector),
    Small(Ebr),
}

/// The per-VM reclaimer.
pub struct Reclaimer {
    backend: Backend,
}

impl std::fmt::Debug for Reclaimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(_) => f.write_str("Reclaimer(crossbeam-epoch)"),
            Backend::Small(ebr) => write!(f, "Reclaimer({ebr:?})"),
        }
    }
}

/// A pinned reader. Whatever it loaded from shared memory stays allocated until
/// it is dropped.
pub struct Guard<'a> {
    inner: GuardInner<'a>,
}

enum GuardInner<'a> {
    #[cfg(not(shuttle))]
    Crossbeam(crossbeam_epoch::Guard, std::marker::PhantomData<&'a ()>),
    Small(EbrGuard<'a>),
}

impl std::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guard")
    }
}

/// The error returned when a backend is not available in this lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendUnavailable;

impl Reclaimer {
    /// A reclaimer with `backend`. Under shuttle, `Crossbeam` is refused.
    pub fn new(backend: ReclaimBackend) -> Result<Self, BackendUnavailable> {
        let backend = match backend {
            #[cfg(not(shuttle))]
            ReclaimBackend::Crossbeam => Backend::Crossbeam(crossbeam_epoch::Collector::new()),
            #[cfg(shuttle)]
            ReclaimBackend::Crossbeam => return Err(BackendUnavailable),
            ReclaimBackend::Small { slots, mutant } => Backend::Small(Ebr::new(slots, mutant)),
        };
        Ok(Reclaimer { backend })
    }

    /// Pins the calling thread: `srcu_read_lock`.
    pub fn pin(&self) -> Guard<'_> {
        let inner = match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(collector) => {
                GuardInner::Crossbeam(pin_crossbeam(collector), std::marker::PhantomData)
            }
            Backend::Small(ebr) => GuardInner::Small(ebr.pin()),
        };
        Guard { inner }
    }

    /// Tries to advance the epoch and frees what is ready.
    pub fn flush(&self) {
        self.pin().flush();
    }

    /// Waits for a grace period: every guard pinned when this call began has been
    /// dropped when it returns. `synchronize_srcu_expedited`.
    ///
    /// Never call it while holding `mmu_lock`: a reader may be pinned and waiting
    /// for that lock, and the two would wait for each other forever.
    pub fn synchronize(&self) {
        let done = Arc::new(AtomicBool::new(false));
        {
            let guard = self.pin();
            let flag = done.clone();
            guard.defer(move || flag.store(true, Ordering::Release));
        }
        while !done.load(Ordering::Acquire) {
            self.flush();
            if done.load(Ordering::Acquire) {
                break;
            }
            yield_now();
        }
    }

    /// Flushes until no deferred function is pending or `rounds` runs out, for
    /// tests that balance the allocation counters at the end.
    pub fn drain(&self, rounds: usize) {
        for _ in 0..rounds {
            self.synchronize();
        }
    }
}

#[cfg(all(not(shuttle), not(loom)))]
fn pin_crossbeam(collector: &crossbeam_epoch::Collector) -> crossbeam_epoch::Guard {
    use std::cell::RefCell;
    // One registered handle per (thread, collector), kept in a small cache so that
    // pinning costs what crossbeam's default `pin()` costs.
    const CACHE: usize = 4;
    thread_local! {
        static HANDLES: RefCell<Vec<crossbeam_epoch::LocalHandle>> = const { RefCell::new(Vec::new()) };
    }
    HANDLES.with(|handles| {
        let mut handles = handles.borrow_mut();
        if let Some(handle) = handles.iter().find(|h| h.collector() == collector) {
            return handle.pin();
        }
        if handles.len() >= CACHE {
            handles.remove(0);
        }
        let handle = collector.register();
        let guard = handle.pin();
        handles.push(handle);
        guard
    })
}

#[cfg(loom)]
fn pin_crossbeam(collector: &crossbeam_epoch::Collector) -> crossbeam_epoch::Guard {
    // Under loom a thread-local cache would outlive the execution; registering per
    // pin is cheap at model sizes. The guard keeps its participant alive.
    collector.register().pin()
}

impl Guard<'_> {
    /// Runs `f` after every guard pinned now has been dropped: `call_srcu`.
    pub fn defer(&self, f: impl FnOnce() + Send + 'static) {
        match &self.inner {
            #[cfg(not(shuttle))]
            GuardInner::Crossbeam(guard, _) => guard.defer(f),
            GuardInner::Small(guard) => guard.defer(f),
        }
    }

    /// Pushes deferred functions towards execution and runs those that are ready.
    pub fn flush(&self) {
        match &self.inner {
            #[cfg(not(shuttle))]
            GuardInner::Crossbeam(guard, _) => guard.flush(),
            GuardInner::Small(guard) => guard.flush(),
        }
    }
}

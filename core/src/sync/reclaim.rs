//! # Deferred reclamation: epochs in place of SRCU
//!
//! The reclaimer fastzap frees its shadow pages, rmap descriptors and memslots
//! with, public so that a VMM can protect its own lockless structures the same
//! way. A [`Reclaimer`] is one domain (fastzap has one per VM):
//!
//! | kernel | here |
//! |---|---|
//! | `srcu_read_lock` / `srcu_read_unlock` | [`Reclaimer::pin`] / drop the [`Guard`] |
//! | `call_srcu` | [`Guard::defer`] |
//! | `synchronize_srcu_expedited` | [`Reclaimer::synchronize`] |
//! | `srcu_barrier` | [`Reclaimer::barrier`] |
//!
//! # The contract, on every backend
//!
//! - A function deferred through a guard runs only once every guard pinned
//!   when it was deferred has been dropped. Without a [`Reclaimer::barrier`],
//!   nothing bounds how late it runs.
//! - [`Reclaimer::synchronize`] returns only once every guard pinned when the
//!   call began has been dropped. It promises nothing about deferred
//!   functions: crossbeam-epoch may run some as a side effect, the small EBR
//!   runs none; callers must not rely on either.
//! - [`Reclaimer::barrier`] is `synchronize`, and then every function deferred
//!   before the call has run (for crossbeam-epoch, on this thread or on threads
//!   since joined: see there).
//!
//! `core/tests/reclaim_contract.rs` checks the last two on every backend.
//!
//! # Backends
//!
//! [`ReclaimBackend::Crossbeam`] is crossbeam-epoch. [`ReclaimBackend::Small`]
//! is fastzap's own small epoch-based reclamation, written against its sync
//! facade so that the shuttle checker can see inside it, with a fixed number of
//! participant slots.
//!
//! # Example
//!
//! A value that readers load without a lock and a writer replaces: the old
//! value is freed once no reader can still hold it.
//!
//! ```
//! use std::sync::atomic::{AtomicPtr, Ordering};
//! use fastzap::reclaim::{ReclaimBackend, Reclaimer};
//!
//! let reclaimer = Reclaimer::new(ReclaimBackend::default())?;
//! let current = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
//!
//! // A reader: what it loads stays allocated while its guard is pinned.
//! {
//!     let _guard = reclaimer.pin();
//!     // SAFETY: the pointer is replaced only below, and freed only once
//!     // every guard pinned before it was unlinked has been dropped.
//!     let value = unsafe { *current.load(Ordering::Acquire) };
//!     assert_eq!(value, 1);
//! }
//!
//! // A writer: unlink the old value, then defer its free.
//! let old = current.swap(Box::into_raw(Box::new(2u64)), Ordering::AcqRel) as usize;
//! // SAFETY: `old` is unlinked, and freed once, after every guard that
//! // might have loaded it is gone.
//! reclaimer.pin().defer(move || drop(unsafe { Box::from_raw(old as *mut u64) }));
//!
//! reclaimer.barrier(); // the old value has been freed
//! // SAFETY: nothing else uses the current value any more.
//! drop(unsafe { Box::from_raw(current.load(Ordering::Acquire)) });
//! # Ok::<(), fastzap::reclaim::BackendError>(())
//! ```

use std::num::NonZeroUsize;

use super::ebr::{Ebr, EbrGuard, EbrMutant};
#[cfg(not(shuttle))]
use super::{Arc, AtomicBool, Ordering, yield_now};

#[cfg(not(shuttle))]
mod crossbeam;
#[cfg(not(shuttle))]
use crossbeam::CrossbeamBackend;

/// Which epoch implementation a [`Reclaimer`] (and a VM, through
/// `Config::reclaim`) uses.
///
/// The default is crossbeam-epoch, except under the shuttle checker (which
/// cannot see inside crossbeam-epoch) and under Miri (which reports UB inside
/// crossbeam-epoch 0.9's own participant list: SPEC.md, "What the checkers
/// cannot see"): there it is the small EBR with 8 slots.
///
/// ```
/// use fastzap::reclaim::ReclaimBackend;
///
/// if !cfg!(miri) {
///     assert_eq!(ReclaimBackend::default(), ReclaimBackend::Crossbeam);
/// }
/// let ReclaimBackend::Small { slots, .. } = ReclaimBackend::small(4) else { unreachable!() };
/// assert_eq!(slots, 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimBackend {
    /// crossbeam-epoch: no bound on the guards pinned at once, and nested pins
    /// on one thread are fine. The same backend in every build that has it;
    /// the shuttle lane has not (crossbeam-epoch's atomics are invisible to
    /// shuttle), and there [`Reclaimer::new`] refuses it with
    /// [`BackendError::Unavailable`] rather than substitute another.
    Crossbeam,
    /// The small EBR with `slots` participant slots: at most that many guards
    /// pinned at once (see [`ReclaimBackend::small`] for what happens beyond).
    /// Build it with [`ReclaimBackend::small`].
    #[non_exhaustive]
    Small {
        /// Participant slots: at most this many guards pinned at once.
        slots: usize,
    },
}

impl ReclaimBackend {
    /// The small EBR with `slots` participant slots.
    ///
    /// Each guard holds one slot from [`Reclaimer::pin`] until it is dropped.
    /// When all `slots` are held, `pin` waits (spinning, with a yield) until
    /// one of those guards is dropped. So a `pin` never returns if every
    /// slot is held by guards that are not dropped until it does: in
    /// particular, a thread that already holds all `slots` guards and pins
    /// again (with `small(1)`, any nested pin) waits for itself forever.
    /// `core/tests/reclaim_slots.rs` shows both.
    ///
    /// fastzap's own protocol holds at most one guard per thread at any time
    /// (each operation pins once; `zap_obsolete_pages` drops its guard before
    /// it pins again across a lock break), and no function it defers pins. A
    /// VM should still have at least as many slots as threads that may use it
    /// at once: a vCPU pins after it announces a lockless walk, and a TLB flush
    /// made by a thread that holds a guard waits for that walk to end.
    ///
    /// With no slot no guard could ever pin: `small(0)` is refused by
    /// [`Reclaimer::new`] ([`BackendError::NoSlots`]) and by `Config::validate`
    /// and `Vm::new` (`ConfigError::ReclaimSlots`), never rounded up.
    ///
    /// ```
    /// use fastzap::reclaim::{BackendError, ReclaimBackend, Reclaimer};
    /// use fastzap::{Config, ConfigError, MmuError, Vm};
    ///
    /// assert!(Reclaimer::new(ReclaimBackend::small(2)).is_ok());
    /// assert_eq!(Reclaimer::new(ReclaimBackend::small(0)).err(), Some(BackendError::NoSlots));
    ///
    /// let mut config = Config::model();
    /// config.reclaim = ReclaimBackend::small(0);
    /// assert_eq!(
    ///     Vm::new(config).unwrap_err(),
    ///     MmuError::InvalidConfig(ConfigError::ReclaimSlots { slots: 0 })
    /// );
    /// ```
    pub const fn small(slots: usize) -> ReclaimBackend {
        ReclaimBackend::Small { slots }
    }
}

impl Default for ReclaimBackend {
    /// crossbeam-epoch; the small EBR with 8 slots under shuttle and Miri.
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
    Crossbeam(CrossbeamBackend),
    Small(Ebr),
}

/// One reclamation domain: readers pin it, writers defer frees through it.
///
/// ```
/// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
///
/// let reclaimer = Reclaimer::new(ReclaimBackend::small(4))?;
/// let guard = reclaimer.pin();
/// guard.defer(|| println!("no guard pinned before this can see it now"));
/// drop(guard);
/// reclaimer.barrier();
/// # Ok::<(), fastzap::reclaim::BackendError>(())
/// ```
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

/// A pinned reader ([`Reclaimer::pin`]). Whatever it loaded from shared memory
/// stays allocated until it is dropped.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
///
/// let reclaimer = Reclaimer::new(ReclaimBackend::small(2))?;
/// let freed = Arc::new(AtomicBool::new(false));
/// let reader = reclaimer.pin();
/// {
///     let flag = freed.clone();
///     reclaimer.pin().defer(move || flag.store(true, Ordering::Release));
/// }
/// reclaimer.flush();
/// assert!(!freed.load(Ordering::Acquire), "the reader is still pinned");
/// drop(reader);
/// reclaimer.barrier();
/// assert!(freed.load(Ordering::Acquire));
/// # Ok::<(), fastzap::reclaim::BackendError>(())
/// ```
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

/// Why [`Reclaimer::new`] refused a backend.
///
/// ```
/// use fastzap::reclaim::{BackendError, ReclaimBackend, Reclaimer};
///
/// let error = Reclaimer::new(ReclaimBackend::small(0)).unwrap_err();
/// assert_eq!(error, BackendError::NoSlots);
/// assert_eq!(error.to_string(), "the small EBR needs at least one participant slot");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The backend is not available in this build: crossbeam-epoch under the
    /// shuttle checker.
    Unavailable,
    /// The small EBR with no participant slot: no guard could ever pin.
    NoSlots,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendError::Unavailable => "this reclamation backend is not available in this build",
            BackendError::NoSlots => "the small EBR needs at least one participant slot",
        })
    }
}

impl std::error::Error for BackendError {}

impl Reclaimer {
    /// A reclaimer with `backend`.
    ///
    /// # Errors
    ///
    /// [`BackendError::NoSlots`] for the small EBR with no slot (everywhere);
    /// [`BackendError::Unavailable`] for crossbeam-epoch under the shuttle
    /// checker.
    ///
    /// ```
    /// use fastzap::reclaim::{BackendError, ReclaimBackend, Reclaimer};
    ///
    /// assert!(Reclaimer::new(ReclaimBackend::Crossbeam).is_ok());
    /// assert!(Reclaimer::new(ReclaimBackend::small(1)).is_ok());
    /// assert_eq!(Reclaimer::new(ReclaimBackend::small(0)).err(), Some(BackendError::NoSlots));
    /// ```
    pub fn new(backend: ReclaimBackend) -> Result<Self, BackendError> {
        Reclaimer::with_mutant(backend, EbrMutant::None)
    }

    /// The small EBR with `slots` slots and a deliberate bug, for the models
    /// that prove they catch it.
    #[doc(hidden)]
    pub fn small_mutant(slots: usize, mutant: EbrMutant) -> Result<Self, BackendError> {
        Reclaimer::with_mutant(ReclaimBackend::small(slots), mutant)
    }

    fn with_mutant(backend: ReclaimBackend, mutant: EbrMutant) -> Result<Self, BackendError> {
        let backend = match backend {
            #[cfg(not(shuttle))]
            ReclaimBackend::Crossbeam => Backend::Crossbeam(CrossbeamBackend::new()),
            #[cfg(shuttle)]
            ReclaimBackend::Crossbeam => return Err(BackendError::Unavailable),
            ReclaimBackend::Small { slots } => {
                let slots = NonZeroUsize::new(slots).ok_or(BackendError::NoSlots)?;
                Backend::Small(Ebr::new(slots, mutant))
            }
        };
        Ok(Reclaimer { backend })
    }

    /// Pins the calling thread (`srcu_read_lock`) until the guard is dropped.
    ///
    /// crossbeam-epoch never waits here, and pins nest. The small EBR waits
    /// while all its slots are held by other guards, and returns once one is
    /// dropped; a thread that holds every slot and pins again waits forever
    /// ([`ReclaimBackend::small`]).
    ///
    /// ```
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Reclaimer::new(ReclaimBackend::Crossbeam)?;
    /// let outer = reclaimer.pin();
    /// let inner = reclaimer.pin(); // nested: fine with crossbeam-epoch
    /// drop((inner, outer));
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    #[inline]
    pub fn pin(&self) -> Guard<'_> {
        let inner = match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(cb) => GuardInner::Crossbeam(cb.pin(), std::marker::PhantomData),
            Backend::Small(ebr) => GuardInner::Small(ebr.pin()),
        };
        Guard { inner }
    }

    /// Tries to advance the epoch and runs the deferred functions that are
    /// ready. Promises no progress: [`Reclaimer::barrier`] does.
    ///
    /// ```
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Reclaimer::new(ReclaimBackend::small(2))?;
    /// reclaimer.pin().defer(|| {});
    /// reclaimer.flush();
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn flush(&self) {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(cb) => cb.pin().flush(),
            // Unpinned: a pinned flusher would hold the epoch back, and with one
            // slot a deferred function that pins would wait for it forever.
            Backend::Small(ebr) => ebr.flush(),
        }
    }

    /// A grace period (`synchronize_srcu_expedited`): every guard pinned when
    /// this call began has been dropped when it returns.
    ///
    /// It promises nothing about deferred functions; use
    /// [`Reclaimer::barrier`] to wait for them. The small EBR waits for
    /// readers only and runs none. crossbeam-epoch's public API exposes
    /// neither its global epoch nor its participants, so there this call
    /// defers a flag and flushes until it has run, which also runs earlier
    /// deferred functions (and waits behind them) as a side effect.
    ///
    /// Never call it while holding a [`Guard`] of this reclaimer, or a lock
    /// that a pinned reader may be waiting for: the two would wait for each
    /// other forever.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Reclaimer::new(ReclaimBackend::small(2))?;
    /// let dropping = AtomicBool::new(false);
    /// let pinned = std::sync::Barrier::new(2);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let guard = reclaimer.pin();
    ///         pinned.wait();
    ///         std::thread::sleep(std::time::Duration::from_millis(10));
    ///         dropping.store(true, Ordering::Release);
    ///         drop(guard);
    ///     });
    ///     pinned.wait();
    ///     reclaimer.synchronize();
    ///     assert!(dropping.load(Ordering::Acquire), "a reader pinned before it is still pinned");
    /// });
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn synchronize(&self) {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(_) => self.deferred_flag_barrier(),
            Backend::Small(ebr) => ebr.synchronize(),
        }
    }

    /// `srcu_barrier`: a grace period ([`Reclaimer::synchronize`]), and then
    /// every function deferred before this call has run. One call is enough
    /// (core/tests/reclaim_contract.rs).
    ///
    /// With crossbeam-epoch, "deferred before this call" covers what this
    /// thread deferred and what threads since joined deferred (joined: the end
    /// of a `thread::scope` waits for the closures, not for the thread-local
    /// destructors that hand a thread's bag over). A thread still running
    /// keeps its deferred functions in its own local bag (up to 64) until it
    /// fills the bag, flushes, or exits, and crossbeam's public API gives no
    /// way to reach that bag: join (or quiesce and flush on) the other threads
    /// first. The small EBR's garbage is shared, so its barrier covers every
    /// thread. Call it with no guard of this reclaimer pinned.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// for backend in [ReclaimBackend::Crossbeam, ReclaimBackend::small(2)] {
    ///     let reclaimer = Reclaimer::new(backend)?;
    ///     let ran = Arc::new(AtomicUsize::new(0));
    ///     for _ in 0..100 {
    ///         let ran = ran.clone();
    ///         reclaimer.pin().defer(move || { ran.fetch_add(1, Ordering::Relaxed); });
    ///     }
    ///     reclaimer.barrier();
    ///     assert_eq!(ran.load(Ordering::Relaxed), 100);
    /// }
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn barrier(&self) {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(_) => self.deferred_flag_barrier(),
            Backend::Small(ebr) => ebr.barrier(),
        }
    }

    /// Defers a flag and flushes until it has run.
    #[cfg(not(shuttle))]
    fn deferred_flag_barrier(&self) {
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

    /// The number of deferred functions not yet run, where the backend can
    /// tell: the small EBR can; crossbeam-epoch's public API cannot (`None`).
    /// The audit balances the reclamation counts with it (I9).
    #[doc(hidden)]
    pub fn pending(&self) -> Option<usize> {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(_) => None,
            Backend::Small(ebr) => Some(ebr.pending()),
        }
    }

    /// [`Reclaimer::barrier`] `rounds` times: for deferred functions that
    /// defer more (each round runs one more generation of them).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Arc::new(Reclaimer::new(ReclaimBackend::small(2))?);
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let (r, flag) = (reclaimer.clone(), ran.clone());
    /// reclaimer.pin().defer(move || {
    ///     // Runs at the first barrier and defers again, for the second.
    ///     r.pin().defer(move || flag.store(true, Ordering::Release));
    /// });
    /// reclaimer.drain(2);
    /// assert!(ran.load(Ordering::Acquire));
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn drain(&self, rounds: usize) {
        for _ in 0..rounds {
            self.barrier();
        }
    }
}

impl Guard<'_> {
    /// Runs `f` once every guard pinned now has been dropped (`call_srcu`),
    /// on whichever thread flushes or pins then. Without a
    /// [`Reclaimer::barrier`], nothing bounds how late.
    ///
    /// ```
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Reclaimer::new(ReclaimBackend::default())?;
    /// let old = Box::new([0u8; 64]);
    /// reclaimer.pin().defer(move || drop(old));
    /// reclaimer.barrier();
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn defer(&self, f: impl FnOnce() + Send + 'static) {
        match &self.inner {
            #[cfg(not(shuttle))]
            GuardInner::Crossbeam(guard, _) => guard.defer(f),
            GuardInner::Small(guard) => guard.defer(f),
        }
    }

    /// Pushes deferred functions towards execution and runs those that are
    /// ready. This guard stays pinned, so it holds the epoch back: what was
    /// deferred while it was pinned cannot run yet.
    ///
    /// ```
    /// use fastzap::reclaim::{ReclaimBackend, Reclaimer};
    ///
    /// let reclaimer = Reclaimer::new(ReclaimBackend::Crossbeam)?;
    /// let guard = reclaimer.pin();
    /// guard.defer(|| {});
    /// guard.flush();
    /// # Ok::<(), fastzap::reclaim::BackendError>(())
    /// ```
    pub fn flush(&self) {
        match &self.inner {
            #[cfg(not(shuttle))]
            GuardInner::Crossbeam(guard, _) => guard.flush(),
            GuardInner::Small(guard) => guard.flush(),
        }
    }
}

#[cfg(all(test, not(loom), not(shuttle)))]
mod tests;

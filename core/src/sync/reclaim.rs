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
#[cfg(not(shuttle))]
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
    /// The small EBR with `slots` participant slots: at most that many guards
    /// pinned at once, and more wait. With no slot no guard could ever pin:
    /// `small(0)` is refused by [`Reclaimer::new`] ([`BackendError::NoSlots`])
    /// and by `Config::validate` and `Vm::new` (`ConfigError::ReclaimSlots`),
    /// never rounded up.
    ///
    /// ```
    /// use fastzap::{Config, ConfigError, MmuError, ReclaimBackend, Vm};
    ///
    /// let mut config = Config::model();
    /// config.reclaim = ReclaimBackend::small(0);
    /// assert_eq!(
    ///     Vm::new(config).unwrap_err(),
    ///     MmuError::InvalidConfig(ConfigError::ReclaimSlots { slots: 0 })
    /// );
    /// ```
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
    Crossbeam(CrossbeamBackend),
    Small(Ebr),
}

/// crossbeam-epoch's collector, and natively the identity its per-thread
/// handles are found by.
#[cfg(not(shuttle))]
struct CrossbeamBackend {
    collector: crossbeam_epoch::Collector,
    /// Unique per reclaimer, never reused: the key of the thread-local handles.
    #[cfg(not(loom))]
    id: u64,
    /// Alive as long as the reclaimer: a thread's handle for a dead reclaimer
    /// is dropped the next time that thread registers another.
    #[cfg(not(loom))]
    token: std::sync::Arc<()>,
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

/// Why [`Reclaimer::new`] refused a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The backend is not available in this lane (crossbeam-epoch under
    /// shuttle).
    Unavailable,
    /// The small EBR with no participant slot: no guard could ever pin.
    NoSlots,
}

impl Reclaimer {
    /// A reclaimer with `backend`. Under shuttle, `Crossbeam` is refused
    /// ([`BackendError::Unavailable`]); the small EBR with no slot is refused
    /// everywhere ([`BackendError::NoSlots`]).
    pub fn new(backend: ReclaimBackend) -> Result<Self, BackendError> {
        let backend = match backend {
            #[cfg(not(shuttle))]
            ReclaimBackend::Crossbeam => Backend::Crossbeam(CrossbeamBackend::new()),
            #[cfg(shuttle)]
            ReclaimBackend::Crossbeam => return Err(BackendError::Unavailable),
            ReclaimBackend::Small { slots: 0, .. } => return Err(BackendError::NoSlots),
            ReclaimBackend::Small { slots, mutant } => Backend::Small(Ebr::new(slots, mutant)),
        };
        Ok(Reclaimer { backend })
    }

    /// Pins the calling thread: `srcu_read_lock`.
    #[inline]
    pub fn pin(&self) -> Guard<'_> {
        let inner = match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(cb) => GuardInner::Crossbeam(cb.pin(), std::marker::PhantomData),
            Backend::Small(ebr) => GuardInner::Small(ebr.pin()),
        };
        Guard { inner }
    }

    /// Tries to advance the epoch and frees what is ready.
    pub fn flush(&self) {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(cb) => cb.pin().flush(),
            // Unpinned: a pinned flusher would hold the epoch back, and with one
            // slot a deferred function that pins would wait for it forever.
            Backend::Small(ebr) => ebr.flush(),
        }
    }

    /// Waits for a grace period: every guard pinned when this call began has been
    /// dropped when it returns. `synchronize_srcu_expedited`.
    ///
    /// With the small EBR this waits for readers only, never for garbage
    /// ([`Ebr::synchronize`]). crossbeam-epoch cannot do that: its public API
    /// (`Collector::register`, `LocalHandle::pin`, `Guard::{defer, flush,
    /// repin}`) exposes neither the global epoch nor the participants, so the
    /// only grace period it lets a caller observe is a deferred function being
    /// run. Deferred functions run from one FIFO queue of bags, at most eight
    /// bags per collection, so that flag runs only after every bag queued before
    /// it: with crossbeam this call waits behind the garbage.
    ///
    /// Never call it while holding `mmu_lock` or a [`Guard`]: a reader may be
    /// pinned and waiting for that lock, and the two would wait for each other
    /// forever.
    pub fn synchronize(&self) {
        match &self.backend {
            #[cfg(not(shuttle))]
            Backend::Crossbeam(_) => self.deferred_flag_barrier(),
            Backend::Small(ebr) => ebr.synchronize(),
        }
    }

    /// `srcu_barrier`: a grace period, and then every function deferred before
    /// this call has run, and none is pending: one call is enough
    /// (core/tests/reclaim_contract.rs). For tests that balance the
    /// allocation counters.
    ///
    /// With crossbeam-epoch, "deferred before this call" covers what this
    /// thread deferred and what threads since joined deferred (joined: the end
    /// of a `thread::scope` waits for the closures, not for the thread-local
    /// destructors that hand a thread's bag over). A
    /// thread still running keeps its deferred functions in its own local bag
    /// (up to 64) until it fills the bag, flushes, or exits, and crossbeam's
    /// public API gives no way to reach that bag: join (or quiesce and flush
    /// on) the other threads first. The small EBR's garbage is shared, so its
    /// barrier covers every thread.
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

    /// [`Reclaimer::barrier`] `rounds` times, for tests that balance the
    /// allocation counters at the end.
    pub fn drain(&self, rounds: usize) {
        for _ in 0..rounds {
            self.barrier();
        }
    }
}

#[cfg(all(not(shuttle), not(loom)))]
impl CrossbeamBackend {
    fn new() -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        CrossbeamBackend {
            collector: crossbeam_epoch::Collector::new(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            token: std::sync::Arc::new(()),
        }
    }

    /// Pins through this thread's handle for this collector, registered on first
    /// use: O(1) however many reclaimers the thread uses (the last one used is
    /// checked first, in a thread-local without a destructor, then a map by id).
    ///
    /// The map is borrowed only to find the handle, never while pinning:
    /// crossbeam runs deferred functions inside `pin` (every 128th), and a
    /// deferred function may itself pin, which must not find the map borrowed.
    #[inline]
    fn pin(&self) -> crossbeam_epoch::Guard {
        let (id, handle) = LAST.get();
        if id == self.id {
            // SAFETY: `LAST` names a handle only while `HANDLES` holds it: it
            // is set from the map's entry for `id`, and cleared before the
            // map is destroyed (`Handles::drop`). The map drops an entry only
            // once its reclaimer is gone (`Handles::get`'s prune), and ids are
            // never reused, so an `id` equal to the live `self.id` names an
            // entry still in the map. Nothing removes it while this pin runs
            // (a deferred function that pins another reclaimer prunes only
            // dead ones), and the handle is used only on this thread.
            return unsafe { &*handle }.pin();
        }
        self.pin_slow()
    }

    /// [`CrossbeamBackend::pin`] when this reclaimer is not the one the thread
    /// pinned last.
    #[cold]
    fn pin_slow(&self) -> crossbeam_epoch::Guard {
        let handle = HANDLES.try_with(|handles| match handles.try_borrow_mut() {
            Ok(mut handles) => Some(handles.get(self)),
            Err(_) => None,
        });
        match handle {
            Ok(Some(handle)) => handle.pin(),
            // The thread is exiting (its thread-locals are gone), or this is a
            // reentrant call from inside the lookup: a fresh handle, dropped
            // with the guard.
            _ => self.collector.register().pin(),
        }
    }
}

/// This thread's crossbeam handles, one per live reclaimer it has pinned.
#[cfg(all(not(shuttle), not(loom)))]
struct Handles {
    /// Every handle, by reclaimer id.
    by_id: std::collections::HashMap<u64, HandleEntry, IdHasher>,
}

#[cfg(all(not(shuttle), not(loom)))]
struct HandleEntry {
    handle: std::rc::Rc<crossbeam_epoch::LocalHandle>,
    alive: std::sync::Weak<()>,
}

#[cfg(all(not(shuttle), not(loom)))]
thread_local! {
    static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::new(Handles {
        by_id: std::collections::HashMap::default(),
    });
    /// The reclaimer this thread pinned last (its id; 0: none) and its handle,
    /// which `HANDLES` owns. Const-initialised and without a destructor, so
    /// that reading it is one thread-local load with no lazy-initialisation
    /// check, and it stays readable while the thread's thread-locals are
    /// destroyed.
    static LAST: std::cell::Cell<(u64, *const crossbeam_epoch::LocalHandle)> =
        const { std::cell::Cell::new((0, std::ptr::null())) };
}

#[cfg(all(not(shuttle), not(loom)))]
impl Drop for Handles {
    fn drop(&mut self) {
        // The handles go with the map: `LAST` must not name one of them.
        LAST.set((0, std::ptr::null()));
    }
}

#[cfg(all(not(shuttle), not(loom)))]
impl Handles {
    /// This thread's handle for `cb`, registered if it has none; it becomes
    /// the one `LAST` names.
    fn get(&mut self, cb: &CrossbeamBackend) -> std::rc::Rc<crossbeam_epoch::LocalHandle> {
        let handle = match self.by_id.get(&cb.id) {
            Some(entry) => entry.handle.clone(),
            None => {
                // Handles of reclaimers dropped since keep their collector's
                // memory alive: let them go first. `LAST` may name one of
                // them, but only by the id of a dropped reclaimer, which no
                // live reclaimer has: it is overwritten below in any case.
                self.by_id.retain(|_, e| e.alive.strong_count() > 0);
                let handle = std::rc::Rc::new(cb.collector.register());
                self.by_id.insert(
                    cb.id,
                    HandleEntry {
                        handle: handle.clone(),
                        alive: std::sync::Arc::downgrade(&cb.token),
                    },
                );
                handle
            }
        };
        LAST.set((cb.id, std::rc::Rc::as_ptr(&handle)));
        handle
    }
}

/// Reclaimer ids are unique small integers: a multiplicative hash is enough.
#[cfg(all(not(shuttle), not(loom)))]
#[derive(Default, Clone, Copy)]
struct IdHasher;

#[cfg(all(not(shuttle), not(loom)))]
impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

#[cfg(all(not(shuttle), not(loom)))]
struct IdHash(u64);

#[cfg(all(not(shuttle), not(loom)))]
impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(loom)]
impl CrossbeamBackend {
    fn new() -> Self {
        CrossbeamBackend {
            collector: crossbeam_epoch::Collector::new(),
        }
    }

    fn pin(&self) -> crossbeam_epoch::Guard {
        // Under loom a thread-local cache would outlive the execution;
        // registering per pin is cheap at model sizes. The guard keeps its
        // participant alive.
        self.collector.register().pin()
    }
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

#[cfg(all(test, not(loom), not(shuttle)))]
mod tests;

//! The crossbeam-epoch backend of [`Reclaimer`](super::Reclaimer): one
//! collector per reclaimer and, natively, a per-thread cache of its handles.

/// crossbeam-epoch's collector, and natively the identity its per-thread
/// handles are found by.
pub(super) struct CrossbeamBackend {
    collector: crossbeam_epoch::Collector,
    /// Unique per reclaimer, never reused: the key of the thread-local handles.
    #[cfg(not(loom))]
    pub(super) id: u64,
    /// Alive as long as the reclaimer: a thread's handle for a dead reclaimer
    /// is dropped the next time that thread registers another.
    #[cfg(not(loom))]
    token: std::sync::Arc<()>,
}

#[cfg(all(not(shuttle), not(loom)))]
impl CrossbeamBackend {
    pub(super) fn new() -> Self {
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
    pub(super) fn pin(&self) -> crossbeam_epoch::Guard {
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
pub(super) struct Handles {
    /// Every handle, by reclaimer id.
    pub(super) by_id: std::collections::HashMap<u64, HandleEntry, IdHasher>,
}

#[cfg(all(not(shuttle), not(loom)))]
pub(super) struct HandleEntry {
    handle: std::rc::Rc<crossbeam_epoch::LocalHandle>,
    alive: std::sync::Weak<()>,
}

#[cfg(all(not(shuttle), not(loom)))]
thread_local! {
    pub(super) static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::new(Handles {
        by_id: std::collections::HashMap::default(),
    });
    /// The reclaimer this thread pinned last (its id; 0: none) and its handle,
    /// which `HANDLES` owns. Const-initialised and without a destructor, so
    /// that reading it is one thread-local load with no lazy-initialisation
    /// check, and it stays readable while the thread's thread-locals are
    /// destroyed.
    pub(super) static LAST: std::cell::Cell<(u64, *const crossbeam_epoch::LocalHandle)> =
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
pub(super) struct IdHasher;

#[cfg(all(not(shuttle), not(loom)))]
impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

#[cfg(all(not(shuttle), not(loom)))]
pub(super) struct IdHash(u64);

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
    pub(super) fn new() -> Self {
        CrossbeamBackend {
            collector: crossbeam_epoch::Collector::new(),
        }
    }

    pub(super) fn pin(&self) -> crossbeam_epoch::Guard {
        // Under loom a thread-local cache would outlive the execution;
        // registering per pin is cheap at model sizes. The guard keeps its
        // participant alive.
        self.collector.register().pin()
    }
}

//! # A small epoch-based reclamation, written only against the facade atomics
//!
//! crossbeam-epoch's operations are not scheduling points for shuttle, so an
//! injected use-after-free behind it goes unseen. This module is the reclamation
//! the shuttle lane runs on (and that 3-actor loom models may choose, because the
//! real crossbeam-epoch makes them too slow). Its own correctness is model-checked
//! by loom, including two mutants that loom must catch: freeing after one epoch
//! instead of two, and pinning without the `SeqCst` fence.
//!
//! # Participants
//! A fixed array of participant slots. A slot is `0` when free and
//! `(epoch << 1) | 1` while a guard is pinned in `epoch`. Pinning claims a free
//! slot with one compare-and-swap that also publishes the epoch.
//!
//! # Pinning
//! Store the pinned epoch, then `fence(SeqCst)`, then read shared pointers. The
//! fence pairs with the one in [`Ebr::try_advance`]: either the advancer sees this
//! participant pinned, or this participant's later loads see everything the
//! retiring thread unlinked before its own fence.
//!
//! # Garbage
//! A deferred function is stamped with the global epoch read after the object was
//! unlinked. The global epoch moves from `e` to `e + 1` only when every pinned
//! participant is pinned in `e`. So when it reaches `stamp + 2`, every participant
//! that was pinned at retirement has unpinned since, and nothing can still hold
//! the object: it is freed.

use super::{AtomicUsize, Mutex, Ordering, fence, yield_now};

/// A deliberate bug in the small EBR, so that its loom model can prove it catches
/// each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EbrMutant {
    /// The correct scheme.
    #[default]
    None,
    /// Free garbage one epoch after retirement instead of two.
    FreeAfterOneEpoch,
    /// Omit the `SeqCst` fence after publishing the pinned epoch.
    NoFenceInPin,
}

type Deferred = Box<dyn FnOnce() + Send>;

/// The small epoch-based reclaimer. One per VM (or per model execution).
pub struct Ebr {
    global_epoch: AtomicUsize,
    slots: Box<[AtomicUsize]>,
    garbage: Mutex<Vec<(usize, Deferred)>>,
    mutant: EbrMutant,
}

impl std::fmt::Debug for Ebr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ebr")
            .field("global_epoch", &self.global_epoch.load(Ordering::Relaxed))
            .field("slots", &self.slots.len())
            .field("mutant", &self.mutant)
            .finish_non_exhaustive()
    }
}

/// A pinned participant of an [`Ebr`]. Objects retired after it pinned stay
/// allocated until it is dropped.
#[derive(Debug)]
pub struct EbrGuard<'a> {
    ebr: &'a Ebr,
    slot: usize,
}

const PINNED: usize = 1;

impl Ebr {
    /// A reclaimer with `slots` participant slots: at most that many guards can be
    /// pinned at once (more wait). Models use one slot per thread to stay small.
    pub fn new(slots: usize, mutant: EbrMutant) -> Self {
        let slots = slots.max(1);
        Ebr {
            global_epoch: AtomicUsize::new(0),
            slots: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            garbage: Mutex::new(Vec::new()),
            mutant,
        }
    }

    /// Pins the calling thread.
    pub fn pin(&self) -> EbrGuard<'_> {
        loop {
            for (index, slot) in self.slots.iter().enumerate() {
                let epoch = self.global_epoch.load(Ordering::Relaxed);
                let pinned = (epoch << 1) | PINNED;
                if slot
                    .compare_exchange(0, pinned, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    if self.mutant != EbrMutant::NoFenceInPin {
                        // Orders the epoch store before this guard's loads of
                        // shared pointers; pairs with the fence in try_advance.
                        fence(Ordering::SeqCst);
                    }
                    return EbrGuard {
                        ebr: self,
                        slot: index,
                    };
                }
            }
            yield_now();
        }
    }

    /// Moves the global epoch forward if every pinned participant is pinned in
    /// the current epoch. Returns whether it moved.
    pub fn try_advance(&self) -> bool {
        let epoch = self.global_epoch.load(Ordering::Relaxed);
        fence(Ordering::SeqCst);
        for slot in self.slots.iter() {
            let state = slot.load(Ordering::Relaxed);
            if state & PINNED == PINNED && state >> 1 != epoch {
                return false;
            }
        }
        fence(Ordering::Acquire);
        self.global_epoch
            .compare_exchange(epoch, epoch + 1, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Runs every deferred function whose grace period has passed.
    pub fn collect(&self) {
        let epoch = self.global_epoch.load(Ordering::Acquire);
        let distance = match self.mutant {
            EbrMutant::FreeAfterOneEpoch => 1,
            _ => 2,
        };
        let ready: Vec<Deferred> = {
            let mut garbage = self.garbage.lock();
            let mut ready = Vec::new();
            let mut index = 0;
            while index < garbage.len() {
                if garbage[index].0 + distance <= epoch {
                    ready.push(garbage.swap_remove(index).1);
                } else {
                    index += 1;
                }
            }
            ready
        };
        for deferred in ready {
            deferred();
        }
    }

    /// Tries to advance, then collects.
    pub fn flush(&self) {
        self.try_advance();
        self.collect();
    }

    /// The number of deferred functions not yet run.
    pub fn pending(&self) -> usize {
        self.garbage.lock().len()
    }

    /// The current global epoch.
    pub fn epoch(&self) -> usize {
        self.global_epoch.load(Ordering::Relaxed)
    }

    fn defer_boxed(&self, deferred: Deferred) {
        // The object was unlinked before this call; the stamp is read after that.
        fence(Ordering::SeqCst);
        let stamp = self.global_epoch.load(Ordering::Relaxed);
        self.garbage.lock().push((stamp, deferred));
    }
}

impl Drop for Ebr {
    fn drop(&mut self) {
        // No guard can outlive the Ebr it borrows, so everything left is garbage
        // with no reader.
        let garbage = std::mem::take(&mut *self.garbage.lock());
        for (_, deferred) in garbage {
            deferred();
        }
    }
}

impl EbrGuard<'_> {
    /// Runs `f` once no participant pinned now can still hold what it frees.
    pub fn defer(&self, f: impl FnOnce() + Send + 'static) {
        self.ebr.defer_boxed(Box::new(f));
    }

    /// Tries to advance the epoch and runs what is ready.
    pub fn flush(&self) {
        self.ebr.flush();
    }
}

impl Drop for EbrGuard<'_> {
    fn drop(&mut self) {
        self.ebr.slots[self.slot].store(0, Ordering::Release);
    }
}

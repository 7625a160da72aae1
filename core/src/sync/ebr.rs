//! # A small epoch-based reclamation, written only against the facade atomics
//!
//! crossbeam-epoch's operations are not scheduling points for shuttle, so an
//! injected use-after-free behind it goes unseen. This module is the reclamation
//! the shuttle lane runs on (and that 3-actor loom models may choose, because the
//! real crossbeam-epoch makes them too slow). Its own correctness is model-checked
//! by loom, including two mutants that loom must catch: freeing after one epoch
//! instead of two, and pinning without the `SeqCst` fence.
//!
//! It is also a native backend in its own right, because it can do what
//! crossbeam-epoch cannot: wait for a grace period without waiting for the
//! garbage ([`Ebr::synchronize`]).
//!
//! # Participants
//! A fixed array of participant slots, each on its own cache line. A slot is
//! `0` when free and `(epoch << 1) | 1` while a guard is pinned in `epoch`.
//! Pinning claims a free slot with one compare-and-swap that also publishes the
//! epoch. Natively a thread starts its search at its own slot index, so that
//! threads do not contend on slot 0; pinning costs the same however many `Ebr`s
//! a thread uses (there is no per-thread registration to look up).
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
//! the object: it is freed. Garbage is kept in bags, one per stamp, in the order
//! it was deferred, so that collecting costs what it frees, not what is queued.
//!
//! # Grace periods
//! [`Ebr::synchronize`] is the same argument without an object: it reads the
//! epoch `e` after a `fence(SeqCst)` and returns once the global epoch reaches
//! `e + 2`. Every guard pinned before the call has then been dropped. It runs
//! no deferred function: a grace period waits for readers, not for garbage.
//! [`Ebr::barrier`] (`srcu_barrier`) also runs everything deferred before it.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

use super::{AtomicUsize, Mutex, Ordering, fence, yield_now};

/// A deliberate bug in the small EBR, so that its loom model can prove it catches
/// each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EbrMutant {
    /// The correct scheme.
    #[default]
    None,
    /// Free garbage one epoch after retirement instead of two (and end a grace
    /// period after one epoch).
    FreeAfterOneEpoch,
    /// Omit the `SeqCst` fence after publishing the pinned epoch.
    NoFenceInPin,
}

type Deferred = Box<dyn FnOnce() + Send>;

/// A participant slot, alone on its cache line.
#[repr(align(64))]
struct Slot(AtomicUsize);

/// The deferred functions, in bags of one stamp each, oldest first.
#[derive(Default)]
struct Garbage {
    bags: VecDeque<(usize, Vec<Deferred>)>,
    len: usize,
    /// Deferred since the last automatic collection (native only).
    since_collect: usize,
}

/// The small epoch-based reclaimer. One per VM (or per model execution).
pub struct Ebr {
    global_epoch: AtomicUsize,
    slots: Box<[Slot]>,
    garbage: Mutex<Garbage>,
    mutant: EbrMutant,
    /// Natively: a guard's drop collects when this is set (see `AUTO_COLLECT`).
    #[cfg(not(any(loom, shuttle)))]
    collect_wanted: std::sync::atomic::AtomicBool,
}

/// Natively, after this many deferred functions the next guard to unpin tries to
/// advance and runs at most this many ready ones, so that garbage stays bounded
/// without anyone calling [`Ebr::flush`]. (The models flush explicitly: an
/// automatic collection would only add executions to explore.)
#[cfg(not(any(loom, shuttle)))]
const AUTO_COLLECT: usize = 1024;

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

/// Where the calling thread starts looking for a free slot.
#[cfg(not(any(loom, shuttle)))]
fn first_slot(slots: usize) -> usize {
    use std::cell::Cell;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let hint = HINT.with(|h| {
        if h.get() == usize::MAX {
            h.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        h.get()
    });
    hint % slots
}

/// In the models every search starts at slot 0, which keeps them small.
#[cfg(any(loom, shuttle))]
fn first_slot(_slots: usize) -> usize {
    0
}

impl Ebr {
    /// A reclaimer with `slots` participant slots: at most that many guards can be
    /// pinned at once (more wait in [`Ebr::pin`]). Models use one slot per thread
    /// to stay small.
    pub fn new(slots: NonZeroUsize, mutant: EbrMutant) -> Self {
        Ebr {
            global_epoch: AtomicUsize::new(0),
            slots: (0..slots.get())
                .map(|_| Slot(AtomicUsize::new(0)))
                .collect(),
            garbage: Mutex::new(Garbage::default()),
            mutant,
            #[cfg(not(any(loom, shuttle)))]
            collect_wanted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Pins the calling thread: claims a free slot. While every slot is held
    /// it waits, yielding, until a guard is dropped; it never returns if none
    /// of the guards holding them is dropped (a thread that holds every slot
    /// and pins again).
    pub fn pin(&self) -> EbrGuard<'_> {
        let n = self.slots.len();
        let first = first_slot(n);
        loop {
            for step in 0..n {
                let index = (first + step) % n;
                let slot = &self.slots[index].0;
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
            let state = slot.0.load(Ordering::Relaxed);
            if state & PINNED == PINNED && state >> 1 != epoch {
                return false;
            }
        }
        fence(Ordering::Acquire);
        self.global_epoch
            .compare_exchange(epoch, epoch + 1, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// How many epochs garbage (and a grace period) must wait.
    fn distance(&self) -> usize {
        match self.mutant {
            EbrMutant::FreeAfterOneEpoch => 1,
            _ => 2,
        }
    }

    /// Runs every deferred function whose grace period has passed.
    pub fn collect(&self) {
        self.collect_at_most(usize::MAX);
    }

    /// Runs at most `budget` deferred functions whose grace period has passed,
    /// oldest first, outside the lock (a deferred function may pin, or defer).
    fn collect_at_most(&self, budget: usize) {
        let epoch = self.global_epoch.load(Ordering::Acquire);
        let distance = self.distance();
        let mut ready: Vec<Deferred> = Vec::new();
        {
            let mut garbage = self.garbage.lock();
            while ready.len() < budget {
                let Some((stamp, bag)) = garbage.bags.front_mut() else {
                    break;
                };
                if *stamp + distance > epoch {
                    // Stamps are read after a fence and only grow, except that
                    // a bag deferred a little late may sit behind a newer one:
                    // it then waits longer, which is always safe.
                    break;
                }
                let room = budget - ready.len();
                if bag.len() <= room {
                    ready.append(bag);
                    garbage.bags.pop_front();
                } else {
                    let rest = bag.split_off(room);
                    ready.append(bag);
                    *bag = rest;
                }
            }
            garbage.len -= ready.len();
        }
        for deferred in ready {
            deferred();
        }
    }

    /// Tries to advance, then collects. Call it unpinned: a pinned caller keeps
    /// the epoch from moving past its own.
    pub fn flush(&self) {
        self.try_advance();
        self.collect();
    }

    /// A grace period (`synchronize_srcu_expedited`): returns once every guard
    /// pinned before the call has been dropped. Runs no deferred function.
    ///
    /// The caller must not be pinned, or it waits for itself forever.
    pub fn synchronize(&self) {
        // Pairs with the fence in `pin`: a reader whose pinned loads could see
        // what the caller unlinked before this call published an epoch of at
        // most `start` before it loaded (see `defer_boxed` for the same argument).
        fence(Ordering::SeqCst);
        let start = self.global_epoch.load(Ordering::Relaxed);
        let target = start + self.distance();
        loop {
            if self.global_epoch.load(Ordering::Acquire) >= target {
                return;
            }
            if !self.try_advance() {
                yield_now();
            }
        }
    }

    /// `srcu_barrier`: a grace period, then every deferred function queued before
    /// the call is run (and whatever else is ready).
    ///
    /// The caller must not be pinned.
    pub fn barrier(&self) {
        self.synchronize();
        self.collect();
    }

    /// The number of deferred functions not yet run.
    pub fn pending(&self) -> usize {
        self.garbage.lock().len
    }

    /// The current global epoch.
    pub fn epoch(&self) -> usize {
        self.global_epoch.load(Ordering::Relaxed)
    }

    fn defer_boxed(&self, deferred: Deferred) {
        // The object was unlinked before this call; the stamp is read after that.
        fence(Ordering::SeqCst);
        let stamp = self.global_epoch.load(Ordering::Relaxed);
        let mut garbage = self.garbage.lock();
        match garbage.bags.back_mut() {
            Some((last, bag)) if *last == stamp => bag.push(deferred),
            _ => garbage.bags.push_back((stamp, vec![deferred])),
        }
        garbage.len += 1;
        garbage.since_collect += 1;
        #[cfg(not(any(loom, shuttle)))]
        if garbage.since_collect >= AUTO_COLLECT {
            garbage.since_collect = 0;
            self.collect_wanted
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Natively, after a guard unpinned: the automatic collection.
    #[cfg(not(any(loom, shuttle)))]
    fn after_unpin(&self) {
        if self
            .collect_wanted
            .load(std::sync::atomic::Ordering::Relaxed)
            && self
                .collect_wanted
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.try_advance();
            self.collect_at_most(AUTO_COLLECT);
        }
    }
}

impl Drop for Ebr {
    fn drop(&mut self) {
        // No guard can outlive the Ebr it borrows, so everything left is garbage
        // with no reader.
        let garbage = std::mem::take(&mut *self.garbage.lock());
        for (_, bag) in garbage.bags {
            for deferred in bag {
                deferred();
            }
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
        self.ebr.slots[self.slot].0.store(0, Ordering::Release);
        #[cfg(not(any(loom, shuttle)))]
        self.ebr.after_unpin();
    }
}

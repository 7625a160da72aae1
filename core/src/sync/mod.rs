//! # The sync facade
//!
//! This module is the only place in fastzap that names `std::sync`, `loom`,
//! `shuttle`, `arc_swap` or `crossbeam_epoch`. Everything else imports its
//! atomics, locks, cells, generation roots and reclamation from here, so one
//! protocol source runs in three lanes:
//!
//! | lane | how to select it | atomics, Mutex, Arc | generation root | reclamation |
//! |---|---|---|---|---|
//! | native | default | `std` | `arc_swap::ArcSwap` | `crossbeam_epoch` (or the small EBR) |
//! | loom | `--cfg loom --cfg crossbeam_loom` | `loom` | `Mutex<Arc<T>>` | `crossbeam_epoch` built on loom (or the small EBR) |
//! | shuttle | `--cfg shuttle` | `shuttle` | `Mutex<Arc<T>>` | the small EBR only |
//!
//! ## Why the root cell and the shuttle reclamation are facade types
//! `arc_swap` uses std atomics, so loom and shuttle never schedule around it:
//! under loom it explores exactly one execution. The generation root is therefore
//! the checker's `Mutex<Arc<T>>` in the checker lanes. crossbeam-epoch is visible
//! to loom only when built with its `loom` feature under `--cfg crossbeam_loom`,
//! and it is invisible to shuttle, whose lane therefore uses [`ebr`], a small
//! epoch-based reclamation written only against this facade's atomics.
//!
//! ## Ghost state
//! [`ghost`] holds state that the protocol never reads: allocation counters, the
//! event log, recorded violations. It uses plain std atomics on purpose, so that
//! it adds no scheduling points to a model.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(all(loom, not(crossbeam_loom)))]
compile_error!(
    "--cfg loom without --cfg crossbeam_loom: crossbeam-epoch would silently use std \
     atomics and loom would check nothing. Use RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom\"."
);
#[cfg(all(loom, shuttle))]
compile_error!(
    "--cfg loom together with --cfg shuttle: the two checkers are mutually exclusive, pick one"
);
#[cfg(all(crossbeam_loom, not(loom)))]
compile_error!("--cfg crossbeam_loom without --cfg loom: set both or neither");

pub mod cell;
pub mod ebr;
pub mod ghost;
pub mod reclaim;
pub mod root;

pub use cell::UnsafeCell;
pub use reclaim::{Guard, ReclaimBackend, Reclaimer};
pub use root::{GenRoot, RootRef};

#[cfg(not(any(loom, shuttle)))]
mod native;
#[cfg(not(any(loom, shuttle)))]
use native as lane;

#[cfg(loom)]
mod lane {
    pub use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::AtomicPtr as RawAtomicPtr;
    pub use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use loom::sync::{Mutex as RawMutex, MutexGuard as RawMutexGuard};
    pub(crate) use loom::sync::{
        RwLock as RawRwLock, RwLockReadGuard as RawRwLockReadGuard,
        RwLockWriteGuard as RawRwLockWriteGuard,
    };
    pub(crate) use loom::thread::yield_now as raw_yield_now;
    /// Spawns a thread of the current lane.
    pub use loom::thread::{JoinHandle, spawn};
    pub(crate) use std::sync::TryLockError;
}

#[cfg(all(shuttle, not(loom)))]
mod lane {
    /// shuttle's `Arc`, which is `std::sync::Arc`. An alias rather than a
    /// re-export, so that clippy's `disallowed_types` (which bans
    /// `std::sync::Arc` outside this facade) does not flag its users.
    pub type Arc<T> = shuttle::sync::Arc<T>;
    pub(crate) use shuttle::sync::atomic::AtomicPtr as RawAtomicPtr;
    pub use shuttle::sync::atomic::{
        AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
    };
    pub(crate) use shuttle::sync::{Mutex as RawMutex, MutexGuard as RawMutexGuard};
    pub(crate) use shuttle::sync::{
        RwLock as RawRwLock, RwLockReadGuard as RawRwLockReadGuard,
        RwLockWriteGuard as RawRwLockWriteGuard,
    };
    pub(crate) use shuttle::thread::yield_now as raw_yield_now;
    /// Spawns a thread of the current lane.
    pub use shuttle::thread::{JoinHandle, spawn};
    pub(crate) use std::sync::TryLockError;
}

pub use lane::{
    Arc, AtomicBool, AtomicU8, AtomicU64, AtomicUsize, JoinHandle, Ordering, fence, spawn,
};

/// An atomic pointer of the current lane, for words that hold a pointer plus
/// tag bits (sptes, rmap heads and entries, vCPU roots).
///
/// The tag bits are set and cleared with the strict-provenance APIs
/// (`map_addr`, `with_addr`), so a pointer read back out of the word keeps the
/// provenance of the allocation it came from: Miri's
/// `-Zmiri-strict-provenance` accepts every dereference of it, and Tree
/// Borrows can see through it. A word that holds no pointer (a leaf spte's
/// pfn) is stored as `ptr::without_provenance_mut(bits)`.
pub struct AtomicPtr<T>(lane::RawAtomicPtr<T>);

impl<T> std::fmt::Debug for AtomicPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtomicPtr")
    }
}

impl<T> Default for AtomicPtr<T> {
    fn default() -> Self {
        AtomicPtr::new(std::ptr::null_mut())
    }
}

impl<T> AtomicPtr<T> {
    /// Creates the atomic.
    #[inline]
    pub fn new(value: *mut T) -> Self {
        AtomicPtr(lane::RawAtomicPtr::new(value))
    }
    /// `load`.
    #[inline]
    pub fn load(&self, order: Ordering) -> *mut T {
        self.0.load(order)
    }
    /// `store`.
    #[inline]
    pub fn store(&self, value: *mut T, order: Ordering) {
        self.0.store(value, order)
    }
    /// `swap`.
    #[inline]
    pub fn swap(&self, value: *mut T, order: Ordering) -> *mut T {
        self.0.swap(value, order)
    }
    /// `compare_exchange`.
    #[inline]
    pub fn compare_exchange(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        self.0.compare_exchange(current, new, success, failure)
    }
    /// Sets `bits` in the address, keeping the provenance; returns the old
    /// pointer. (`AtomicPtr::fetch_or` is newer than the crate's MSRV and
    /// missing from loom: a one-step `fetch_update` in every lane.)
    #[inline]
    pub fn fetch_or(&self, bits: usize, order: Ordering) -> *mut T {
        let load = match order {
            Ordering::Release | Ordering::Relaxed => Ordering::Relaxed,
            Ordering::SeqCst => Ordering::SeqCst,
            _ => Ordering::Acquire,
        };
        match self
            .0
            .fetch_update(order, load, |p| Some(p.map_addr(|a| a | bits)))
        {
            Ok(old) | Err(old) => old,
        }
    }
}

/// The name of the lane this build runs in: `"native"`, `"loom"` or `"shuttle"`.
pub const LANE: &str = if cfg!(loom) {
    "loom"
} else if cfg!(shuttle) {
    "shuttle"
} else {
    "native"
};

/// Gives the checker a scheduling point (loom, shuttle) or the OS a chance to run
/// another thread (native). Every spin loop in the protocol calls it, otherwise
/// loom would report a livelock and shuttle would never leave the loop.
pub fn yield_now() {
    lane::raw_yield_now();
}

/// A mutual-exclusion lock of the current lane.
///
/// Poisoning is ignored: a panic while the lock is held already fails the test
/// that caused it, and the protocol has no partial updates that a poisoned flag
/// would protect.
#[derive(Debug, Default)]
pub struct Mutex<T>(lane::RawMutex<T>);

/// The guard of a [`Mutex`]. Functions that need `mmu_lock` take
/// `&mut MutexGuard<'_, MmuState>` so that the type system plays lockdep's part.
pub type MutexGuard<'a, T> = lane::RawMutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// Creates an unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex(lane::RawMutex::new(value))
    }

    /// Takes the lock, waiting for it if needed.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes the lock only if nobody holds it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(lane::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(lane::TryLockError::WouldBlock) => None,
        }
    }
}

/// A reader-writer lock of the current lane: the TDP MMU's `mmu_lock`
/// (`rwlock_t` since 5.12 on x86). Faults, zaps of invalidated roots and root
/// allocation and freeing take it for reading; invalidating roots takes it
/// for writing.
///
/// Poisoning is ignored, as for [`Mutex`].
#[derive(Debug, Default)]
pub struct RwLock<T>(lane::RawRwLock<T>);

/// The shared guard of a [`RwLock`].
pub type RwLockReadGuard<'a, T> = lane::RawRwLockReadGuard<'a, T>;

/// The exclusive guard of a [`RwLock`].
pub type RwLockWriteGuard<'a, T> = lane::RawRwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    /// Creates an unlocked lock holding `value`.
    pub fn new(value: T) -> Self {
        RwLock(lane::RawRwLock::new(value))
    }

    /// Takes the lock shared (`read_lock`), waiting for a writer if needed.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        match self.0.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes the lock exclusive (`write_lock`), waiting if needed.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes the lock shared only if no writer holds it.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        match self.0.try_read() {
            Ok(guard) => Some(guard),
            Err(lane::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(lane::TryLockError::WouldBlock) => None,
        }
    }

    /// Takes the lock exclusive only if nobody holds it.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        match self.0.try_write() {
            Ok(guard) => Some(guard),
            Err(lane::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(lane::TryLockError::WouldBlock) => None,
        }
    }
}

//! The native lane: thin wrappers over `std`, so that the rest of the crate
//! names only facade types (and clippy's `disallowed-types` can tell the two
//! apart). Every method is `#[inline]` and forwards.

pub(crate) use std::sync::{Mutex as RawMutex, MutexGuard as RawMutexGuard, TryLockError};
pub(crate) use std::sync::{
    RwLock as RawRwLock, RwLockReadGuard as RawRwLockReadGuard,
    RwLockWriteGuard as RawRwLockWriteGuard,
};
pub(crate) use std::thread::yield_now as raw_yield_now;
/// Spawns a thread of the current lane.
pub use std::thread::{JoinHandle, spawn};

/// The raw atomic pointer that [`AtomicPtr`](super::AtomicPtr) wraps in every lane.
pub(crate) use std::sync::atomic::AtomicPtr as RawAtomicPtr;
pub use std::sync::atomic::Ordering;

/// `std::sync::atomic::fence`.
#[inline]
pub fn fence(order: Ordering) {
    std::sync::atomic::fence(order)
}

macro_rules! atomic {
    ($name:ident, $std:ty, $prim:ty) => {
        /// A `std` atomic behind the facade.
        #[derive(Debug, Default)]
        #[repr(transparent)]
        pub struct $name($std);

        impl $name {
            /// Creates the atomic.
            #[inline]
            pub const fn new(value: $prim) -> Self {
                $name(<$std>::new(value))
            }
            /// `load`.
            #[inline]
            pub fn load(&self, order: Ordering) -> $prim {
                self.0.load(order)
            }
            /// `store`.
            #[inline]
            pub fn store(&self, value: $prim, order: Ordering) {
                self.0.store(value, order)
            }
            /// `swap`.
            #[inline]
            pub fn swap(&self, value: $prim, order: Ordering) -> $prim {
                self.0.swap(value, order)
            }
            /// `compare_exchange`.
            #[inline]
            pub fn compare_exchange(
                &self,
                current: $prim,
                new: $prim,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$prim, $prim> {
                self.0.compare_exchange(current, new, success, failure)
            }
            /// `fetch_or`.
            #[inline]
            pub fn fetch_or(&self, value: $prim, order: Ordering) -> $prim {
                self.0.fetch_or(value, order)
            }
            /// `fetch_and`.
            #[inline]
            pub fn fetch_and(&self, value: $prim, order: Ordering) -> $prim {
                self.0.fetch_and(value, order)
            }
        }
    };
}

macro_rules! atomic_int {
    ($name:ident, $prim:ty) => {
        impl $name {
            /// `fetch_add`.
            #[inline]
            pub fn fetch_add(&self, value: $prim, order: Ordering) -> $prim {
                self.0.fetch_add(value, order)
            }
            /// `fetch_sub`.
            #[inline]
            pub fn fetch_sub(&self, value: $prim, order: Ordering) -> $prim {
                self.0.fetch_sub(value, order)
            }
            /// `fetch_max`.
            #[inline]
            pub fn fetch_max(&self, value: $prim, order: Ordering) -> $prim {
                self.0.fetch_max(value, order)
            }
        }
    };
}

atomic!(AtomicBool, std::sync::atomic::AtomicBool, bool);
atomic!(AtomicU8, std::sync::atomic::AtomicU8, u8);
atomic!(AtomicU64, std::sync::atomic::AtomicU64, u64);
atomic!(AtomicUsize, std::sync::atomic::AtomicUsize, usize);
atomic_int!(AtomicU8, u8);
atomic_int!(AtomicU64, u64);
atomic_int!(AtomicUsize, usize);

/// `std::sync::Arc` behind the facade.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Arc<T: ?Sized>(pub(crate) std::sync::Arc<T>);

impl<T> Arc<T> {
    /// `Arc::new`.
    #[inline]
    pub fn new(value: T) -> Self {
        Arc(std::sync::Arc::new(value))
    }
}

impl<T: ?Sized> Arc<T> {
    /// `Arc::ptr_eq`.
    #[inline]
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        std::sync::Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T: ?Sized> Clone for Arc<T> {
    #[inline]
    fn clone(&self) -> Self {
        Arc(self.0.clone())
    }
}

impl<T: ?Sized> std::ops::Deref for Arc<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

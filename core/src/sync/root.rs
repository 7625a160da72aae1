//! # Generation roots
//!
//! A [`GenRoot`] holds the current generation of a read-mostly structure (the
//! memslots array) and swaps whole generations on update, as the kernel does
//! with `rcu_assign_pointer(kvm->memslots, new)`. Natively it is an
//! `arc_swap::ArcSwap`; under loom and shuttle it is the checker's
//! `Mutex<Arc<T>>`, because arc-swap's std atomics are invisible to both.

use super::Arc;

#[cfg(not(any(loom, shuttle)))]
mod imp {
    use super::Arc;

    /// A borrowed view of the current generation.
    pub struct RootRef<T>(arc_swap::Guard<std::sync::Arc<T>>);

    impl<T> std::ops::Deref for RootRef<T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T: std::fmt::Debug> std::fmt::Debug for RootRef<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            (**self).fmt(f)
        }
    }

    #[derive(Debug)]
    pub struct Inner<T>(arc_swap::ArcSwap<T>);

    impl<T> Inner<T> {
        pub fn new(value: Arc<T>) -> Self {
            Inner(arc_swap::ArcSwap::new(value.0))
        }
        pub fn load(&self) -> RootRef<T> {
            RootRef(self.0.load())
        }
        pub fn load_full(&self) -> Arc<T> {
            Arc(self.0.load_full())
        }
        pub fn store(&self, value: Arc<T>) {
            self.0.store(value.0);
        }
    }
}

#[cfg(any(loom, shuttle))]
mod imp {
    use super::Arc;
    use crate::sync::Mutex;

    /// A borrowed view of the current generation (an owned `Arc` in this lane).
    pub type RootRef<T> = Arc<T>;

    #[derive(Debug)]
    pub struct Inner<T>(Mutex<Arc<T>>);

    impl<T> Inner<T> {
        pub fn new(value: Arc<T>) -> Self {
            Inner(Mutex::new(value))
        }
        pub fn load(&self) -> RootRef<T> {
            self.0.lock().clone()
        }
        pub fn load_full(&self) -> Arc<T> {
            self.0.lock().clone()
        }
        pub fn store(&self, value: Arc<T>) {
            let old = std::mem::replace(&mut *self.0.lock(), value);
            // The old generation is dropped after the lock is released.
            drop(old);
        }
    }
}

pub use imp::RootRef;

/// A published generation of `T` that readers load without a lock.
#[derive(Debug)]
pub struct GenRoot<T>(imp::Inner<T>);

impl<T> GenRoot<T> {
    /// Publishes `value` as the first generation.
    pub fn new(value: Arc<T>) -> Self {
        GenRoot(imp::Inner::new(value))
    }

    /// Borrows the current generation.
    pub fn load(&self) -> RootRef<T> {
        self.0.load()
    }

    /// Clones the current generation.
    pub fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Publishes `value`; readers that already loaded the old one keep it.
    pub fn store(&self, value: Arc<T>) {
        self.0.store(value);
    }
}

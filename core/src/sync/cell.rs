//! # UnsafeCell with loom's API in every lane
//!
//! Shadow-page and descriptor bodies live in this cell. Their destructor writes a
//! poison value through [`UnsafeCell::with_mut`], and every reader goes through
//! [`UnsafeCell::with`]. Under loom a read that is not ordered after the poison
//! write is a "causality violation"; in every lane the reader also sees the
//! poison value and reports it. That is how "no reader ever reads a freed page"
//! (I3) and "no walker ever reads a freed descriptor" (I2) become observable.

#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// A `core::cell::UnsafeCell` with loom's closure-based API, for the native and
/// shuttle lanes.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// Reads through a raw pointer. The caller's closure must not let the pointer
    /// escape, and must not run while a `with_mut` on the same cell runs.
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Writes through a raw pointer; see [`UnsafeCell::with`].
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

// SAFETY: access discipline is the caller's, as for loom's UnsafeCell: bodies are
// written once before publication and once by the destructor after a grace period.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for UnsafeCell<T> {}

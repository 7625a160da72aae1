//! # lockdep, as types
//!
//! The kernel writes `lockdep_assert_held(&kvm->mmu_lock)` and finds out at run
//! time. Here a function that needs `mmu_lock` takes a witness that it is held,
//! and the compiler finds out. The protocol's own functions take the lock guard
//! itself ([`MmuLock`](crate::mmu::MmuLock)); the structures below it (the rmap,
//! `lpage_info`) take `&impl MmuLockHeld`, which only the guard implements, so
//! that they need not know what the lock protects.

/// Implemented only by the `mmu_lock` guard: holding a `&impl MmuLockHeld` is
/// holding the lock.
pub(crate) trait MmuLockHeld {}

//! # An object whose free is observable, for the reclamation models
//!
//! The loom models of the reclamation facade (`core/tests/loom_litmus.rs`,
//! `models/tests/loom_ebr.rs`, `models/tests/reclaim_forced.rs`) publish
//! objects by address, retire them, and "free" them by writing a poison value
//! into their body ([`poison`]), the way a shadow page's destructor poisons
//! its body (`core/src/sync/cell.rs`). The memory itself is released only
//! after the execution ([`release`]), so a broken grace period shows up as a
//! reader that reads [`POISON`] or as a loom causality violation (the body
//! lives in the facade's [`UnsafeCell`]), never as undefined behaviour.
//!
//! The values are those of the Linux-kernel memory model's litmus tests: `int
//! x = 1` for a live object, and `WRITE_ONCE(*x, 0)` for its free.

use crate::sync::UnsafeCell;

/// The body of a live object (`int x = 1`).
pub const LIVE: u64 = 1;
/// The body after its free (`WRITE_ONCE(*x, 0)` after the grace period).
pub const POISON: u64 = 0;

struct Object {
    body: UnsafeCell<u64>,
}

/// Allocates an object with a [`LIVE`] body; its address stands for the
/// pointer. Release it with [`release`] once nobody can use it.
pub fn object() -> usize {
    Box::into_raw(Box::new(Object {
        body: UnsafeCell::new(LIVE),
    })) as usize
}

/// Reads the body through the cell (`READ_ONCE(*r0)`): [`LIVE`], or
/// [`POISON`] for an object freed under the reader.
///
/// # Safety
/// `addr` came from [`object`] and has not been released.
pub unsafe fn read(addr: usize) -> u64 {
    // SAFETY: the caller's contract: `addr` came from `object` and was not
    // released, so the allocation is alive; a free before the grace period
    // only poisons the body.
    let object = unsafe { &*(addr as *const Object) };
    object.body.with(|body| {
        // SAFETY: the allocation is alive (above); the body is written only
        // by `poison`, and loom checks the order of the two.
        unsafe { *body }
    })
}

/// The free: writes [`POISON`] into the body through `with_mut`.
///
/// # Safety
/// As for [`read`].
pub unsafe fn poison(addr: usize) {
    // SAFETY: the caller's contract: `addr` came from `object` and was not
    // released, so the allocation is alive.
    let object = unsafe { &*(addr as *const Object) };
    object.body.with_mut(|body| {
        // SAFETY: the allocation is alive (above); each object is poisoned
        // once per execution, and loom checks the write against the readers.
        unsafe { *body = POISON }
    });
}

/// Releases the memory, after the execution.
///
/// # Safety
/// `addr` came from [`object`], is released once, and nobody uses it after.
pub unsafe fn release(addr: usize) {
    // SAFETY: the caller's contract: the allocation is alive until here, and
    // this is its last use.
    drop(unsafe { Box::from_raw(addr as *mut Object) });
}

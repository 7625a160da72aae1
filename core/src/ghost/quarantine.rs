//! The checking build's quarantine of released memory ([`Ghost::release`]).
//!
//! [`Ghost::release`]: super::Ghost::release

use std::collections::{HashSet, VecDeque};
use std::ptr::NonNull;

/// How much freed memory a VM's quarantine holds (without a mutant) before
/// it gives the oldest object back ([`Ghost::release`]).
pub(crate) const QUARANTINE_BYTES: usize = 64 << 20;

/// Released objects, kept poisoned, oldest first ([`Ghost::release`]).
pub(super) struct Quarantine {
    pub(super) kept: VecDeque<Kept>,
    pub(super) bytes: usize,
    /// Whether the oldest objects are given back past [`QUARANTINE_BYTES`].
    pub(super) bounded: bool,
    /// The addresses kept, so that one object is never kept (and given
    /// back) twice.
    pub(super) addrs: HashSet<usize>,
}

impl Quarantine {
    /// An empty quarantine.
    pub(super) fn new(bounded: bool) -> Quarantine {
        Quarantine {
            kept: VecDeque::new(),
            bytes: 0,
            bounded,
            addrs: HashSet::new(),
        }
    }

    /// Keeps `kept`; returns the objects that leave to make room. An object
    /// already kept is refused (`Err`): released twice, it must not be given
    /// back twice.
    pub(super) fn push(&mut self, kept: Kept) -> Result<Vec<Kept>, Kept> {
        if !self.addrs.insert(kept.object.as_ptr().addr()) {
            return Err(kept);
        }
        self.bytes = self.bytes.saturating_add(kept.bytes);
        self.kept.push_back(kept);
        let mut evicted = Vec::new();
        while self.bounded && self.bytes > QUARANTINE_BYTES && self.kept.len() > 1 {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(old.bytes);
            self.addrs.remove(&old.object.as_ptr().addr());
            evicted.push(old);
        }
        Ok(evicted)
    }
}

/// One quarantined object and the function that gives its memory back.
pub(super) struct Kept {
    pub(super) object: NonNull<()>,
    pub(super) bytes: usize,
    pub(super) drop: unsafe fn(*mut ()),
}

// SAFETY: `release` takes only `T: Send` objects; the pointer is theirs.
unsafe impl Send for Kept {}

impl Kept {
    /// Gives the memory back.
    ///
    /// # Safety
    /// Nothing reaches the object any more, and this is its one release.
    pub(super) unsafe fn give_back(self) {
        // SAFETY: the caller's contract; `drop` is `drop_box::<T>` for the
        // `T` the object was allocated as.
        unsafe { (self.drop)(self.object.as_ptr()) };
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        for kept in self.kept.drain(..) {
            // SAFETY: the ghost state is being dropped: the VM, its rmaps
            // and its deferred frees (which hold clones of it) are gone, so
            // nothing can reach the object; it came from a `Box` and leaves
            // the quarantine once.
            unsafe { kept.give_back() };
        }
    }
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Quarantine({} objects, {} bytes)",
            self.kept.len(),
            self.bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Kept, QUARANTINE_BYTES, Quarantine};

    fn kept(bytes: usize) -> Kept {
        unsafe fn drop_box(object: *mut ()) {
            // SAFETY: made from `Box::leak` of a `u64` below, given back once.
            drop(unsafe { Box::from_raw(object.cast::<u64>()) });
        }
        Kept {
            object: std::ptr::NonNull::from(Box::leak(Box::new(7u64))).cast(),
            bytes,
            drop: drop_box,
        }
    }

    #[test]
    fn the_quarantine_gives_back_the_oldest_past_its_bound_unless_a_mutant_runs() {
        let half = QUARANTINE_BYTES / 2 + 1;
        let mut q = Quarantine::new(true);
        assert!(q.push(kept(half)).is_ok_and(|e| e.is_empty()));
        let evicted = q.push(kept(half)).unwrap_or_default();
        assert_eq!(evicted.len(), 1, "the oldest leaves, the newest stays");
        assert_eq!((q.kept.len(), q.bytes), (1, half));
        for old in evicted {
            // SAFETY: nothing else holds it.
            unsafe { old.give_back() };
        }
        let mut unbounded = Quarantine::new(false);
        for _ in 0..3 {
            assert!(unbounded.push(kept(half)).is_ok_and(|e| e.is_empty()));
        }
        assert_eq!(unbounded.kept.len(), 3);
    }

    #[test]
    fn an_object_released_twice_is_kept_once() {
        let mut q = Quarantine::new(false);
        let once = kept(8);
        let again = Kept {
            object: once.object,
            bytes: 8,
            drop: once.drop,
        };
        assert!(q.push(once).is_ok());
        assert!(q.push(again).is_err(), "the second release is refused");
        assert_eq!(q.kept.len(), 1, "and the drop gives the memory back once");
    }
}

//! # Pte-list descriptors (`struct pte_list_desc`) and the rmap's words
//!
//! An rmap head, a descriptor entry and a descriptor's `more` link are each
//! one [`AtomicPtr`] word, read by lockless walkers:
//!
//! | word | null | even address | odd address |
//! |---|---|---|---|
//! | head | empty | one packed [`SptePtr`] | first descriptor, plus one |
//! | descriptor entry | empty slot | one packed [`SptePtr`] | never |
//! | `more` | end of chain | next descriptor | never |
//!
//! A packed `SptePtr` is the page's pointer with its address shifted left by
//! 16 and the spte index in bits 1..15. Every tag is applied with
//! `map_addr`, so the pointer read back keeps the provenance of the page or
//! descriptor it points to (see [`AtomicPtr`]).

use std::ptr::NonNull;

use crate::ghost::{self, DescGhost, Ghost};
use crate::invariant::Invariant;
use crate::page::PagePtr;
use crate::sync::{AtomicPtr, Guard, Ordering, UnsafeCell};

/// One rmap word (see the module's table).
pub(crate) type Word = *mut ();

/// A pointer to one spte: its page and index (the kernel's `sptep`).
#[doc(alias = "sptep")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SptePtr {
    pub(crate) page: PagePtr,
    pub(crate) index: usize,
}

impl SptePtr {
    /// The pointer as an even, non-zero key, for the audit's maps (an
    /// address only: it cannot be turned back into a pointer). Page addresses
    /// fit in 48 bits on every platform fastzap runs on; the index in 15.
    #[cfg(feature = "ghost")]
    pub(crate) fn pack(self) -> u64 {
        (self.page.addr() as u64) << 16 | (self.index as u64) << 1
    }

    /// The pointer as an rmap word: [`SptePtr::pack`]'s bits, with the page's
    /// provenance.
    pub(super) fn word(self) -> Word {
        assert!(
            self.page.addr() >> 48 == 0 && self.index < (1 << 15),
            "spte pointer does not pack"
        );
        let index = self.index;
        self.page
            .as_raw()
            .cast::<()>()
            .map_addr(|a| (a << 16) | (index << 1))
    }

    /// Reads a word back: `None` if it is empty or a descriptor.
    pub(crate) fn unpack(word: Word) -> Option<SptePtr> {
        if word.is_null() || word.addr() & 1 == 1 {
            return None;
        }
        let index = (word.addr() >> 1) & 0x7fff;
        let page = PagePtr::from_raw(word.map_addr(|a| a >> 16).cast())?;
        Some(SptePtr { page, index })
    }

    /// The spte itself, for as long as `guard` is pinned.
    pub(crate) fn spte<'g>(self, guard: &'g Guard<'_>) -> &'g crate::spte::SpteCell {
        &self.page.get(guard).sptes[self.index]
    }
}

#[derive(Debug, Clone, Copy)]
struct DescBody {
    poisoned: bool,
}

/// `struct pte_list_desc`: a fixed-capacity block of spte pointers.
#[doc(alias = "pte_list_desc")]
#[repr(align(16))]
#[derive(Debug)]
pub(crate) struct PteListDesc {
    body: UnsafeCell<DescBody>,
    pub(super) sptes: Box<[AtomicPtr<()>]>,
    pub(super) more: AtomicPtr<()>,
    /// The ghost half: id, and whether the descriptor was retired or freed.
    pub(super) ghost: DescGhost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DescPtr(NonNull<PteListDesc>);

// SAFETY: an address; its use is governed by `get`.
unsafe impl Send for DescPtr {}

impl DescPtr {
    pub(super) fn alloc(capacity: usize, ghost: &Ghost) -> DescPtr {
        ghost.descs().alloc();
        let desc = Box::new(PteListDesc {
            body: UnsafeCell::new(DescBody { poisoned: false }),
            sptes: (0..capacity).map(|_| AtomicPtr::default()).collect(),
            more: AtomicPtr::default(),
            ghost: DescGhost::new(ghost.next_desc_id()),
        });
        DescPtr(NonNull::from(Box::leak(desc)))
    }

    /// The descriptor a head (odd) or a `more` link (even) points to.
    pub(super) fn from_word(word: Word) -> Option<DescPtr> {
        NonNull::new(word.map_addr(|a| a & !1).cast::<PteListDesc>()).map(DescPtr)
    }

    /// The word for a `more` link.
    pub(super) fn link(self) -> Word {
        self.0.as_ptr().cast()
    }

    /// The word for a head: the address plus one.
    pub(super) fn head(self) -> Word {
        self.link().map_addr(|a| a | 1)
    }

    /// Borrows the descriptor while `guard` is pinned. Descriptors are read only
    /// from a head or a `more` link while pinned, and retired only after they are
    /// unlinked, so the memory outlives the guard.
    pub(super) fn get<'g>(self, _guard: &'g Guard<'_>) -> &'g PteListDesc {
        // SAFETY: see above; released only after every guard pinned before the
        // retirement has been dropped, or when the whole rmap is dropped, which
        // no walker can be using (walkers hold the rmap's Arc). In a checking
        // build the memory is never released while the VM lives (it is
        // quarantined, poisoned: `Ghost::release`), so a bug that breaks the
        // rule reads poison.
        unsafe { self.0.as_ref() }
    }

    /// Retires an unlinked descriptor through the epoch. With `poison_now`
    /// (only under [`Mutant::RemoveOnlyRmapCompacts`](crate::mutant::Mutant))
    /// it is poisoned at once, as the kernel frees a `pte_list_desc` at once;
    /// its memory still goes only through the epoch, and in a checking build
    /// is quarantined ([`Ghost::release`]).
    ///
    /// A descriptor retired a second time (a bug) is reported (I2) and not
    /// handed over again: a second deferred release would free it twice.
    pub(super) fn retire(self, guard: &Guard<'_>, ghost: &Ghost, poison_now: bool) {
        let desc = self.get(guard);
        if !desc.ghost.retire() {
            ghost.violate(Invariant::I2, || {
                format!("descriptor d{} retired twice", desc.ghost.id())
            });
            return;
        }
        ghost.descs().retire();
        if poison_now {
            desc.poison();
            ghost.descs().free();
        }
        let ghost = ghost.clone();
        guard.defer(move || {
            let owned = self;
            let mut bytes = 0;
            if ghost::ENABLED {
                // SAFETY: still allocated: it is released below.
                let desc = unsafe { owned.0.as_ref() };
                bytes = desc.bytes();
                if !poison_now {
                    desc.poison();
                }
            }
            if !poison_now {
                ghost.descs().free();
            }
            // SAFETY: the grace period has passed since the descriptor was
            // unlinked; it came from `Box::leak` in `alloc`, and this is its
            // one release.
            unsafe { ghost.release(owned.0, bytes) };
        });
    }

    /// At an rmap's drop, whether this linked descriptor was retired (a bug):
    /// records I2 and says so. Always false without the checking code.
    pub(super) fn retired_still_linked(self, ghost: &Ghost) -> bool {
        // SAFETY: called with exclusive access to the rmap; the memory is
        // allocated: never retired, or retired and (checking builds only,
        // which is when this reads anything) quarantined.
        let desc = unsafe { self.0.as_ref() };
        ghost.saw_freed(
            Invariant::I2,
            || desc.ghost.is_retired(),
            || {
                format!(
                    "descriptor d{} retired but still linked when its rmap was dropped",
                    desc.ghost.id()
                )
            },
        )
    }

    /// Releases a descriptor of an rmap being dropped.
    ///
    /// # Safety
    /// The caller has exclusive access to the chain, whose descriptors were
    /// never retired, and does not use `self` again.
    pub(super) unsafe fn release_now(self, ghost: &Ghost) -> Word {
        // SAFETY: the caller's contract: still allocated.
        let desc = unsafe { self.0.as_ref() };
        let more = desc.more.load(Ordering::Acquire);
        if ghost::ENABLED {
            desc.poison();
        }
        ghost.descs().retire();
        ghost.descs().free();
        let bytes = desc.bytes();
        // SAFETY: the caller's contract; it came from `Box::leak` in `alloc`.
        unsafe { ghost.release(self.0, bytes) };
        more
    }
}

impl PteListDesc {
    fn poison(&self) {
        self.ghost.freed();
        self.body.with_mut(|body| {
            // SAFETY: only the reclaimer writes the body, after the grace period.
            unsafe { (*body).poisoned = true }
        });
    }

    pub(super) fn is_poisoned(&self) -> bool {
        self.body.with(|body| {
            // SAFETY: written only by `poison`, after every reader is gone.
            unsafe { (*body).poisoned }
        })
    }

    /// A walker's check (I2) that this descriptor was not freed under it;
    /// the detail names the descriptor, the head and the walker.
    pub(super) fn read_freed(&self, ghost: &Ghost, head: usize, walker: &str) -> bool {
        ghost.saw_freed(
            Invariant::I2,
            || self.is_poisoned(),
            || {
                format!(
                    "{walker} read freed descriptor d{} on rmap head {head}",
                    self.ghost.id()
                )
            },
        )
    }

    /// About how much memory the descriptor holds (for the checking build's
    /// quarantine).
    fn bytes(&self) -> usize {
        std::mem::size_of::<PteListDesc>() + self.sptes.len() * std::mem::size_of::<usize>()
    }

    /// The number of leading used entries.
    pub(super) fn used(&self) -> usize {
        self.sptes
            .iter()
            .take_while(|s| !s.load(Ordering::Relaxed).is_null())
            .count()
    }
}

//! # Guest frames, host addresses and host frames
//!
//! Three kinds of number cross fastzap's API, and mixing them up is the classic
//! MMU bug: a guest frame number where a host address was meant. Each gets a
//! newtype, in the style of rust-vmm's `GuestAddress`: a public `u64` inside,
//! no arithmetic beyond what the MMU needs. The protocol's internals work on the
//! raw numbers, as `mmu.c` works on `gfn_t` and `kvm_pfn_t`; the types guard the
//! boundary.

/// Bytes per guest and host page.
pub const PAGE_SIZE: u64 = 4096;

/// A guest frame number (`gfn_t`): a guest physical address divided by
/// [`PAGE_SIZE`].
#[doc(alias = "gfn_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Gfn(pub u64);

/// A host virtual address (`hva`), in bytes: where the VMM mapped guest memory.
#[doc(alias = "hva_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hva(pub u64);

/// A host page frame number (`kvm_pfn_t`): what a leaf spte maps.
#[doc(alias = "kvm_pfn_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pfn(pub u64);

impl Gfn {
    /// `self + pages`, or `None` on overflow.
    pub const fn checked_add(self, pages: u64) -> Option<Gfn> {
        match self.0.checked_add(pages) {
            Some(gfn) => Some(Gfn(gfn)),
            None => None,
        }
    }
}

impl Hva {
    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<Hva> {
        match self.0.checked_add(bytes) {
            Some(hva) => Some(Hva(hva)),
            None => None,
        }
    }

    /// The address of the page holding `self`.
    pub const fn page(self) -> Hva {
        Hva(self.0 & !(PAGE_SIZE - 1))
    }
}

impl std::ops::Add<u64> for Gfn {
    type Output = Gfn;
    /// `self + pages` (overflow panics in debug builds, as for `u64`).
    fn add(self, pages: u64) -> Gfn {
        Gfn(self.0 + pages)
    }
}

impl std::ops::Add<u64> for Hva {
    type Output = Hva;
    /// `self + bytes` (overflow panics in debug builds, as for `u64`).
    fn add(self, bytes: u64) -> Hva {
        Hva(self.0 + bytes)
    }
}

/// The number in hex (`0x2a`), so that `"gfn {gfn}"` reads as it does with a
/// plain `u64`.
impl std::fmt::Display for Gfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl std::fmt::Display for Hva {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl std::fmt::Display for Pfn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

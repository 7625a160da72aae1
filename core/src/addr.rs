//! # Guest frames, host addresses and host frames
//!
//! Three kinds of number cross fastzap's API, and mixing them up is the classic
//! MMU bug: a guest frame number where a host address was meant. Each gets a
//! newtype, in the style of rust-vmm's `GuestAddress`: a public `u64` inside,
//! and the arithmetic a caller needs without unwrapping it. The protocol's
//! internals work on the raw numbers, as `mmu.c` works on `gfn_t` and
//! `kvm_pfn_t`; the types guard the boundary.
//!
//! No operation on them panics: the operators saturate by design, the
//! `checked_*` methods return `None` (see "Overflow" on [`Gfn`]).

use std::iter::FusedIterator;

/// Bytes per guest and host page.
///
/// ```
/// use fastzap::{Hva, PAGE_SIZE};
///
/// assert_eq!(PAGE_SIZE, 1 << 12);
/// // A slot maps gfn `n` at its host base plus `n` pages.
/// let base = Hva(0x7f00_0000_0000);
/// let hva = base + 3 * PAGE_SIZE;
/// assert_eq!(hva, Hva(0x7f00_0000_3000));
/// assert_eq!((hva - base) / PAGE_SIZE, 3);
/// ```
pub const PAGE_SIZE: u64 = 4096;

/// A guest frame number (`gfn_t`): a guest physical address divided by
/// [`PAGE_SIZE`].
///
/// # Overflow
///
/// No operation on [`Gfn`], [`Hva`] or [`Pfn`] panics. The `checked_*`
/// methods and `offset_from` return `None` where the `u64` would overflow;
/// the operators saturate by design:
///
/// - `x + n` and `x += n` stop at `u64::MAX`. A saturated `Gfn` or `Hva` is
///   one every operation refuses with a typed error
///   ([`MmuError::GfnOutOfRange`], [`MmuError::HvaOutOfRange`]), so an
///   overflow can never alias a low address.
/// - `a - b` between two values of one type is the distance from `b` up to
///   `a`, and 0 when `b` is above `a`: the length of the range `b..a`, as
///   `Instant - Instant` saturates to zero in std.
///
/// ```
/// use fastzap::Gfn;
///
/// let (start, end) = (Gfn(0x10), Gfn(0x18));
/// assert_eq!(end - start, 8);
/// assert_eq!(start - end, 0);
/// assert_eq!(start.offset_from(end), None);
/// assert_eq!(Gfn(u64::MAX) + 1, Gfn(u64::MAX));
/// assert_eq!(Gfn(u64::MAX).checked_add(1), None);
/// ```
///
/// [`MmuError::GfnOutOfRange`]: crate::MmuError::GfnOutOfRange
/// [`MmuError::HvaOutOfRange`]: crate::MmuError::HvaOutOfRange
#[doc(alias = "gfn_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Gfn(pub u64);

/// A host virtual address (`hva`), in bytes: where the VMM mapped guest memory.
/// Its arithmetic never panics: see "Overflow" on [`Gfn`].
///
/// ```
/// use fastzap::{Hva, PAGE_SIZE};
///
/// let base = Hva(0x7f00_0000_0000);
/// let hva = base + 5 * PAGE_SIZE + 0x10;
/// assert_eq!(hva.page(), base + 5 * PAGE_SIZE);
/// assert_eq!(hva.offset_from(base), Some(5 * PAGE_SIZE + 0x10));
/// assert_eq!(hva.to_string(), "0x7f0000005010");
/// assert_eq!(format!("{hva:x}"), "7f0000005010");
/// ```
#[doc(alias = "hva_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hva(pub u64);

/// A host page frame number (`kvm_pfn_t`): what a leaf spte maps. Its
/// arithmetic never panics: see "Overflow" on [`Gfn`].
///
/// ```
/// use fastzap::{Config, Hva, PAGE_SIZE, Pfn, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let pfn = vm.hva_to_pfn(Hva(0x7f00_0000_0000))?;
/// let next = vm.hva_to_pfn(Hva(0x7f00_0000_0000) + PAGE_SIZE)?;
/// assert_ne!(pfn, next);
/// assert_eq!(Pfn(0x80) + 1, Pfn(0x81));
/// assert_eq!(format!("{:#x}", Pfn(0x80)), "0x80");
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[doc(alias = "kvm_pfn_t")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pfn(pub u64);

impl Hva {
    /// The first address past the host's virtual address space: 2^48, the
    /// 48-bit virtual addresses of x86-64 with 4-level paging. A slot's host
    /// range must end at or below it ([`MmuError::BadHostRange`]); an address
    /// at or above it is refused by [`Vm::hva_to_pfn`] and the notifiers
    /// ([`MmuError::HvaOutOfRange`]).
    ///
    /// ```
    /// use fastzap::{Hva, PAGE_SIZE};
    ///
    /// assert_eq!(Hva::LIMIT, Hva(1 << 48));
    /// let last_page = Hva::LIMIT.checked_sub(PAGE_SIZE).unwrap();
    /// assert_eq!(last_page + PAGE_SIZE, Hva::LIMIT);
    /// ```
    ///
    /// [`MmuError::BadHostRange`]: crate::MmuError::BadHostRange
    /// [`MmuError::HvaOutOfRange`]: crate::MmuError::HvaOutOfRange
    /// [`Vm::hva_to_pfn`]: crate::Vm::hva_to_pfn
    pub const LIMIT: Hva = Hva(1 << 48);

    /// The address of the page holding `self`.
    ///
    /// ```
    /// use fastzap::Hva;
    ///
    /// assert_eq!(Hva(0x1234).page(), Hva(0x1000));
    /// ```
    pub const fn page(self) -> Hva {
        Hva(self.0 & !(PAGE_SIZE - 1))
    }

    /// Whether `self` is the first byte of a page.
    ///
    /// ```
    /// use fastzap::Hva;
    ///
    /// assert!(Hva(0x2000).is_page_aligned());
    /// assert!(!Hva(0x2001).is_page_aligned());
    /// ```
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }
}

impl Gfn {
    /// The gfns from `self` up to, not including, `end`; empty if `end` is
    /// not above `self`.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// let gfns: Vec<Gfn> = Gfn(4).range_to(Gfn(7)).collect();
    /// assert_eq!(gfns, [Gfn(4), Gfn(5), Gfn(6)]);
    /// assert!(Gfn(7).range_to(Gfn(4)).is_empty());
    /// ```
    pub const fn range_to(self, end: Gfn) -> GfnRange {
        GfnRange::new(self, end)
    }
}

/// The operations every address type shares. `$unit` names what one step of
/// the `u64` is, `$n` the parameter that counts them; `$a` and `$b` are
/// example values, as written in the doc examples, with `$a > $b`.
macro_rules! address_ops {
    ($t:ident, $unit:literal, $n:ident, $a:literal, $b:literal) => {
        impl $t {
            #[doc = concat!("The number inside, as rust-vmm's `raw_value`.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(", stringify!($t), "(", $a, ").raw_value(), ", $a, ");\n```")]
            pub const fn raw_value(self) -> u64 {
                self.0
            }

            #[doc = concat!("`self + ", $unit, "`, or `None` on overflow.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(", stringify!($t), "(", $b, ").checked_add(1), Some(", stringify!($t), "(", $b, " + 1)));\nassert_eq!(", stringify!($t), "(u64::MAX).checked_add(1), None);\n```")]
            pub const fn checked_add(self, $n: u64) -> Option<$t> {
                match self.0.checked_add($n) {
                    Some(n) => Some($t(n)),
                    None => None,
                }
            }

            #[doc = concat!("`self - ", $unit, "`, or `None` below 0.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(", stringify!($t), "(", $a, ").checked_sub(", $b, "), Some(", stringify!($t), "(", $a, " - ", $b, ")));\nassert_eq!(", stringify!($t), "(0).checked_sub(1), None);\n```")]
            pub const fn checked_sub(self, $n: u64) -> Option<$t> {
                match self.0.checked_sub($n) {
                    Some(n) => Some($t(n)),
                    None => None,
                }
            }

            #[doc = concat!("How many ", $unit, " `self` is above `base`, or `None` if `base` is above `self` (rust-vmm's `checked_offset_from`).\n\n```\nuse fastzap::", stringify!($t), ";\n\nlet (a, b) = (", stringify!($t), "(", $a, "), ", stringify!($t), "(", $b, "));\nassert_eq!(a.offset_from(b), Some(", $a, " - ", $b, "));\nassert_eq!(b.offset_from(a), None);\n```")]
            pub const fn offset_from(self, base: $t) -> Option<u64> {
                self.0.checked_sub(base.0)
            }
        }

        impl std::ops::Add<u64> for $t {
            type Output = $t;
            #[doc = concat!("`self + ", $unit, "`, saturating at `u64::MAX`: never panics (\"Overflow\" on [`Gfn`]).\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(", stringify!($t), "(", $b, ") + 2, ", stringify!($t), "(", $b, " + 2));\nassert_eq!(", stringify!($t), "(u64::MAX - 1) + 2, ", stringify!($t), "(u64::MAX));\n```")]
            fn add(self, $n: u64) -> $t {
                $t(self.0.saturating_add($n))
            }
        }

        impl std::ops::AddAssign<u64> for $t {
            #[doc = concat!("`*self = *self + ", $unit, "`, saturating at `u64::MAX`.\n\n```\nuse fastzap::", stringify!($t), ";\n\nlet mut x = ", stringify!($t), "(", $b, ");\nx += 3;\nassert_eq!(x, ", stringify!($t), "(", $b, " + 3));\nx += u64::MAX;\nassert_eq!(x, ", stringify!($t), "(u64::MAX));\n```")]
            fn add_assign(&mut self, $n: u64) {
                *self = *self + $n;
            }
        }

        impl std::ops::Sub for $t {
            type Output = u64;
            #[doc = concat!("The ", $unit, " from `rhs` up to `self`: the length of `rhs..self`, 0 if `rhs` is above `self` (\"Overflow\" on [`Gfn`]). [`offset_from`](", stringify!($t), "::offset_from) tells the two apart.\n\n```\nuse fastzap::", stringify!($t), ";\n\nlet (a, b) = (", stringify!($t), "(", $a, "), ", stringify!($t), "(", $b, "));\nassert_eq!(a - b, ", $a, " - ", $b, ");\nassert_eq!(b - a, 0);\n```")]
            fn sub(self, rhs: $t) -> u64 {
                self.0.saturating_sub(rhs.0)
            }
        }

        impl From<u64> for $t {
            #[doc = concat!("Wraps the number.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(", stringify!($t), "::from(", $a, "u64), ", stringify!($t), "(", $a, "));\n```")]
            fn from(n: u64) -> $t {
                $t(n)
            }
        }

        impl From<$t> for u64 {
            #[doc = concat!("The number inside.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(u64::from(", stringify!($t), "(", $a, ")), ", $a, ");\n```")]
            fn from(x: $t) -> u64 {
                x.0
            }
        }

        /// The number in hex with its `0x` (`0x2a`), so that a message reads
        /// as it does with a plain `u64` formatted with `{:#x}`.
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl std::fmt::LowerHex for $t {
            #[doc = concat!("The number, as `u64`'s `LowerHex` formats it: `{:x}`, `{:#x}`, widths and fills work.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(format!(\"{:x}\", ", stringify!($t), "(0xab)), \"ab\");\nassert_eq!(format!(\"{:#06x}\", ", stringify!($t), "(0xab)), \"0x00ab\");\n```")]
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl std::fmt::UpperHex for $t {
            #[doc = concat!("The number, as `u64`'s `UpperHex` formats it.\n\n```\nuse fastzap::", stringify!($t), ";\n\nassert_eq!(format!(\"{:X}\", ", stringify!($t), "(0xab)), \"AB\");\nassert_eq!(format!(\"{:#X}\", ", stringify!($t), "(0xab)), \"0xAB\");\n```")]
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::UpperHex::fmt(&self.0, f)
            }
        }
    };
}

address_ops!(Gfn, "pages", pages, "0x40", "0x10");
address_ops!(Hva, "bytes", bytes, "0x7f00_0000_3000", "0x7f00_0000_1000");
address_ops!(Pfn, "frames", frames, "0x200", "0x80");

/// The gfns `start..end`, as an iterator: `Range<Gfn>` cannot iterate on
/// stable Rust. Empty when `end` is not above `start`. Build it with
/// [`Gfn::range_to`], [`GfnRange::new`], [`GfnRange::from_len`] or from a
/// `Range<Gfn>`.
///
/// ```
/// use fastzap::{Gfn, GfnRange};
///
/// let slot = GfnRange::from_len(Gfn(0x100), 3).unwrap();
/// assert_eq!(slot.len(), 3);
/// assert!(slot.contains(Gfn(0x102)) && !slot.contains(Gfn(0x103)));
/// let last_two: Vec<Gfn> = slot.skip(1).collect();
/// assert_eq!(last_two, [Gfn(0x101), Gfn(0x102)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GfnRange {
    start: Gfn,
    end: Gfn,
}

impl GfnRange {
    /// `start..end`.
    ///
    /// ```
    /// use fastzap::{Gfn, GfnRange};
    ///
    /// assert_eq!(GfnRange::new(Gfn(2), Gfn(5)).len(), 3);
    /// assert_eq!(GfnRange::new(Gfn(5), Gfn(2)).len(), 0);
    /// ```
    pub const fn new(start: Gfn, end: Gfn) -> GfnRange {
        GfnRange { start, end }
    }

    /// The `npages` gfns from `start`, or `None` if they would pass
    /// `u64::MAX`.
    ///
    /// ```
    /// use fastzap::{Gfn, GfnRange};
    ///
    /// let r = GfnRange::from_len(Gfn(8), 4).unwrap();
    /// assert_eq!((r.start(), r.end()), (Gfn(8), Gfn(12)));
    /// assert_eq!(GfnRange::from_len(Gfn(u64::MAX), 2), None);
    /// ```
    pub const fn from_len(start: Gfn, npages: u64) -> Option<GfnRange> {
        match start.checked_add(npages) {
            Some(end) => Some(GfnRange { start, end }),
            None => None,
        }
    }

    /// The first gfn not yet yielded.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// let mut r = Gfn(3).range_to(Gfn(5));
    /// r.next();
    /// assert_eq!(r.start(), Gfn(4));
    /// ```
    pub const fn start(&self) -> Gfn {
        self.start
    }

    /// The gfn past the last one.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// assert_eq!(Gfn(3).range_to(Gfn(5)).end(), Gfn(5));
    /// ```
    pub const fn end(&self) -> Gfn {
        self.end
    }

    /// How many gfns are left, as a `u64` (a range of gfns can hold more than
    /// `usize::MAX` on 32-bit hosts, which is why this is not an
    /// `ExactSizeIterator`).
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// assert_eq!(Gfn(0).range_to(Gfn(u64::MAX)).len(), u64::MAX);
    /// ```
    pub const fn len(&self) -> u64 {
        self.end.0.saturating_sub(self.start.0)
    }

    /// Whether no gfn is left.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// assert!(Gfn(5).range_to(Gfn(5)).is_empty());
    /// assert!(!Gfn(5).range_to(Gfn(6)).is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.start.0 >= self.end.0
    }

    /// Whether `gfn` is one of the gfns left.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// let r = Gfn(5).range_to(Gfn(7));
    /// assert!(r.contains(Gfn(6)));
    /// assert!(!r.contains(Gfn(7)) && !r.contains(Gfn(4)));
    /// ```
    pub const fn contains(&self, gfn: Gfn) -> bool {
        self.start.0 <= gfn.0 && gfn.0 < self.end.0
    }
}

impl From<std::ops::Range<Gfn>> for GfnRange {
    /// The same gfns.
    ///
    /// ```
    /// use fastzap::{Gfn, GfnRange};
    ///
    /// let r = GfnRange::from(Gfn(1)..Gfn(3));
    /// assert_eq!(r.collect::<Vec<_>>(), [Gfn(1), Gfn(2)]);
    /// ```
    fn from(r: std::ops::Range<Gfn>) -> GfnRange {
        GfnRange::new(r.start, r.end)
    }
}

impl Iterator for GfnRange {
    type Item = Gfn;

    fn next(&mut self) -> Option<Gfn> {
        if self.is_empty() {
            return None;
        }
        let gfn = self.start;
        self.start = Gfn(gfn.0 + 1);
        Some(gfn)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match usize::try_from(self.len()) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }

    fn nth(&mut self, n: usize) -> Option<Gfn> {
        // Without this, skipping a range of 2^40 gfns would take 2^40 steps.
        match u64::try_from(n)
            .ok()
            .and_then(|n| self.start.checked_add(n))
        {
            Some(gfn) if gfn.0 < self.end.0 => {
                self.start = Gfn(gfn.0 + 1);
                Some(gfn)
            }
            _ => {
                self.start = self.end.max(self.start);
                None
            }
        }
    }
}

impl DoubleEndedIterator for GfnRange {
    /// The last gfn left.
    ///
    /// ```
    /// use fastzap::Gfn;
    ///
    /// let down: Vec<Gfn> = Gfn(1).range_to(Gfn(4)).rev().collect();
    /// assert_eq!(down, [Gfn(3), Gfn(2), Gfn(1)]);
    /// ```
    fn next_back(&mut self) -> Option<Gfn> {
        if self.is_empty() {
            return None;
        }
        self.end = Gfn(self.end.0 - 1);
        Some(self.end)
    }
}

impl FusedIterator for GfnRange {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_skips_without_stepping_and_stops_at_the_end() {
        let mut r = Gfn(0).range_to(Gfn(1 << 40));
        assert_eq!(r.nth((1 << 40) - 2), Some(Gfn((1 << 40) - 2)));
        assert_eq!(r.next(), Some(Gfn((1 << 40) - 1)));
        assert_eq!(r.next(), None);
        let mut r = Gfn(3).range_to(Gfn(5));
        assert_eq!(r.nth(2), None);
        assert!(r.is_empty());
        assert_eq!(r.next(), None);
        // A reversed range stays empty after nth.
        let mut r = Gfn(9).range_to(Gfn(2));
        assert_eq!(r.nth(1), None);
        assert_eq!(r.next_back(), None);
    }

    /// `GfnRange` iterates as `Range<u64>` does, both ways and by `nth`.
    #[test]
    fn gfn_ranges_agree_with_u64_ranges() {
        for start in 0..6u64 {
            for end in 0..6u64 {
                let r = Gfn(start).range_to(Gfn(end));
                let want: Vec<Gfn> = (start..end).map(Gfn).collect();
                assert_eq!(r.len(), want.len() as u64);
                assert_eq!(r.is_empty(), want.is_empty());
                assert_eq!(r.size_hint(), (start..end).size_hint());
                assert_eq!(r.clone().collect::<Vec<_>>(), want);
                let back: Vec<Gfn> = r.clone().rev().collect();
                assert_eq!(back, want.iter().rev().copied().collect::<Vec<_>>());
                for n in 0..7 {
                    let (mut a, mut b) = (r.clone(), start..end);
                    assert_eq!(a.nth(n), b.nth(n).map(Gfn), "{start}..{end} nth {n}");
                    assert_eq!(a.collect::<Vec<_>>(), b.map(Gfn).collect::<Vec<_>>());
                }
                for g in 0..7 {
                    assert_eq!(r.contains(Gfn(g)), (start..end).contains(&g));
                }
            }
        }
    }

    /// The operators saturate, the checked forms say so.
    #[test]
    fn arithmetic_saturates_and_never_panics() {
        assert_eq!(Hva(u64::MAX - 1) + 5, Hva(u64::MAX));
        assert_eq!(Pfn(u64::MAX) + u64::MAX, Pfn(u64::MAX));
        assert_eq!(Gfn(3) - Gfn(5), 0);
        assert_eq!(Gfn(5) - Gfn(3), 2);
        assert_eq!(Hva(0).checked_sub(1), None);
        assert_eq!(Hva(0).offset_from(Hva(1)), None);
        let mut g = Gfn(u64::MAX - 1);
        g += 1;
        assert_eq!(g, Gfn(u64::MAX));
        g += 1;
        assert_eq!(g, Gfn(u64::MAX));
        assert_eq!(Gfn(u64::MAX).checked_add(1), None);
        assert_eq!(GfnRange::from_len(Gfn(u64::MAX), 1), None);
        assert_eq!(
            GfnRange::from_len(Gfn(u64::MAX), 0).map(|r| r.len()),
            Some(0)
        );
    }

    #[test]
    fn a_range_ending_at_u64_max_yields_its_last_gfn() {
        let mut r = Gfn(u64::MAX - 2).range_to(Gfn(u64::MAX));
        assert_eq!(r.size_hint(), (2, Some(2)));
        assert_eq!(r.next(), Some(Gfn(u64::MAX - 2)));
        assert_eq!(r.next_back(), Some(Gfn(u64::MAX - 1)));
        assert_eq!(r.next(), None);
        assert_eq!(r.next_back(), None);
    }
}

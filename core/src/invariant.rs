//! # The invariants I1 to I7 and what breaking one looks like
//!
//! A leaf: the protocol, the ghost checks and the audit all name invariants, and
//! none of them owns the names. `SPEC.md`'s invariant table states each one; its
//! rustdoc below links to the code that keeps it and the checks that test it.

/// The invariants of `SPEC.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// Rmap integrity.
    I1,
    /// Descriptor availability.
    I2,
    /// Page lifetime.
    I3,
    /// No stale translation.
    I4,
    /// Obsolete never reused.
    I5,
    /// Progress.
    I6,
    /// MMIO generation.
    I7,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 7] = [
        Invariant::I1,
        Invariant::I2,
        Invariant::I3,
        Invariant::I4,
        Invariant::I5,
        Invariant::I6,
        Invariant::I7,
    ];

    /// The invariant's name in `SPEC.md`.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::I1 => "I1 rmap integrity",
            Invariant::I2 => "I2 descriptor availability",
            Invariant::I3 => "I3 page lifetime",
            Invariant::I4 => "I4 no stale translation",
            Invariant::I5 => "I5 obsolete never reused",
            Invariant::I6 => "I6 progress",
            Invariant::I7 => "I7 MMIO generation",
        }
    }
}

/// One broken invariant, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: Invariant, detail: String) -> Violation {
        Violation { invariant, detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant.name(), self.detail)
    }
}

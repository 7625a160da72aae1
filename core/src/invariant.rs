//! # The invariants I1 to I11 and what breaking one looks like
//!
//! A leaf: the protocol, the ghost checks and the audit all name invariants, and
//! none of them owns the names. `SPEC.md` has a subsection per invariant that
//! states it and lists the code that keeps it, its checks and its tests.

/// The invariants of `SPEC.md`. Each is checked by one function of the audit
/// (under `core/src/audit/`), named after it; `SPEC.md`'s subsection for
/// each says what keeps it and which tests fail without it (a test checks
/// that every name there still exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// Rmap integrity: every present leaf spte of a live page is on exactly one
    /// rmap, its gfn's slot's; every rmap entry points to a present leaf of
    /// that gfn in a page that is not freed; nothing is added to a remove-only
    /// rmap. Checked by `check_i1_rmap_integrity` and, after the seed-v3
    /// unmap, `check_i1_slot_unmapped`.
    I1,
    /// Descriptor availability: chains are well formed, no retired or freed
    /// descriptor is reachable from a head, no walker reads a freed
    /// descriptor, and the descriptors on chains are exactly those allocated
    /// and not retired. Checked by `check_i2_descriptors` and by every walker.
    I2,
    /// Page lifetime: no reader reads a freed page; a page is freed only when
    /// invalid, unused as a root, after a flush and a grace period; the page
    /// table, the lists, `root_count` and the counters agree. Checked by
    /// `check_i3_page_lifetime` and by every lockless reader.
    I3,
    /// No stale translation: once an invalidation, a slot delete or move, or
    /// a notifier returns, no translation that begins afterwards returns a
    /// mapping it removed. Checked by `check_i4_no_stale_translation`,
    /// `check_i4_range_unmapped`, `check_i4_notifier_reach` and the ghost
    /// clock on every translation.
    I4,
    /// Obsolete never reused: `get_page` never returns an obsolete page,
    /// nothing is linked under one, and a wrapped generation revives nothing.
    /// Checked by `check_i5_obsolete_never_reused`.
    I5,
    /// Progress: a zap takes at most [`zap_step_bound`](crate::check::zap_step_bound)
    /// steps and prepares at most a batch per `mmu_lock` hold, and no obsolete
    /// page survives it. Checked by `check_i6_progress`.
    I6,
    /// MMIO generation: an MMIO spte or MMIO cache entry is trusted only while
    /// the memslots it was built from are current. Checked by
    /// `check_i7_mmio_generation` and at every trusted MMIO spte.
    I7,
    /// Bounded retention (365c886860c4, "reclaim the zapped-obsolete page
    /// first", because retention "can lead to OOM"): the shrinker frees the
    /// pages parked on `zapped_obsolete_pages` before it zaps an active page;
    /// and once an invalidation returns, the obsolete pages it leaves behind
    /// are at most [`retain_bound`](crate::check::retain_bound): the roots vCPUs still
    /// use, plus at most one batch parked for the shrinker. Checked by
    /// `check_i8_shrinker_order` where the shrinker zaps, and by
    /// `check_i8_retention` after every zap and in the quiescent audit.
    I8,
    /// Reclamation completes: every retired page, descriptor and rmap is
    /// freed once grace periods have passed, and the reclamation counts
    /// balance: per kind, `freed <= retired <= allocated`, and (with the
    /// facade's small EBR, which counts its queue) every retired object not
    /// yet freed has its deferred free queued. A retired object that is never
    /// freed is this invariant's, not I3's (I3 is a reader reading a freed
    /// one). Checked by `check_i9_reclamation_counts` in the audit and
    /// `check_i9_drained` after a drain; a second retirement of one page or
    /// descriptor is I3's or I2's (`free_page`, `DescPtr::retire`).
    I9,
    /// Memslot indexes agree: the three maps of a `Memslots` generation (by
    /// base gfn, by id, by host address) name the same slots with the same
    /// fields, the host index's length and overlap counts are those of its
    /// slots, and no two slots' gfn ranges overlap. Checked by
    /// `check_i10_memslot_indexes`.
    I10,
    /// vCPU claim exclusive: at most one operation (or `ClaimedVcpu`) holds a
    /// vCPU's claim at a time, and between operations a vCPU's claim flag is
    /// set exactly when a claim holds it. Checked where a claim is taken
    /// (`Ghost::vcpu_claimed`) and by `check_i11_vcpu_claims`.
    I11,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 11] = [
        Invariant::I1,
        Invariant::I2,
        Invariant::I3,
        Invariant::I4,
        Invariant::I5,
        Invariant::I6,
        Invariant::I7,
        Invariant::I8,
        Invariant::I9,
        Invariant::I10,
        Invariant::I11,
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
            Invariant::I8 => "I8 bounded retention",
            Invariant::I9 => "I9 reclamation completes",
            Invariant::I10 => "I10 memslot indexes agree",
            Invariant::I11 => "I11 vCPU claim exclusive",
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

/// The line of a failure report that names the violation detected first:
/// `first detected: <invariant name>: <detail>`. A report lists its
/// violations in detection order; this line says which came first without
/// depending on how the rest is laid out.
pub const FIRST_DETECTED: &str = "first detected: ";

/// Orders one execution's violations by when they were detected, and drops
/// repeats: first those recorded while the execution ran (`during`, in the
/// order they were recorded: the ghost state records each as it sees it,
/// and a model thread's own probe as it returns), then those only the
/// end-of-execution checks found (`at_end`, in the audit's check order).
/// So the first element is "the first detected": the first violation
/// recorded during the execution, else the end audit's first.
pub fn detection_order(during: &[Violation], at_end: &[Violation]) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::with_capacity(during.len() + at_end.len());
    for v in during.iter().chain(at_end) {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_recorded_during_the_execution_comes_first() {
        let late = Violation::new(Invariant::I1, "found by the end audit".into());
        let early = Violation::new(Invariant::I6, "recorded while it ran".into());
        let order = detection_order(std::slice::from_ref(&early), &[late.clone(), early.clone()]);
        assert_eq!(order, vec![early, late.clone()]);
        assert_eq!(
            detection_order(&[], std::slice::from_ref(&late)),
            vec![late]
        );
    }

    #[test]
    fn every_invariant_has_a_distinct_name_in_order() {
        for (i, inv) in Invariant::ALL.iter().enumerate() {
            assert!(inv.name().starts_with(&format!("I{} ", i + 1)), "{inv:?}");
        }
    }
}

//! # The MMU dimension
//!
//! Every workload that drives a [`fastzap::Vm`] runs once per MMU of
//! [`Mmu::ALL`]: the scripted scenario, the native stresses and the
//! conformance runs ([`crate::checks`]). What a caller observes (translations,
//! fault results, errors, the memslots and `slot_count`, `hva_to_pfn`, the
//! pending requests) is checked on every MMU against the one sequential
//! reference. What is about the shadow MMU's own structures is checked on the
//! shadow MMU only ([`shadow_internals`]). Deletions are drawn only from those
//! the MMU has ([`deletions`]). Mutants are the shadow MMU's: the zoo and the
//! `*-can-fail` rows run on it alone.

use fastzap::{DeletionStrategy, Mmu};

/// Whether the shadow MMU's own checks apply to a VM of `mmu`:
/// `fastzap::check::audit` (rmap integrity, shadow-page lifetime and links,
/// the generation of every page), the page, descriptor and rmap counters of
/// `Vm::counts` and their balance against `Vm::shadow_pages`, the zap
/// history's statistics (`ZapStats` counts shadow pages zapped), and the row
/// that exists to run the audit points (`native-stress-audited`:
/// `Config::audit_points`, the same audit at every commit). They describe `mmu.c`'s shadow pages, rmaps and descriptors, which the TDP MMU
/// (`tdp_mmu.c`: one TDP page table per root, no rmap) does not have.
pub fn shadow_internals(mmu: Mmu) -> bool {
    mmu == Mmu::Shadow
}

/// The deletion strategies `mmu` has, in [`DeletionStrategy::ALL`]'s order:
/// a workload on `mmu` draws its deletions from these alone.
pub fn deletions(mmu: Mmu) -> Vec<DeletionStrategy> {
    DeletionStrategy::ALL
        .into_iter()
        .filter(|d| mmu.supports(*d))
        .collect()
}

/// `strategy` if `mmu` has it, else one `mmu` has, chosen by `pick` (an index
/// into [`deletions`]): a workload's draw over every strategy, kept for the
/// MMUs that have them all.
pub fn deletion_for(
    mmu: Mmu,
    strategy: DeletionStrategy,
    pick: impl FnOnce(usize) -> usize,
) -> DeletionStrategy {
    if mmu.supports(strategy) {
        return strategy;
    }
    let have = deletions(mmu);
    have[pick(have.len()) % have.len()]
}

/// The MMU named `name` (`shadow`, `tdp`), if one is.
pub fn by_name(name: &str) -> Option<Mmu> {
    Mmu::ALL.into_iter().find(|m| m.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tdp_mmu_draws_only_what_it_supports() {
        assert_eq!(deletions(Mmu::Shadow), DeletionStrategy::ALL.to_vec());
        let tdp = deletions(Mmu::Tdp);
        assert!(!tdp.is_empty() && tdp.len() < DeletionStrategy::ALL.len());
        for d in DeletionStrategy::ALL {
            for pick in 0..8 {
                let got = deletion_for(Mmu::Tdp, d, |_| pick);
                assert!(Mmu::Tdp.supports(got), "{d:?} became {got:?}");
                assert_eq!(got == d, Mmu::Tdp.supports(d));
                assert_eq!(deletion_for(Mmu::Shadow, d, |_| pick), d);
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for m in Mmu::ALL {
            assert_eq!(by_name(m.name()), Some(m));
        }
        assert_eq!(by_name("ept"), None);
        assert!(shadow_internals(Mmu::Shadow) && !shadow_internals(Mmu::Tdp));
    }
}

//! # What a VM runs: which MMU, which memslot delete
//!
//! The designs fastzap specifies side by side, chosen per VM in
//! [`Config`](crate::Config): the MMU ([`Mmu`]) and the memslot deletion
//! strategy ([`DeletionStrategy`]). Not every MMU has every strategy
//! ([`Mmu::supports`]).

/// Which MMU a VM runs: the 2013 shadow MMU (`mmu.c`'s shadow pages, one
/// `mmu_lock` mutex, a generation bump) or today's TDP MMU (`tdp_mmu.c`: an
/// rwlock, zaps under the read lock, tables freed after a grace period, roots
/// with reference counts). Both run behind the same [`Vm`](crate::Vm) API, and
/// what a caller can observe does not depend on the choice.
///
/// ## What each operation does on the TDP MMU (core/src/tdp/)
///
/// Input checks and errors are the shadow MMU's, in the same order.
///
/// | operation | on the TDP MMU |
/// |---|---|
/// | [`Vm::page_fault`](crate::Vm::page_fault) | `kvm_tdp_mmu_map` under the read lock; 4 KiB leaves only ([`Config::large_pages`](crate::Config::large_pages) is ignored); the same four retry reasons |
/// | [`Vm::translate`](crate::Vm::translate), [`Vm::translate_run`](crate::Vm::translate_run) | requests, the vCPU TLB, the MMIO cache, then a walk of the vCPU's root inside an epoch pin |
/// | `Vm::translate_unsynchronized` | the same walk of the vCPU's root alone: no mode, requests check, TLB or MMIO cache |
/// | [`Vm::handle_requests`](crate::Vm::handle_requests) | a reload request is `KVM_REQ_MMU_FREE_OBSOLETE_ROOTS`: put an invalid root, then load a valid one (reused or new) |
/// | [`Vm::invalidate_zap_all_pages`](crate::Vm::invalidate_zap_all_pages) | `kvm_mmu_zap_all_fast`: bump, invalidate roots and request under the write lock, zap them under the read lock; `zapped` counts tables |
/// | [`Vm::zap_all`](crate::Vm::zap_all) | `kvm_tdp_mmu_zap_all` (the kernel's runs only when the VM dies): under the write lock, the valid roots invalidated and a reload requested from every vCPU, as the shadow MMU's zap of its roots does, then every root emptied and a flush |
/// | [`Vm::shrink`](crate::Vm::shrink) | nothing: the kernel's shrinker never touches TDP tables; returns 0 |
/// | [`Vm::delete_memslot`](crate::Vm::delete_memslot) | zap all (`Merged311`) or the slot's leaves in every root and, if one was zapped, a flush (`SlotOnlyQuirkOff`); other strategies are refused |
/// | [`Vm::invalidate_range`](crate::Vm::invalidate_range) | `kvm_tdp_mmu_unmap_gfn_range` in every root, valid and invalid, then a flush |
/// | [`Vm::clear_flush_young`](crate::Vm::clear_flush_young), [`Vm::test_young`](crate::Vm::test_young) | Accessed bits by compare-and-exchange under the read lock |
/// | [`Vm::change_pte`](crate::Vm::change_pte) | the leaf re-pointed read-only at the new page (`set_spte_gfn`, before 6.9 removed the notifier) |
/// | [`Vm::root`](crate::Vm::root) | the vCPU's TDP root: its table's id, `mmu_valid_gen` when made, `!role.invalid` |
/// | [`Vm::shadow_pages`](crate::Vm::shadow_pages) | TDP tables, roots included, not yet handed to the reclaimer |
/// | dropping the [`Vm`](crate::Vm) | `kvm_mmu_uninit_tdp_mmu`: put, invalidate and zap every root, then wait for every free |
///
/// ```
/// use fastzap::{Config, Mmu};
///
/// assert_eq!(Config::native().mmu, Mmu::Shadow);
/// assert_eq!(Mmu::ALL.map(Mmu::name), ["shadow", "tdp"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mmu {
    /// The shadow MMU of Linux 3.11 and the fast zap (`mmu.c`).
    #[default]
    Shadow,
    /// The TDP MMU of Linux 6.9 and later (`tdp_mmu.c`).
    Tdp,
}

impl Mmu {
    /// Both MMUs, shadow first.
    pub const ALL: [Mmu; 2] = [Mmu::Shadow, Mmu::Tdp];

    /// A short lower-case name, as reports and tables print it.
    ///
    /// ```
    /// assert_eq!(fastzap::Mmu::Tdp.name(), "tdp");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Mmu::Shadow => "shadow",
            Mmu::Tdp => "tdp",
        }
    }

    /// Whether this MMU implements `deletion`. The TDP MMU has today's two:
    /// the zap of everything with `KVM_X86_QUIRK_SLOT_ZAP_ALL` set
    /// ([`DeletionStrategy::Merged311`]'s shape: the INVALID copy, the wait,
    /// invalidate all, publish) and the quirk off
    /// ([`DeletionStrategy::SlotOnlyQuirkOff`]). The shadow MMU has them all.
    ///
    /// ```
    /// use fastzap::{DeletionStrategy, Mmu};
    ///
    /// assert!(DeletionStrategy::ALL.into_iter().all(|d| Mmu::Shadow.supports(d)));
    /// assert!(Mmu::Tdp.supports(DeletionStrategy::SlotOnlyQuirkOff));
    /// assert!(!Mmu::Tdp.supports(DeletionStrategy::SlotOnly2019));
    /// ```
    pub const fn supports(self, deletion: DeletionStrategy) -> bool {
        match self {
            Mmu::Shadow => true,
            Mmu::Tdp => matches!(
                deletion,
                DeletionStrategy::Merged311 | DeletionStrategy::SlotOnlyQuirkOff
            ),
        }
    }
}

/// How a memslot DELETE (and the old half of a MOVE) is carried out.
///
/// ```
/// use fastzap::{Config, DeletionStrategy, Gfn, Hva, SlotId, SlotSpec, Vm};
///
/// let mut config = Config::native();
/// assert_eq!(config.deletion, DeletionStrategy::Merged311);
/// config.deletion = DeletionStrategy::SeedV3;
/// let vm = Vm::new(config)?;
/// let spec = SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 8, userspace_addr: Hva(0x10_0000) };
/// vm.create_memslot(spec)?;
/// vm.delete_memslot(SlotId(0))?;
/// assert_eq!(vm.slot_count(), 0);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionStrategy {
    /// Linux 3.11 as merged: publish a copy with the slot INVALID, wait for
    /// readers, zap all (fast), publish the final slots, wait, free the old rmap
    /// and lpage_info.
    #[default]
    Merged311,
    /// The seed's v3: the deleted slot's rmap becomes remove-only under
    /// `mmu_lock` together with the generation bump, its sptes are unmapped
    /// outside `mmu_lock`, and the rmap and its descriptors are reclaimed after a
    /// grace period. Then, unlike the seed as posted, it zaps the obsolete
    /// pages (`zap_obsolete_pages`) before the delete returns.
    SeedV3,
    /// The seed's v3 as posted: the same steps as [`DeletionStrategy::SeedV3`]
    /// up to its grace period, and no zap. The obsolete pages "are keeped in
    /// mmu-cache until page allocator reclaims page": here, until the shrinker
    /// or the next invalidation zaps them. The next invalidation zaps them
    /// before it bumps the generation, so at most one obsolete generation is
    /// ever retained (I8).
    SeedV3Deferred,
    // ----- the 2019 slot-only zap and its descendants (core/src/memslot_zap.rs)
    /// 4e103134b862 (Linux 5.1) as merged, reverted by d012a06ab1d2 (5.3):
    /// the 3.11 INVALID copy and wait, then, under `mmu_lock`, the slot's
    /// rmaps zapped by `slot_handle_all_level(.., kvm_zap_rmapp, false)`,
    /// whose lock breaks do not flush, then every valid page hashed by one of
    /// the slot's gfns prepared, with a flush-or-zap at each lock break and at
    /// the end. Nothing else is zapped and no generation is bumped.
    SlotOnly2019,
    /// The June 2020 proposal on the kvm list: as
    /// [`DeletionStrategy::SlotOnly2019`], with the rmap zap flushing at
    /// every lock break and at its end (`lock_flush_tlb = true`).
    SlotOnlyFlushing2020,
    /// Today's delete with `KVM_X86_QUIRK_SLOT_ZAP_ALL` off (aa8d1f48d353,
    /// 6.12), shadow MMU: the slot's leaves (`kvm_unmap_gfn_range`), then the
    /// valid pages hashed by the slot's gfns that shadow guest page tables
    /// (fcd1ec9cb59c, `kvm_mmu_zap_memslot_pages_and_flush`), then a flush.
    SlotOnlyQuirkOff,
}

impl DeletionStrategy {
    /// Every strategy, in declaration order.
    pub const ALL: [DeletionStrategy; 6] = [
        DeletionStrategy::Merged311,
        DeletionStrategy::SeedV3,
        DeletionStrategy::SeedV3Deferred,
        DeletionStrategy::SlotOnly2019,
        DeletionStrategy::SlotOnlyFlushing2020,
        DeletionStrategy::SlotOnlyQuirkOff,
    ];

    /// Whether the strategy zaps only what belongs to the slot (no generation
    /// bump, no reload request from every vCPU): other slots' translations
    /// may stay mapped.
    ///
    /// ```
    /// use fastzap::DeletionStrategy;
    ///
    /// let slot_only: Vec<_> = DeletionStrategy::ALL.into_iter().filter(|s| s.is_slot_only()).collect();
    /// assert_eq!(slot_only.len(), 3);
    /// assert!(!DeletionStrategy::Merged311.is_slot_only());
    /// ```
    pub fn is_slot_only(self) -> bool {
        matches!(
            self,
            DeletionStrategy::SlotOnly2019
                | DeletionStrategy::SlotOnlyFlushing2020
                | DeletionStrategy::SlotOnlyQuirkOff
        )
    }
}

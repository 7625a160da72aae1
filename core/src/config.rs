//! # Configuration
//!
//! One [`Config`] per VM. Native runs use kernel-sized tables; models use a tiny
//! configuration (2 sptes per page, 2 levels, 4 gfns) so that loom and shuttle
//! can afford to explore it.

use crate::design::{DeletionStrategy, Mmu};
use crate::error::{ConfigError, MmuError};
#[cfg(feature = "ghost")]
use crate::mutant::Mutant;
use crate::sync::ReclaimBackend;

/// When `zap_obsolete_pages` commits (flushes and retires) what it prepared.
///
/// ```
/// use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm, ZapCommit};
///
/// assert_eq!(Config::native().commit, ZapCommit::PerBatch);
/// for commit in [ZapCommit::PerBatch, ZapCommit::AtEnd] {
///     let mut config = Config::native();
///     (config.commit, config.batch) = (commit, 1);
///     let vm = Vm::new(config)?;
///     vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: Hva(0x10_0000) })?;
///     vm.handle_requests(VcpuId(0))?;
///     vm.page_fault(VcpuId(0), Gfn(0), true)?; // a root and two pages below it
///     let stats = vm.invalidate_zap_all_pages()?;
///     // Both shapes zap all three and retire the two the vCPU is not using.
///     assert_eq!((stats.zapped, stats.committed), (3, 2));
/// }
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZapCommit {
    /// Before every lock break, so that no `mmu_lock` hold grows with the
    /// guest: each hold prepares and commits at most one batch. The epoch makes
    /// this safe to do early: a walker still inside a committed page keeps it
    /// alive until it unpins, and the flush waits for vCPUs in a lockless walk.
    #[default]
    PerBatch,
    /// Linux 3.11 (and today's kernel for `zapped_obsolete_pages`): park what
    /// each batch prepared on `zapped_obsolete_pages` at the lock breaks, for
    /// the shrinker, and commit it all at the end, in one hold that is
    /// proportional to the pages zapped.
    AtEnd,
}

/// The configuration of one VM.
///
/// Start from [`Config::native`] or [`Config::model`] and set fields; the
/// struct is `#[non_exhaustive]`, so new knobs do not break callers.
///
/// ```
/// use fastzap::{Config, DeletionStrategy, Vm};
///
/// let mut config = Config::native();
/// config.vcpus = 4;
/// config.batch = 64;
/// config.deletion = DeletionStrategy::SeedV3;
/// let vm = Vm::new(config)?;
/// assert_eq!(vm.config().vcpus, 4);
/// assert_eq!(vm.config().batch, 64);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Number of vCPUs.
    pub vcpus: usize,
    /// Sptes per shadow page (a power of two, at least 2). 512 in the kernel.
    pub spte_count: usize,
    /// Levels of the shadow page table (the root's level). The guest physical
    /// space is `spte_count ^ levels` gfns.
    pub levels: u8,
    /// Address spaces (1 or 2). With 2, odd vCPUs run in the second (`role.smm`)
    /// and use their own roots, so a gfn can be mapped twice.
    pub address_spaces: u8,
    /// Width of `mmu_valid_gen` in bits (1 to 63), so wraparound is reachable.
    pub gen_bits: u32,
    /// Width of the memslots generation stored in an MMIO spte (1 to 20).
    pub mmio_gen_bits: u32,
    /// Pages zapped per `mmu_lock` hold in `zap_obsolete_pages` (`BATCH_ZAP_PAGES`).
    pub batch: usize,
    /// When `zap_obsolete_pages` commits: per batch (fastzap's default), or
    /// once at the end (Linux 3.11).
    pub commit: ZapCommit,
    /// Sptes per `PteListDesc` (`PTE_LIST_EXT`).
    pub desc_capacity: usize,
    /// The MMU: the shadow MMU (the default) or the TDP MMU.
    pub mmu: Mmu,
    /// The deletion strategy `delete_memslot` uses (one that
    /// [`Mmu::supports`]).
    pub deletion: DeletionStrategy,
    /// The epoch implementation.
    pub reclaim: ReclaimBackend,
    /// Large pages: a fault may map a leaf at level 2 spanning `spte_count`
    /// gfns where the slot's `lpage_info` and the host allow it
    /// (`mapping_level`). On in [`Config::native`] (and so in the stress and
    /// conformance runs), off in [`Config::model`], so that the loom and shuttle
    /// models explore what they explored before. Ignored with one level.
    pub large_pages: bool,
    /// Record the protocol event log (for counterexamples). Checking code:
    /// only with the `ghost` feature.
    #[cfg(feature = "ghost")]
    pub events: bool,
    /// Run the audit at its named points inside operations. Checking code:
    /// only with the `ghost` feature.
    #[cfg(feature = "ghost")]
    pub audit_points: bool,
    /// A deliberate bug from the zoo, or `None` for the correct protocol. For
    /// fastzap's own checkers: only with the `ghost` feature.
    #[doc(hidden)]
    #[cfg(feature = "ghost")]
    pub mutant: Option<Mutant>,
}

impl Default for Config {
    fn default() -> Self {
        Config::native()
    }
}

impl Config {
    /// Kernel-sized tables: 512 sptes per page, 3 levels, a 64-bit generation,
    /// large pages.
    ///
    /// ```
    /// use fastzap::Config;
    ///
    /// let config = Config::native();
    /// assert_eq!((config.spte_count, config.levels), (512, 3));
    /// assert!(config.large_pages);
    /// assert_eq!(config.max_gfn(), 1 << 27);
    /// assert_eq!(config.validate(), Ok(()));
    /// ```
    pub fn native() -> Self {
        Config {
            vcpus: 2,
            spte_count: 512,
            levels: 3,
            address_spaces: 2,
            gen_bits: 63,
            mmio_gen_bits: 19,
            batch: 10,
            commit: ZapCommit::default(),
            desc_capacity: 3,
            mmu: Mmu::default(),
            deletion: DeletionStrategy::default(),
            reclaim: ReclaimBackend::default(),
            large_pages: true,
            #[cfg(feature = "ghost")]
            events: false,
            #[cfg(feature = "ghost")]
            audit_points: cfg!(debug_assertions),
            #[cfg(feature = "ghost")]
            mutant: None,
        }
    }

    /// The tiny configuration of the models: 2 sptes per page, 2 levels (4 gfns),
    /// 2 sptes per descriptor, a 2-bit generation, and the event log on.
    ///
    /// ```
    /// use fastzap::Config;
    ///
    /// let config = Config::model();
    /// assert_eq!((config.spte_count, config.levels, config.gen_bits), (2, 2, 2));
    /// assert!(!config.large_pages);
    /// assert_eq!(config.max_gfn(), 4);
    /// assert_eq!(config.validate(), Ok(()));
    /// ```
    pub fn model() -> Self {
        Config {
            vcpus: 2,
            spte_count: 2,
            levels: 2,
            address_spaces: 2,
            gen_bits: 2,
            mmio_gen_bits: 2,
            batch: 2,
            commit: ZapCommit::default(),
            desc_capacity: 2,
            mmu: Mmu::default(),
            deletion: DeletionStrategy::default(),
            reclaim: ReclaimBackend::default(),
            large_pages: false,
            #[cfg(feature = "ghost")]
            events: true,
            #[cfg(feature = "ghost")]
            audit_points: true,
            #[cfg(feature = "ghost")]
            mutant: None,
        }
    }

    /// The number of gfns the shadow page table can map.
    ///
    /// ```
    /// use fastzap::{Config, Gfn, MmuError, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::model())?;
    /// assert_eq!(vm.config().max_gfn(), 2 * 2);
    /// vm.handle_requests(VcpuId(0))?;
    /// let beyond = Gfn(vm.config().max_gfn());
    /// assert!(matches!(vm.page_fault(VcpuId(0), beyond, true), Err(MmuError::GfnOutOfRange { .. })));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn max_gfn(&self) -> u64 {
        (self.spte_count as u64).saturating_pow(u32::from(self.levels))
    }

    /// Whether this VM runs with the deliberate bug `mutant`. Always false
    /// without the `ghost` feature, so that every mutant branch compiles out.
    #[cfg(feature = "ghost")]
    #[inline]
    pub(crate) fn mutant_is(&self, mutant: Mutant) -> bool {
        self.mutant == Some(mutant)
    }

    /// Without the `ghost` feature there are no mutants.
    #[cfg(not(feature = "ghost"))]
    #[inline(always)]
    pub(crate) fn mutant_is(&self, _mutant: crate::mutant::Mutant) -> bool {
        false
    }

    /// `log2(spte_count)`.
    pub(crate) fn index_bits(&self) -> u32 {
        self.spte_count.trailing_zeros()
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// [`MmuError::InvalidConfig`] with the first rule broken, in this order
    /// (the order of [`ConfigError`]'s variants): `vcpus`
    /// ([`ConfigError::Vcpus`]), `spte_count`, `levels`, the size of the gfn
    /// space (`spte_count ^ levels`), `address_spaces`, `gen_bits`,
    /// `mmio_gen_bits`, `batch`, `desc_capacity`, a deletion strategy the MMU
    /// implements ([`ConfigError::Deletion`]), then the small EBR's
    /// participant slots ([`ConfigError::ReclaimSlots`]).
    ///
    /// ```
    /// use fastzap::{Config, ConfigError, MmuError, ReclaimBackend};
    ///
    /// let mut config = Config::model();
    /// assert_eq!(config.validate(), Ok(()));
    /// config.levels = 9;
    /// config.reclaim = ReclaimBackend::small(0);
    /// assert_eq!(
    ///     config.validate(),
    ///     Err(MmuError::InvalidConfig(ConfigError::Levels { levels: 9 }))
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), MmuError> {
        self.check().map_err(MmuError::InvalidConfig)
    }

    /// The rules of [`Config::validate`], in its order.
    fn check(&self) -> Result<(), ConfigError> {
        let Config {
            vcpus,
            spte_count,
            levels,
            address_spaces,
            gen_bits,
            mmio_gen_bits,
            batch,
            desc_capacity,
            mmu,
            deletion,
            reclaim,
            ..
        } = *self;
        if !(1..=64).contains(&vcpus) {
            return Err(ConfigError::Vcpus { vcpus });
        }
        if !(2..=4096).contains(&spte_count) || !spte_count.is_power_of_two() {
            return Err(ConfigError::SpteCount { spte_count });
        }
        if !(1..=8).contains(&levels) {
            return Err(ConfigError::Levels { levels });
        }
        if u64::from(self.index_bits()) * u64::from(levels) > 40 {
            return Err(ConfigError::GfnSpace { spte_count, levels });
        }
        if !(1..=2).contains(&address_spaces) {
            return Err(ConfigError::AddressSpaces { address_spaces });
        }
        if !(1..=63).contains(&gen_bits) {
            return Err(ConfigError::GenBits { gen_bits });
        }
        if !(1..=20).contains(&mmio_gen_bits) {
            return Err(ConfigError::MmioGenBits { mmio_gen_bits });
        }
        if batch == 0 {
            return Err(ConfigError::Batch { batch });
        }
        if !(2..=16).contains(&desc_capacity) {
            return Err(ConfigError::DescCapacity { desc_capacity });
        }
        if !mmu.supports(deletion) {
            return Err(ConfigError::Deletion { mmu, deletion });
        }
        if let ReclaimBackend::Small { slots, .. } = reclaim
            && !(1..=ConfigError::MAX_RECLAIM_SLOTS).contains(&slots)
        {
            return Err(ConfigError::ReclaimSlots { slots });
        }
        Ok(())
    }
}

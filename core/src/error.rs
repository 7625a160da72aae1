//! # Typed errors
//!
//! Every public operation validates its input before it changes anything, so an
//! `Err` always means "nothing happened". An operation that can refuse its
//! input for more than one reason checks the reasons in a fixed order, which
//! its documentation lists under "Errors": an input that breaks two rules gets
//! the first one's error.

use crate::addr::{Gfn, Hva};
use crate::design::{DeletionStrategy, Mmu};
use crate::ids::{SlotId, VcpuId};
use crate::sync::ReclaimBackend;

/// Why an operation was refused.
///
/// `#[non_exhaustive]`: a match needs a `_` arm, so a variant added later, or
/// one that exists only with a feature, breaks no caller. The production build
/// has no `ZapLivelock`: that is the checking build's progress bound (I6),
/// which the kernel's zap loop does not have. A match on it compiles only with
/// the `ghost` feature:
///
#[cfg_attr(not(feature = "ghost"), doc = "```compile_fail")]
#[cfg_attr(feature = "ghost", doc = "```")]
/// use fastzap::{Config, MmuError, Vm};
///
/// let vm = Vm::new(Config::model())?;
/// match vm.invalidate_zap_all_pages() {
///     Ok(_) => {}
///     Err(MmuError::ZapLivelock { steps, bound }) => panic!("{steps} > {bound}"),
///     Err(other) => panic!("{other}"),
/// }
/// # Ok::<(), MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MmuError {
    /// The configuration is unusable: which rule it breaks, and with what.
    InvalidConfig(ConfigError),
    /// No vCPU has this index.
    UnknownVcpu(VcpuId),
    /// Another thread is running an operation on this vCPU (`vcpu->mutex`).
    VcpuBusy(VcpuId),
    /// The gfn is beyond what the shadow page table maps.
    GfnOutOfRange {
        /// The gfn asked for.
        gfn: Gfn,
        /// The first gfn that is out of range.
        limit: Gfn,
    },
    /// The host address is outside the host's virtual address space: at or
    /// above [`Hva::LIMIT`] (2^48).
    ///
    /// ```
    /// use fastzap::{Config, Hva, MmuError, Vm};
    ///
    /// let vm = Vm::new(Config::model())?;
    /// let past = Hva::LIMIT + 0x10;
    /// let err = vm.invalidate_range(Hva(0), past).unwrap_err();
    /// // A range reports its first address at or above the limit.
    /// assert_eq!(err, MmuError::HvaOutOfRange { hva: Hva::LIMIT, limit: Hva::LIMIT });
    /// assert!(vm.change_pte(past).is_err());
    /// # Ok::<(), MmuError>(())
    /// ```
    HvaOutOfRange {
        /// The first address asked for that is out of range.
        hva: Hva,
        /// The first address that is out of range ([`Hva::LIMIT`]).
        limit: Hva,
    },
    /// No memslot has this id.
    UnknownSlot(SlotId),
    /// A memslot with this id already exists.
    SlotExists(SlotId),
    /// The slot would overlap another slot's gfns.
    SlotOverlap {
        /// The slot being created or moved.
        slot: SlotId,
        /// The slot it would overlap.
        other: SlotId,
    },
    /// Creating the slot would exceed `KVM_USER_MEM_SLOTS` slots
    /// ([`Memslots::MAX_SLOTS`](crate::Memslots::MAX_SLOTS)).
    TooManySlots {
        /// The slot being created.
        slot: SlotId,
        /// The most slots a VM may have.
        limit: usize,
    },
    /// A slot must have at least one page.
    EmptySlot,
    /// A slot's host range is not page aligned, overflows, or does not end at
    /// or below [`Hva::LIMIT`] (2^48).
    BadHostRange,
    /// A notifier was given an empty or reversed hva range.
    BadHvaRange,
    /// With the `ghost` feature only: `zap_obsolete_pages` exceeded its
    /// progress bound (I6, `fastzap::check::zap_step_bound`), a livelock that
    /// only a mutant of the checking build can cause. The checking build gives
    /// up there so that a model reports the livelock instead of spinning; the
    /// production build, like the kernel, has no such exit.
    #[cfg(feature = "ghost")]
    ZapLivelock {
        /// Steps taken when it gave up.
        steps: u64,
        /// The bound computed when it began.
        bound: u64,
    },
}

impl From<ConfigError> for MmuError {
    /// [`MmuError::InvalidConfig`].
    ///
    /// ```
    /// use fastzap::{ConfigError, MmuError};
    ///
    /// let e = MmuError::from(ConfigError::Batch { batch: 0 });
    /// assert_eq!(e, MmuError::InvalidConfig(ConfigError::Batch { batch: 0 }));
    /// ```
    fn from(e: ConfigError) -> MmuError {
        MmuError::InvalidConfig(e)
    }
}

impl std::fmt::Display for MmuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MmuError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            MmuError::UnknownVcpu(id) => write!(f, "no vCPU {id}"),
            MmuError::VcpuBusy(id) => write!(f, "vCPU {id} is in use by another thread"),
            MmuError::GfnOutOfRange { gfn, limit } => {
                write!(f, "gfn {gfn:#x} is out of range (limit {limit:#x})")
            }
            MmuError::HvaOutOfRange { hva, limit } => write!(
                f,
                "hva {hva:#x} is outside the host's address space (limit {limit:#x})"
            ),
            MmuError::UnknownSlot(id) => write!(f, "no memslot {id}"),
            MmuError::SlotExists(id) => write!(f, "memslot {id} already exists"),
            MmuError::SlotOverlap { slot, other } => {
                write!(f, "memslot {slot} would overlap memslot {other}")
            }
            MmuError::TooManySlots { slot, limit } => {
                write!(f, "memslot {slot}: a VM has at most {limit} memslots")
            }
            MmuError::EmptySlot => f.write_str("a memslot needs at least one page"),
            MmuError::BadHostRange => f.write_str(
                "host range not page aligned, overflows, or ends beyond the host's \
                 address space",
            ),
            MmuError::BadHvaRange => f.write_str("empty or reversed hva range"),
            #[cfg(feature = "ghost")]
            MmuError::ZapLivelock { steps, bound } => {
                write!(
                    f,
                    "zap_obsolete_pages livelocked: {steps} steps, bound {bound}"
                )
            }
        }
    }
}

impl std::error::Error for MmuError {}

/// Which rule of [`Config::validate`](crate::Config::validate) or
/// [`Vm::new`](crate::Vm::new) a configuration breaks, with the offending
/// values. Carried by [`MmuError::InvalidConfig`].
///
/// `Config::validate` checks the rules in the order of the variants, and
/// reports the first one broken; `Vm::new` checks them, then
/// [`ConfigError::ReclaimUnavailable`].
///
/// ```
/// use fastzap::{Config, ConfigError, MmuError, Vm};
///
/// let mut config = Config::model();
/// config.vcpus = 0;
/// config.batch = 0;
/// // Two rules are broken: the first one's error wins.
/// let err = Vm::new(config).unwrap_err();
/// assert_eq!(err, MmuError::InvalidConfig(ConfigError::Vcpus { vcpus: 0 }));
/// assert_eq!(
///     err.to_string(),
///     "invalid configuration: vcpus must be 1 to 64, not 0"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `vcpus` is not 1 to 64.
    Vcpus {
        /// The number asked for.
        vcpus: usize,
    },
    /// `spte_count` is not a power of two from 2 to 4096.
    SpteCount {
        /// The number asked for.
        spte_count: usize,
    },
    /// `levels` is not 1 to 8.
    Levels {
        /// The number asked for.
        levels: u8,
    },
    /// `spte_count ^ levels` exceeds 2^40 gfns.
    GfnSpace {
        /// `spte_count`.
        spte_count: usize,
        /// `levels`.
        levels: u8,
    },
    /// `address_spaces` is not 1 or 2.
    AddressSpaces {
        /// The number asked for.
        address_spaces: u8,
    },
    /// `gen_bits` is not 1 to 63.
    GenBits {
        /// The width asked for.
        gen_bits: u32,
    },
    /// `mmio_gen_bits` is not 1 to 20.
    MmioGenBits {
        /// The width asked for.
        mmio_gen_bits: u32,
    },
    /// `batch` is 0.
    Batch {
        /// The batch asked for.
        batch: usize,
    },
    /// `desc_capacity` is not 2 to 16.
    DescCapacity {
        /// The capacity asked for.
        desc_capacity: usize,
    },
    /// `deletion` is a strategy `mmu` does not implement
    /// ([`Mmu::supports`]).
    Deletion {
        /// The MMU asked for.
        mmu: Mmu,
        /// The strategy asked for.
        deletion: DeletionStrategy,
    },
    /// `reclaim` is the small EBR with no participant slot (no guard could
    /// ever pin), or with more than [`ConfigError::MAX_RECLAIM_SLOTS`].
    ReclaimSlots {
        /// The participant slots asked for.
        slots: usize,
    },
    /// `reclaim` names a backend this build cannot run: crossbeam-epoch in
    /// the shuttle lane, which cannot see inside it. Checked by `Vm::new`
    /// only, after every rule of `Config::validate`.
    ReclaimUnavailable {
        /// The backend asked for.
        backend: ReclaimBackend,
    },
}

impl ConfigError {
    /// The most participant slots the small EBR may have
    /// ([`ReclaimBackend::small`]).
    ///
    /// ```
    /// use fastzap::{Config, ConfigError, MmuError, ReclaimBackend};
    ///
    /// let mut config = Config::model();
    /// config.reclaim = ReclaimBackend::small(ConfigError::MAX_RECLAIM_SLOTS);
    /// assert_eq!(config.validate(), Ok(()));
    /// config.reclaim = ReclaimBackend::small(ConfigError::MAX_RECLAIM_SLOTS + 1);
    /// assert!(matches!(
    ///     config.validate(),
    ///     Err(MmuError::InvalidConfig(ConfigError::ReclaimSlots { .. }))
    /// ));
    /// ```
    pub const MAX_RECLAIM_SLOTS: usize = 1024;
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Vcpus { vcpus } => write!(f, "vcpus must be 1 to 64, not {vcpus}"),
            ConfigError::SpteCount { spte_count } => write!(
                f,
                "spte_count must be a power of two from 2 to 4096, not {spte_count}"
            ),
            ConfigError::Levels { levels } => write!(f, "levels must be 1 to 8, not {levels}"),
            ConfigError::GfnSpace { spte_count, levels } => write!(
                f,
                "spte_count ^ levels must not exceed 2^40 gfns, not {spte_count}^{levels}"
            ),
            ConfigError::AddressSpaces { address_spaces } => {
                write!(f, "address_spaces must be 1 or 2, not {address_spaces}")
            }
            ConfigError::GenBits { gen_bits } => {
                write!(f, "gen_bits must be 1 to 63, not {gen_bits}")
            }
            ConfigError::MmioGenBits { mmio_gen_bits } => {
                write!(f, "mmio_gen_bits must be 1 to 20, not {mmio_gen_bits}")
            }
            ConfigError::Batch { batch } => write!(f, "batch must be at least 1, not {batch}"),
            ConfigError::DescCapacity { desc_capacity } => {
                write!(f, "desc_capacity must be 2 to 16, not {desc_capacity}")
            }
            ConfigError::ReclaimSlots { slots } => write!(
                f,
                "the small EBR needs 1 to {} participant slots, not {slots}",
                ConfigError::MAX_RECLAIM_SLOTS
            ),
            ConfigError::Deletion { mmu, deletion } => {
                write!(
                    f,
                    "the {} MMU has no deletion strategy {deletion:?}",
                    mmu.name()
                )
            }
            ConfigError::ReclaimUnavailable { backend } => {
                let name = match backend {
                    ReclaimBackend::Crossbeam => "crossbeam-epoch",
                    ReclaimBackend::Small { .. } => "the small EBR",
                };
                write!(f, "{name} is not available in this lane")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

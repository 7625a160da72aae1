//! # The VM (`struct kvm`, reduced to what the MMU needs)
//!
//! A [`Vm`] owns the memslots, the vCPUs, `mmu_lock` and what it protects,
//! `kvm->srcu` (as an epoch) and the host's memory map. Its operations are
//! spread over one file per kernel event, in the order of `SPEC.md`'s
//! "Reaction to events":
//!
//! | file | operations | kernel |
//! |---|---|---|
//! | `walk.rs` | [`Vm::translate`], [`Vm::translate_run`] | the guest's access through its root, `walk_shadow_page_lockless_begin/end` |
//! | `fault.rs` | [`Vm::page_fault`] | `tdp_page_fault`, `__direct_map`, `handle_mmio_page_fault` |
//! | `request.rs` | [`Vm::handle_requests`] | the request loop of `vcpu_enter_guest`, `mmu_free_roots`, `mmu_alloc_direct_roots` |
//! | `zap.rs` | [`Vm::invalidate_zap_all_pages`], [`Vm::zap_all`], [`Vm::shrink`] | `kvm_mmu_invalidate_zap_all_pages`, `kvm_zap_obsolete_pages`, `kvm_mmu_zap_all`, `mmu_shrink_scan` |
//! | `memslot_update.rs` | [`Vm::create_memslot`], [`Vm::delete_memslot`], [`Vm::move_memslot`] | `__kvm_set_memory_region` |
//! | `notifier.rs` | [`Vm::invalidate_range`], [`Vm::clear_flush_young`], [`Vm::test_young`], [`Vm::change_pte`] | `kvm_mmu_notifier_*` |
//! | `claimed.rs` | [`Vm::claim_vcpu`], and the vCPU operations on the [`ClaimedVcpu`](crate::ClaimedVcpu) it returns | `vcpu->mutex` held across `KVM_RUN` |
//!
//! This file holds the structure, its creation, the vCPU claim, the
//! `kvm_main.c` helpers every event uses (taking `mmu_lock`, the remote
//! requests), the queries, and the destructor. Every public operation
//! validates its input first and returns a typed [`MmuError`] without changing
//! anything when the input is bad.

use crate::addr::{Gfn, Hva, Pfn};
use crate::config::Config;
use crate::design::Mmu;
use crate::error::{ConfigError, MmuError};
use crate::event::{Actor, What};
use crate::ghost::Ghost;
use crate::host::{HostMm, check_hva};
use crate::ids::{PageId, VcpuId};
use crate::memslot::{Memslots, MemslotsRef};
use crate::mmu::{MmuLock, MmuState};
use crate::page::free_page_now;
use crate::sync::reclaim::BackendError;
use crate::sync::{Arc, AtomicU64, GenRoot, Mutex, Ordering, Reclaimer};
use crate::tdp::{TdpCtx, TdpMmu};
use crate::vcpu::{Requests, Vcpu, make_all_cpus_request};

/// A VM: memslots, vCPUs and the shadow MMU.
///
/// `Vm` is `Send + Sync`: share it between the threads that run its vCPUs,
/// the host's notifiers and the memslot updates (by reference in scoped
/// threads, or in an `Arc`).
///
/// ```
/// use std::thread;
/// use fastzap::{Config, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, VcpuId, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let base = Hva(0x7f00_0000_0000);
/// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 64, userspace_addr: base })?;
/// thread::scope(|s| -> Result<(), fastzap::MmuError> {
///     let vcpu = s.spawn(|| -> Result<(), fastzap::MmuError> {
///         for gfn in 0..64 {
///             vm.handle_requests(VcpuId(0))?;
///             vm.page_fault(VcpuId(0), Gfn(gfn), true)?; // may ask to retry: fine
///         }
///         Ok(())
///     });
///     vm.invalidate_range(base, base + 64 * PAGE_SIZE)?;
///     vm.invalidate_zap_all_pages()?;
///     vcpu.join().expect("the vCPU thread")
/// })?;
/// assert_eq!(vm.slot_count(), 1);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
pub struct Vm {
    pub(crate) config: Config,
    /// `kvm->slots_lock`: serializes memslot updates and invalidate-all.
    pub(crate) slots_lock: Mutex<()>,
    /// `kvm->mmu_lock`.
    pub(crate) mmu: Mutex<MmuState>,
    /// The lockless readers' copy of `mmu_valid_gen`, written under `mmu_lock`.
    pub(crate) mmu_valid_gen: AtomicU64,
    /// The lockless readers' copy of `mmu_notifier_seq`.
    pub(crate) notifier_seq: AtomicU64,
    /// `kvm->memslots`.
    pub(crate) memslots: GenRoot<Memslots>,
    pub(crate) vcpus: Box<[Vcpu]>,
    /// `kvm->srcu`, as an epoch.
    pub(crate) reclaimer: Reclaimer,
    /// The checking code's state (empty without the `ghost` feature).
    pub(crate) ghost: Ghost,
    /// The host's page tables, which `gfn_to_pfn` reads and notifiers change.
    pub(crate) host: HostMm,
    /// The TDP MMU, on a VM whose [`Config::mmu`] is [`Mmu::Tdp`]. Every
    /// public operation dispatches to it at its top (`crate::tdp`); the
    /// shadow MMU's state (`mmu`) then stays empty.
    pub(crate) tdp: Option<TdpMmu>,
}

const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Vm>();
};

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("mmu_valid_gen", &self.mmu_valid_gen.load(Ordering::Relaxed))
            .field("reclaimer", &self.reclaimer)
            .finish_non_exhaustive()
    }
}

/// Holds `vcpu->mutex` for the duration of one operation.
pub(crate) struct VcpuClaim<'a>(pub(crate) &'a Vcpu);

impl Drop for VcpuClaim<'_> {
    fn drop(&mut self) {
        self.0.ghost.release();
        self.0.unclaim();
    }
}

/// Where a vCPU's root is, as `Vm::root` reports it.
///
/// ```
/// use fastzap::{Config, VcpuId, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// vm.handle_requests(VcpuId(0))?;
/// let root = vm.root(VcpuId(0))?.expect("loaded");
/// assert!(root.valid);
/// assert_eq!(root.generation, vm.mmu_valid_gen());
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootInfo {
    /// The root page (on the TDP MMU: the root table's id).
    pub page: PageId,
    /// `sp->mmu_valid_gen` of the root (on the TDP MMU: `mmu_valid_gen`
    /// when the root was allocated).
    pub generation: u64,
    /// Whether the root is usable: of the current generation and not invalid
    /// (on the TDP MMU: `!role.invalid`). A vCPU whose root is not has a
    /// reload pending, or is about to.
    pub valid: bool,
}

impl Vm {
    /// Creates a VM with no memslots. Every vCPU starts with a reload request.
    ///
    /// # Errors
    ///
    /// [`MmuError::InvalidConfig`]: first the rules of [`Config::validate`],
    /// in its order, then whether this build can run the reclaim backend
    /// ([`ConfigError::ReclaimUnavailable`]: crossbeam-epoch under shuttle).
    ///
    /// ```
    /// use fastzap::{Config, ConfigError, MmuError, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// assert_eq!(vm.slot_count(), 0);
    /// let mut bad = Config::native();
    /// bad.vcpus = 0;
    /// assert_eq!(Vm::new(bad).err(), Some(MmuError::InvalidConfig(ConfigError::Vcpus { vcpus: 0 })));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn new(config: Config) -> Result<Vm, MmuError> {
        config.validate()?;
        let reclaimer = Reclaimer::new(config.reclaim).map_err(|e| {
            MmuError::InvalidConfig(match e {
                BackendError::Unavailable => ConfigError::ReclaimUnavailable {
                    backend: config.reclaim,
                },
                BackendError::NoSlots => ConfigError::ReclaimSlots { slots: 0 },
            })
        })?;
        Ok(Vm {
            slots_lock: Mutex::new(()),
            mmu: Mutex::new(MmuState::new(config.vcpus)),
            mmu_valid_gen: AtomicU64::new(0),
            notifier_seq: AtomicU64::new(0),
            memslots: GenRoot::new(Arc::new(Memslots::default())),
            vcpus: (0..config.vcpus).map(|_| Vcpu::new()).collect(),
            reclaimer,
            ghost: Ghost::new(&config),
            host: HostMm::default(),
            tdp: (config.mmu == Mmu::Tdp).then(|| TdpMmu::new(config.vcpus)),
            config,
        })
    }

    /// The configuration.
    ///
    /// ```
    /// use fastzap::{Config, Vm};
    ///
    /// let vm = Vm::new(Config::model())?;
    /// assert_eq!(vm.config().max_gfn(), Config::model().max_gfn());
    /// assert_eq!(vm.config().vcpus, 2);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- what every event uses ---------------------------------------------

    /// The TDP MMU and the parts of the VM it uses, on a TDP VM.
    pub(crate) fn tdp(&self) -> Option<TdpCtx<'_>> {
        self.tdp.as_ref().map(|tdp| TdpCtx {
            tdp,
            config: &self.config,
            vcpus: &self.vcpus,
            reclaimer: &self.reclaimer,
            ghost: &self.ghost,
            memslots: &self.memslots,
            host: &self.host,
            mmu_valid_gen: &self.mmu_valid_gen,
        })
    }

    /// Records an event in the ghost log (nothing without the `ghost` feature).
    #[inline]
    pub(crate) fn event(&self, actor: Actor, what: impl FnOnce() -> What) {
        self.ghost.event(actor, what);
    }

    /// Takes `mmu_lock` as `actor`.
    pub(crate) fn lock_mmu(&self, actor: Actor) -> MmuLock<'_> {
        MmuLock::new(self.mmu.lock(), &self.ghost, actor)
    }

    /// Takes `vcpu->mutex`: refuses an unknown vCPU, and a vCPU another thread
    /// is running an operation on.
    pub(crate) fn claim(&self, vcpu: VcpuId) -> Result<VcpuClaim<'_>, MmuError> {
        let v = self.vcpu(vcpu)?;
        if !v.try_claim() {
            return Err(MmuError::VcpuBusy(vcpu));
        }
        v.ghost.op();
        self.ghost.vcpu_claimed(&v.ghost, vcpu.0);
        Ok(VcpuClaim(v))
    }

    fn vcpu(&self, vcpu: VcpuId) -> Result<&Vcpu, MmuError> {
        self.vcpus.get(vcpu.0).ok_or(MmuError::UnknownVcpu(vcpu))
    }

    pub(crate) fn check_gfn(&self, gfn: Gfn) -> Result<u64, MmuError> {
        let limit = self.config.max_gfn();
        if gfn.0 >= limit {
            return Err(MmuError::GfnOutOfRange {
                gfn,
                limit: Gfn(limit),
            });
        }
        Ok(gfn.0)
    }

    pub(crate) fn gen_mask(&self) -> u64 {
        (1u64 << self.config.gen_bits) - 1
    }

    pub(crate) fn mmio_mask(&self) -> u64 {
        (1u64 << self.config.mmio_gen_bits) - 1
    }

    /// The index of `gfn`'s spte in a page of `level`.
    pub(crate) fn spte_index(&self, gfn: u64, level: u8) -> usize {
        let bits = self.config.index_bits();
        ((gfn >> (bits * u32::from(level - 1))) & (self.config.spte_count as u64 - 1)) as usize
    }

    /// The first gfn of the page of `child_level` that translates `gfn`.
    pub(crate) fn child_gfn(&self, gfn: u64, child_level: u8) -> u64 {
        let span_bits = self.config.index_bits() * u32::from(child_level);
        gfn & !((1u64 << span_bits) - 1)
    }

    /// `kvm_reload_remote_mmus`: request a reload from every vCPU. Called with
    /// `mmu_lock` held, in the same hold as the generation bump, "otherwise, vcpu
    /// would purge shadow page but miss tlb flush".
    pub(crate) fn reload_remote_mmus(&self, lk: &MmuLock<'_>) {
        make_all_cpus_request(
            &self.vcpus,
            Requests::RELOAD | Requests::TLB_FLUSH,
            &self.config,
        );
        self.event(lk.actor, || What::Request { what: "reload" });
    }

    /// `kvm_flush_remote_tlbs`: also waits for every vCPU inside a lockless
    /// walk, which is what lets `commit_zap_page` free what they may hold.
    pub(crate) fn flush_remote_tlbs(&self, lk: &MmuLock<'_>) {
        make_all_cpus_request(&self.vcpus, Requests::TLB_FLUSH, &self.config);
        self.event(lk.actor, || What::Request { what: "tlb flush" });
    }

    // ----- queries -----------------------------------------------------------

    /// The current `mmu_valid_gen`.
    ///
    /// ```
    /// use fastzap::{Config, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let before = vm.mmu_valid_gen();
    /// vm.invalidate_zap_all_pages()?;
    /// assert_eq!(vm.mmu_valid_gen(), before + 1);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn mmu_valid_gen(&self) -> u64 {
        self.mmu_valid_gen.load(Ordering::Acquire)
    }

    /// The current memslots: a snapshot that later updates do not change.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let spec = SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) };
    /// # vm.create_memslot(spec)?;
    /// let slots = vm.memslots();
    /// assert_eq!(slots.len(), 1);
    /// assert_eq!(slots.by_id(SlotId(3)).map(|slot| slot.npages()), Some(16));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn memslots(&self) -> MemslotsRef {
        MemslotsRef(self.memslots.load_full())
    }

    /// The number of memslots now published (INVALID ones included).
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let spec = SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) };
    /// # vm.create_memslot(spec)?;
    /// assert_eq!(vm.slot_count(), 1);
    /// vm.delete_memslot(SlotId(3))?;
    /// assert_eq!(vm.slot_count(), 0);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn slot_count(&self) -> usize {
        self.memslots.load().len()
    }

    /// The number of shadow pages not yet retired.
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let spec = SlotSpec { id: SlotId(3), base_gfn: Gfn(0x100), npages: 16, userspace_addr: Hva(0x7f00_0000_0000) };
    /// # vm.create_memslot(spec)?;
    /// # use fastzap::VcpuId;
    /// assert_eq!(vm.shadow_pages(), 0);
    /// vm.handle_requests(VcpuId(0))?; // the root
    /// vm.page_fault(VcpuId(0), Gfn(0x100), true)?; // and the pages below it
    /// assert!(vm.shadow_pages() > 1);
    /// // The zap frees all but the root the vCPU still uses, until it reloads.
    /// vm.invalidate_zap_all_pages()?;
    /// assert_eq!(vm.shadow_pages(), 1);
    /// vm.handle_requests(VcpuId(0))?;
    /// assert_eq!(vm.shadow_pages(), 1); // the new root
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    ///
    /// On a TDP VM: the TDP tables, roots included, not yet handed to the
    /// reclaimer.
    pub fn shadow_pages(&self) -> usize {
        if let Some(tdp) = &self.tdp {
            return tdp.live_tables();
        }
        self.mmu.lock().pages.len()
    }

    /// The requests pending on `vcpu`. It does not claim the vCPU.
    ///
    /// # Errors
    ///
    /// [`MmuError::UnknownVcpu`].
    ///
    /// ```
    /// use fastzap::{Config, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// assert!(vm.pending_requests(VcpuId(0))?.reload()); // every vCPU starts so
    /// vm.handle_requests(VcpuId(0))?;
    /// assert!(vm.pending_requests(VcpuId(0))?.is_empty());
    /// vm.invalidate_zap_all_pages()?;
    /// assert!(vm.pending_requests(VcpuId(0))?.reload());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn pending_requests(&self, vcpu: VcpuId) -> Result<Requests, MmuError> {
        Ok(self.vcpu(vcpu)?.requests())
    }

    /// The root `vcpu` uses now, or `None` if it has none (it will load one
    /// when it handles its requests). Takes `mmu_lock`; does not claim the
    /// vCPU.
    ///
    /// # Errors
    ///
    /// [`MmuError::UnknownVcpu`].
    ///
    /// ```
    /// use fastzap::{Config, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// assert_eq!(vm.root(VcpuId(0))?, None);
    /// vm.handle_requests(VcpuId(0))?;
    /// let first = vm.root(VcpuId(0))?.expect("loaded");
    /// vm.invalidate_zap_all_pages()?;
    /// assert!(!vm.root(VcpuId(0))?.expect("kept until the reload").valid);
    /// vm.handle_requests(VcpuId(0))?;
    /// let second = vm.root(VcpuId(0))?.expect("reloaded");
    /// assert_ne!(second.page, first.page);
    /// assert!(second.valid && second.generation == vm.mmu_valid_gen());
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn root(&self, vcpu: VcpuId) -> Result<Option<RootInfo>, MmuError> {
        self.vcpu(vcpu)?;
        Ok(self.root_of(vcpu))
    }

    /// [`Vm::root`] of a vCPU that exists.
    pub(crate) fn root_of(&self, vcpu: VcpuId) -> Option<RootInfo> {
        if let Some(ctx) = self.tdp() {
            return crate::tdp::root::vcpu_root(&ctx, vcpu.0).map(|(page, generation, valid)| {
                RootInfo {
                    page,
                    generation,
                    valid,
                }
            });
        }
        let lk = self.lock_mmu(Actor::Vcpu(vcpu.0));
        lk.roots[vcpu.0].and_then(|page| {
            let meta = lk.pages.get(&page)?;
            Some(RootInfo {
                page,
                generation: meta.mmu_valid_gen,
                valid: !lk.is_obsolete(meta),
            })
        })
    }

    /// The host side: which pfn backs `hva` now (`hva_to_pfn`). An
    /// mmu-notifier invalidation or `change_pte` gives the page a new one.
    ///
    /// # Errors
    ///
    /// [`MmuError::HvaOutOfRange`] if `hva` is at or above [`Hva::LIMIT`]:
    /// the host maps nothing there.
    ///
    /// ```
    /// use fastzap::{Config, Hva, MmuError, Pfn, Vm};
    ///
    /// let vm = Vm::new(Config::model())?;
    /// assert_eq!(vm.hva_to_pfn(Hva(0x5000))?, Pfn(5));
    /// assert_eq!(
    ///     vm.hva_to_pfn(Hva::LIMIT),
    ///     Err(MmuError::HvaOutOfRange { hva: Hva::LIMIT, limit: Hva::LIMIT })
    /// );
    /// # Ok::<(), MmuError>(())
    /// ```
    pub fn hva_to_pfn(&self, hva: Hva) -> Result<Pfn, MmuError> {
        let hva = check_hva(hva)?;
        Ok(Pfn(self.host.hva_to_pfn(hva)))
    }

    /// One attempt to advance the epoch and free what is ready, without
    /// waiting for readers. Models call it so that reclamation can happen
    /// while a reader is still running.
    ///
    /// ```
    /// use fastzap::{Config, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// vm.handle_requests(VcpuId(0))?;
    /// vm.invalidate_zap_all_pages()?;
    /// vm.handle_requests(VcpuId(0))?; // drops the obsolete root: retired, not yet freed
    /// vm.flush_reclaim();
    /// assert_eq!(vm.shadow_pages(), 1); // the new root
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn flush_reclaim(&self) {
        self.reclaimer.flush();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(ctx) = self.tdp() {
            let left = crate::tdp::teardown::kvm_mmu_uninit_tdp_mmu(&ctx);
            if left != 0 {
                self.ghost.violate(crate::invariant::Invariant::I3, || {
                    format!("{left} TDP roots left at teardown")
                });
            }
        }
        let state = std::mem::replace(&mut *self.mmu.lock(), MmuState::new(0));
        for (_, meta) in state.pages {
            free_page_now(meta.ptr, &self.ghost);
        }
    }
}

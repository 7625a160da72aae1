//! # The TDP MMU (`arch/x86/kvm/mmu/tdp_mmu.c`, Linux 6.9 to 6.15)
//!
//! fastzap's second MMU, chosen by [`Config::mmu`](crate::Config::mmu) =
//! [`Mmu::Tdp`](crate::Mmu::Tdp). It runs behind the same [`Vm`](crate::Vm)
//! API as the shadow MMU: each public operation of `Vm` checks its input as
//! before and then, on a TDP VM, calls a function of this module with the
//! shared parts of the VM ([`TdpCtx`]). This module imports nothing of the
//! shadow MMU and nothing of `vm`.
//!
//! | file | kernel |
//! |---|---|
//! | `spte.rs` | `spte.h`: an entry as an atomic word, `FROZEN_SPTE` |
//! | `table.rs` | `tdp_mmu_alloc_sp`, `tdp_mmu_free_sp_rcu_callback` |
//! | `iter.rs` | `tdp_iter.c`, `tdp_mmu_iter_cond_resched` |
//! | `lock.rs` | `mmu_lock` held read or write with `rcu_read_lock` inside, and the yield |
//! | `root.rs` | `kvm_tdp_mmu_get_root`, `kvm_tdp_mmu_put_root`, `kvm_tdp_mmu_alloc_root`, `kvm_mmu_free_obsolete_roots` |
//! | `fault.rs` | `kvm_tdp_mmu_map`, `is_page_fault_stale`, `handle_mmio_page_fault` |
//! | `walk.rs` | the hardware's walk (`kvm_tdp_mmu_get_walk`) behind the vCPU TLB |
//! | `removed.rs` | `handle_changed_spte`, `handle_removed_pt`, `tdp_mmu_set_spte_atomic` |
//! | `zap.rs` | `kvm_mmu_zap_all_fast`'s TDP half, `kvm_tdp_mmu_invalidate_roots`, `kvm_tdp_mmu_zap_invalidated_roots`, `tdp_mmu_zap_root`, `kvm_tdp_mmu_zap_all` |
//! | `notifier.rs` | `kvm_tdp_mmu_unmap_gfn_range`, `kvm_tdp_mmu_age_gfn_range`, `kvm_tdp_mmu_test_age_gfn`, `kvm_tdp_mmu_set_spte_gfn` (before 6.9) |
//! | `memslot.rs` | `kvm_arch_flush_shadow_memslot` with and without `KVM_X86_QUIRK_SLOT_ZAP_ALL` |
//! | `teardown.rs` | `kvm_mmu_uninit_tdp_mmu` after `kvm_arch_flush_shadow_all` |
//!
//! ## What protects what
//! - `mmu_lock` ([`TdpMmu::mmu_lock`], an [`RwLock`]): read for faults, for
//!   root allocation and freeing (6.9), for zapping invalidated roots and for
//!   aging; write for invalidating roots ([`TdpRoot::invalid`] is written only
//!   under it), for the notifiers' unmap, for the quirk-off slot zap and for
//!   [`kvm_tdp_mmu_zap_all`](zap::kvm_tdp_mmu_zap_all).
//! - `tdp_mmu_pages_lock` ([`TdpMmu::roots`]): adding a root to the root
//!   list and removing it. The list is read under an epoch pin (the kernel's
//!   RCU list): a reader copies it under the small lock and derefs the roots'
//!   tables only inside its pin.
//! - Entries change only by atomic exchange or compare-and-exchange, under
//!   either lock mode ([`spte`]).
//! - A table unlinked from the tree is freed after a grace period of the
//!   VM's epoch ([`table::free_table`]).

pub(crate) mod fault;
pub(crate) mod iter;
pub(crate) mod lock;
pub(crate) mod memslot;
pub(crate) mod notifier;
pub(crate) mod removed;
pub(crate) mod root;
pub(crate) mod spte;
pub(crate) mod table;
pub(crate) mod teardown;
pub(crate) mod walk;
pub(crate) mod zap;

use crate::config::Config;
use crate::ghost::Ghost;
use crate::host::HostMm;
use crate::memslot::Memslots;
use crate::sync::{Arc, AtomicU64, AtomicUsize, GenRoot, Mutex, Ordering, Reclaimer, RwLock};
use crate::vcpu::Vcpu;

pub(crate) use root::TdpRoot;

/// The TDP MMU's state in a VM (`kvm->arch.tdp_mmu_*` and `mmu_lock`).
#[derive(Debug)]
pub(crate) struct TdpMmu {
    /// `kvm->mmu_lock`, an rwlock. It guards no data of its own here: the
    /// state it protects is in atomics that are written only while it is
    /// held in the right mode (see the module doc).
    pub(crate) mmu_lock: RwLock<()>,
    /// `kvm->arch.tdp_mmu_roots` under `tdp_mmu_pages_lock`.
    pub(crate) roots: Mutex<Vec<Arc<TdpRoot>>>,
    /// Each vCPU's root (`vcpu->arch.mmu->root`), touched only by the thread
    /// that claimed the vCPU, by [`Vm::root`](crate::Vm::root) and by the
    /// teardown.
    pub(crate) vcpu_roots: Box<[Mutex<Option<Arc<TdpRoot>>>]>,
    /// `kvm->mmu_invalidate_in_progress`, written under the write lock.
    pub(crate) invalidate_in_progress: AtomicU64,
    /// `kvm->mmu_invalidate_seq`, written under the write lock.
    pub(crate) invalidate_seq: AtomicU64,
    /// Tables allocated and not yet handed to the reclaimer, roots included.
    pub(crate) tables: AtomicUsize,
    /// The next table id (ids are unique for the VM's life).
    pub(crate) next_id: AtomicU64,
    /// Tables handed to the reclaimer whose deferred free has not run yet:
    /// what the teardown's barrier waits for.
    pub(crate) pending_frees: Arc<AtomicUsize>,
}

impl TdpMmu {
    /// `kvm_mmu_init_tdp_mmu`.
    pub(crate) fn new(vcpus: usize) -> TdpMmu {
        TdpMmu {
            mmu_lock: RwLock::new(()),
            roots: Mutex::new(Vec::new()),
            vcpu_roots: (0..vcpus).map(|_| Mutex::new(None)).collect(),
            invalidate_in_progress: AtomicU64::new(0),
            invalidate_seq: AtomicU64::new(0),
            tables: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            pending_frees: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A copy of the root list, read under `tdp_mmu_pages_lock`. The caller
    /// derefs a root's table only inside an epoch pin taken before the copy.
    pub(crate) fn roots_snapshot(&self) -> Vec<Arc<TdpRoot>> {
        self.roots.lock().clone()
    }

    /// Each root's id, reference count and `role.invalid` (for the checkers).
    #[cfg(feature = "ghost")]
    pub(crate) fn root_summary(&self) -> Vec<(crate::ids::PageId, usize, bool)> {
        self.roots_snapshot()
            .iter()
            .map(|r| (r.id, r.refcount.load(Ordering::Acquire), r.is_invalid()))
            .collect()
    }

    /// Tables not yet handed to the reclaimer.
    pub(crate) fn live_tables(&self) -> usize {
        self.tables.load(Ordering::Acquire)
    }
}

/// The parts of a VM the TDP MMU's events use, borrowed from
/// [`Vm`](crate::Vm) (which this module does not import).
#[derive(Clone, Copy)]
pub(crate) struct TdpCtx<'a> {
    pub(crate) tdp: &'a TdpMmu,
    pub(crate) config: &'a Config,
    pub(crate) vcpus: &'a [Vcpu],
    pub(crate) reclaimer: &'a Reclaimer,
    pub(crate) ghost: &'a Ghost,
    pub(crate) memslots: &'a GenRoot<Memslots>,
    pub(crate) host: &'a HostMm,
    /// `kvm->arch.mmu_valid_gen`, which `kvm_mmu_zap_all_fast` still bumps
    /// for the shadow MMU's pages; a TDP root records it at allocation.
    pub(crate) mmu_valid_gen: &'a AtomicU64,
}

impl TdpCtx<'_> {
    /// The index of `gfn`'s entry in a table of `level` (`SPTE_INDEX`).
    pub(crate) fn index(&self, gfn: u64, level: u8) -> usize {
        let bits = self.config.index_bits();
        ((gfn >> (bits * u32::from(level - 1))) & (self.config.spte_count as u64 - 1)) as usize
    }

    /// Gfns one entry of `level` maps (`KVM_PAGES_PER_HPAGE`).
    pub(crate) fn pages_per_entry(&self, level: u8) -> u64 {
        1u64 << (self.config.index_bits() * u32::from(level - 1))
    }

    /// `gfn` rounded down to an entry of `level` (`round_gfn_for_level`).
    pub(crate) fn round_gfn(&self, gfn: u64, level: u8) -> u64 {
        gfn & !(self.pages_per_entry(level) - 1)
    }

    /// The address space a vCPU runs in (`kvm_mmu_role_as_id`): odd vCPUs
    /// use the second one (`role.smm`) when the VM has two.
    pub(crate) fn as_id(&self, vcpu: usize) -> u8 {
        u8::from(self.config.address_spaces == 2 && vcpu % 2 == 1)
    }

    /// The first gfn past the table tree.
    pub(crate) fn max_gfn(&self) -> u64 {
        self.config.max_gfn()
    }
}

/// Every leaf of every root on the list, valid and invalid: (root, root
/// invalid, gfn, pfn). For the checkers; read under the read lock.
#[cfg(feature = "ghost")]
pub(crate) fn leaves(ctx: &TdpCtx<'_>) -> Vec<(crate::ids::PageId, bool, u64, u64)> {
    let _held = ctx.tdp.mmu_lock.read();
    let guard = ctx.reclaimer.pin();
    let mut out = Vec::new();
    for root in ctx.tdp.roots_snapshot() {
        let mut it = iter::TdpIter::start(ctx, &guard, root.table, root.level, 1, 0, ctx.max_gfn());
        while it.in_range() {
            if let spte::Spte::Leaf { pfn, .. } = it.old_spte.decode() {
                out.push((root.id, root.is_invalid(), it.gfn, pfn));
            }
            it.next(ctx, &guard);
        }
    }
    out
}

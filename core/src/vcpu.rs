//! # vCPUs (`struct kvm_vcpu`, the parts the MMU uses)

use crate::sync::ghost::GhostU64;
use crate::sync::{AtomicU8, AtomicU64, Ordering};

/// `KVM_REQ_MMU_RELOAD`: drop the root and load a fresh one.
pub const REQ_RELOAD: u64 = 1 << 0;
/// `KVM_REQ_TLB_FLUSH`: flush the vCPU's TLB.
pub const REQ_TLB_FLUSH: u64 = 1 << 1;

/// A vCPU index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VcpuId(pub usize);

/// `vcpu->mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuMode {
    /// `OUTSIDE_GUEST_MODE`.
    OutsideGuest = 0,
    /// `IN_GUEST_MODE`.
    InGuest = 1,
    /// `READING_SHADOW_PAGE_TABLES`: inside a lockless walk.
    ReadingShadowPageTables = 2,
}

/// The MMU's view of one vCPU.
///
/// Aligned to 128 bytes (two cache lines, for the adjacent-line prefetcher) so
/// that vCPUs running on different threads do not falsely share the lines their
/// `mode`, `busy` and `ops` writes land on (measured by benchmark B4 (e)).
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Vcpu {
    /// `vcpu->arch.mmu.root_hpa`: the root page's address, or 0.
    pub(crate) root: AtomicU64,
    /// `vcpu->requests`.
    pub(crate) requests: AtomicU64,
    /// `vcpu->mode`.
    pub(crate) mode: AtomicU8,
    /// `vcpu->arch.mmio_gfn` plus one (0: empty).
    pub(crate) mmio_gfn: AtomicU64,
    /// `vcpu->arch.mmio_gen`: the memslots generation the cache entry was taken in.
    pub(crate) mmio_gen: AtomicU64,
    /// Ghost: 1 while an operation runs on this vCPU (`vcpu->mutex`).
    pub(crate) busy: GhostU64,
    /// Ghost: operations run on this vCPU.
    pub(crate) ops: GhostU64,
}

impl Vcpu {
    pub(crate) fn new() -> Vcpu {
        Vcpu {
            root: AtomicU64::new(0),
            requests: AtomicU64::new(REQ_RELOAD),
            mode: AtomicU8::new(VcpuMode::OutsideGuest as u8),
            mmio_gfn: AtomicU64::new(0),
            mmio_gen: AtomicU64::new(0),
            busy: GhostU64::new(0),
            ops: GhostU64::new(0),
        }
    }

    pub(crate) fn mode(&self) -> VcpuMode {
        match self.mode.load(Ordering::Acquire) {
            1 => VcpuMode::InGuest,
            2 => VcpuMode::ReadingShadowPageTables,
            _ => VcpuMode::OutsideGuest,
        }
    }

    pub(crate) fn set_mode(&self, mode: VcpuMode) {
        self.mode.store(mode as u8, Ordering::Release);
    }
}

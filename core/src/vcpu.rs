//! # vCPUs (`struct kvm_vcpu`, the parts the MMU uses), and the request handshake
//!
//! Both halves of the handshake between a requester and a vCPU inside a
//! lockless walk are here, next to each other:
//!
//! | vCPU ([`Vcpu::walk_lockless_begin`]) | requester ([`make_all_cpus_request`]) |
//! |---|---|
//! | `vcpu->mode = READING_SHADOW_PAGE_TABLES` | `vcpu->requests \|= request` |
//! | `fence(SeqCst)` | `fence(SeqCst)` |
//! | read `vcpu->requests` | read `vcpu->mode`; wait while it is `READING_SHADOW_PAGE_TABLES` |
//!
//! A store-buffering (Dekker) pair: with both fences, at least one side sees
//! the other's store. Either the walk sees the request and stops, or the
//! requester sees the walk and waits for it to end. That wait is what makes a
//! freed page safe from a walker that looked before the request
//! (`kvm_flush_remote_tlbs` in `commit_zap_page`).

use crate::config::Config;
use crate::ghost::VcpuGhost;
use crate::mutant::Mutant;
use crate::sync::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence, yield_now};
use crate::tlb::Tlb;

/// `vcpu->requests`: the requests pending on one vCPU.
///
/// ```
/// use fastzap::Requests;
///
/// let pending = Requests::RELOAD | Requests::TLB_FLUSH;
/// assert!(pending.reload() && pending.tlb_flush());
/// assert!(pending.contains(Requests::TLB_FLUSH));
/// assert!(Requests::NONE.is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Requests(u64);

impl Requests {
    /// No request.
    pub const NONE: Requests = Requests(0);
    /// `KVM_REQ_MMU_RELOAD`: drop the root and load a fresh one.
    #[doc(alias = "KVM_REQ_MMU_RELOAD")]
    pub const RELOAD: Requests = Requests(1 << 0);
    /// `KVM_REQ_TLB_FLUSH`: flush the vCPU's TLB.
    #[doc(alias = "KVM_REQ_TLB_FLUSH")]
    pub const TLB_FLUSH: Requests = Requests(1 << 1);

    /// Whether no request is pending.
    ///
    /// ```
    /// use fastzap::Requests;
    ///
    /// assert!(Requests::NONE.is_empty());
    /// assert!(!Requests::RELOAD.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every request in `other` is pending.
    ///
    /// ```
    /// use fastzap::Requests;
    ///
    /// let both = Requests::RELOAD | Requests::TLB_FLUSH;
    /// assert!(both.contains(Requests::RELOAD));
    /// assert!(!Requests::RELOAD.contains(both));
    /// ```
    pub const fn contains(self, other: Requests) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether a reload is pending.
    ///
    /// ```
    /// use fastzap::Requests;
    ///
    /// assert!(Requests::RELOAD.reload());
    /// assert!(!Requests::TLB_FLUSH.reload());
    /// ```
    pub const fn reload(self) -> bool {
        self.contains(Requests::RELOAD)
    }

    /// Whether a TLB flush is pending.
    ///
    /// ```
    /// use fastzap::Requests;
    ///
    /// assert!(Requests::TLB_FLUSH.tlb_flush());
    /// assert!(!Requests::RELOAD.tlb_flush());
    /// ```
    pub const fn tlb_flush(self) -> bool {
        self.contains(Requests::TLB_FLUSH)
    }

    /// The raw request bits.
    ///
    /// ```
    /// use fastzap::Requests;
    ///
    /// assert_eq!(Requests::NONE.bits(), 0);
    /// assert_eq!((Requests::RELOAD | Requests::TLB_FLUSH).bits().count_ones(), 2);
    /// ```
    pub const fn bits(self) -> u64 {
        self.0
    }
}

impl std::ops::BitOr for Requests {
    type Output = Requests;
    fn bitor(self, other: Requests) -> Requests {
        Requests(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Requests {
    fn bitor_assign(&mut self, other: Requests) {
        self.0 |= other.0;
    }
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (Requests::RELOAD, "RELOAD"),
            (Requests::TLB_FLUSH, "TLB_FLUSH"),
        ]
        .into_iter()
        .filter(|(request, _)| self.contains(*request))
        .map(|(_, name)| name)
        .collect();
        if names.is_empty() {
            f.write_str("Requests(NONE)")
        } else {
            write!(f, "Requests({})", names.join(" | "))
        }
    }
}

/// `vcpu->mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum VcpuMode {
    /// `OUTSIDE_GUEST_MODE`.
    OutsideGuest = 0,
    /// `READING_SHADOW_PAGE_TABLES`: inside a lockless walk.
    ReadingShadowPageTables = 2,
}

/// The MMU's view of one vCPU.
///
/// Aligned to 128 bytes (two cache lines, for the adjacent-line prefetcher) so
/// that vCPUs running on different threads do not falsely share the lines their
/// `mode` and claim writes land on (measured by benchmark B4 (e)).
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct Vcpu {
    /// `vcpu->arch.mmu.root_hpa`: the root page's address, or 0.
    pub(crate) root: crate::spte::SpteCell,
    /// `vcpu->requests`.
    pub(crate) requests: AtomicU64,
    /// `vcpu->mode`.
    pub(crate) mode: AtomicU8,
    /// `vcpu->arch.mmio_gfn` plus one (0: empty).
    pub(crate) mmio_gfn: AtomicU64,
    /// `vcpu->arch.mmio_gen`: the memslots generation the cache entry was taken in.
    pub(crate) mmio_gen: AtomicU64,
    /// `vcpu->mutex`: set while an operation runs on this vCPU. Two threads
    /// on one vCPU would break the handshake above (one ends the walk the
    /// other is inside), so a second one is refused with `VcpuBusy`.
    claimed: AtomicBool,
    /// The vCPU's TLB: read and written only under the claim.
    pub(crate) tlb: Tlb,
    /// The ghost half: operations run on this vCPU.
    pub(crate) ghost: VcpuGhost,
}

impl Vcpu {
    pub(crate) fn new() -> Vcpu {
        Vcpu {
            root: crate::spte::SpteCell::new(),
            requests: AtomicU64::new(Requests::RELOAD.0),
            mode: AtomicU8::new(VcpuMode::OutsideGuest as u8),
            mmio_gfn: AtomicU64::new(0),
            mmio_gen: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
            tlb: Tlb::new(),
            ghost: VcpuGhost::new(),
        }
    }

    /// Takes `vcpu->mutex` if it is free.
    #[inline]
    pub(crate) fn try_claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases `vcpu->mutex`.
    #[inline]
    pub(crate) fn unclaim(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// Whether an operation is running on this vCPU (for the audit).
    #[cfg(feature = "ghost")]
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// The pending requests.
    #[inline]
    pub(crate) fn requests(&self) -> Requests {
        Requests(self.requests.load(Ordering::Acquire))
    }

    /// Takes every pending request (`kvm_check_request` for all of them).
    /// Acquire: what the requester wrote before its request (the memslots'
    /// in-flux flag before the wrap's reload) is visible to the vCPU that takes
    /// it (litmus L3).
    pub(crate) fn take_requests(&self, config: &Config) -> Requests {
        let order = if config.mutant_is(Mutant::TakeRequestsRelaxed) {
            Ordering::Relaxed
        } else {
            Ordering::AcqRel
        };
        Requests(self.requests.swap(0, order))
    }

    pub(crate) fn mode(&self) -> VcpuMode {
        match self.mode.load(Ordering::Acquire) {
            2 => VcpuMode::ReadingShadowPageTables,
            _ => VcpuMode::OutsideGuest,
        }
    }

    fn set_mode(&self, mode: VcpuMode) {
        self.mode.store(mode as u8, Ordering::Release);
    }

    /// `walk_shadow_page_lockless_begin`: announce the walk in `vcpu->mode`,
    /// then `fence(SeqCst)`, pairing with the fence in
    /// [`make_all_cpus_request`]: either this walk sees a request made before
    /// it, or the requester waits for the walk to end.
    #[inline]
    pub(crate) fn walk_lockless_begin(&self, config: &Config) {
        self.set_mode(VcpuMode::ReadingShadowPageTables);
        if !config.mutant_is(Mutant::WalkBeginWithoutFence) {
            fence(Ordering::SeqCst);
        }
    }

    /// `walk_shadow_page_lockless_end`: the requester may stop waiting.
    #[inline]
    pub(crate) fn walk_lockless_end(&self) {
        self.set_mode(VcpuMode::OutsideGuest);
    }
}

/// `make_all_cpus_request`: set the request bit on every vCPU, `fence(SeqCst)`,
/// then wait for every vCPU that is inside a lockless walk (the kernel's kick
/// and wait). See the module documentation for the other half. The
/// `fetch_or` releases what the requester wrote before (litmus L3); the fence
/// is the Dekker half (litmus L1). `config` only selects the litmus mutants.
/// The one requester: `kvm_reload_remote_mmus` and `kvm_flush_remote_tlbs`
/// (`Vm::reload_remote_mmus`, `Vm::flush_remote_tlbs`) call it and log the
/// request.
pub(crate) fn make_all_cpus_request(vcpus: &[Vcpu], request: Requests, config: &Config) {
    let order = if config.mutant_is(Mutant::RequestBitRelaxed) {
        Ordering::Relaxed
    } else {
        Ordering::AcqRel
    };
    for vcpu in vcpus {
        vcpu.requests.fetch_or(request.0, order);
    }
    if config.mutant_is(Mutant::RequestFenceAcqRel) {
        fence(Ordering::AcqRel);
    } else if !config.mutant_is(Mutant::RequestWithoutFence) {
        fence(Ordering::SeqCst);
    }
    for vcpu in vcpus {
        while vcpu.mode() == VcpuMode::ReadingShadowPageTables {
            yield_now();
        }
    }
}

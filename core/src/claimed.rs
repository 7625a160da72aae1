//! # A vCPU held across `KVM_RUN` (`vcpu->mutex`)
//!
//! Every per-vCPU operation of [`Vm`] claims the vCPU for the call and
//! refuses one another thread holds ([`MmuError::VcpuBusy`]). A VMM's vCPU
//! thread runs a loop instead, as `KVM_RUN` does with `vcpu->mutex` held:
//! enter the guest, and on each exit do what it asks (handle the requests,
//! take the fault), then enter again. [`Vm::claim_vcpu`] takes the claim once
//! for that loop and returns a [`ClaimedVcpu`], whose methods are the vCPU
//! operations of [`Vm`] minus the claim: the same steps, the same results,
//! the same errors in the same order except the claim's own
//! ([`MmuError::UnknownVcpu`], [`MmuError::VcpuBusy`]).
//!
//! | [`ClaimedVcpu`] | [`Vm`] | file |
//! |---|---|---|
//! | [`translate`](ClaimedVcpu::translate) | [`Vm::translate`] | `walk.rs` |
//! | [`translate_run`](ClaimedVcpu::translate_run) | [`Vm::translate_run`] | `walk.rs` |
//! | [`page_fault`](ClaimedVcpu::page_fault) | [`Vm::page_fault`] | `fault.rs` |
//! | [`handle_requests`](ClaimedVcpu::handle_requests) | [`Vm::handle_requests`] | `request.rs` |
//! | [`pending_requests`](ClaimedVcpu::pending_requests) | [`Vm::pending_requests`] | `vm.rs` |
//! | [`root`](ClaimedVcpu::root) | [`Vm::root`] | `vm.rs` |

use crate::addr::Gfn;
use crate::error::MmuError;
use crate::fault::Fault;
use crate::ids::VcpuId;
use crate::request::Handled;
use crate::vcpu::Requests;
use crate::vm::{RootInfo, VcpuClaim, Vm};
use crate::walk::Translation;

/// A vCPU claimed by [`Vm::claim_vcpu`]: `vcpu->mutex`, held until the
/// handle is dropped. Its methods take `&mut self`, so one thread at a time
/// runs on the vCPU, as the claim of each [`Vm`] operation ensures per call.
/// Meanwhile every [`Vm`] operation that claims this vCPU is refused with
/// [`MmuError::VcpuBusy`]; the queries ([`Vm::pending_requests`],
/// [`Vm::root`]) and the operations that take no vCPU are not.
///
/// A `KVM_RUN` loop, with the claim held throughout:
///
/// ```
/// use fastzap::{Config, Fault, Gfn, Hva, MmuError, SlotId, SlotSpec, Translation, VcpuId, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let base = Hva(0x7f00_0000_0000);
/// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
/// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
/// let (mut entries, mut faults) = (0, 0);
/// let pfn = loop {
///     entries += 1;
///     match vcpu.translate(Gfn(3))? {
///         Translation::Mapped { pfn, .. } => break pfn,
///         Translation::RequestPending => {
///             vcpu.handle_requests();
///         }
///         Translation::Miss => {
///             faults += 1;
///             assert!(matches!(vcpu.page_fault(Gfn(3), true)?, Fault::Mapped { .. }));
///         }
///         Translation::Mmio => unreachable!("slot 0 maps gfn 3"),
///     }
/// };
/// // The first entry found the reload every vCPU starts with, the second a
/// // miss, the third the mapping the fault installed.
/// assert_eq!((entries, faults), (3, 1));
/// assert_eq!(pfn, vm.hva_to_pfn(Hva(base.0 + 3 * 4096))?);
/// // Another thread's operation on the vCPU is refused while the loop holds it.
/// assert_eq!(vm.page_fault(VcpuId(0), Gfn(4), false), Err(MmuError::VcpuBusy(VcpuId(0))));
/// drop(vcpu);
/// assert!(matches!(vm.page_fault(VcpuId(0), Gfn(4), false)?, Fault::Mapped { .. }));
/// # Ok::<(), MmuError>(())
/// ```
pub struct ClaimedVcpu<'a> {
    vm: &'a Vm,
    id: VcpuId,
    claim: VcpuClaim<'a>,
}

impl std::fmt::Debug for ClaimedVcpu<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClaimedVcpu").field(&self.id).finish()
    }
}

impl ClaimedVcpu<'_> {
    /// The vCPU.
    ///
    /// ```
    /// use fastzap::{Config, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// assert_eq!(vm.claim_vcpu(VcpuId(1))?.id(), VcpuId(1));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn id(&self) -> VcpuId {
        self.id
    }

    /// [`Vm::translate`] on this vCPU: per call the mode, the fence, the
    /// requests check, the TLB, an epoch pin, the root check and the walk; no
    /// claim.
    ///
    /// # Errors
    ///
    /// [`MmuError::GfnOutOfRange`]; nothing else, and the handle stays usable.
    ///
    /// ```
    /// use fastzap::{Config, Gfn, MmuError, Translation, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// // Every vCPU starts with a reload request.
    /// assert_eq!(vcpu.translate(Gfn(7))?, Translation::RequestPending);
    /// vcpu.handle_requests();
    /// assert_eq!(vcpu.translate(Gfn(7))?, Translation::Miss);
    /// let limit = Gfn(vm.config().max_gfn());
    /// assert_eq!(vcpu.translate(limit), Err(MmuError::GfnOutOfRange { gfn: limit, limit }));
    /// # Ok::<(), MmuError>(())
    /// ```
    #[inline]
    pub fn translate(&mut self, gfn: Gfn) -> Result<Translation, MmuError> {
        let gfn = self.vm.check_gfn(gfn)?;
        let v = self.claim.0;
        v.ghost.op();
        Ok(self.vm.translate_claimed(v, self.id, gfn))
    }

    /// [`Vm::translate_run`] on this vCPU: one entry for a run of gfns, the
    /// results appended to `out`.
    ///
    /// # Errors
    ///
    /// [`MmuError::GfnOutOfRange`] for the first gfn out of range, in the
    /// order given; then nothing is appended.
    ///
    /// ```
    /// use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, Translation, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 4, userspace_addr: base })?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// vcpu.handle_requests();
    /// vcpu.page_fault(Gfn(1), false)?;
    /// let mut out = Vec::new();
    /// vcpu.translate_run(&[Gfn(0), Gfn(1)], &mut out)?;
    /// assert_eq!(out[0], Translation::Miss);
    /// assert!(matches!(out[1], Translation::Mapped { writable: false, .. }));
    /// assert!(vcpu.translate_run(&[Gfn(0), Gfn(u64::MAX)], &mut out).is_err());
    /// assert_eq!(out.len(), 2);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn translate_run(
        &mut self,
        gfns: &[Gfn],
        out: &mut Vec<Translation>,
    ) -> Result<(), MmuError> {
        for &gfn in gfns {
            self.vm.check_gfn(gfn)?;
        }
        let v = self.claim.0;
        v.ghost.op();
        self.vm.translate_run_claimed(v, gfns, out);
        Ok(())
    }

    /// [`Vm::page_fault`] on this vCPU (what a [`Translation::Miss`] asks
    /// for): the same steps and results, without the claim.
    ///
    /// # Errors
    ///
    /// [`MmuError::GfnOutOfRange`]; nothing else, and the handle stays usable.
    ///
    /// ```
    /// use fastzap::{Config, Fault, Gfn, Hva, MmuError, RetryReason, SlotId, SlotSpec, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let base = Hva(0x7f00_0000_0000);
    /// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 4, userspace_addr: base })?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// // No root yet: the fault asks for the requests to be handled first.
    /// assert_eq!(vcpu.page_fault(Gfn(2), true)?, Fault::Retry(RetryReason::NoRoot));
    /// vcpu.handle_requests();
    /// assert_eq!(
    ///     vcpu.page_fault(Gfn(2), true)?,
    ///     Fault::Mapped { pfn: vm.hva_to_pfn(Hva(base.0 + 2 * 4096))? }
    /// );
    /// // No slot maps gfn 9: an MMIO spte.
    /// assert_eq!(vcpu.page_fault(Gfn(9), false)?, Fault::Mmio);
    /// let limit = Gfn(vm.config().max_gfn());
    /// assert_eq!(vcpu.page_fault(limit, false), Err(MmuError::GfnOutOfRange { gfn: limit, limit }));
    /// # Ok::<(), MmuError>(())
    /// ```
    pub fn page_fault(&mut self, gfn: Gfn, write: bool) -> Result<Fault, MmuError> {
        let gfn = self.vm.check_gfn(gfn)?;
        let v = self.claim.0;
        v.ghost.op();
        Ok(self.vm.page_fault_claimed(v, self.id, gfn, write))
    }

    /// [`Vm::handle_requests`] on this vCPU (what a
    /// [`Translation::RequestPending`] asks for). It cannot fail.
    ///
    /// ```
    /// use fastzap::{Config, Requests, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// let handled = vcpu.handle_requests();
    /// assert!(handled.requests.reload() && handled.reloaded);
    /// // The fast invalidation neither needs nor waits for the claim.
    /// vm.invalidate_zap_all_pages()?;
    /// assert!(vcpu.handle_requests().requests.contains(Requests::RELOAD | Requests::TLB_FLUSH));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn handle_requests(&mut self) -> Handled {
        let v = self.claim.0;
        v.ghost.op();
        self.vm.handle_requests_claimed(v, self.id)
    }

    /// [`Vm::tlb_evict`] on this vCPU: the hardware drops the TLB entry of
    /// `gfn`, if it holds one. Returns whether it did.
    ///
    /// # Errors
    ///
    /// [`MmuError::GfnOutOfRange`].
    #[doc(hidden)]
    pub fn tlb_evict(&mut self, gfn: Gfn) -> Result<bool, MmuError> {
        let gfn = self.vm.check_gfn(gfn)?;
        Ok(self.claim.0.tlb.evict(gfn))
    }

    /// [`Vm::pending_requests`] of this vCPU. It cannot fail.
    ///
    /// ```
    /// use fastzap::{Config, Requests, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// assert_eq!(vcpu.pending_requests(), Requests::RELOAD);
    /// vcpu.handle_requests();
    /// assert_eq!(vcpu.pending_requests(), Requests::NONE);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn pending_requests(&self) -> Requests {
        self.claim.0.requests()
    }

    /// [`Vm::root`] of this vCPU (takes `mmu_lock`). It cannot fail.
    ///
    /// ```
    /// use fastzap::{Config, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let mut vcpu = vm.claim_vcpu(VcpuId(0))?;
    /// assert_eq!(vcpu.root(), None);
    /// vcpu.handle_requests();
    /// let root = vcpu.root().expect("loaded");
    /// assert!(root.valid);
    /// vm.invalidate_zap_all_pages()?;
    /// // Still the vCPU's root until it reloads, but of an older generation.
    /// assert_eq!(vcpu.root().map(|r| (r.page, r.valid)), Some((root.page, false)));
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn root(&self) -> Option<RootInfo> {
        self.vm.root_of(self.id)
    }
}

impl Vm {
    /// Claims `vcpu` (`vcpu->mutex`) until the returned handle is dropped, as
    /// the kernel holds it across `KVM_RUN`. The handle's methods do per call
    /// everything the [`Vm`] operations of the same names do except the claim
    /// (for [`translate`](ClaimedVcpu::translate): mode, fence, requests
    /// check, epoch pin, root check, walk). Meanwhile every [`Vm`] operation
    /// that claims this vCPU is refused with [`MmuError::VcpuBusy`].
    ///
    /// # Errors
    ///
    /// Checked in this order: [`MmuError::UnknownVcpu`], then
    /// [`MmuError::VcpuBusy`] (another thread holds the vCPU).
    ///
    /// ```
    /// use fastzap::{Config, MmuError, VcpuId, Vm};
    ///
    /// let vm = Vm::new(Config::native())?;
    /// let held = vm.claim_vcpu(VcpuId(0))?;
    /// assert_eq!(vm.claim_vcpu(VcpuId(0)).err(), Some(MmuError::VcpuBusy(VcpuId(0))));
    /// assert_eq!(vm.claim_vcpu(VcpuId(2)).err(), Some(MmuError::UnknownVcpu(VcpuId(2))));
    /// drop(held);
    /// assert!(vm.claim_vcpu(VcpuId(0)).is_ok());
    /// # Ok::<(), MmuError>(())
    /// ```
    pub fn claim_vcpu(&self, vcpu: VcpuId) -> Result<ClaimedVcpu<'_>, MmuError> {
        let claim = self.claim(vcpu)?;
        Ok(ClaimedVcpu {
            vm: self,
            id: vcpu,
            claim,
        })
    }
}

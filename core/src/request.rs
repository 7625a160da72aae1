//! # Request handling at guest entry (`vcpu_enter_guest`, `mmu_free_roots`, `mmu_alloc_direct_roots`)
//!
//! Before entering the guest a vCPU takes its pending requests. A reload drops
//! its root (an invalid root whose count reaches 0 is zapped here: nobody else
//! will) and loads a fresh one of the current generation. The requester's side
//! of the handshake is `make_all_cpus_request` in `vcpu.rs`.

use crate::error::MmuError;
use crate::event::{Actor, What};
use crate::ids::{PageId, VcpuId};
use crate::invariant::Invariant;
use crate::mmu::MmuLock;
use crate::mutant::Mutant;
use crate::page::Role;
use crate::sync::{Guard, Ordering};
use crate::vcpu::{Requests, Vcpu};
use crate::vm::Vm;

/// What `handle_requests` did.
///
/// ```
/// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
/// # let vm = Vm::new(Config::native())?;
/// # let base = Hva(0x7f00_0000_0000);
/// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
/// # let vcpu = VcpuId(0);
/// let handled = vm.handle_requests(vcpu)?; // every vCPU starts with a reload
/// assert!(handled.reloaded && handled.requests.reload());
/// let again = vm.handle_requests(vcpu)?;
/// assert!(!again.reloaded && again.requests.is_empty());
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handled {
    /// The requests that were pending.
    pub requests: Requests,
    /// Whether the root was reloaded.
    pub reloaded: bool,
}

impl Vm {
    /// Handles pending requests, as `vcpu_enter_guest` does before entry: a
    /// reload drops the root through `mmu_free_roots` and loads a fresh one of the
    /// current generation. A vCPU with no root also loads one.
    ///
    /// # Errors
    ///
    /// [`MmuError::UnknownVcpu`], then [`MmuError::VcpuBusy`].
    ///
    /// ```
    /// # use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
    /// # let vm = Vm::new(Config::native())?;
    /// # let base = Hva(0x7f00_0000_0000);
    /// # vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: base })?;
    /// # let vcpu = VcpuId(0);
    /// use fastzap::Translation;
    ///
    /// assert_eq!(vm.translate(vcpu, Gfn(0))?, Translation::RequestPending);
    /// assert!(vm.handle_requests(vcpu)?.reloaded);
    /// assert_eq!(vm.translate(vcpu, Gfn(0))?, Translation::Miss);
    /// # Ok::<(), fastzap::MmuError>(())
    /// ```
    pub fn handle_requests(&self, vcpu: VcpuId) -> Result<Handled, MmuError> {
        let claim = self.claim(vcpu)?;
        Ok(self.handle_requests_claimed(claim.0, vcpu))
    }

    /// [`Vm::handle_requests`] on a vCPU the caller has claimed.
    pub(crate) fn handle_requests_claimed(&self, v: &Vcpu, vcpu: VcpuId) -> Handled {
        let actor = Actor::Vcpu(vcpu.0);
        if let Some(ctx) = self.tdp() {
            let (requests, reloaded) = crate::tdp::root::handle_requests(&ctx, v, vcpu.0);
            self.event(actor, || What::Handled {
                requests: requests.bits(),
            });
            return Handled { requests, reloaded };
        }
        let mut handled = Handled::default();
        // Freeing the old root flushes remote TLBs, which requests a flush from
        // this vCPU too; like vcpu_enter_guest, go round again (a few times at
        // most: another thread may keep making requests).
        for _ in 0..4 {
            let requests = v.take_requests(&self.config);
            let needs_root = v.root.load(Ordering::Acquire) == 0;
            if requests.is_empty() && !needs_root {
                break;
            }
            handled.requests |= requests;
            // A flush or a reload empties the TLB (`kvm_vcpu_flush_tlb_all`;
            // a new root is a new address space). A vCPU loading its first
            // root has nothing cached from an older one either way.
            if requests.tlb_flush() || requests.reload() || needs_root {
                v.tlb.flush();
            }
            if requests.reload() || needs_root {
                let guard = self.reclaimer.pin();
                let mut lk = self.lock_mmu(actor);
                self.mmu_free_roots(&mut lk, &guard, vcpu.0);
                self.mmu_alloc_roots(&mut lk, vcpu.0);
                handled.reloaded = true;
            }
            self.event(actor, || What::Handled {
                requests: requests.bits(),
            });
        }
        handled
    }

    /// `mmu_free_roots`: drop the vCPU's root. An invalid root whose count reaches
    /// 0 is zapped and committed here: nobody else will.
    pub(crate) fn mmu_free_roots(&self, lk: &mut MmuLock<'_>, guard: &Guard<'_>, vcpu: usize) {
        let Some(id) = lk.roots[vcpu].take() else {
            return;
        };
        self.vcpus[vcpu].root.store(0, Ordering::Release);
        self.event(lk.actor, || What::FreeRoot { sp: id });
        let Some(meta) = lk.pages.get_mut(&id) else {
            self.ghost
                .violate(Invariant::I3, || format!("vcpu{vcpu} held freed root {id}"));
            return;
        };
        meta.root_count = meta.root_count.saturating_sub(1);
        if meta.root_count == 0 && meta.invalid {
            let mut invalid_list = Vec::new();
            self.prepare_zap_page(lk, guard, id, &mut invalid_list);
            self.commit_zap_page(lk, guard, &mut invalid_list);
        }
    }

    /// `mmu_alloc_direct_roots`: load a root of the current generation.
    pub(crate) fn mmu_alloc_roots(&self, lk: &mut MmuLock<'_>, vcpu: usize) -> PageId {
        let smm = self.config.address_spaces == 2 && vcpu % 2 == 1;
        let role = Role {
            level: self.config.levels,
            direct: true,
            smm,
        };
        let (id, ptr) = self.get_page(lk, 0, role);
        let meta = lk.pages.get_mut(&id).expect("page present");
        meta.root_count += 1;
        let generation = meta.mmu_valid_gen;
        lk.roots[vcpu] = Some(id);
        let order = if self.config.mutant_is(Mutant::RootStoreRelaxed) {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        self.vcpus[vcpu].root.store(ptr.word(), order);
        self.event(lk.actor, || What::LoadRoot { sp: id, generation });
        id
    }
}

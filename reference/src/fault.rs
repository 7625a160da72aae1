//! # Page faults: `page_fault`
//!
//! Mirrors `core/src/fault.rs` (`tdp_page_fault`, `__direct_map`,
//! `handle_mmio_page_fault`). A fault returns `Mapped` with the current host
//! pfn where a slot maps the gfn (and installs or finds its leaf), `Mmio`
//! where none does (and caches it), `Retry(NoRoot)` before the first
//! `handle_requests` and `Retry(ObsoleteRoot)` while the root is obsolete.
//! `Retry(InvalidSlot)` and `Retry(NotifierRace)` need an overlapping memslot
//! update or notifier ([`Overlap`]), so one caller never sees them. Where a
//! fault may map a large page, the other gfns of the large page become
//! possible leaves ([`Reference::large_page`]).

use fastzap::{Fault, MmuError, RetryReason, VcpuId};

use crate::op::{Divergence, ensure, expect_err, expect_ok};
use crate::overlap::Overlap;
use crate::state::{Leaf, MmioEntry, Reference, Root, Tri};

impl Reference {
    /// `page_fault(vcpu, gfn, write)`.
    pub(crate) fn step_page_fault(
        &mut self,
        vcpu: VcpuId,
        gfn: u64,
        write: bool,
        r: &Result<Fault, MmuError>,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        match self.check_gfn(gfn).and_then(|_| self.check_vcpu(vcpu)) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let fault = expect_ok(r)?;
                self.fault(vcpu.0, gfn, write, fault, overlap)
            }
        }
    }

    fn fault(
        &mut self,
        v: usize,
        gfn: u64,
        write: bool,
        got: Fault,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        let root = self.vcpus[v].root;
        let slot = self.slot_of(gfn).copied();
        match got {
            Fault::Retry(RetryReason::NoRoot) => {
                ensure(root == Root::None, || {
                    format!("fault(vcpu{v}, gfn {gfn}): NoRoot but root is {root:?}")
                })?;
                return Ok(());
            }
            Fault::Retry(RetryReason::ObsoleteRoot) => {
                ensure(matches!(root, Root::Obsolete | Root::MaybeObsolete), || {
                    format!("fault(vcpu{v}, gfn {gfn}): ObsoleteRoot but root is {root:?}")
                })?;
                let vm = &mut self.vcpus[v];
                vm.root = Root::Obsolete;
                vm.reload = Tri::Set;
                vm.pending = Tri::Set;
                return Ok(());
            }
            Fault::Retry(RetryReason::InvalidSlot) if overlap.slot_invalidation => return Ok(()),
            Fault::Retry(RetryReason::NotifierRace) if overlap.notifier => return Ok(()),
            Fault::Retry(reason) => {
                return Err(format!(
                    "fault(vcpu{v}, gfn {gfn}): Retry({reason:?}) needs an overlapping \
                     {}, and none overlaps",
                    if reason == RetryReason::InvalidSlot {
                        "memslot DELETE or MOVE"
                    } else {
                        "notifier"
                    }
                ));
            }
            _ => {}
        }
        ensure(matches!(root, Root::Current | Root::MaybeObsolete), || {
            format!("fault(vcpu{v}, gfn {gfn}) = {got:?} but root is {root:?}")
        })?;
        self.vcpus[v].root = Root::Current;
        let sp = self.space_of(v);
        match (got, slot) {
            (Fault::Mapped { pfn }, Some(slot)) => {
                let pfn = pfn.0;
                self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                // A leaf whose pfn is not known yet maps the current pfn, which
                // `observe` just checked this one is.
                let old = self.spaces[sp].leaves.get(&gfn).map(|l| Leaf {
                    pfn: Some(l.pfn.unwrap_or(pfn)),
                    ..*l
                });
                let (writable, accessed) = match old {
                    Some(l) if l.pfn == Some(pfn) && l.certain => {
                        (l.writable.map(|w| w || write), l.accessed)
                    }
                    Some(l) if l.pfn == Some(pfn) => {
                        // Found again, or installed afresh: known only if both agree.
                        let w = if write {
                            Some(true)
                        } else {
                            l.writable.filter(|w| !w)
                        };
                        (w, l.accessed.filter(|a| !a))
                    }
                    _ => (Some(write), Some(false)),
                };
                let (writable, accessed) = if write && writable.is_none() {
                    (Some(true), accessed)
                } else {
                    (writable, accessed)
                };
                self.spaces[sp].mmio.remove(&gfn);
                self.spaces[sp].leaves.insert(
                    gfn,
                    Leaf {
                        pfn: Some(pfn),
                        writable,
                        accessed,
                        certain: true,
                    },
                );
                self.link_large_page(sp, gfn);
                Ok(())
            }
            (Fault::Mmio, None) => {
                let generation = self.slots_generation;
                self.spaces[sp].leaves.remove(&gfn);
                self.spaces[sp].mmio.insert(
                    gfn,
                    MmioEntry {
                        generation,
                        certain: true,
                    },
                );
                self.vcpus[v].mmio_cache = Some((gfn, generation));
                Ok(())
            }
            (got, slot) => Err(format!(
                "fault(vcpu{v}, gfn {gfn}) = {got:?} but the gfn's slot is {slot:?}"
            )),
        }
    }

    /// After a fault mapped `gfn` in address space `sp`: if it may have
    /// mapped `gfn`'s large page (or found a large spte there), each other gfn
    /// of the large page may now be mapped by that spte (a possible leaf, at
    /// the current pfn of its host page), and the fault may have made it
    /// writable. A certain leaf stays certain: it is either small, and the
    /// fault did not touch it, or the same large spte, which the fault found.
    fn link_large_page(&mut self, sp: usize, gfn: u64) {
        for g in self.large_neighbours(gfn) {
            let leaves = &mut self.spaces[sp].leaves;
            match leaves.get_mut(&g) {
                Some(l) if l.certain => l.writable = l.writable.filter(|w| *w),
                Some(l) => {
                    l.writable = None;
                    l.accessed = None;
                }
                None => {
                    leaves.insert(
                        g,
                        Leaf {
                            pfn: None,
                            writable: None,
                            accessed: None,
                            certain: false,
                        },
                    );
                }
            }
        }
    }
}

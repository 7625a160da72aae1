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

#[cfg(test)]
mod tests {
    use fastzap::{Config, Gfn, Hva, Pfn, SlotId, SlotSpec, Translation, VcpuId, Vm};

    use crate::call::apply_shared;
    use crate::op::{Op, Outcome};
    use crate::state::Reference;

    const V0: VcpuId = VcpuId(0);

    /// 4 sptes per page and 2 levels: a large page is 4 gfns. A slot of
    /// `npages` at gfn 0, backed from host page 16 (aligned).
    fn setup(large_pages: bool, npages: u64) -> (Vm, Reference) {
        let mut config = Config::model();
        (config.spte_count, config.large_pages) = (4, large_pages);
        let vm = Vm::new(config.clone()).unwrap();
        let mut r = Reference::new(&config);
        let slot = SlotSpec {
            id: SlotId(0),
            base_gfn: Gfn(0),
            npages,
            userspace_addr: Hva(16 * 4096),
        };
        for op in [Op::CreateSlot(slot), Op::HandleRequests(V0)] {
            let got = apply_shared(&vm, &op);
            r.step(&op, &got).unwrap();
        }
        (vm, r)
    }

    fn run(vm: &Vm, r: &mut Reference, op: Op) -> Outcome {
        let got = apply_shared(vm, &op);
        r.step(&op, &got).unwrap_or_else(|d| panic!("{op:?}: {d}"));
        got
    }

    fn translate(gfn: u64) -> Op {
        Op::Translate { vcpu: V0, gfn }
    }

    fn mapped(pfn: u64, writable: bool) -> Outcome {
        Outcome::Translation(Ok(Translation::Mapped {
            pfn: Pfn(pfn),
            writable,
        }))
    }

    #[test]
    fn a_large_fault_maps_its_neighbours_and_the_reference_admits_them() {
        let (vm, mut r) = setup(true, 4);
        let fault = Op::PageFault {
            vcpu: V0,
            gfn: 1,
            write: true,
        };
        run(&vm, &mut r, fault.clone());
        // The neighbour translates without a fault of its own, writable.
        let got = run(&vm, &mut r, translate(2));
        assert_eq!(got, mapped(18, true));
        // A small mapping there would have been a miss: admitted too.
        let (_, mut before) = setup(true, 4);
        let got = apply_shared(&vm, &fault);
        before.step(&fault, &got).unwrap();
        assert!(
            before
                .step(&translate(2), &Outcome::Translation(Ok(Translation::Miss)))
                .is_ok()
        );
        // One large spte over gfns 1 to 3: one unmapped, not two.
        let range = Op::InvalidateRange {
            start: 17 * 4096,
            end: 19 * 4096,
        };
        assert!(r.clone().step(&range, &Outcome::Count(Ok(0))).is_err());
        assert_eq!(run(&vm, &mut r, range), Outcome::Count(Ok(1)));
    }

    #[test]
    fn without_a_large_page_the_neighbour_is_not_mapped() {
        // Large pages off, or a partial large page (3 of 4 gfns).
        for (large_pages, npages) in [(false, 4), (true, 3)] {
            let (vm, mut r) = setup(large_pages, npages);
            let fault = Op::PageFault {
                vcpu: V0,
                gfn: 1,
                write: true,
            };
            run(&vm, &mut r, fault.clone());
            assert!(r.clone().step(&translate(2), &mapped(18, true)).is_err());
            let got = run(&vm, &mut r, translate(2));
            assert_eq!(got, Outcome::Translation(Ok(Translation::Miss)));
        }
    }
}

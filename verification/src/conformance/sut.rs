//! The system under test: the [`Vm`] and the [`Reference`] oracle that judges
//! every call ([`Sut::call`]), and the [`Snapshot`] of everything a failed
//! call must leave unchanged.

use fastzap::{Fault, Gfn, Pfn, SlotId, SlotSpec, Translation, VcpuId, Vm};
use fastzap_reference::reference::{Op, Outcome, Reference, Root};

use super::ops::{Setup, Step, apply};
use super::stats::{CaseStats, Invalid};

/// Everything a failed call must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    slots_generation: u64,
    slots: Vec<(u16, u64, u64, u64, bool)>,
    mmu_valid_gen: u64,
    requests: Vec<u64>,
    events: usize,
    vcpu_operations: u64,
    /// The shadow MMU's own structures, on the shadow MMU only
    /// ([`crate::mmu::shadow_internals`]): its page, descriptor and rmap
    /// counters, its shadow pages, and its zap history (`ZapStats` counts
    /// shadow pages).
    shadow: Option<(fastzap::check::Counts, usize, usize)>,
}

impl Snapshot {
    /// Takes a snapshot of `vm`.
    pub fn take(vm: &Vm) -> Snapshot {
        let slots = vm.memslots();
        let shadow = crate::mmu::shadow_internals(vm.config().mmu)
            .then(|| (vm.counts(), vm.shadow_pages(), vm.zap_history().len()));
        Snapshot {
            slots_generation: slots.generation(),
            slots: slots
                .iter()
                .map(|s| {
                    (
                        s.id().0,
                        s.base_gfn().0,
                        s.npages(),
                        s.userspace_addr().0,
                        s.is_invalid(),
                    )
                })
                .collect(),
            mmu_valid_gen: vm.mmu_valid_gen(),
            requests: (0..vm.config().vcpus)
                .map(|v| {
                    vm.pending_requests(VcpuId(v))
                        .map_or(u64::MAX, |r| r.bits())
                })
                .collect(),
            events: vm.events().len(),
            vcpu_operations: vm.vcpu_operations(),
            shadow,
        }
    }
}

/// The system under test: the VM, and the reference that judges it.
pub struct Sut {
    /// The VM.
    pub vm: Vm,
    /// The oracle.
    pub reference: Reference,
    /// What the case did so far.
    pub stats: CaseStats,
    /// Ids deleted and not created again, to tell a double delete.
    deleted: Vec<SlotId>,
}

impl Sut {
    /// A fresh VM of `setup` and its reference, after the opening (every call
    /// checked).
    pub fn new(setup: &Setup) -> Result<Sut, String> {
        let config = setup.config();
        let vm = Vm::new(config.clone()).map_err(|e| format!("Vm::new: {e}"))?;
        let mut sut = Sut {
            vm,
            reference: Reference::new(&config),
            stats: CaseStats::default(),
            deleted: Vec::new(),
        };
        for spec in &setup.opening {
            sut.call(&Op::CreateSlot(*spec))?;
        }
        for v in 0..setup.vcpus {
            sut.call(&Op::HandleRequests(VcpuId(v)))?;
        }
        Ok(sut)
    }

    /// Runs one transition, checking every call.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        self.stats.transitions += 1;
        match step {
            Step::Call(op) => {
                self.call(op)?;
            }
            Step::Access { vcpu, gfn, write } => {
                for _ in 0..4 {
                    let next = match self.call(&Op::Translate {
                        vcpu: *vcpu,
                        gfn: *gfn,
                    })? {
                        Outcome::Translation(Ok(Translation::RequestPending)) => {
                            Op::HandleRequests(*vcpu)
                        }
                        Outcome::Translation(Ok(Translation::Miss)) => Op::PageFault {
                            vcpu: *vcpu,
                            gfn: *gfn,
                            write: *write,
                        },
                        _ => break,
                    };
                    if let Outcome::Fault(Ok(Fault::Retry(_))) = self.call(&next)? {
                        self.call(&Op::HandleRequests(*vcpu))?;
                    }
                }
            }
            Step::FlushReclaim => {
                self.vm.flush_reclaim();
                self.agrees()?;
            }
            Step::Drain => {
                if !self.vm.drain(8) {
                    return Err(format!(
                        "drain with no reader pinned did not settle: {:?}",
                        self.vm.counts()
                    ));
                }
                self.agrees()?;
            }
        }
        Ok(())
    }

    /// Runs one call on the VM and checks it against the reference.
    pub fn call(&mut self, op: &Op) -> Result<Outcome, String> {
        let i = self.stats.steps;
        let at = |why: String| format!("call {i} {op:?}: {why}");
        let before = Snapshot::take(&self.vm);
        let gen_before = self.vm.mmu_valid_gen();
        let got = apply(&mut self.vm, op);
        self.stats.steps += 1;
        if let Outcome::Translation(Ok(Translation::Mapped { .. })) = got {
            self.stats.mapped += 1;
        }
        self.reference.step(op, &got).map_err(&at)?;
        if let Some(e) = got.error() {
            self.stats.errors += 1;
            self.stats.invalid[Invalid::of(op, e, &self.deleted) as usize] += 1;
            let after = Snapshot::take(&self.vm);
            if after != before {
                return Err(at(format!(
                    "failed call changed state:\n before {before:?}\n after  {after:?}"
                )));
            }
        }
        match (op, &got) {
            (Op::DeleteSlot { id, .. }, Outcome::Unit(Ok(()))) => self.deleted.push(*id),
            (Op::CreateSlot(spec), Outcome::Unit(Ok(()))) => self.deleted.retain(|d| *d != spec.id),
            _ => {}
        }
        // The zap history's statistics are the shadow MMU's (pages zapped).
        if let Outcome::Zap(Ok(stats)) = &got
            && crate::mmu::shadow_internals(self.vm.config().mmu)
            && self.vm.zap_history().last() != Some(stats)
        {
            return Err(at(format!(
                "the zap returned {stats:?} but the zap history ends with {:?}",
                self.vm.zap_history().last()
            )));
        }
        if self.vm.mmu_valid_gen() < gen_before {
            self.stats.wraps += 1;
        }
        self.agrees().map_err(at)?;
        Ok(got)
    }

    /// `mmu_valid_gen`, the memslots and the pending requests agree with the
    /// reference, and (on the shadow MMU, whose audit it is) the audit passes.
    fn agrees(&mut self) -> Result<(), String> {
        let (vm, reference) = (&self.vm, &mut self.reference);
        if vm.mmu_valid_gen() != reference.mmu_valid_gen {
            return Err(format!(
                "mmu_valid_gen {} but the reference says {}",
                vm.mmu_valid_gen(),
                reference.mmu_valid_gen
            ));
        }
        let slots = vm.memslots();
        let got_slots: Vec<SlotSpec> = slots
            .iter()
            .map(|s| SlotSpec {
                id: s.id(),
                base_gfn: s.base_gfn(),
                npages: s.npages(),
                userspace_addr: s.userspace_addr(),
            })
            .collect();
        if got_slots != reference.slots || slots.generation() != reference.slots_generation {
            return Err(format!(
                "memslots gen {} {got_slots:?}, reference gen {} {:?}",
                slots.generation(),
                reference.slots_generation,
                reference.slots
            ));
        }
        if vm.slot_count() != slots.len() {
            return Err(format!(
                "slot_count() {} but the memslots hold {}",
                vm.slot_count(),
                slots.len()
            ));
        }
        if let Some(s) = slots.iter().find(|s| s.is_invalid()) {
            return Err(format!("slot {} left INVALID", s.id().0));
        }
        if slots.update_in_progress() {
            return Err("the published memslots are marked as being replaced".into());
        }
        for v in 0..vm.config().vcpus {
            let requests = vm
                .pending_requests(VcpuId(v))
                .map_err(|e| format!("pending_requests: {e}"))?;
            reference.observe_requests(v, requests)?;
            let root = vm.root(VcpuId(v)).map_err(|e| format!("root: {e}"))?;
            let agrees = match reference.vcpus[v].root {
                Root::None => root.is_none(),
                Root::Current => {
                    root.is_some_and(|r| r.valid && r.generation == vm.mmu_valid_gen())
                }
                Root::Obsolete => root.is_some_and(|r| !r.valid),
                Root::MaybeObsolete => root.is_some(),
            };
            if !agrees {
                return Err(format!(
                    "vcpu{v}: root {root:?} at mmu_valid_gen {}, but the reference says {:?}",
                    vm.mmu_valid_gen(),
                    reference.vcpus[v].root
                ));
            }
        }
        // Every pfn the reference holds for a leaf is the one that backs the
        // leaf's host page now (an invalidation of the page removed the leaf,
        // and `change_pte` made its pfn unknown).
        for (space, leaves) in reference.spaces.iter().enumerate() {
            for (&gfn, leaf) in &leaves.leaves {
                let Some(pfn) = leaf.pfn else { continue };
                let Some(hva) = slots.lookup(Gfn(gfn)).and_then(|s| s.hva_of(Gfn(gfn))) else {
                    return Err(format!(
                        "the reference holds a leaf for gfn {gfn} (space {space}), which no slot maps"
                    ));
                };
                let now = vm.hva_to_pfn(hva);
                if now != Ok(Pfn(pfn)) {
                    return Err(format!(
                        "gfn {gfn} (space {space}): the reference's leaf maps pfn {pfn:#x}, but \
                         hva_to_pfn({hva}) = {now:?}"
                    ));
                }
            }
        }
        // The audit checks the shadow MMU's rmaps and shadow pages.
        if crate::mmu::shadow_internals(vm.config().mmu)
            && let Err(violations) = fastzap::check::audit(vm)
        {
            // Named, in detection order: the first name is the first found.
            let named: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
            return Err(format!("audit failed: {}", named.join("; ")));
        }
        Ok(())
    }

    /// The end of a case: drain, and the counters settle (on the shadow MMU:
    /// its pages and rmaps balance too).
    pub fn finish(&self) -> Result<(), String> {
        let vm = &self.vm;
        if !vm.drain(64) {
            return Err(format!("counters did not settle: {:?}", vm.counts()));
        }
        if !crate::mmu::shadow_internals(vm.config().mmu) {
            return Ok(());
        }
        let counts = vm.counts();
        if counts.pages.live() != vm.shadow_pages() as u64 {
            return Err(format!(
                "{} pages live after drain but {} in the page table",
                counts.pages.live(),
                vm.shadow_pages()
            ));
        }
        if counts.rmaps.live() != self.reference.slots.len() as u64 {
            return Err(format!(
                "{} rmaps live after drain for {} slots",
                counts.rmaps.live(),
                self.reference.slots.len()
            ));
        }
        Ok(())
    }
}

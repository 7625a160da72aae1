//! The operations of a case: a [`Setup`] (the configuration and the opening
//! slots), the [`Step`]s that follow it, a whole [`Case`] and its text
//! ([`describe`]), and how one [`Op`] of the reference runs on the VM
//! ([`apply`]).

use fastzap::checking::Mutant;
use fastzap::{Config, DeletionStrategy, Gfn, Mmu, ReclaimBackend, SlotSpec, VcpuId, Vm};
use fastzap_reference::reference::{Op, Outcome};

/// One transition: a single call, a vCPU's access to a gfn the way
/// `vcpu_enter_guest` does it (translate; on `RequestPending` handle the
/// requests, on `Miss` fault, on `Retry` handle the requests; at most 4
/// rounds, each call checked on its own), or a reclamation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// One call.
    Call(Op),
    /// A guest access.
    Access {
        /// The vCPU.
        vcpu: VcpuId,
        /// The gfn.
        gfn: u64,
        /// A write.
        write: bool,
    },
    /// [`Vm::flush_reclaim`]: one attempt to advance the epoch.
    FlushReclaim,
    /// [`Vm::drain`]: no reader is pinned between calls, so everything
    /// retired must be freed.
    Drain,
}

/// A case's configuration choices and opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The MMU (`Config::mmu`); the deletions are drawn from those it has.
    pub mmu: Mmu,
    /// vCPUs (2 or 3).
    pub vcpus: usize,
    /// Address spaces (1 or 2).
    pub address_spaces: u8,
    /// The configured deletion strategy.
    pub deletion: DeletionStrategy,
    /// The table's shape: (sptes per page, levels), 16 gfns either way.
    pub shape: (usize, u8),
    /// Sptes per pte-list descriptor (2 or 3).
    pub desc_capacity: usize,
    /// Use the facade's small EBR instead of crossbeam-epoch.
    pub small_ebr: bool,
    /// A bug from the zoo, to show that conformance can fail.
    pub mutant: Option<Mutant>,
    /// The slots created before the transitions (then every vCPU handles its
    /// first requests).
    pub opening: Vec<SlotSpec>,
}

impl Setup {
    /// The configuration: `Config::model()` with 16 gfns (4 sptes per page
    /// and 2 levels, or 2 sptes per page and 4 levels), a 2-bit generation and
    /// a 2-bit MMIO generation (both wrap), large pages, and the setup's choices.
    pub fn config(&self) -> Config {
        let mut config = Config::model();
        config.vcpus = self.vcpus;
        config.address_spaces = self.address_spaces;
        config.spte_count = self.shape.0;
        config.levels = self.shape.1;
        config.gen_bits = 2;
        config.mmio_gen_bits = 2;
        config.desc_capacity = self.desc_capacity;
        config.mmu = self.mmu;
        config.deletion = self.deletion;
        // Large pages on, as in `Config::native()`: 4 or 2 gfns each.
        config.large_pages = true;
        config.mutant = self.mutant;
        if self.small_ebr {
            config.reclaim = ReclaimBackend::small(8);
        }
        config
    }
}

/// One fixed case, for replaying a counterexample with [`run_case`](super::run_case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The configuration and opening.
    pub setup: Setup,
    /// The transitions.
    pub steps: Vec<Step>,
}

/// A case as text: the setup on one line, then one numbered line per
/// transition.
pub fn describe(case: &Case) -> String {
    let s = &case.setup;
    let mut out = format!(
        "  setup: {} MMU, {} vCPUs, {} address space(s), {:?} deletion, {} sptes x {} levels, desc capacity {}, {}, mutant {:?}\n  opening: {}",
        s.mmu.name(),
        s.vcpus,
        s.address_spaces,
        s.deletion,
        s.shape.0,
        s.shape.1,
        s.desc_capacity,
        if s.small_ebr {
            "small EBR"
        } else {
            "crossbeam-epoch"
        },
        s.mutant,
        s.opening
            .iter()
            .map(|o| format!(
                "slot {} gfns {}+{} hva {:#x}",
                o.id.0, o.base_gfn.0, o.npages, o.userspace_addr.0
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for (i, step) in case.steps.iter().enumerate() {
        out.push_str(&format!("\n  {:>2}. {step:?}", i + 1));
    }
    out
}

/// Runs `op` on `vm` (`&mut` for [`Vm::translate_unsynchronized`]).
pub fn apply(vm: &mut Vm, op: &Op) -> Outcome {
    match op {
        Op::TranslateUnsynchronized { vcpu, gfn } => {
            Outcome::Translation(vm.translate_unsynchronized(*vcpu, Gfn(*gfn)))
        }
        _ => fastzap_reference::linearizability::apply_shared(vm, op),
    }
}

//! # Conformance: the implementation against the reference, as a state machine
//!
//! The test is a [proptest-state-machine](proptest_state_machine) test: a
//! [`ReferenceStateMachine`](proptest_state_machine::ReferenceStateMachine)
//! generates the transitions ([`machine::Machine`]) and a
//! [`StateMachineTest`] runs them ([`Conformance`]). Each case is a [`Setup`]
//! (a configuration and an opening of 1 to 4 slots, after which every vCPU
//! handles its first requests) and 50 to 80 [`Step`]s over the whole public
//! API of [`Vm`]: create, delete (configured strategy, 3.11 or seed v3) and
//! move slots; fault, translate (synchronized, unsynchronized, runs), handle
//! and read requests, guest accesses; fast and eager invalidate-all; every
//! notifier; the shrinker; reclamation (`flush_reclaim`, `drain`); and invalid
//! calls of every [`Invalid`] class, generated on purpose.
//!
//! ## Where the oracle lives
//!
//! [`Reference`] is observation-driven: [`Reference::step`] checks an observed
//! outcome against the set it allows and resolves its own uncertainty from
//! it (a `translate` that did not return `RequestPending` proves no request
//! was pending), so it cannot predict one outcome by itself and cannot be the
//! `ReferenceStateMachine`, which must evolve without seeing the system. So
//! the two halves are split:
//!
//! - the generation model ([`machine::Model`]) is small and deterministic:
//!   the setup, the exact slot table (memslot calls and their errors are
//!   exact, and the model uses the reference's own validation), deleted ids and
//!   recently faulted gfns. It only steers generation toward relevant
//!   transitions; every transition is legal in every state, so shrinking is
//!   never rejected by a precondition;
//! - the system under test ([`Sut`]) holds the [`Vm`] *and* the [`Reference`]
//!   oracle, and does every check.
//!
//! ## What is checked
//!
//! After every call (a guest access is several calls, each checked):
//!
//! 1. the outcome is one the reference allows ([`Reference::step`]), errors
//!    included, each exactly;
//! 2. `mmu_valid_gen`, the memslots (and their generation, `slot_count`, no
//!    slot left INVALID and no update left in progress), every vCPU's pending
//!    requests and its root (none, valid of the current generation, or not
//!    valid) agree with the reference, and every pfn the reference holds for a
//!    leaf is the one `hva_to_pfn` gives for the leaf's host page;
//! 3. [`fastzap::check::audit()`] passes (every invariant, and any violation recorded at
//!    run time);
//! 4. a call that returned an error changed nothing ([`Snapshot`]: memslots,
//!    counts, `mmu_valid_gen`, shadow pages, pending requests, the event log,
//!    the zap history, the vCPU operation count);
//! 5. a zap's returned statistics are the last entry of the zap history.
//!
//! After every transition the generation model's slot table equals the
//! reference's ([`StateMachineTest::check_invariants`]). At the end
//! ([`StateMachineTest::teardown`]) the reclaimer drains and the counters
//! settle: every retired page and descriptor freed, every live page in the
//! page table, one live rmap per slot. A panic inside the VM is caught by the
//! runner and is a failure like any other.
//!
//! ## Configurations
//!
//! [`Setup::config`]: 16 gfns as 4 sptes per page and 2 levels or 2 sptes
//! and 4 levels; a 2-bit `mmu_valid_gen` and a 2-bit MMIO generation, so both
//! wrap within a case; 2 or 3 vCPUs; 1 or 2 address spaces; either configured
//! deletion strategy (and both explicitly, through `delete_memslot_with`);
//! descriptors of 2 or 3 sptes; crossbeam-epoch or the facade's small EBR.
//!
//! ## The public API, covered
//!
//! Every public method of [`Vm`] runs in every case: the calls of [`Op`] as
//! transitions; `flush_reclaim` and `drain` as transitions; `new`, `config`,
//! `memslots`, `slot_count`, `mmu_valid_gen`, `pending_requests`, `root`,
//! `hva_to_pfn`, `counts`, `events`, `zap_history`, `vcpu_operations`,
//! `shadow_pages` and (through the audit) `runtime_violations` by the checks.
//! Three errors cannot show here: `InvalidConfig` (a bad [`Config`];
//! `core/tests/errors.rs` covers each rule), `VcpuBusy` (needs a second
//! thread on the vCPU) and `ZapLivelock` (needs a mutant); the reference
//! allows none of them.
//!
//! ## Running and shrinking
//!
//! [`run_many`] and [`run_many_with`] drive the strategy with a seeded
//! [`TestRunner`]; a failure is shrunk by proptest-state-machine
//! (transitions deleted from the back, then each simplified, then the setup),
//! made 1-minimal by [`minimize`] (no single transition or opening slot can be
//! removed and still fail), and reported as a numbered sequence with its
//! length before and after shrinking. Panics are how a transition fails, so
//! their messages are silenced on the running thread while a run shrinks.
//! Statistics count transitions, calls, failed calls per [`Invalid`] class,
//! `Mapped` translations and generation wraps, so that a generator that stops
//! producing a class shows. [`run_case`] replays one fixed [`Case`].
//!
//! `fastzap verify` runs 10,000 cases (`--cases`); `cargo test` runs 128
//! through `prop_state_machine!` (`FASTZAP_CASES` overrides), 64 more for the
//! statistics, and mutants for shrinking.

use std::cell::{Cell, RefCell};
use std::ops::RangeInclusive;

use fastzap::checking::Mutant;
use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, MmuError, Pfn, ReclaimBackend, SlotId, SlotSpec,
    Translation, VcpuId, Vm,
};
use fastzap_reference::reference::{Op, Outcome, Reference, Root};
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use proptest_state_machine::StateMachineTest;

pub mod machine;

pub use machine::{Machine, Model, TRANSITIONS};

/// Runs `op` on `vm` (`&mut` for [`Vm::translate_unsynchronized`]).
pub fn apply(vm: &mut Vm, op: &Op) -> Outcome {
    match op {
        Op::TranslateUnsynchronized { vcpu, gfn } => {
            Outcome::Translation(vm.translate_unsynchronized(*vcpu, Gfn(*gfn)))
        }
        _ => fastzap_reference::linearizability::apply_shared(vm, op),
    }
}

/// Everything a failed call must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    slots_generation: u64,
    slots: Vec<(u16, u64, u64, u64, bool)>,
    counts: fastzap::check::Counts,
    mmu_valid_gen: u64,
    shadow_pages: usize,
    requests: Vec<u64>,
    events: usize,
    zaps: usize,
    vcpu_operations: u64,
}

impl Snapshot {
    /// Takes a snapshot of `vm`.
    pub fn take(vm: &Vm) -> Snapshot {
        let slots = vm.memslots();
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
            counts: vm.counts(),
            mmu_valid_gen: vm.mmu_valid_gen(),
            shadow_pages: vm.shadow_pages(),
            requests: (0..vm.config().vcpus)
                .map(|v| {
                    vm.pending_requests(VcpuId(v))
                        .map_or(u64::MAX, |r| r.bits())
                })
                .collect(),
            events: vm.events().len(),
            zaps: vm.zap_history().len(),
            vcpu_operations: vm.vcpu_operations(),
        }
    }
}

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
    /// a 2-bit MMIO generation (both wrap), and the setup's choices.
    pub fn config(&self) -> Config {
        let mut config = Config::model();
        config.vcpus = self.vcpus;
        config.address_spaces = self.address_spaces;
        config.spte_count = self.shape.0;
        config.levels = self.shape.1;
        config.gen_bits = 2;
        config.mmio_gen_bits = 2;
        config.desc_capacity = self.desc_capacity;
        config.deletion = self.deletion;
        config.mutant = self.mutant;
        if self.small_ebr {
            config.reclaim = ReclaimBackend::small(8);
        }
        config
    }
}

/// One fixed case, for replaying a counterexample with [`run_case`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The configuration and opening.
    pub setup: Setup,
    /// The transitions.
    pub steps: Vec<Step>,
}

/// The classes of invalid call the generator produces on purpose, by the
/// error they must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Create over another slot's gfns: `SlotOverlap`.
    OverlappingSlot,
    /// Move onto another slot: `SlotOverlap`.
    MoveOntoSlot,
    /// Create with an id in use: `SlotExists`.
    DuplicateSlotId,
    /// Create with no pages: `EmptySlot`.
    ZeroSizedSlot,
    /// Delete a slot already deleted: `UnknownSlot`.
    DoubleDelete,
    /// Delete or move an id never created: `UnknownSlot`.
    UnknownSlot,
    /// Any call on a vCPU that does not exist: `UnknownVcpu`.
    UnknownVcpu,
    /// A gfn, or a slot's end, past the last gfn: `GfnOutOfRange`.
    GfnOutOfRange,
    /// An unaligned or too high host range for a slot: `BadHostRange`.
    BadHostRange,
    /// An empty or reversed notifier range (`BadHvaRange`), or a notifier
    /// address outside the host's address space (`HvaOutOfRange`).
    BadHvaRange,
    /// Any other error (the reference allows none).
    Other,
}

impl Invalid {
    /// Every class, in the order of [`CaseStats::invalid`].
    pub const ALL: [Invalid; 11] = [
        Invalid::OverlappingSlot,
        Invalid::MoveOntoSlot,
        Invalid::DuplicateSlotId,
        Invalid::ZeroSizedSlot,
        Invalid::DoubleDelete,
        Invalid::UnknownSlot,
        Invalid::UnknownVcpu,
        Invalid::GfnOutOfRange,
        Invalid::BadHostRange,
        Invalid::BadHvaRange,
        Invalid::Other,
    ];

    /// The class of the error `e` returned by `op`; `deleted` lists the ids
    /// deleted and not created again.
    pub fn of(op: &Op, e: MmuError, deleted: &[SlotId]) -> Invalid {
        match (op, e) {
            (Op::CreateSlot(_), MmuError::SlotOverlap { .. }) => Invalid::OverlappingSlot,
            (Op::MoveSlot { .. }, MmuError::SlotOverlap { .. }) => Invalid::MoveOntoSlot,
            (_, MmuError::SlotExists(_)) => Invalid::DuplicateSlotId,
            (_, MmuError::EmptySlot) => Invalid::ZeroSizedSlot,
            (Op::DeleteSlot { .. }, MmuError::UnknownSlot(id)) if deleted.contains(&id) => {
                Invalid::DoubleDelete
            }
            (_, MmuError::UnknownSlot(_)) => Invalid::UnknownSlot,
            (_, MmuError::UnknownVcpu(_)) => Invalid::UnknownVcpu,
            (_, MmuError::GfnOutOfRange { .. }) => Invalid::GfnOutOfRange,
            (_, MmuError::BadHostRange) => Invalid::BadHostRange,
            (_, MmuError::BadHvaRange | MmuError::HvaOutOfRange { .. }) => Invalid::BadHvaRange,
            _ => Invalid::Other,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Invalid::OverlappingSlot => "overlapping slot",
            Invalid::MoveOntoSlot => "move onto another slot",
            Invalid::DuplicateSlotId => "duplicate slot id",
            Invalid::ZeroSizedSlot => "zero-sized slot",
            Invalid::DoubleDelete => "double delete",
            Invalid::UnknownSlot => "unknown slot",
            Invalid::UnknownVcpu => "unknown vCPU",
            Invalid::GfnOutOfRange => "gfn out of range",
            Invalid::BadHostRange => "bad host range",
            Invalid::BadHvaRange => "bad hva range",
            Invalid::Other => "other",
        }
    }
}

/// What cases did, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseStats {
    /// Transitions run (the opening not included).
    pub transitions: u64,
    /// Calls run and checked, the opening included (a guest access is
    /// several calls).
    pub steps: u64,
    /// Calls that returned an error (and were checked to change nothing).
    pub errors: u64,
    /// Failed calls per class, in the order of [`Invalid::ALL`].
    pub invalid: [u64; Invalid::ALL.len()],
    /// Translations that returned `Mapped`.
    pub mapped: u64,
    /// `mmu_valid_gen` wraparounds.
    pub wraps: u64,
}

impl CaseStats {
    /// Failed calls of class `class`.
    pub fn invalid(&self, class: Invalid) -> u64 {
        self.invalid[class as usize]
    }

    /// "name count" for every class but [`Invalid::Other`], then `Other` if
    /// it is not zero.
    pub fn invalid_summary(&self) -> String {
        Invalid::ALL
            .iter()
            .filter(|c| **c != Invalid::Other || self.invalid(**c) > 0)
            .map(|c| format!("{} {}", c.name(), self.invalid(*c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::ops::AddAssign for CaseStats {
    fn add_assign(&mut self, o: CaseStats) {
        self.transitions += o.transitions;
        self.steps += o.steps;
        self.errors += o.errors;
        for (a, b) in self.invalid.iter_mut().zip(o.invalid) {
            *a += b;
        }
        self.mapped += o.mapped;
        self.wraps += o.wraps;
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
        if let Outcome::Zap(Ok(stats)) = &got
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
    /// reference, and the audit passes.
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
        if let Err(violations) = fastzap::check::audit(vm) {
            return Err(format!("audit failed: {violations:#?}"));
        }
        Ok(())
    }

    /// The end of a case: drain, and the counters settle.
    pub fn finish(&self) -> Result<(), String> {
        let vm = &self.vm;
        if !vm.drain(64) {
            return Err(format!("counters did not settle: {:?}", vm.counts()));
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

thread_local! {
    /// The statistics of the last case [`Conformance::teardown`] finished on
    /// this thread.
    static LAST_STATS: Cell<Option<CaseStats>> = const { Cell::new(None) };
    /// While set, the panic hook stays silent and records where a panic
    /// happened in [`PANICKED_AT`] instead.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic happened.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The [`StateMachineTest`]: the SUT is a [`Sut`]. A disagreement panics
/// with its description (proptest-state-machine's way to fail a
/// transition); [`run_many`] catches it.
#[derive(Debug, Clone, Copy)]
pub struct Conformance;

impl StateMachineTest for Conformance {
    type SystemUnderTest = Sut;
    type Reference = Machine;

    fn init_test(model: &Model) -> Sut {
        Sut::new(&model.setup).unwrap_or_else(|why| panic!("opening: {why}"))
    }

    fn apply(mut sut: Sut, _after: &Model, step: Step) -> Sut {
        // Numbered from 1, as `describe` numbers them.
        let t = sut.stats.transitions + 1;
        if let Err(why) = sut.step(&step) {
            panic!("transition {t} {step:?}: {why}");
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(
            model.slots(),
            &sut.reference.slots[..],
            "the generation model's slot table left the reference's"
        );
    }

    fn teardown(sut: Sut, _model: Model) {
        if let Err(why) = sut.finish() {
            panic!("teardown: {why}");
        }
        LAST_STATS.with(|s| s.set(Some(sut.stats)));
    }
}

/// Runs `f` with panic messages silenced on this thread (other threads keep
/// the previous hook): a shrinking run panics once per failing attempt.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info.location().map(|l| l.to_string());
                PANICKED_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    f()
}

/// Runs one generated case through [`StateMachineTest::test_sequential`],
/// turning its panic into an `Err` with the panic's message and place.
/// (`seen` is the strategy's own counter of transitions run, which its
/// shrinking uses; its type names `std::sync`, which the workspace's clippy
/// configuration forbids outside the facade.)
#[allow(clippy::disallowed_types)]
fn run_sequence(
    model: Model,
    steps: Vec<Step>,
    seen: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) -> Result<CaseStats, String> {
    LAST_STATS.with(|s| s.set(None));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        quietly(|| Conformance::test_sequential(RunnerConfig::default(), model, steps, seen))
    }));
    match run {
        Ok(()) => LAST_STATS
            .with(Cell::take)
            .ok_or_else(|| "the case ended without its teardown".to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            let at = PANICKED_AT.with(|p| p.borrow_mut().take());
            Err(match at {
                Some(at) if !at.contains("conformance.rs") => {
                    format!("{message} (panicked at {at})")
                }
                _ => message,
            })
        }
    }
}

/// Runs one fixed case: its statistics, or the first disagreement.
pub fn run_case(case: &Case) -> Result<CaseStats, String> {
    run_sequence(Model::new(case.setup.clone()), case.steps.clone(), None)
}

/// The most runs [`minimize`] spends (4096).
pub const MINIMIZE_RUNS: u64 = 4096;

/// Makes a failing case 1-minimal: removes single transitions (from the back)
/// and single opening slots while the case still fails, until no single removal
/// keeps it failing or [`MINIMIZE_RUNS`] runs were spent. proptest-state-machine
/// deletes each transition once, from the back, before it simplifies them, so a
/// transition that became removable only later stays; this pass removes it.
/// Returns the case and its failure.
pub fn minimize(mut case: Case, mut why: String, shrunk: &mut Shrunk) -> (Case, String) {
    let mut budget = MINIMIZE_RUNS;
    let mut removed = true;
    while removed && budget > 0 {
        removed = false;
        // Back to front, so that a removal leaves the indices still to try
        // in place: transitions, then opening slots.
        let removals: Vec<(bool, usize)> = (0..case.steps.len())
            .rev()
            .map(|i| (true, i))
            .chain((0..case.setup.opening.len()).rev().map(|i| (false, i)))
            .collect();
        for (transition, i) in removals {
            if budget == 0 {
                break;
            }
            let mut candidate = case.clone();
            if transition {
                candidate.steps.remove(i);
            } else {
                candidate.setup.opening.remove(i);
            }
            budget -= 1;
            shrunk.runs += 1;
            if let Err(w) = run_case(&candidate) {
                shrunk.failing_runs += 1;
                case = candidate;
                why = w;
                removed = true;
            }
        }
    }
    (case, why)
}

/// How a failure shrank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shrunk {
    /// Transitions of the first failing case.
    pub from: usize,
    /// Transitions after proptest-state-machine's shrinking.
    pub by_proptest: usize,
    /// Transitions of the minimal failing case, after [`minimize`].
    pub to: usize,
    /// Failing runs while shrinking, the first included.
    pub failing_runs: u64,
    /// Runs while shrinking, the first failing run included.
    pub runs: u64,
}

/// The result of [`run_many`].
#[derive(Debug, Clone, Default)]
pub struct ConformanceReport {
    /// Cases that passed before the first failure (all of them if none).
    pub cases: u32,
    /// Totals over those cases.
    pub stats: CaseStats,
    /// The first failure, shrunk, with its minimal sequence, if any.
    pub failure: Option<String>,
    /// The minimal failing case, if any.
    pub counterexample: Option<Case>,
    /// How the failure shrank, if any.
    pub shrunk: Option<Shrunk>,
}

/// Runs `cases` generated cases from `seed`, shrinking the first failure.
pub fn run_many(cases: u32, seed: u64) -> ConformanceReport {
    run_many_with(cases, seed, None)
}

/// [`run_many`] with every case's VM built with `mutant`.
pub fn run_many_with(cases: u32, seed: u64, mutant: Option<Mutant>) -> ConformanceReport {
    run_many_sized(cases, seed, mutant, TRANSITIONS)
}

/// [`run_many_with`] with `transitions` transitions per case.
pub fn run_many_sized(
    cases: u32,
    seed: u64,
    mutant: Option<Mutant>,
    transitions: RangeInclusive<usize>,
) -> ConformanceReport {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let totals = RefCell::new(ConformanceReport::default());
    let shrunk = RefCell::new(None::<Shrunk>);
    let strategy = machine::sequential(transitions, mutant);
    let result = runner.run(&strategy, |(model, steps, seen)| {
        let len = steps.len();
        let result = run_sequence(model, steps, seen);
        let mut shrunk = shrunk.borrow_mut();
        if let Some(s) = shrunk.as_mut() {
            s.runs += 1;
            s.failing_runs += u64::from(result.is_err());
        }
        match result {
            Ok(stats) => {
                if shrunk.is_none() {
                    let mut t = totals.borrow_mut();
                    t.cases += 1;
                    t.stats += stats;
                }
                Ok(())
            }
            Err(why) => {
                shrunk.get_or_insert(Shrunk {
                    from: len,
                    by_proptest: len,
                    to: len,
                    failing_runs: 1,
                    runs: 1,
                });
                Err(TestCaseError::fail(why))
            }
        }
    });
    let mut report = totals.into_inner();
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (model, steps, _))) => {
            let mut shrunk = shrunk.into_inner().unwrap_or_default();
            shrunk.by_proptest = steps.len();
            let (case, why) = minimize(
                Case {
                    setup: model.setup,
                    steps,
                },
                why.to_string(),
                &mut shrunk,
            );
            shrunk.to = case.steps.len();
            report.failure = Some(format!(
                "{why}\nminimal failing case ({} transitions, shrunk from {} in {} runs; proptest's shrinking left {}):\n{}",
                shrunk.to,
                shrunk.from,
                shrunk.runs,
                shrunk.by_proptest,
                describe(&case)
            ));
            report.counterexample = Some(case);
            report.shrunk = Some(shrunk);
        }
        Err(TestError::Abort(why)) => report.failure = Some(format!("aborted: {why}")),
    }
    report
}

/// A case as text: the setup on one line, then one numbered line per
/// transition.
pub fn describe(case: &Case) -> String {
    let s = &case.setup;
    let mut out = format!(
        "  setup: {} vCPUs, {} address space(s), {:?} deletion, {} sptes x {} levels, desc capacity {}, {}, mutant {:?}\n  opening: {}",
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

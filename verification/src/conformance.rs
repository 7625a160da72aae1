//! # Conformance: the implementation against the reference, one step at a time
//!
//! [`run_case`] applies a sequence of [`Op`]s to a fresh [`Vm`] and to a fresh
//! [`Reference`]. After every step it checks that:
//!
//! 1. the outcome is one the reference allows ([`Reference::step`]);
//! 2. `mmu_valid_gen`, the memslots (and their generation) and every vCPU's
//!    pending requests agree with the reference;
//! 3. [`fastzap::audit::audit`] passes;
//! 4. a call that returned an error changed nothing: memslots, counts,
//!    `mmu_valid_gen`, shadow pages, pending requests and the event log are
//!    the same before and after.
//!
//! At the end it drains the reclaimer and requires the counters to settle:
//! every retired page and descriptor freed, every live page in the page table,
//! one live rmap per slot.
//!
//! [`case_strategy`] generates cases: a small configuration (16 gfns as 4
//! sptes per page and 2 levels or 2 sptes and 4 levels, a 2-bit generation so
//! that it wraps, 2 or 3 vCPUs, 1 or 2 address spaces, either deletion
//! strategy, descriptors of 2 or 3 sptes, crossbeam-epoch or the small EBR),
//! an opening that creates 2 to 4 slots, and 30 to 60 steps over the whole
//! API, invalid calls included. [`run_many`] runs many cases with a seed.

use fastzap::{Config, DeletionStrategy, Fault, Mutant, SlotSpec, Translation, VcpuId, Vm};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

use crate::reference::{Op, Outcome, Reference};

/// Runs `op` on `vm` (`&mut` for [`Vm::translate_unsynchronized`]).
pub fn apply(vm: &mut Vm, op: &Op) -> Outcome {
    match op {
        Op::TranslateUnsynchronized { vcpu, gfn } => {
            Outcome::Translation(vm.translate_unsynchronized(*vcpu, *gfn))
        }
        Op::HandleRequests(v) => Outcome::Handled(vm.handle_requests(*v)),
        Op::PageFault { vcpu, gfn, write } => Outcome::Fault(vm.page_fault(*vcpu, *gfn, *write)),
        Op::Translate { vcpu, gfn } => Outcome::Translation(vm.translate(*vcpu, *gfn)),
        Op::TranslateRun { vcpu, gfns } => {
            let mut out = Vec::new();
            Outcome::Translations(vm.translate_run(*vcpu, gfns, &mut out).map(|()| out))
        }
        Op::PendingRequests(v) => Outcome::Requests(vm.pending_requests(*v)),
        Op::ZapAllFast => Outcome::Zap(vm.invalidate_zap_all_pages()),
        Op::ZapAllEager => Outcome::Zap(vm.zap_all()),
        Op::CreateSlot(spec) => Outcome::Unit(vm.create_memslot(*spec)),
        Op::DeleteSlot { id, strategy } => Outcome::Unit(match strategy {
            None => vm.delete_memslot(*id),
            Some(s) => vm.delete_memslot_with(*id, *s),
        }),
        Op::MoveSlot { id, base_gfn } => Outcome::Unit(vm.move_memslot(*id, *base_gfn)),
        Op::InvalidateRange { start, end } => Outcome::Count(vm.invalidate_range(*start, *end)),
        Op::ClearFlushYoung { start, end } => Outcome::Young(vm.clear_flush_young(*start, *end)),
        Op::TestYoung { start, end } => Outcome::Young(vm.test_young(*start, *end)),
        Op::ChangePte { hva } => Outcome::Count(vm.change_pte(*hva)),
        Op::Shrink(nr) => Outcome::Count(vm.shrink(*nr)),
    }
}

/// Everything a failed call must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    slots_generation: u64,
    slots: Vec<(u16, u64, u64, u64, u32)>,
    counts: fastzap::Counts,
    mmu_valid_gen: u64,
    shadow_pages: usize,
    requests: Vec<u64>,
    events: usize,
}

impl Snapshot {
    /// Takes a snapshot of `vm`.
    pub fn take(vm: &Vm) -> Snapshot {
        let slots = vm.memslots();
        Snapshot {
            slots_generation: slots.generation,
            slots: slots
                .slots
                .iter()
                .map(|s| (s.id.0, s.base_gfn, s.npages, s.userspace_addr, s.flags))
                .collect(),
            counts: vm.counts(),
            mmu_valid_gen: vm.mmu_valid_gen(),
            shadow_pages: vm.shadow_pages(),
            requests: (0..vm.config().vcpus)
                .map(|v| vm.pending_requests(VcpuId(v)).unwrap_or(u64::MAX))
                .collect(),
            events: vm.events().len(),
        }
    }
}

/// One step of a case: a single call, or a vCPU's access to a gfn the way
/// `vcpu_enter_guest` does it (translate; on `RequestPending` handle the
/// requests, on `Miss` fault, on `Retry` handle the requests; at most 4
/// rounds), each call checked on its own.
#[derive(Debug, Clone)]
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
}

/// One generated case.
#[derive(Debug, Clone)]
pub struct Case {
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
    /// The steps.
    pub steps: Vec<Step>,
    /// A bug from the zoo, to show that conformance can fail.
    pub mutant: Option<Mutant>,
}

impl Case {
    /// The case's configuration: `Config::model()` with 16 gfns (4 sptes per
    /// page and 2 levels, or 2 sptes per page and 4 levels), a 2-bit
    /// generation, and the case's choices.
    pub fn config(&self) -> Config {
        let mut config = Config {
            vcpus: self.vcpus,
            address_spaces: self.address_spaces,
            spte_count: self.shape.0,
            levels: self.shape.1,
            gen_bits: 2,
            mmio_gen_bits: 2,
            desc_capacity: self.desc_capacity,
            deletion: self.deletion,
            mutant: self.mutant,
            ..Config::model()
        };
        if self.small_ebr {
            config.reclaim = fastzap::sync::ReclaimBackend::Small {
                slots: 8,
                mutant: fastzap::sync::ebr::EbrMutant::None,
            };
        }
        config
    }
}

/// What a case did, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaseStats {
    /// Steps run.
    pub steps: u64,
    /// Steps that returned an error (and were checked to change nothing).
    pub errors: u64,
    /// Translations that returned `Mapped`.
    pub mapped: u64,
    /// `mmu_valid_gen` wraparounds.
    pub wraps: u64,
}

impl std::ops::AddAssign for CaseStats {
    fn add_assign(&mut self, o: CaseStats) {
        self.steps += o.steps;
        self.errors += o.errors;
        self.mapped += o.mapped;
        self.wraps += o.wraps;
    }
}

/// Runs one case. `Err` describes the first step at which the implementation
/// and the reference disagree, or an invariant broke.
pub fn run_case(case: &Case) -> Result<CaseStats, String> {
    let config = case.config();
    let mut vm = Vm::new(config.clone()).map_err(|e| format!("Vm::new: {e}"))?;
    let mut reference = Reference::new(&config);
    let mut stats = CaseStats::default();
    let mut call = |op: &Op| check_call(&mut vm, &mut reference, op, &mut stats);
    for step in &case.steps {
        match step {
            Step::Call(op) => {
                call(op)?;
            }
            Step::Access { vcpu, gfn, write } => {
                for _ in 0..4 {
                    let next = match call(&Op::Translate {
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
                    if let Outcome::Fault(Ok(Fault::Retry(_))) = call(&next)? {
                        call(&Op::HandleRequests(*vcpu))?;
                    }
                }
            }
        }
    }
    finish(&vm, &reference)?;
    Ok(stats)
}

/// Runs one call on the VM and checks it against the reference.
fn check_call(
    vm: &mut Vm,
    reference: &mut Reference,
    op: &Op,
    stats: &mut CaseStats,
) -> Result<Outcome, String> {
    let vcpus = vm.config().vcpus;
    let i = stats.steps;
    {
        let at = |why: String| format!("step {i} {op:?}: {why}");
        let before = Snapshot::take(vm);
        let gen_before = vm.mmu_valid_gen();
        let got = apply(vm, op);
        let vm = &*vm;
        stats.steps += 1;
        if let Outcome::Translation(Ok(Translation::Mapped { .. })) = got {
            stats.mapped += 1;
        }
        reference.step(op, &got).map_err(at)?;
        if got.error().is_some() {
            stats.errors += 1;
            let after = Snapshot::take(vm);
            if after != before {
                return Err(at(format!(
                    "failed call changed state:\n before {before:?}\n after  {after:?}"
                )));
            }
        }
        if vm.mmu_valid_gen() < gen_before {
            stats.wraps += 1;
        }
        if vm.mmu_valid_gen() != reference.mmu_valid_gen {
            return Err(at(format!(
                "mmu_valid_gen {} but the reference says {}",
                vm.mmu_valid_gen(),
                reference.mmu_valid_gen
            )));
        }
        let slots = vm.memslots();
        let got_slots: Vec<SlotSpec> = slots
            .slots
            .iter()
            .map(|s| SlotSpec {
                id: s.id,
                base_gfn: s.base_gfn,
                npages: s.npages,
                userspace_addr: s.userspace_addr,
            })
            .collect();
        if got_slots != reference.slots || slots.generation != reference.slots_generation {
            return Err(at(format!(
                "memslots gen {} {got_slots:?}, reference gen {} {:?}",
                slots.generation, reference.slots_generation, reference.slots
            )));
        }
        if let Some(s) = slots.slots.iter().find(|s| s.flags != 0) {
            return Err(at(format!(
                "slot {} left with flags {:#x}",
                s.id.0, s.flags
            )));
        }
        for v in 0..vcpus {
            let requests = vm
                .pending_requests(VcpuId(v))
                .map_err(|e| at(format!("pending_requests: {e}")))?;
            reference.observe_requests(v, requests).map_err(at)?;
        }
        if let Err(violations) = fastzap::audit::audit(vm) {
            return Err(at(format!("audit failed: {violations:#?}")));
        }
        Ok(got)
    }
}

/// The end of a case: drain, and the counters settle.
fn finish(vm: &Vm, reference: &Reference) -> Result<(), String> {
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
    if counts.rmaps.live() != reference.slots.len() as u64 {
        return Err(format!(
            "{} rmaps live after drain for {} slots",
            counts.rmaps.live(),
            reference.slots.len()
        ));
    }
    Ok(())
}

pub use generate::{case_strategy, op_strategy, step_strategy};

/// The case generators. `prop_oneof!` expands to `std::sync::Arc`, which the
/// workspace's clippy configuration forbids elsewhere; nothing here shares
/// state between threads, so the lint is allowed in this module only.
#[allow(clippy::disallowed_types)]
mod generate {
    use fastzap::{DeletionStrategy, SlotId, SlotSpec, VcpuId};
    use proptest::prelude::*;

    use super::{Case, Step};
    use crate::reference::{Op, PAGE_SIZE};

    const GFNS: u64 = 16;

    fn vcpu_id() -> impl Strategy<Value = VcpuId> {
        // Mostly real vCPUs, sometimes one that does not exist.
        prop_oneof![16 => (0usize..2).prop_map(VcpuId), 3 => Just(VcpuId(2)), 1 => (3usize..6).prop_map(VcpuId)]
    }

    fn gfn() -> impl Strategy<Value = u64> {
        prop_oneof![16 => 0..8u64, 4 => 8..GFNS, 1 => GFNS..GFNS + 4, 1 => Just(u64::MAX)]
    }

    fn slot_id() -> impl Strategy<Value = SlotId> {
        (0u16..4).prop_map(SlotId)
    }

    fn hva_base() -> impl Strategy<Value = u64> {
        // Host ranges may overlap between slots: two gfns then share a host page.
        prop_oneof![
            12 => (0u64..12).prop_map(|p| p * PAGE_SIZE),
            1 => Just(0x1234),
            1 => Just((1 << 48) - PAGE_SIZE),
            1 => Just(!(PAGE_SIZE - 1)),
        ]
    }

    fn hva_range() -> impl Strategy<Value = (u64, u64)> {
        prop_oneof![
            10 => (0u64..16 * PAGE_SIZE, 1u64..4 * PAGE_SIZE).prop_map(|(s, l)| (s, s + l)),
            1 => (0u64..16 * PAGE_SIZE).prop_map(|s| (s, s)),
            1 => (1u64..16 * PAGE_SIZE).prop_map(|s| (s, s - 1)),
        ]
    }

    fn strategy() -> impl Strategy<Value = Option<DeletionStrategy>> {
        prop_oneof![
            Just(None),
            Just(Some(DeletionStrategy::Merged311)),
            Just(Some(DeletionStrategy::SeedV3)),
        ]
    }

    /// One operation, valid or not.
    pub fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            10 => vcpu_id().prop_map(Op::HandleRequests),
            16 => (vcpu_id(), gfn(), any::<bool>())
                .prop_map(|(vcpu, gfn, write)| Op::PageFault { vcpu, gfn, write }),
            20 => (vcpu_id(), gfn()).prop_map(|(vcpu, gfn)| Op::Translate { vcpu, gfn }),
            2 => (vcpu_id(), gfn()).prop_map(|(vcpu, gfn)| Op::TranslateUnsynchronized { vcpu, gfn }),
        3 => (vcpu_id(), prop::collection::vec(gfn(), 0..4))
                .prop_map(|(vcpu, gfns)| Op::TranslateRun { vcpu, gfns }),
            1 => vcpu_id().prop_map(Op::PendingRequests),
            1 => Just(Op::ZapAllFast),
            1 => Just(Op::ZapAllEager),
            3 => (slot_id(), 0u64..GFNS + 2, prop_oneof![6 => 1u64..5, 1 => Just(0), 1 => Just(u64::MAX)], hva_base())
                .prop_map(|(id, base_gfn, npages, userspace_addr)| Op::CreateSlot(SlotSpec {
                    id,
                    base_gfn,
                    npages,
                    userspace_addr,
                })),
            2 => (slot_id(), strategy()).prop_map(|(id, strategy)| Op::DeleteSlot { id, strategy }),
            1 => (slot_id(), prop_oneof![8 => 0u64..GFNS, 1 => Just(u64::MAX)])
                .prop_map(|(id, base_gfn)| Op::MoveSlot { id, base_gfn }),
            3 => hva_range().prop_map(|(start, end)| Op::InvalidateRange { start, end }),
            2 => hva_range().prop_map(|(start, end)| Op::ClearFlushYoung { start, end }),
            1 => hva_range().prop_map(|(start, end)| Op::TestYoung { start, end }),
            2 => prop_oneof![8 => 0u64..16 * PAGE_SIZE, 1 => Just(u64::MAX)]
                .prop_map(|hva| Op::ChangePte { hva }),
            1 => prop_oneof![Just(0usize), 1usize..4, Just(usize::MAX)].prop_map(Op::Shrink),
        ]
    }

    /// One step: mostly single calls, some guest accesses.
    pub fn step_strategy() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => op_strategy().prop_map(Step::Call),
            1 => (vcpu_id(), gfn(), any::<bool>())
                .prop_map(|(vcpu, gfn, write)| Step::Access { vcpu, gfn, write }),
        ]
    }

    /// The opening of a case: 2 to 4 slot creations (mostly valid: slot `i` at
    /// gfn `4 i`, host pages possibly shared) and a first `handle_requests` for
    /// vCPUs 0 to 2, so that the random operations find something mapped.
    fn opening() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec((1u64..=4, 0u64..12), 2..=4).prop_map(|slots| {
            let mut ops: Vec<Step> = slots
                .into_iter()
                .enumerate()
                .map(|(i, (npages, page))| {
                    Step::Call(Op::CreateSlot(SlotSpec {
                        id: SlotId(i as u16),
                        base_gfn: 4 * i as u64,
                        npages,
                        userspace_addr: page * PAGE_SIZE,
                    }))
                })
                .collect();
            ops.extend((0..3).map(|v| Step::Call(Op::HandleRequests(VcpuId(v)))));
            ops
        })
    }

    /// A case: configuration, an opening and 30 to 60 random operations.
    pub fn case_strategy() -> impl Strategy<Value = Case> {
        (
            2usize..=3,
            1u8..=2,
            prop_oneof![
                Just(DeletionStrategy::Merged311),
                Just(DeletionStrategy::SeedV3)
            ],
            (
                prop_oneof![3 => Just((4usize, 2u8)), 1 => Just((2, 4))],
                2usize..=3,
                any::<bool>(),
            ),
            opening(),
            prop::collection::vec(step_strategy(), 30..=60),
        )
            .prop_map(
                |(
                    vcpus,
                    address_spaces,
                    deletion,
                    (shape, desc_capacity, small_ebr),
                    mut steps,
                    rest,
                )| {
                    steps.extend(rest);
                    Case {
                        vcpus,
                        address_spaces,
                        deletion,
                        shape,
                        desc_capacity,
                        small_ebr,
                        steps,
                        mutant: None,
                    }
                },
            )
    }
}

/// The result of [`run_many`].
#[derive(Debug, Clone, Default)]
pub struct ConformanceReport {
    /// Cases run.
    pub cases: u32,
    /// Totals over all cases.
    pub stats: CaseStats,
    /// The first failure, shrunk, if any.
    pub failure: Option<String>,
}

/// Runs `cases` generated cases from `seed`, shrinking the first failure.
pub fn run_many(cases: u32, seed: u64) -> ConformanceReport {
    run_many_with(cases, seed, None)
}

/// [`run_many`] with every case's VM built with `mutant`.
pub fn run_many_with(cases: u32, seed: u64, mutant: Option<Mutant>) -> ConformanceReport {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(config, rng);
    let totals = std::cell::RefCell::new(ConformanceReport::default());
    let strategy = case_strategy().prop_map(move |case| Case { mutant, ..case });
    let result = runner.run(&strategy, |case| match run_case(&case) {
        Ok(stats) => {
            let mut t = totals.borrow_mut();
            t.cases += 1;
            t.stats += stats;
            Ok(())
        }
        Err(why) => Err(TestCaseError::fail(why)),
    });
    let mut report = totals.into_inner();
    if let Err(e) = result {
        report.failure = Some(e.to_string());
    }
    report
}

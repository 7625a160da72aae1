//! # The native multi-thread stress
//!
//! Three real threads share one [`Vm`]:
//!
//! - two vCPU threads (vCPUs 0 and 1, so both address spaces) loop as
//!   `vcpu_enter_guest` does. Each translates a random gfn. On
//!   `RequestPending` it handles the requests, on `Miss` it faults, and on
//!   `Retry` it handles the requests. Now and then it translates a run of gfns,
//!   or has the hardware evict its TLB entry of a gfn;
//! - one churn thread creates, deletes (every strategy the VM's MMU has,
//!   `crate::mmu::deletions`) and moves slots, and
//!   runs `invalidate_zap_all_pages`, `zap_all`, every mmu-notifier and the
//!   shrinker.
//!
//! A fault that retries for `mmu_notifier_retry` is counted by the notifier
//! it raced: `fault/retry/change_pte` if only `change_pte` calls overlapped
//! it (see verification/src/stress/races.rs), `fault/retry/notifier`
//! otherwise; other retries are `fault/retry`.
//! [`StressConfig::without_invalidate_range`] leaves
//! `change_pte` as the only notifier that takes host pages away, so that a
//! fault's race with it is the only way to a stale pfn.
//!
//! The operation budget is split: 5% for the churn thread, the rest for the
//! two vCPU threads. A wall-clock bound is shared. A thread stops when its
//! share is spent or the bound is hit, and the report says whether the bound
//! stopped the run. Then the vCPUs
//! handle their requests, the audit runs on the quiescent VM, and the reclaimer
//! is drained. The counters must settle: retired == freed for pages and
//! descriptors, live pages == the page table, and one live rmap per slot.
//! The audit and those counters are the shadow MMU's
//! (`crate::mmu::shadow_internals`): on the TDP MMU the drain must settle.
//!
//! Only errors that an operation may legitimately return under this workload
//! are tolerated: `SlotExists`, `SlotOverlap` and `UnknownSlot` from the churn
//! thread's guesses. Any other error is a failure, including a `ZapLivelock`
//! or a `VcpuBusy`, since each vCPU has exactly one thread.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod budget;
mod config;
mod races;
mod settle;

use budget::{Budget, Rng, Stop, Tally};
pub use config::StressConfig;
use races::{Notifier, NotifierRaces};

use crate::mmu;
use settle::finish;

use fastzap::check::{Counts, Invariant};
use fastzap::checking::sync::{Arc, AtomicBool, AtomicU64, Ordering, spawn};
use fastzap::{
    DeletionStrategy, Fault, Gfn, Hva, MmuError, RetryReason, SlotId, SlotSpec, Translation,
    VcpuId, Vm,
};

/// What a stress run did.
#[derive(Debug, Clone, Default)]
pub struct StressReport {
    /// Operations by kind (`translate`, `fault/mapped`, `create`, `create/err`, ...).
    pub ops_by_kind: BTreeMap<String, u64>,
    /// Operations (public API calls) run, over all threads.
    pub total_ops: u64,
    /// Wall-clock time of the threaded part.
    pub duration: Duration,
    /// Whether the wall-clock bound stopped the run before the budget was spent.
    pub stopped_by_time: bool,
    /// Whether a violation recorded at run time stopped the run early.
    pub stopped_by_violation: bool,
    /// The counters after the drain.
    pub counts: Counts,
    /// Whether the drain settled the counters.
    pub settled: bool,
    /// Everything that went wrong: audit violations, unexpected errors,
    /// counters that did not settle.
    pub violations: Vec<String>,
    /// Resident memory sampled every 50 ms during the threaded part, in KiB
    /// (`VmRSS` of /proc/self/status; empty where that file does not exist).
    pub rss_kib: Vec<u64>,
}

/// `VmRSS` of this process in KiB, if the platform reports it.
pub fn resident_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

/// `VmHWM` (peak resident memory) of this process in KiB, if reported.
pub fn peak_resident_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl StressReport {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.settled
    }
}

/// The churn thread's share of the budget, in percent.
const CHURN_PERCENT: u64 = 5;

const SLOTS: u64 = 4;

fn vcpu_thread(vm: &Vm, mut budget: Budget, vcpu: VcpuId, seed: u64, span: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let max_gfn = span;
    let region = max_gfn / SLOTS;
    // A working set, mostly inside the slots' usual ranges, renewed now and
    // then: a guest touches the same pages again, so translations hit.
    let mut hot: Vec<u64> = Vec::new();
    let mut run = Vec::new();
    while budget.take() {
        if hot.is_empty() || rng.below(512) == 0 {
            // Mostly gfns of the slots that exist now, some anywhere.
            let slots = vm.memslots();
            hot = (0..32)
                .map(|_| {
                    let n = slots.len() as u64;
                    match slots.iter().nth(rng.below(n + n / 4 + 1) as usize) {
                        Some(s) => s.base_gfn().0 + rng.below(s.npages()),
                        None => rng.below(SLOTS) * region + rng.below(region / 2),
                    }
                })
                .collect();
        }
        let gfn = if rng.below(16) == 0 {
            rng.below(max_gfn)
        } else {
            hot[rng.below(hot.len() as u64) as usize]
        };
        if rng.below(64) == 0 {
            // The hardware drops a TLB entry when it likes: no correct
            // protocol relies on an entry staying.
            match vm.tlb_evict(vcpu, Gfn(gfn)) {
                Ok(_) => tally.count("tlb_evict"),
                Err(e) => tally.problem(format!("tlb_evict({vcpu:?}, {gfn}): {e}")),
            }
            continue;
        }
        if rng.below(32) == 0 {
            let gfns: Vec<Gfn> = (0..8).map(|i| Gfn((gfn + i) % max_gfn)).collect();
            run.clear();
            match vm.translate_run(vcpu, &gfns, &mut run) {
                Ok(()) => tally.count("translate_run"),
                Err(e) => tally.problem(format!("translate_run({vcpu:?}): {e}")),
            }
            continue;
        }
        let follow_up = match vm.translate(vcpu, Gfn(gfn)) {
            Ok(Translation::RequestPending) => {
                tally.count("translate/pending");
                true
            }
            Ok(Translation::Miss) => {
                tally.count("translate/miss");
                if !budget.take() {
                    break;
                }
                let races = &budget.stop.races;
                let began = races.fault_begins(gfn);
                let fault = vm.page_fault(vcpu, Gfn(gfn), rng.below(2) == 0);
                races.fault_ends();
                match fault {
                    Ok(Fault::Mapped { .. }) => tally.count("fault/mapped"),
                    Ok(Fault::Mmio) => tally.count("fault/mmio"),
                    // One kind per operation: `total_ops` sums them.
                    Ok(Fault::Retry(RetryReason::NotifierRace)) => {
                        if races.overlapped(began, Notifier::ChangePte)
                            && !races.overlapped(began, Notifier::InvalidateRange)
                        {
                            tally.count("fault/retry/change_pte");
                        } else {
                            tally.count("fault/retry/notifier");
                        }
                    }
                    Ok(Fault::Retry(_)) => tally.count("fault/retry"),
                    Err(e) => tally.problem(format!("page_fault({vcpu:?}, {gfn}): {e}")),
                }
                // A retried fault wants its requests handled; so does a
                // TLB flush that a notifier sent meanwhile.
                vm.pending_requests(vcpu).is_ok_and(|r| !r.is_empty())
            }
            Ok(Translation::Mapped { .. }) => {
                tally.count("translate/mapped");
                false
            }
            Ok(Translation::Mmio) => {
                tally.count("translate/mmio");
                false
            }
            Err(e) => {
                tally.problem(format!("translate({vcpu:?}, {gfn}): {e}"));
                false
            }
        };
        if follow_up {
            if !budget.take() {
                break;
            }
            match vm.handle_requests(vcpu) {
                Ok(_) => tally.count("handle_requests"),
                Err(e) => tally.problem(format!("handle_requests({vcpu:?}): {e}")),
            }
        }
    }
    tally
}

/// Slot `i` lives in gfn region `[i * region, (i + 1) * region)` and host region
/// `HVA_BASE + i * 2^32`, so slots of different ids never overlap; the churn
/// thread's guesses still collide with existing slots of the same id.
const HVA_BASE: u64 = 0x10_0000_0000;

fn churn_thread(
    vm: &Vm,
    mut budget: Budget,
    seed: u64,
    span: u64,
    invalidate_range: bool,
) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let region = span / SLOTS;
    let mmu = vm.config().mmu;
    let hva_of = |slot: u64, page: u64| Hva(HVA_BASE + (slot << 32) + page * 4096);
    let expected = |e: &MmuError| {
        matches!(
            e,
            MmuError::SlotExists(_) | MmuError::SlotOverlap { .. } | MmuError::UnknownSlot(_)
        )
    };
    while budget.take() {
        // Fail fast: once the protocol has recorded a violation at run time,
        // more operations add nothing.
        if budget.taken.is_multiple_of(256) && !vm.runtime_violations().is_empty() {
            budget.stop.violated.store(true, Ordering::Relaxed);
            budget.stop.stop.store(true, Ordering::Relaxed);
            break;
        }
        let slot = rng.below(SLOTS);
        let id = SlotId(slot as u16);
        let races = &budget.stop.races;
        let change_pte = |rng: &mut Rng| {
            // Half the time the page a vCPU is faulting on, if a slot maps it.
            let aimed = (rng.below(2) == 0)
                .then(|| races.aim())
                .flatten()
                .and_then(|gfn| vm.memslots().lookup(Gfn(gfn))?.hva_of(Gfn(gfn)));
            let page = aimed.unwrap_or_else(|| hva_of(slot, rng.below(region)));
            let hva = Hva(page.0 + rng.below(4096));
            let changed = races.run(Notifier::ChangePte, || vm.change_pte(hva));
            ("change_pte", changed.map(drop))
        };
        let (kind, result): (&str, Result<(), MmuError>) = match rng.below(100) {
            0..20 => {
                let npages = 1 + rng.below(region / 2);
                let base = slot * region + rng.below(region - npages);
                let spec = SlotSpec {
                    id,
                    base_gfn: Gfn(base),
                    npages,
                    userspace_addr: hva_of(slot, rng.below(64)),
                };
                ("create", vm.create_memslot(spec))
            }
            n @ 20..28 => {
                let drawn = match n {
                    20..22 => DeletionStrategy::Merged311,
                    // The slot-only DELETEs (core/src/memslot_zap.rs).
                    22..24 => match rng.below(3) {
                        0 => DeletionStrategy::SlotOnly2019,
                        1 => DeletionStrategy::SlotOnlyFlushing2020,
                        _ => DeletionStrategy::SlotOnlyQuirkOff,
                    },
                    24..26 => DeletionStrategy::SeedV3,
                    _ => DeletionStrategy::SeedV3Deferred,
                };
                // Only the deletions this VM's MMU has; the shadow MMU has
                // every one, and draws as before.
                let strategy = mmu::deletion_for(mmu, drawn, |n| rng.below(n as u64) as usize);
                (delete_kind(strategy), vm.delete_memslot_with(id, strategy))
            }
            28..38 => {
                let base = slot * region + rng.below(region / 2);
                ("move", vm.move_memslot(id, Gfn(base)))
            }
            38..44 => ("invalidate_zap_all_pages", {
                vm.invalidate_zap_all_pages().map(drop)
            }),
            44..48 => ("zap_all", vm.zap_all().map(drop)),
            48..66 if !invalidate_range => change_pte(&mut rng),
            48..66 => {
                let start = hva_of(slot, rng.below(region));
                let end = Hva(start.0 + 4096 * (1 + rng.below(16)));
                let unmapped = races.run(Notifier::InvalidateRange, || {
                    vm.invalidate_range(start, end)
                });
                ("invalidate_range", unmapped.map(drop))
            }
            66..76 => {
                let start = hva_of(slot, rng.below(region));
                ("clear_flush_young", {
                    vm.clear_flush_young(start, Hva(start.0 + 4096 * 8))
                        .map(drop)
                })
            }
            76..84 => {
                let start = hva_of(slot, rng.below(region));
                (
                    "test_young",
                    vm.test_young(start, Hva(start.0 + 4096 * 8)).map(drop),
                )
            }
            84..94 => change_pte(&mut rng),
            _ => ("shrink", vm.shrink(1 + rng.below(8) as usize).map(drop)),
        };
        match result {
            Ok(()) => tally.count(kind),
            Err(e) if expected(&e) => tally.count(&format!("{kind}/err")),
            // The zap's step bound is I6's check: name it.
            Err(e @ MmuError::ZapLivelock { .. }) => {
                tally.problem(format!("{}: {kind}: {e}", Invariant::I6.name()))
            }
            Err(e) => tally.problem(format!("{kind}: unexpected {e}")),
        }
    }
    tally
}

/// The operation kind of a DELETE with `strategy`, as the report counts it.
fn delete_kind(strategy: DeletionStrategy) -> &'static str {
    match strategy {
        DeletionStrategy::Merged311 => "delete/merged311",
        DeletionStrategy::SeedV3 => "delete/seedv3",
        DeletionStrategy::SeedV3Deferred => "delete/seedv3-deferred",
        DeletionStrategy::SlotOnly2019 => "delete/slot-only-2019",
        DeletionStrategy::SlotOnlyFlushing2020 => "delete/slot-only-2020",
        DeletionStrategy::SlotOnlyQuirkOff => "delete/slot-only-quirk-off",
    }
}

/// Runs the stress. See the module documentation.
pub fn run(config: &StressConfig) -> StressReport {
    let mut report = StressReport::default();
    if config.vm.max_gfn() < 64 || config.span < 64 {
        report
            .violations
            .push("the stress needs at least 64 gfns".to_string());
        return report;
    }
    let span = config.span.min(config.vm.max_gfn());
    let vm = match Vm::new(config.vm.clone()) {
        Ok(vm) => Arc::new(vm),
        Err(e) => {
            report.violations.push(format!("Vm::new: {e}"));
            return report;
        }
    };
    let churn_ops = config.ops * CHURN_PERCENT / 100;
    let stop = Arc::new(Stop {
        wall: config.wall,
        started: Instant::now(),
        stop: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
        violated: AtomicBool::new(false),
        churn_progress: AtomicU64::new(0),
        churn_ops,
        races: NotifierRaces::default(),
    });
    let vcpus = config.vm.vcpus.max(1) as u64;
    let vcpu_total = config.ops - churn_ops;
    let vcpu_ops: Vec<u64> = (0..vcpus)
        .map(|v| vcpu_total / vcpus + u64::from(v < vcpu_total % vcpus))
        .collect();
    let budget = |ops, churn: bool| Budget {
        ops,
        taken: 0,
        stop: Arc::clone(&stop),
        paced: !churn,
        churn,
    };
    // A few slots before the vCPUs start, so that the first faults map memory.
    for slot in 0..SLOTS {
        let region = span / SLOTS;
        let spec = SlotSpec {
            id: SlotId(slot as u16),
            base_gfn: Gfn(slot * region),
            npages: region / 2,
            userspace_addr: Hva(HVA_BASE + (slot << 32)),
        };
        if let Err(e) = vm.create_memslot(spec) {
            report
                .violations
                .push(format!("initial create {spec:?}: {e}"));
        }
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for (v, ops) in vcpu_ops.into_iter().enumerate() {
        let (vm, budget) = (Arc::clone(&vm), budget(ops, false));
        let seed = config.seed.wrapping_add(v as u64 + 1);
        handles.push(spawn(move || {
            vcpu_thread(&vm, budget, VcpuId(v), seed, span)
        }));
    }
    {
        let (vm, budget) = (Arc::clone(&vm), budget(churn_ops, true));
        let seed = config.seed.wrapping_add(100);
        let invalidate_range = config.invalidate_range;
        handles.push(spawn(move || {
            churn_thread(&vm, budget, seed, span, invalidate_range)
        }));
    }
    // Sample resident memory while the threads run.
    let sampler = {
        let stop = Arc::clone(&stop);
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) && !stop.stop.load(Ordering::Relaxed) {
                samples.extend(resident_kib());
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        (done, thread)
    };
    for handle in handles {
        match handle.join() {
            Ok(tally) => {
                for (kind, n) in tally.kinds {
                    *report.ops_by_kind.entry(kind).or_default() += n;
                }
                report.violations.extend(tally.problems);
            }
            Err(_) => report
                .violations
                .push("a stress thread panicked".to_string()),
        }
    }
    report.duration = started.elapsed();
    sampler.0.store(true, Ordering::Relaxed);
    report.rss_kib = sampler.1.join().unwrap_or_default();
    report.stopped_by_time = stop.timed_out.load(Ordering::Relaxed);
    report.stopped_by_violation = stop.violated.load(Ordering::Relaxed);
    report.total_ops = report.ops_by_kind.values().sum();
    finish(&vm, &mut report);
    report
}

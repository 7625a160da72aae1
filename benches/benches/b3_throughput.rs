//! B3: fault throughput under continuous invalidation, B5: reclamation
//! memory during it, and P5: the tail latency of a vCPU fault while one
//! invalidation of 10^6 pages runs.
//!
//! Threads: 2 OS threads on the 2-core machine. One thread runs two vCPUs
//! (vCPU 0 in address space 0, vCPU 1 in address space 1, alternating access
//! by access), so every gfn has two sptes and its rmap a `PteListDesc`. The
//! other thread invalidates, back to back or paced (every 10 ms or 1 ms):
//! `invalidate_zap_all_pages()` (fast),
//! `zap_all()` (eager), or nothing (the baseline, same run).
//!
//! An access is a page fault on the gfn followed by a translation of it,
//! handling requests and refaulting until the translation sees the mapping
//! (`fastzap_benches::access`). The working set is 16,384 gfns (64 MiB) with
//! kernel-sized tables (512 sptes per page, 3 levels), faulted in before the
//! clock starts. Criterion reports time per access; each call runs at least
//! `MIN_ACCESSES` accesses so that a measurement window spans many
//! invalidations, and returns the time scaled to the iterations asked for.
//!
//! B5 reads the allocation counters of the same runs: the peak number of
//! retired-but-not-freed pages and descriptors (`Counts::*.peak_retired_unfreed`)
//! against the number retired, and a time series of the pending counts sampled
//! by the invalidating thread. Only the checking code keeps those counters
//! (`Vm::counts`), so B5 is measured in the ghost-on build only; the ghost-off
//! build writes "n/a without the checking code" for it, and no B5 figure.
//!
//! P5 (group `p5_fault_latency`): a VM with 10^6 shadow pages (16 sptes per
//! page, 6 levels, one address space, as in B1) and two vCPUs. One thread
//! runs a single invalidation: fast per batch (`ZapCommit::PerBatch`), fast
//! 3.11 (`ZapCommit::AtEnd`), eager `zap_all`, or nothing for the same time.
//! The other thread is vCPU 1, faulting gfns that no page maps yet (each an
//! access: fault, handle requests, refault until it is mapped), and timing
//! each access while the invalidation runs. Criterion's estimate is the p99 of
//! one run (each iteration is one run); the report gives p50, p99 and max.
//! The quick test mode uses 10^4 pages.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
#[cfg(feature = "ghost")]
use fastzap::check::Counts;
use fastzap::checking::sync::{AtomicBool, Ordering};
use fastzap::{VcpuId, Vm, ZapCommit, ZapStats};
#[cfg(not(feature = "ghost"))]
use fastzap_benches::NO_GHOST;
use fastzap_benches::{
    Bar, PALETTE, access, bar_figure, bench_config, fault_in, figure_file, fmt_ns, group_name,
    median, populate_sparse, test_mode, vm_with_slot, write_report, write_report_of,
};
#[cfg(feature = "ghost")]
use fastzap_benches::{Panel, Series, line_figure};

const WORKING_SET: u64 = 16_384;
const MIN_ACCESSES: u64 = 2_000_000;
/// The period of the paced variants.
const PERIOD: Duration = Duration::from_millis(10);
/// The period of the more frequent paced variants.
const SHORT_PERIOD: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NoInvalidation,
    /// Fast invalidations back to back.
    Fast,
    /// Eager zaps back to back.
    Eager,
    /// A fast invalidation every `PERIOD`.
    FastPaced,
    /// An eager zap every `PERIOD`.
    EagerPaced,
    /// A fast invalidation every `SHORT_PERIOD`.
    FastPacedShort,
    /// An eager zap every `SHORT_PERIOD`.
    EagerPacedShort,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::NoInvalidation => "no_invalidation",
            Mode::Fast => "fast_invalidate",
            Mode::Eager => "eager_zap_all",
            Mode::FastPaced => "fast_invalidate_every_10ms",
            Mode::EagerPaced => "eager_zap_all_every_10ms",
            Mode::FastPacedShort => "fast_invalidate_every_1ms",
            Mode::EagerPacedShort => "eager_zap_all_every_1ms",
        }
    }

    /// The label of its bar.
    fn short(self) -> &'static str {
        match self {
            Mode::NoInvalidation => "none",
            Mode::Fast => "fast, back to back",
            Mode::Eager => "eager, back to back",
            Mode::FastPaced => "fast, 10 ms",
            Mode::EagerPaced => "eager, 10 ms",
            Mode::FastPacedShort => "fast, 1 ms",
            Mode::EagerPacedShort => "eager, 1 ms",
        }
    }

    fn is_fast(self) -> bool {
        matches!(self, Mode::Fast | Mode::FastPaced | Mode::FastPacedShort)
    }

    fn period(self) -> Option<Duration> {
        match self {
            Mode::FastPaced | Mode::EagerPaced => Some(PERIOD),
            Mode::FastPacedShort | Mode::EagerPacedShort => Some(SHORT_PERIOD),
            _ => None,
        }
    }
}

/// (ms since start, pending pages, pending descriptors), sampled after
/// invalidations (B5).
type Pending = Vec<(f64, f64, f64)>;

struct Run {
    mode: Mode,
    ns_per_access: f64,
    invalidations_per_s: f64,
    /// The allocation counters at the end of the run (B5).
    #[cfg(feature = "ghost")]
    counts: Counts,
    /// The pending counts after each invalidation (B5).
    #[cfg(feature = "ghost")]
    series: Pending,
    /// What each invalidation measured.
    zaps: Vec<ZapStats>,
    /// Time per access of the no-invalidation run made just before this one
    /// (same setup, same number of accesses), for the paired fraction.
    paired_base_ns: Option<f64>,
}

/// Samples the pending counts after an invalidation, at most 20,000 times
/// per run (B5).
#[cfg(feature = "ghost")]
fn sample_pending(vm: &Vm, started: Instant, series: &mut Pending) {
    if series.len() < 20_000 {
        let c = vm.counts();
        series.push((
            started.elapsed().as_secs_f64() * 1e3,
            c.pages.pending() as f64,
            c.descs.pending() as f64,
        ));
    }
}

/// Without the checking code there are no allocation counters to sample.
#[cfg(not(feature = "ghost"))]
fn sample_pending(_vm: &Vm, _started: Instant, _series: &mut Pending) {}

fn one_run(mode: Mode, accesses: u64) -> Run {
    let vm = vm_with_slot(bench_config(2, 512, 3, 2), WORKING_SET);
    for vcpu in [VcpuId(0), VcpuId(1)] {
        vm.handle_requests(vcpu).expect("requests");
        for gfn in 0..WORKING_SET {
            fault_in(&vm, vcpu, gfn, false);
        }
    }
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (elapsed, invalidations, series, zaps) = std::thread::scope(|s| {
        let invalidator = s.spawn(|| {
            let mut n = 0u64;
            let mut series = Pending::new();
            let mut zaps = Vec::new();
            if mode == Mode::NoInvalidation {
                return (n, series, zaps);
            }
            let mut next = Instant::now();
            while !stop.load(Ordering::Acquire) {
                if let Some(period) = mode.period() {
                    next += period;
                    while Instant::now() < next && !stop.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                let z = if mode.is_fast() {
                    vm.invalidate_zap_all_pages().expect("fast zap")
                } else {
                    vm.zap_all().expect("zap_all")
                };
                n += 1;
                if zaps.len() < 20_000 {
                    zaps.push(z);
                }
                sample_pending(&vm, started, &mut series);
            }
            (n, series, zaps)
        });
        let begin = Instant::now();
        for i in 0..accesses {
            let vcpu = VcpuId((i % 2) as usize);
            access(&vm, vcpu, (i / 2) % WORKING_SET);
        }
        let elapsed = begin.elapsed();
        stop.store(true, Ordering::Release);
        let (n, series, zaps) = invalidator.join().expect("invalidator");
        (elapsed, n, series, zaps)
    });
    #[cfg(not(feature = "ghost"))]
    let _ = series;
    Run {
        mode,
        ns_per_access: elapsed.as_nanos() as f64 / accesses as f64,
        invalidations_per_s: invalidations as f64 / elapsed.as_secs_f64(),
        #[cfg(feature = "ghost")]
        counts: vm.counts(),
        #[cfg(feature = "ghost")]
        series,
        zaps,
        paired_base_ns: None,
    }
}

/// What the invalidating thread of a P5 run does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tail {
    NoInvalidation,
    FastPerBatch,
    Fast311,
    Eager,
}

impl Tail {
    const ALL: [Tail; 4] = [
        Tail::NoInvalidation,
        Tail::FastPerBatch,
        Tail::Fast311,
        Tail::Eager,
    ];

    fn name(self) -> &'static str {
        match self {
            Tail::NoInvalidation => "no_invalidation",
            Tail::FastPerBatch => "fast_per_batch",
            Tail::Fast311 => "fast_311",
            Tail::Eager => "eager_zap_all",
        }
    }
}

/// P5's table: pages at the start of the invalidation.
fn tail_pages() -> usize {
    if test_mode() { 10_000 } else { 1_000_000 }
}

/// One P5 run: the latency of every access vCPU 1 made while the
/// invalidation ran (for `NoInvalidation`, during as long as the eager zap of
/// the same table would take, measured once beforehand: `window`).
fn tail_run(tail: Tail, window: Duration) -> (Vec<f64>, Duration) {
    let mut config = bench_config(2, 16, 6, 1);
    config.commit = match tail {
        Tail::Fast311 => ZapCommit::AtEnd,
        _ => ZapCommit::PerBatch,
    };
    let pages = tail_pages();
    let stride = config.spte_count as u64;
    let npages = ((pages as u64 + pages as u64 / 8 + 64) * stride).min(config.max_gfn());
    let vm = vm_with_slot(config, npages);
    populate_sparse(&vm, VcpuId(0), pages);
    vm.handle_requests(VcpuId(1)).expect("requests");
    let running = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let mut latencies = Vec::new();
    let mut took = Duration::ZERO;
    std::thread::scope(|s| {
        let invalidator = s.spawn(|| {
            while !running.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let begin = Instant::now();
            match tail {
                Tail::NoInvalidation => std::thread::sleep(window),
                Tail::FastPerBatch | Tail::Fast311 => {
                    vm.invalidate_zap_all_pages().expect("fast zap");
                }
                Tail::Eager => {
                    vm.zap_all().expect("zap_all");
                }
            }
            let took = begin.elapsed();
            done.store(true, Ordering::Release);
            took
        });
        // Gfns next to the populated ones (offset 1 in each leaf page's
        // range): every access installs a new spte.
        let mut gfn = 1;
        running.store(true, Ordering::Release);
        while !done.load(Ordering::Acquire) {
            let begin = Instant::now();
            access(&vm, VcpuId(1), gfn % npages);
            latencies.push(begin.elapsed().as_nanos() as f64);
            gfn += stride;
        }
        took = invalidator.join().expect("invalidator");
    });
    (latencies, took)
}

/// The `q` quantile of `values` (nearest rank; 0 when empty).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// P5: per run, its tail, its access count and the invalidation's duration.
struct TailRun {
    tail: Tail,
    p50: f64,
    p99: f64,
    max: f64,
    accesses: usize,
    took: Duration,
}

fn p5(c: &mut Criterion) -> Vec<TailRun> {
    let mut runs = Vec::new();
    // The no-invalidation window: as long as one eager zap of the same table.
    let window = tail_run(Tail::Eager, Duration::ZERO).1;
    let mut group = c.benchmark_group(group_name("p5_fault_latency"));
    group.sampling_mode(SamplingMode::Flat);
    for tail in Tail::ALL {
        group.bench_function(BenchmarkId::new(tail.name(), tail_pages()), |b| {
            b.iter_custom(|iters| {
                let mut p99_sum = Duration::ZERO;
                for _ in 0..iters {
                    let (mut l, took) = tail_run(tail, window);
                    let run = TailRun {
                        tail,
                        p50: quantile(&mut l, 0.50),
                        p99: quantile(&mut l, 0.99),
                        max: quantile(&mut l, 1.0),
                        accesses: l.len(),
                        took,
                    };
                    p99_sum += Duration::from_nanos(run.p99 as u64);
                    runs.push(run);
                }
                p99_sum
            })
        });
    }
    group.finish();
    runs
}

fn p5_report(runs: &[TailRun], body: &mut String) {
    body.push_str(&format!(
        "### P5: vCPU access latency while one invalidation of {} pages runs\n\n\
         | invalidating thread | runs | accesses per run (median) | invalidation took (median) | p50 | p99 | max (median over runs) | p99 / no-invalidation p99 |\n|---|---|---|---|---|---|---|---|\n",
        tail_pages()
    ));
    let med = |tail: Tail, f: &dyn Fn(&TailRun) -> f64| {
        median(
            &runs
                .iter()
                .filter(|r| r.tail == tail)
                .map(f)
                .collect::<Vec<_>>(),
        )
    };
    let base = med(Tail::NoInvalidation, &|r| r.p99);
    for tail in Tail::ALL {
        let n = runs.iter().filter(|r| r.tail == tail).count();
        let p99 = med(tail, &|r| r.p99);
        body.push_str(&format!(
            "| {} | {n} | {:.0} | {} | {} | {} | {} | {:.1}x |\n",
            tail.name(),
            med(tail, &|r| r.accesses as f64),
            fmt_ns(med(tail, &|r| r.took.as_nanos() as f64)),
            fmt_ns(med(tail, &|r| r.p50)),
            fmt_ns(p99),
            fmt_ns(med(tail, &|r| r.max)),
            p99 / base.max(1.0),
        ));
    }
    body.push_str(
        "\nvCPU 1 faults gfns no page maps yet, one access after another, while vCPU 0's 10^6-page table is invalidated once; \
         an access is fault, handle requests, refault until mapped. The no-invalidation window lasts as long as one eager zap of the same table.\n",
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut runs: Vec<Run> = Vec::new();
    {
        let mut group = c.benchmark_group(group_name("b3_access_under_invalidation"));
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(1));
        for mode in [
            Mode::NoInvalidation,
            Mode::Fast,
            Mode::Eager,
            Mode::FastPaced,
            Mode::EagerPaced,
            Mode::FastPacedShort,
            Mode::EagerPacedShort,
        ] {
            group.bench_function(BenchmarkId::new(mode.name(), "1+1_threads"), |b| {
                b.iter_custom(|iters| {
                    let accesses = iters.max(MIN_ACCESSES);
                    // Pair every invalidated run with a run without invalidation
                    // made just before it, so that load from other processes on
                    // the machine affects both sides of the fraction alike.
                    let paired_base_ns = (mode != Mode::NoInvalidation)
                        .then(|| one_run(Mode::NoInvalidation, accesses).ns_per_access);
                    let mut run = one_run(mode, accesses);
                    run.paired_base_ns = paired_base_ns;
                    let per = run.ns_per_access;
                    runs.push(run);
                    Duration::from_nanos((per * iters as f64) as u64)
                })
            });
        }
        group.finish();
    }
    let tails = p5(&mut c);
    c.final_summary();
    if !test_mode() {
        // A filtered run (`-- p5`, or `-- b3_`) writes only what it measured.
        if !runs.is_empty() {
            report(&runs);
        }
        if !tails.is_empty() {
            let mut body = String::new();
            p5_report(&tails, &mut body);
            write_report_of("b3_throughput", "p5_fault_latency", &body);
        }
    }
}

fn report(runs: &[Run]) {
    let stat = |mode: Mode, f: &dyn Fn(&Run) -> f64| {
        let v: Vec<f64> = runs.iter().filter(|r| r.mode == mode).map(f).collect();
        (median(&v), v.len())
    };
    let mut body = String::from(
        "### B3: accesses under continuous invalidation\n\n\
         | invalidating thread | runs | time per access (median) | accesses/s | fraction of no-invalidation throughput (median of paired runs) | invalidations/s (median) | per invalidation: pages at start / longest mmu_lock hold / total, medians (mean total) |\n|---|---|---|---|---|---|---|\n",
    );
    let mut bars = Vec::new();
    for (mode, color) in [
        (Mode::Fast, PALETTE[0]),
        (Mode::Eager, PALETTE[1]),
        (Mode::FastPaced, PALETTE[0]),
        (Mode::EagerPaced, PALETTE[1]),
        (Mode::FastPacedShort, PALETTE[0]),
        (Mode::EagerPacedShort, PALETTE[1]),
        (Mode::NoInvalidation, PALETTE[5]),
    ] {
        let (per, n) = stat(mode, &|r| r.ns_per_access);
        let (inv, _) = stat(mode, &|r| r.invalidations_per_s);
        let fraction = if mode == Mode::NoInvalidation {
            1.0
        } else {
            stat(mode, &|r| r.paired_base_ns.unwrap_or(0.0) / r.ns_per_access).0
        };
        let zaps: Vec<&ZapStats> = runs
            .iter()
            .filter(|r| r.mode == mode)
            .flat_map(|r| r.zaps.iter())
            .collect();
        let zmed = |f: &dyn Fn(&ZapStats) -> u64| {
            median(&zaps.iter().map(|z| f(z) as f64).collect::<Vec<_>>())
        };
        let per_zap = if zaps.is_empty() {
            "-".to_string()
        } else {
            let mean_total =
                zaps.iter().map(|z| z.total_ns as f64).sum::<f64>() / zaps.len() as f64;
            format!(
                "{:.0} / {} / {} (mean {})",
                zmed(&|z| z.pages_at_start),
                fmt_ns(zmed(&|z| z.bump_hold_ns.max(z.max_hold_ns))),
                fmt_ns(zmed(&|z| z.total_ns)),
                fmt_ns(mean_total),
            )
        };
        body.push_str(&format!(
            "| {} | {n} | {} | {:.0} | {:.1}% | {inv:.0} | {per_zap} |\n",
            mode.name(),
            fmt_ns(per),
            1e9 / per,
            100.0 * fraction,
        ));
        bars.push(Bar {
            label: mode.short().into(),
            value: 100.0 * fraction,
            color,
        });
    }
    b5_report(runs, &mut body);
    body.push_str(&format!(
        "\nWorking set {WORKING_SET} gfns x 2 vCPUs (2 address spaces), 512 sptes per page; one thread runs both vCPUs, one thread invalidates. \
         Each invalidated run is paired with a run without invalidation made just before it; the fraction is the median over pairs of \
         (time per access without) / (time per access with). The retired counts in B5 are per run (each run is {MIN_ACCESSES} accesses or more).\n"
    ));
    write_report("b3_throughput", &body);
    if let Err(e) = bar_figure(
        &figure_file("b3_throughput"),
        "B3: access throughput under continuous invalidation (% of no invalidation)",
        "% of no-invalidation throughput",
        &bars,
        false,
        Some((50.0, "goal for fast: 50%")),
        &|v| format!("{v:.1}%"),
    ) {
        eprintln!("figure: {e}");
    }
    b5_figure(runs);
}

/// B5: reclamation memory during B3, from the allocation counters.
#[cfg(feature = "ghost")]
fn b5_report(runs: &[Run], body: &mut String) {
    let stat = |mode: Mode, f: &dyn Fn(&Run) -> f64| {
        let v: Vec<f64> = runs.iter().filter(|r| r.mode == mode).map(f).collect();
        (median(&v), v.len())
    };
    body.push_str(
        "\n### B5: reclamation memory during B3\n\n\
         | invalidating thread | pages retired (median per run) | peak retired-not-freed pages (median / max over runs) | descriptors retired | peak retired-not-freed descriptors (median / max) | pages live at the end |\n|---|---|---|---|---|---|\n",
    );
    for mode in [
        Mode::Fast,
        Mode::Eager,
        Mode::FastPaced,
        Mode::EagerPaced,
        Mode::FastPacedShort,
        Mode::EagerPacedShort,
    ] {
        let max = |f: &dyn Fn(&Run) -> f64| {
            runs.iter()
                .filter(|r| r.mode == mode)
                .map(f)
                .fold(0.0, f64::max)
        };
        body.push_str(&format!(
            "| {} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.0} |\n",
            mode.name(),
            stat(mode, &|r| r.counts.pages.retired as f64).0,
            stat(mode, &|r| r.counts.pages.peak_retired_unfreed as f64).0,
            max(&|r| r.counts.pages.peak_retired_unfreed as f64),
            stat(mode, &|r| r.counts.descs.retired as f64).0,
            stat(mode, &|r| r.counts.descs.peak_retired_unfreed as f64).0,
            max(&|r| r.counts.descs.peak_retired_unfreed as f64),
            stat(mode, &|r| r.counts.pages.live() as f64).0,
        ));
    }
}

/// B5 without the checking code: there are no allocation counters.
#[cfg(not(feature = "ghost"))]
fn b5_report(_runs: &[Run], body: &mut String) {
    body.push_str(&format!(
        "\n### B5: reclamation memory during B3\n\n\
         {NO_GHOST}: the allocation counters (`Vm::counts`) exist only with the `ghost` \
         feature. Run `cargo bench -p fastzap-benches --features ghost --bench b3_throughput` \
         for B5.\n"
    ));
}

/// B5's figure: the pending counts of one paced run of each path.
#[cfg(feature = "ghost")]
fn b5_figure(runs: &[Run]) {
    let mut pages = Vec::new();
    let mut descs = Vec::new();
    for (mode, color) in [
        (Mode::FastPaced, PALETTE[0]),
        (Mode::EagerPaced, PALETTE[1]),
    ] {
        if let Some(run) = runs.iter().rev().find(|r| r.mode == mode) {
            pages.push(Series {
                name: mode.name().into(),
                points: run.series.iter().map(|p| (p.0, p.1)).collect(),
                color,
            });
            descs.push(Series {
                name: mode.name().into(),
                points: run.series.iter().map(|p| (p.0, p.2)).collect(),
                color,
            });
        }
    }
    let panels = [
        Panel {
            caption: "shadow pages retired, not yet freed".into(),
            y_desc: "pages".into(),
            series: pages,
        },
        Panel {
            caption: "pte-list descriptors retired, not yet freed".into(),
            y_desc: "descriptors".into(),
            series: descs,
        },
    ];
    if let Err(e) = line_figure(
        &figure_file("b5_reclamation"),
        "B5: pending reclamation after each invalidation during B3 (one run each, every 10 ms)",
        "ms since the run started",
        &panels,
    ) {
        eprintln!("figure: {e}");
    }
}

/// Without the checking code there is nothing to draw for B5.
#[cfg(not(feature = "ghost"))]
fn b5_figure(_runs: &[Run]) {}

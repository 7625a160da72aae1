//! B1: `mmu_lock` hold versus the number of shadow pages (goal P1).
//!
//! For 10^3 to 10^6 shadow pages, populate a VM, then run the fast
//! `invalidate_zap_all_pages()` with its two commit shapes, per batch
//! (`ZapCommit::PerBatch`, fastzap's default) and at the end
//! (`ZapCommit::AtEnd`, Linux 3.11 and today's kernel), or the eager
//! `zap_all()`, and read the hold times the zap itself measured (`ZapStats`).
//! Criterion times only the longest single `mmu_lock` hold of the whole
//! operation (`iter_custom`): for the fast paths the largest of the bump, the
//! batch holds and the final commit's hold; for the eager path its one hold.
//! The bump hold, the longest batch hold and the total time are collected from
//! the same zaps and written to the report, with P1's two ratios: longest hold
//! over longest batch hold (goal: at most 4), and eager hold over the fast
//! longest hold (goal: at least 10^4 at 10^6 pages).
//!
//! Tables: one address space, one vCPU, one mapped gfn per last-level page.
//! Two series: 16 sptes per page and 6 levels (16^6 gfns) for 10^3 to 10^6
//! pages, and kernel-sized pages (512 sptes, 3 levels) for 10^3 to 10^5. At
//! 10^6 pages a 512-spte page would need more than 8 GiB (each spte also has an
//! 8-byte ghost word); 16 sptes keep it under 1 GiB. Fewer sptes per page make
//! the eager zap cheaper per page, so the 16-spte ratios understate the
//! kernel's.
//!
//! The 10^6 point costs about 10 s of populating per sample on 2 shared cores,
//! so it runs criterion's minimum of 10 samples per path (about 6-7 minutes);
//! the quick test mode (`-- --test`) skips it.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use fastzap::{HoldHistogram, VcpuId, ZapCommit, ZapStats};
use fastzap_benches::{
    PALETTE, Series, bench_config, context_switches, figure_file, fmt_ns, group_name,
    loglog_figure, median, ns, populate_sparse, test_mode, vm_with_slot, write_report,
};

/// One series of table shapes and sizes.
struct Shape {
    sptes: usize,
    levels: u8,
    sizes: &'static [usize],
    /// How many of `sizes` the quick test mode runs.
    test_sizes: usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        sptes: 16,
        levels: 6,
        sizes: &[1_000, 10_000, 100_000, 1_000_000],
        // The 10^6 point needs about 10 s per zap to populate; 10^5 runs the
        // same code.
        test_sizes: 3,
    },
    Shape {
        sptes: 512,
        levels: 3,
        sizes: &[1_000, 10_000, 100_000],
        test_sizes: 2,
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `invalidate_zap_all_pages`, committing per batch.
    Fast,
    /// `invalidate_zap_all_pages`, committing at the end (Linux 3.11).
    Fast311,
    /// `zap_all`.
    Eager,
}

const PATHS: [(Path, &str); 3] = [
    (Path::Fast, "fast_per_batch_longest_hold"),
    (Path::Fast311, "fast_311_longest_hold"),
    (Path::Eager, "eager_hold"),
];

/// The longest single `mmu_lock` hold of the operation.
fn longest_hold(stats: &ZapStats) -> u64 {
    stats.bump_hold_ns.max(stats.max_hold_ns)
}

/// What one zap measured, with its table shape.
struct Zap {
    sptes: usize,
    size: usize,
    path: Path,
    stats: ZapStats,
    /// Involuntary context switches of the zapping thread during the zap
    /// (`None` without `/proc/thread-self/status`).
    preempted: Option<u64>,
}

/// One populated VM, zapped once; returns what the zap measured, and how
/// often the zapping thread was preempted meanwhile.
fn one_zap(shape: &Shape, pages: usize, path: Path) -> (ZapStats, Option<u64>) {
    let mut config = bench_config(1, shape.sptes, shape.levels, 1);
    config.commit = match path {
        Path::Fast311 => ZapCommit::AtEnd,
        _ => ZapCommit::PerBatch,
    };
    let npages =
        ((pages as u64 + pages as u64 / 8 + 64) * shape.sptes as u64).min(config.max_gfn());
    let vm = vm_with_slot(config, npages);
    populate_sparse(&vm, VcpuId(0), pages);
    let before = context_switches();
    let stats = match path {
        Path::Fast | Path::Fast311 => vm.invalidate_zap_all_pages(),
        Path::Eager => vm.zap_all(),
    }
    .expect("zap");
    let preempted = before
        .zip(context_switches())
        .map(|((_, a), (_, b))| b.saturating_sub(a));
    drop(vm);
    (stats, preempted)
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut zaps: Vec<Zap> = Vec::new();
    for shape in &SHAPES {
        let mut group =
            c.benchmark_group(group_name(&format!("b1_lock_hold_{}_sptes", shape.sptes)));
        group.sampling_mode(SamplingMode::Flat);
        let sizes = if test_mode() {
            &shape.sizes[..shape.test_sizes]
        } else {
            shape.sizes
        };
        for &size in sizes {
            for (path, name) in PATHS {
                group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                    b.iter_custom(|iters| {
                        let mut held = Duration::ZERO;
                        for _ in 0..iters {
                            let (stats, preempted) = one_zap(shape, size, path);
                            held += ns(longest_hold(&stats));
                            zaps.push(Zap {
                                sptes: shape.sptes,
                                size,
                                path,
                                stats,
                                preempted,
                            });
                        }
                        held
                    })
                });
            }
        }
        group.finish();
    }
    c.final_summary();
    if !test_mode() {
        report(&zaps);
    }
}

/// The per-batch path's batch holds, every zap of a size pooled: how many
/// there were, their upper quantiles, how many lasted 1 ms or more, and how
/// often the zapping thread was preempted during those zaps. A hold that grows
/// with the guest moves the whole distribution; a preemption moves only its
/// maximum.
fn distribution(zaps: &[Zap]) -> String {
    let mut out = String::from(
        "\nThe per-batch path's batch holds, pooled over every zap of a size: their distribution (upper bounds of power-of-two buckets, so within 2x above), \
         and the zapping thread's involuntary context switches (preemptions, from `/proc/thread-self/status`) during those zaps.\n\n\
         | sptes/page | shadow pages (target) | zaps | batch holds | p50 | p99 | p99.9 | p99.99 | longest | holds of 2^20 ns (1.05 ms) or more | preemptions during the zaps |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for shape in &SHAPES {
        for &size in shape.sizes {
            let runs: Vec<&Zap> = zaps
                .iter()
                .filter(|z| z.sptes == shape.sptes && z.size == size && z.path == Path::Fast)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let mut hist = HoldHistogram::default();
            for z in &runs {
                hist.merge(&z.stats.batch_holds);
            }
            let q = |q: f64| {
                hist.quantile_upper_ns(q)
                    .map_or_else(|| "n/a".to_string(), |ns| fmt_ns(ns as f64))
            };
            let longest = runs
                .iter()
                .map(|z| z.stats.max_batch_hold_ns)
                .max()
                .unwrap_or(0);
            let preempted = runs
                .iter()
                .map(|z| z.preempted)
                .sum::<Option<u64>>()
                .map_or_else(|| "n/a".to_string(), |n| n.to_string());
            out.push_str(&format!(
                "| {} | {size} | {} | {} | {} | {} | {} | {} | {} | {} | {preempted} |\n",
                shape.sptes,
                runs.len(),
                hist.count(),
                q(0.5),
                q(0.99),
                q(0.999),
                q(0.9999),
                fmt_ns(longest as f64),
                hist.at_least(1 << 20),
            ));
        }
    }
    out
}

fn report(zaps: &[Zap]) {
    let pick = |sptes: usize, size: usize, path: Path, f: &dyn Fn(&ZapStats) -> u64| {
        let v: Vec<f64> = zaps
            .iter()
            .filter(|z| z.sptes == sptes && z.size == size && z.path == path)
            .map(|z| f(&z.stats) as f64)
            .collect();
        (median(&v), v.len())
    };
    let mut body = String::from(
        "| sptes/page | shadow pages (target) | pages at start | zaps (per batch/3.11/eager) | bump+requests hold | per batch: longest batch hold | per batch: longest hold | per batch: longest / batch (P1: at most 4) | per batch: total | 3.11: longest hold (final commit) | 3.11: longest / batch | eager: hold | eager / per-batch longest (P1: at least 10^4) | eager / 3.11 longest |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut series = Vec::new();
    for shape in &SHAPES {
        let names = [
            "fast: bump + reload requests hold",
            "fast per batch: longest hold",
            "fast 3.11: longest hold (final commit)",
            "eager zap_all: its one hold",
        ];
        let colors = if shape.sptes == 16 {
            [PALETTE[0], PALETTE[3], PALETTE[2], PALETTE[1]]
        } else {
            [PALETTE[4], PALETTE[5], PALETTE[5], PALETTE[5]]
        };
        let mut lines: Vec<Series> = names
            .iter()
            .zip(colors)
            .map(|(name, color)| Series {
                name: format!("{} sptes/page, {name}", shape.sptes),
                points: Vec::new(),
                color,
            })
            .collect();
        for &size in shape.sizes {
            let sp = shape.sptes;
            let (at_start, nf) = pick(sp, size, Path::Fast, &|z| z.pages_at_start);
            let (bump, _) = pick(sp, size, Path::Fast, &|z| z.bump_hold_ns);
            let (batch_hold, _) = pick(sp, size, Path::Fast, &|z| z.max_batch_hold_ns);
            let (longest, _) = pick(sp, size, Path::Fast, &longest_hold);
            let (total, _) = pick(sp, size, Path::Fast, &|z| z.total_ns);
            let (batch_311, n311) = pick(sp, size, Path::Fast311, &|z| z.max_batch_hold_ns);
            let (longest_311, _) = pick(sp, size, Path::Fast311, &longest_hold);
            let (hold, ne) = pick(sp, size, Path::Eager, &|z| z.max_hold_ns);
            body.push_str(&format!(
                "| {sp} | {size} | {at_start:.0} | {nf}/{n311}/{ne} | {} | {} | {} | {:.2}x | {} | {} | {:.0}x | {} | {:.0}x | {:.1}x |\n",
                fmt_ns(bump),
                fmt_ns(batch_hold),
                fmt_ns(longest),
                longest / batch_hold.max(1.0),
                fmt_ns(total),
                fmt_ns(longest_311),
                longest_311 / batch_311.max(1.0),
                fmt_ns(hold),
                hold / longest.max(1.0),
                hold / longest_311.max(1.0),
            ));
            if nf > 0 && ne > 0 && n311 > 0 {
                for (s, y) in lines.iter_mut().zip([bump, longest, longest_311, hold]) {
                    s.points.push((at_start, y));
                }
            }
        }
        if shape.sptes == 16 {
            series.extend(lines);
        } else {
            // Kernel-sized pages: the per-batch longest hold and the eager
            // hold only, to keep the figure readable.
            let mut lines = lines.into_iter();
            series.extend(lines.nth(1));
            series.extend(lines.nth(1));
        }
    }
    body.push_str(
        "\nMedians over every zap run in this benchmark (warm-up included); 1 address space, one vCPU, one mapped gfn per last-level page; \
         16 sptes/page with 6 levels, 512 sptes/page with 3 levels.\n",
    );
    body.push_str(&distribution(zaps));
    write_report("b1_lock_hold", &body);
    if let Err(e) = loglog_figure(
        &figure_file("b1_lock_hold"),
        "B1: mmu_lock hold vs shadow pages",
        "shadow pages at the start of the zap",
        "time (median)",
        &series,
    ) {
        eprintln!("figure: {e}");
    }
}

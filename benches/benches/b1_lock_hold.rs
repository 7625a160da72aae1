//! B1: `mmu_lock` hold versus the number of shadow pages.
//!
//! For 10^3 to 10^6 shadow pages, populate a VM, then either run the fast
//! `invalidate_zap_all_pages()` or the eager `zap_all()` and read the hold
//! times the zap itself measured (`ZapStats`). Criterion times only the hold
//! (`iter_custom`): the fast path's generation bump + reload requests hold
//! against the eager path's single hold. The batch holds and the total time of
//! the fast path are collected from the same zaps and written to the report.
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
//! so it runs criterion's minimum of 10 samples per path (about 4-5 minutes);
//! the quick test mode (`-- --test`) skips it.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use fastzap::{VcpuId, ZapStats};
use fastzap_benches::{
    PALETTE, Series, bench_config, figure_file, fmt_ns, group_name, loglog_figure, median, ns,
    populate_sparse, test_mode, vm_with_slot, write_report,
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
    Fast,
    Eager,
}

/// What one zap measured, with its table shape.
struct Zap {
    sptes: usize,
    size: usize,
    path: Path,
    stats: ZapStats,
}

/// One populated VM, zapped once; returns what the zap measured.
fn one_zap(shape: &Shape, pages: usize, path: Path) -> ZapStats {
    let config = bench_config(1, shape.sptes, shape.levels, 1);
    let npages =
        ((pages as u64 + pages as u64 / 8 + 64) * shape.sptes as u64).min(config.max_gfn());
    let vm = vm_with_slot(config, npages);
    populate_sparse(&vm, VcpuId(0), pages);
    let stats = match path {
        Path::Fast => vm.invalidate_zap_all_pages(),
        Path::Eager => vm.zap_all(),
    }
    .expect("zap");
    drop(vm);
    stats
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
            for (path, name) in [(Path::Fast, "fast_bump_hold"), (Path::Eager, "eager_hold")] {
                group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                    b.iter_custom(|iters| {
                        let mut held = Duration::ZERO;
                        for _ in 0..iters {
                            let stats = one_zap(shape, size, path);
                            held += ns(match path {
                                Path::Fast => stats.bump_hold_ns,
                                Path::Eager => stats.max_hold_ns,
                            });
                            zaps.push(Zap {
                                sptes: shape.sptes,
                                size,
                                path,
                                stats,
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
        "| sptes/page | shadow pages (target) | pages at start | zaps (fast/eager) | fast: bump+requests hold | fast: longest zap-loop hold | fast: holds | fast: total | eager: hold | eager hold / bump hold | eager hold / fast longest hold |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut series = Vec::new();
    for shape in &SHAPES {
        let names = [
            "fast: bump + reload requests hold",
            "fast: longest zap-loop hold",
            "fast: total (bump to last commit)",
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
            let (loop_hold, _) = pick(sp, size, Path::Fast, &|z| z.max_hold_ns);
            let (holds, _) = pick(sp, size, Path::Fast, &|z| z.holds);
            let (total, _) = pick(sp, size, Path::Fast, &|z| z.total_ns);
            let (hold, ne) = pick(sp, size, Path::Eager, &|z| z.max_hold_ns);
            body.push_str(&format!(
                "| {sp} | {size} | {at_start:.0} | {nf}/{ne} | {} | {} | {holds:.0} | {} | {} | {:.0}x | {:.1}x |\n",
                fmt_ns(bump),
                fmt_ns(loop_hold),
                fmt_ns(total),
                fmt_ns(hold),
                hold / bump.max(1.0),
                hold / loop_hold.max(1.0),
            ));
            if nf > 0 && ne > 0 {
                for (s, y) in lines.iter_mut().zip([bump, loop_hold, total, hold]) {
                    s.points.push((at_start, y));
                }
            }
        }
        if shape.sptes == 16 {
            series.extend(lines);
        } else {
            // Kernel-sized pages: the bump and the eager hold only, to keep the
            // figure readable.
            let mut lines = lines.into_iter();
            series.extend(lines.next());
            series.extend(lines.nth(2));
        }
    }
    body.push_str(
        "\nMedians over every zap run in this benchmark (warm-up included); 1 address space, one vCPU, one mapped gfn per last-level page; \
         16 sptes/page with 6 levels, 512 sptes/page with 3 levels.\n",
    );
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

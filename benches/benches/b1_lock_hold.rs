//! B1: `mmu_lock` hold versus the number of shadow pages.
//!
//! For 10^3 to 10^6 shadow pages, populate a VM, then either run the fast
//! `invalidate_zap_all_pages()` or the eager `zap_all()` and read the hold
//! times the zap itself measured (`ZapStats`). Criterion times only the hold
//! (`iter_custom`): the fast path's generation bump + reload requests hold
//! against the eager path's single hold. The batch holds and the total time of
//! the fast path are collected from the same zaps and written to the report.
//!
//! Tables: 16 sptes per page (not the kernel's 512) and 6 levels (16^6 gfns),
//! one address space, one vCPU; one mapped gfn per last-level page. At 10^6
//! pages a 512-spte page would need 8 GiB (each spte also has an 8-byte ghost
//! word); 16 sptes keep it under 1 GiB. Fewer sptes per page make the eager zap
//! cheaper per page, so the ratios here understate the kernel's.
//!
//! The 10^6 point costs about 10 s of populating per sample on 2 shared cores,
//! so it runs criterion's minimum of 10 samples per path (about 4-5 minutes);
//! the quick test mode (`-- --test`) skips it.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use fastzap::{VcpuId, ZapStats};
use fastzap_benches::{
    PALETTE, Series, bench_config, fmt_ns, loglog_figure, median, ns, populate_sparse, test_mode,
    vm_with_slot, write_report,
};

const SPTES: usize = 16;
const LEVELS: u8 = 6;
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Fast,
    Eager,
}

/// One populated VM, zapped once; returns what the zap measured.
fn one_zap(pages: usize, path: Path) -> ZapStats {
    let config = bench_config(1, SPTES, LEVELS, 1);
    let npages = ((pages as u64 + pages as u64 / 8 + 64) * SPTES as u64).min(config.max_gfn());
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
    let mut fast: Vec<(usize, ZapStats)> = Vec::new();
    let mut eager: Vec<(usize, ZapStats)> = Vec::new();
    {
        let mut group = c.benchmark_group("b1_lock_hold");
        group.sampling_mode(SamplingMode::Flat);
        // Quick test mode (CI) skips the 10^6 point: it needs ~10 s per zap
        // to populate, and 10^5 runs the same code.
        let sizes = if test_mode() { &SIZES[..3] } else { &SIZES[..] };
        for &pages in sizes {
            group.bench_with_input(
                BenchmarkId::new("fast_bump_hold", pages),
                &pages,
                |b, &pages| {
                    b.iter_custom(|iters| {
                        let mut held = Duration::ZERO;
                        for _ in 0..iters {
                            let stats = one_zap(pages, Path::Fast);
                            held += ns(stats.bump_hold_ns);
                            fast.push((pages, stats));
                        }
                        held
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new("eager_hold", pages),
                &pages,
                |b, &pages| {
                    b.iter_custom(|iters| {
                        let mut held = Duration::ZERO;
                        for _ in 0..iters {
                            let stats = one_zap(pages, Path::Eager);
                            held += ns(stats.max_hold_ns);
                            eager.push((pages, stats));
                        }
                        held
                    })
                },
            );
        }
        group.finish();
    }
    c.final_summary();
    if test_mode() {
        return;
    }
    report(&fast, &eager);
}

fn report(fast: &[(usize, ZapStats)], eager: &[(usize, ZapStats)]) {
    let pick = |runs: &[(usize, ZapStats)], size: usize, f: &dyn Fn(&ZapStats) -> u64| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|(s, _)| *s == size)
            .map(|(_, z)| f(z) as f64)
            .collect();
        (median(&v), v.len())
    };
    let mut body = String::from(
        "| shadow pages (target) | pages at start | zaps (fast/eager) | fast: bump+requests hold | fast: longest zap-loop hold | fast: holds | fast: total | eager: hold | eager hold / bump hold | eager hold / fast longest hold |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut series: Vec<Series> = [
        "fast: bump + reload requests hold",
        "fast: longest zap-loop hold",
        "fast: total (bump to last commit)",
        "eager zap_all: its one hold",
    ]
    .iter()
    .zip(PALETTE)
    .map(|(name, color)| Series {
        name: name.to_string(),
        points: Vec::new(),
        color,
    })
    .collect();
    for &size in &SIZES {
        let (at_start, nf) = pick(fast, size, &|z| z.pages_at_start);
        let (bump, _) = pick(fast, size, &|z| z.bump_hold_ns);
        let (loop_hold, _) = pick(fast, size, &|z| z.max_hold_ns);
        let (holds, _) = pick(fast, size, &|z| z.holds);
        let (total, _) = pick(fast, size, &|z| z.total_ns);
        let (hold, ne) = pick(eager, size, &|z| z.max_hold_ns);
        body.push_str(&format!(
            "| {size} | {at_start:.0} | {nf}/{ne} | {} | {} | {holds:.0} | {} | {} | {:.0}x | {:.1}x |\n",
            fmt_ns(bump),
            fmt_ns(loop_hold),
            fmt_ns(total),
            fmt_ns(hold),
            hold / bump.max(1.0),
            hold / loop_hold.max(1.0),
        ));
        if nf > 0 && ne > 0 {
            for (s, y) in series.iter_mut().zip([bump, loop_hold, total, hold]) {
                s.points.push((at_start, y));
            }
        }
    }
    body.push_str(&format!(
        "\nMedians over every zap run in this benchmark (warm-up included); {SPTES} sptes per page, {LEVELS} levels, 1 address space, one mapped gfn per last-level page.\n"
    ));
    write_report(
        "b1_lock_hold",
        "cargo bench -p fastzap-benches --bench b1_lock_hold",
        &body,
    );
    if let Err(e) = loglog_figure(
        "b1_lock_hold.svg",
        "B1: mmu_lock hold vs shadow pages (16 sptes/page)",
        "shadow pages at the start of the zap",
        "time (median)",
        &series,
    ) {
        eprintln!("figure: {e}");
    }
}

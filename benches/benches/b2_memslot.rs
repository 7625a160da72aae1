//! B2: the v1 cover letter's test. 6 vCPU threads fault in a 2 GiB guest
//! (524,288 gfns of 4 KiB, kernel-sized tables: 512 sptes per page, 3 levels,
//! 2 address spaces), then the main thread deletes the memslot and adds it
//! back; the vCPUs are idle meanwhile, as in the kernel's test. Criterion times
//! only the delete + re-add, one run per iteration, against a freshly faulted
//! guest each time.
//!
//! - `fast`: `delete_memslot` with the 3.11 strategy (publish the slot INVALID,
//!   wait for readers, `invalidate_zap_all_pages`, publish the final slots,
//!   wait), then `create_memslot`.
//! - `seedv3`: `delete_memslot_with(SeedV3)`: the slot's rmap is unmapped
//!   outside `mmu_lock`, then a grace period, then the zap (which finds the
//!   leaves already gone), then `create_memslot`.
//! - `deferred`: `delete_memslot_with(SeedV3Deferred)`, the seed as posted:
//!   the same without the zap; the next `invalidate_zap_all_pages`, run right
//!   after and timed apart, zaps what it left.
//! - `eager`: `zap_all()` first, then the same `delete_memslot` (whose fast zap
//!   now finds an empty table) and `create_memslot`. That is the pre-3.11 delete,
//!   `kvm_mmu_zap_all` under one `mmu_lock` hold, composed from the public API,
//!   plus the constant cost of the fast path's bump on an empty table.
//! - `no_pages`: the fast delete + re-add with nothing faulted in, the part of
//!   the wall time that does not scale with the number of pages.
//!
//! The longest `mmu_lock` hold during the delete + re-add comes from the zap
//! history (`Vm::zap_history`), which only the checking code keeps:
//! `delete_memslot` and `create_memslot` do not return their zaps' statistics.
//! The ghost-off build reports it as "n/a without the checking code", and
//! gives `zap_all`'s own hold (which `zap_all` returns) for the eager path.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
#[cfg(feature = "ghost")]
use fastzap::ZapStats;
use fastzap::{DeletionStrategy, SlotId, VcpuId, Vm};
use fastzap_benches::{
    Bar, NO_GHOST, PALETTE, bar_figure, bench_config, fault_in, figure_file, fmt_ns, group_name,
    median, slot0, test_mode, vm_with_slot, write_report,
};

const VCPUS: usize = 6;
const GFNS: u64 = 524_288;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Fast,
    /// The seed's v3 (`DeletionStrategy::SeedV3`): unmap the slot's rmap
    /// outside `mmu_lock`, wait, then zap the obsolete pages.
    SeedV3,
    /// The seed's v3 as posted (`DeletionStrategy::SeedV3Deferred`): the
    /// delete leaves the obsolete pages for later; the next invalidation,
    /// run right after and timed apart, zaps them.
    Deferred,
    Eager,
    /// The fast delete + re-add of the same slot with no page faulted in (the
    /// vCPUs only loaded their roots): the part of the wall time that does not
    /// depend on the number of pages.
    NoPages,
}

struct Run {
    path: Path,
    wall_ns: f64,
    /// The longest `mmu_lock` hold of the delete + re-add (NaN without the
    /// checking code, which keeps the zap history).
    max_hold_ns: f64,
    /// `zap_all`'s own hold (eager only, 0 otherwise).
    zap_all_hold_ns: f64,
    pages: f64,
    /// Time in `zap_all()` (eager only).
    zap_all_ns: f64,
    /// Time in `delete_memslot` (fast zap, publishes, grace periods).
    delete_ns: f64,
    /// Time in `create_memslot`.
    create_ns: f64,
    /// Deferred only: the next `invalidate_zap_all_pages`, which zaps the
    /// pages the delete left (not part of `wall_ns`).
    drain_ns: f64,
}

/// A 2 GiB guest fully faulted in by 6 vCPU threads (vCPU i faults the i-th
/// sixth of the gfns; odd vCPUs fault through the second address space).
fn faulted_guest(fault: bool) -> Vm {
    let vm = vm_with_slot(bench_config(VCPUS, 512, 3, 2), GFNS);
    let chunk = GFNS.div_ceil(VCPUS as u64);
    std::thread::scope(|s| {
        for i in 0..VCPUS {
            let vm = &vm;
            s.spawn(move || {
                let vcpu = VcpuId(i);
                vm.handle_requests(vcpu).expect("requests");
                let start = i as u64 * chunk;
                let end = if fault {
                    (start + chunk).min(GFNS)
                } else {
                    start
                };
                for gfn in start..end {
                    fault_in(vm, vcpu, gfn, true);
                }
            });
        }
    });
    vm
}

fn one_run(path: Path) -> Run {
    let vm = faulted_guest(path != Path::NoPages);
    let pages = vm.shadow_pages() as f64;
    #[cfg(feature = "ghost")]
    let before = vm.zap_history().len();
    let start = Instant::now();
    // zap_all does not enter the zap history: keep its own stats.
    let eager_hold = if path == Path::Eager {
        vm.zap_all().expect("zap_all").max_hold_ns
    } else {
        0
    };
    let zapped = start.elapsed();
    match path {
        Path::SeedV3 => vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3),
        Path::Deferred => vm.delete_memslot_with(SlotId(0), DeletionStrategy::SeedV3Deferred),
        _ => vm.delete_memslot(SlotId(0)),
    }
    .expect("delete");
    let deleted = start.elapsed();
    vm.create_memslot(slot0(GFNS)).expect("re-add");
    let wall = start.elapsed();
    let wall_ns = wall.as_nanos() as f64;
    // Where the deferred zap's cost goes: the next invalidation pays it.
    let drain_ns = if path == Path::Deferred {
        let started = Instant::now();
        vm.invalidate_zap_all_pages()
            .expect("the next invalidation");
        started.elapsed().as_nanos() as f64
    } else {
        0.0
    };
    #[cfg(feature = "ghost")]
    let max_hold_ns = {
        let zaps: Vec<ZapStats> = vm.zap_history().split_off(before);
        zaps.iter()
            .map(|z| z.bump_hold_ns.max(z.max_hold_ns))
            .max()
            .unwrap_or(0)
            .max(eager_hold) as f64
    };
    #[cfg(not(feature = "ghost"))]
    let max_hold_ns = f64::NAN;
    Run {
        path,
        wall_ns,
        max_hold_ns,
        zap_all_hold_ns: eager_hold as f64,
        pages,
        zap_all_ns: zapped.as_nanos() as f64,
        delete_ns: (deleted - zapped).as_nanos() as f64,
        create_ns: (wall - deleted).as_nanos() as f64,
        drain_ns,
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut runs: Vec<Run> = Vec::new();
    {
        let mut group = c.benchmark_group(group_name("b2_memslot_delete_readd"));
        group.sampling_mode(SamplingMode::Flat);
        for path in [
            Path::Fast,
            Path::SeedV3,
            Path::Deferred,
            Path::Eager,
            Path::NoPages,
        ] {
            let name = format!("{path:?}").to_lowercase();
            group.bench_function(BenchmarkId::new(name, "2GiB_6vcpus"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let run = one_run(path);
                        total += Duration::from_nanos(run.wall_ns as u64);
                        runs.push(run);
                    }
                    total
                })
            });
        }
        group.finish();
    }
    c.final_summary();
    if !test_mode() {
        report(&runs);
    }
}

fn report(runs: &[Run]) {
    let stat = |path: Path, f: &dyn Fn(&Run) -> f64| {
        let v: Vec<f64> = runs.iter().filter(|r| r.path == path).map(f).collect();
        (median(&v), v.len())
    };
    let (fast_wall, nf) = stat(Path::Fast, &|r| r.wall_ns);
    let (eager_wall, ne) = stat(Path::Eager, &|r| r.wall_ns);
    let (fast_hold, _) = stat(Path::Fast, &|r| r.max_hold_ns);
    let (eager_hold, _) = stat(Path::Eager, &|r| r.max_hold_ns);
    let (pages, _) = stat(Path::Fast, &|r| r.pages);
    let (fixed_wall, _) = stat(Path::NoPages, &|r| r.wall_ns);
    let (deferred_wall, nd) = stat(Path::Deferred, &|r| r.wall_ns);
    let (seed_wall, ns3) = stat(Path::SeedV3, &|r| r.wall_ns);
    let (deferred_hold, _) = stat(Path::Deferred, &|r| r.max_hold_ns);
    let (drain, _) = stat(Path::Deferred, &|r| r.drain_ns);
    let kernel_before = 46_078_825.0;
    let kernel_after = 21_558_774.0;
    // Only the checking code keeps the zap history the longest hold comes from.
    let measured = cfg!(feature = "ghost");
    let hold_row = if measured {
        format!(
            "| {} | {} | {:.5} |",
            fmt_ns(eager_hold),
            fmt_ns(fast_hold),
            fast_hold / eager_hold
        )
    } else {
        format!("| {NO_GHOST} | {NO_GHOST} | n/a |")
    };
    let mut body = format!(
        "Shadow pages before the delete (median): {pages:.0}. Runs: {nf} fast, {ns3} seed v3, {nd} deferred, {ne} eager (warm-up included).\n\n\
         | | eager (before) | fast (after) | fast / eager |\n|---|---|---|---|\n\
         | kernel v1 cover letter, delete + add, 6 vCPUs, 2 GiB | {} | {} | {:.2} |\n\
         | fastzap, delete + re-add, wall time (median) | {} | {} | {:.2} |\n\
         | fastzap, the seed's v3 (`SeedV3`: unmap outside the lock, wait, zap), delete + re-add, wall time (median) | {} | {} | {:.2} |\n\
         | fastzap, the seed's v3 as posted (`SeedV3Deferred`: no zap), delete + re-add, wall time (median) | {} | {} | {:.2} |\n\
         | the same: the next `invalidate_zap_all_pages`, which zaps what that delete left (median; not in its wall time) | | {} | {:.2} |\n\
         | fastzap, longest single mmu_lock hold during it (median) {hold_row}\n\
         | fastzap, delete + re-add with no page mapped (the part that does not scale with pages) | | {} | {:.2} (floor of the wall ratio) |\n\n\
         Where the wall time goes (medians): eager: zap_all {}, delete {}, re-add {}; \
         fast: delete (including its zap of every page) {}, re-add {}.\n",
        fmt_ns(kernel_before),
        fmt_ns(kernel_after),
        kernel_after / kernel_before,
        fmt_ns(eager_wall),
        fmt_ns(fast_wall),
        fast_wall / eager_wall,
        fmt_ns(eager_wall),
        fmt_ns(seed_wall),
        seed_wall / eager_wall,
        fmt_ns(eager_wall),
        fmt_ns(deferred_wall),
        deferred_wall / eager_wall,
        fmt_ns(drain),
        drain / eager_wall,
        fmt_ns(fixed_wall),
        fixed_wall / eager_wall,
        fmt_ns(stat(Path::Eager, &|r| r.zap_all_ns).0),
        fmt_ns(stat(Path::Eager, &|r| r.delete_ns).0),
        fmt_ns(stat(Path::Eager, &|r| r.create_ns).0),
        fmt_ns(stat(Path::Fast, &|r| r.delete_ns).0),
        fmt_ns(stat(Path::Fast, &|r| r.create_ns).0),
    );
    if measured {
        body.push_str(&format!(
            "\nThe longest single `mmu_lock` hold of the deferred delete + re-add (median): {}.\n",
            fmt_ns(deferred_hold),
        ));
    }
    if !measured {
        body.push_str(&format!(
            "\nThe longest hold needs the zap history, which only the checking code keeps \
             (`delete_memslot` does not return its zap's statistics). Without it: eager \
             `zap_all`'s own hold (median) {}; B1 measures the fast path's holds in this build.\n",
            fmt_ns(stat(Path::Eager, &|r| r.zap_all_hold_ns).0),
        ));
    }
    write_report("b2_memslot", &body);
    let mut bars = vec![
        Bar {
            label: "kernel 2013: before".into(),
            value: kernel_before,
            color: PALETTE[5],
        },
        Bar {
            label: "kernel 2013: after".into(),
            value: kernel_after,
            color: PALETTE[5],
        },
        Bar {
            label: "eager: wall".into(),
            value: eager_wall,
            color: PALETTE[1],
        },
        Bar {
            label: "fast: wall".into(),
            value: fast_wall,
            color: PALETTE[0],
        },
        Bar {
            label: "seed v3: wall".into(),
            value: seed_wall,
            color: PALETTE[4],
        },
        Bar {
            label: "seed v3 deferred: wall".into(),
            value: deferred_wall,
            color: PALETTE[3],
        },
        Bar {
            label: "seed v3 deferred: next zap".into(),
            value: drain,
            color: PALETTE[5],
        },
        Bar {
            label: "no pages: wall".into(),
            value: fixed_wall,
            color: PALETTE[2],
        },
    ];
    if measured {
        bars.extend([
            Bar {
                label: "eager: longest hold".into(),
                value: eager_hold,
                color: PALETTE[1],
            },
            Bar {
                label: "fast: longest hold".into(),
                value: fast_hold,
                color: PALETTE[0],
            },
        ]);
    } else {
        bars.push(Bar {
            label: "eager: zap_all hold".into(),
            value: stat(Path::Eager, &|r| r.zap_all_hold_ns).0,
            color: PALETTE[1],
        });
    }
    if let Err(e) = bar_figure(
        &figure_file("b2_memslot"),
        "B2: delete + re-add a 2 GiB memslot, 6 vCPUs (medians)",
        "time",
        &bars,
        true,
        None,
        &fmt_ns,
    ) {
        eprintln!("figure: {e}");
    }
}

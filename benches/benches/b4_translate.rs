//! B4: the read-side cost of translating a mapped gfn.
//!
//! One VM (512 sptes per page, 3 levels), vCPU 0, 64 mapped gfns, each in a
//! different last-level page. Every variant translates the same 64 gfns per
//! iteration, so criterion's times divide by 64 into a per-translate cost:
//!
//! - (a) `translate_run`: one vCPU entry (mode, fence, requests check), one epoch
//!   pin and one root check for the 64 walks;
//! - (b) `translate`: all of that per call;
//! - (b2) `ClaimedVcpu::translate`: all of that per call except the vCPU
//!   claim, which `Vm::claim_vcpu` took once (as the kernel holds
//!   `vcpu->mutex` across `KVM_RUN`);
//! - (c) `translate_unsynchronized`: the same walk with no synchronization
//!   (`&mut Vm`);
//! - (d) a `fastzap::checking::sync::Mutex<HashMap<Gfn, Pfn>>` lookup per
//!   gfn, taking the lock each time: what a reader would pay with a lock
//!   instead of the lockless walk.
//!
//! For reference, per call: (p1) a relaxed store + `fence(SeqCst)` (the
//! mode handshake's fence), (p2) an uncontended `compare_exchange` (the
//! claim), (p3) a crossbeam `Reclaimer::pin` and its drop (the epoch pin).
//!
//! And with two threads at once (the machine has 2 cores), time per translate
//! per thread:
//!
//! - (e) `translate` per call on vCPU 0 and vCPU 1 concurrently;
//! - (f) the `Mutex<HashMap>` lookup from two threads concurrently.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use fastzap::checking::sync::{AtomicU64, Mutex, Ordering, Reclaimer, fence};
use fastzap::{Gfn, ReclaimBackend, Translation, VcpuId};
use fastzap_benches::{
    Bar, PALETTE, bar_figure, bench_config, fault_in, figure_file, fmt_ns, group_name, median,
    test_mode, vm_with_slot, write_report,
};

const RUN: usize = 64;
/// Bar labels, in the order of the report's rows.
const SHORT: [&str; 10] = [
    "(a) run",
    "(b) per call",
    "(b2) claimed",
    "(c) unsync",
    "(d) mutex",
    "(e) per call x2",
    "(f) mutex x2",
    "(p1) fence",
    "(p2) cas",
    "(p3) pin",
];

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let v0 = VcpuId(0);
    let gfns: Vec<Gfn> = (0..RUN as u64)
        .map(|i| Gfn(i * 512 + (i * 7) % 512))
        .collect();
    let mut vm = vm_with_slot(bench_config(2, 512, 3, 1), RUN as u64 * 512);
    vm.handle_requests(v0).expect("requests");
    vm.handle_requests(VcpuId(1)).expect("requests");
    for &gfn in &gfns {
        fault_in(&vm, v0, gfn.0, false);
    }
    let mut map = HashMap::new();
    for &gfn in &gfns {
        match vm.translate(v0, gfn).expect("translate") {
            Translation::Mapped { pfn, .. } => {
                map.insert(gfn, pfn);
            }
            other => panic!("{gfn} not mapped: {other:?}"),
        }
    }
    let map = Mutex::new(map);
    let word = AtomicU64::new(0);
    let reclaimer = Reclaimer::new(ReclaimBackend::Crossbeam).expect("crossbeam");
    // Per variant: nanoseconds per translate of each sample.
    let mut samples: Vec<(&'static str, f64)> = Vec::new();
    let mut record = |name: &'static str, elapsed: Duration, iters: u64| {
        samples.push((
            name,
            elapsed.as_nanos() as f64 / (iters.max(1) * RUN as u64) as f64,
        ));
        elapsed
    };
    {
        let mut group = c.benchmark_group(group_name("b4_translate_64_gfns"));
        group.throughput(Throughput::Elements(RUN as u64));
        let mut out = Vec::with_capacity(RUN);
        group.bench_function(BenchmarkId::new("a_translate_run", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    out.clear();
                    vm.translate_run(v0, black_box(&gfns), &mut out)
                        .expect("translate_run");
                    black_box(&out);
                }
                record("a_translate_run", start.elapsed(), iters)
            })
        });
        group.bench_function(BenchmarkId::new("b_translate_per_call", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for &gfn in black_box(&gfns) {
                        black_box(vm.translate(v0, gfn).expect("translate"));
                    }
                }
                record("b_translate_per_call", start.elapsed(), iters)
            })
        });
        group.bench_function(BenchmarkId::new("b2_translate_claimed", RUN), |b| {
            b.iter_custom(|iters| {
                let mut claimed = vm.claim_vcpu(v0).expect("claim");
                let start = Instant::now();
                for _ in 0..iters {
                    for &gfn in black_box(&gfns) {
                        black_box(claimed.translate(gfn).expect("translate"));
                    }
                }
                let elapsed = start.elapsed();
                drop(claimed);
                record("b2_translate_claimed", elapsed, iters)
            })
        });
        group.bench_function(BenchmarkId::new("c_translate_unsynchronized", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for &gfn in black_box(&gfns) {
                        black_box(vm.translate_unsynchronized(v0, gfn).expect("translate"));
                    }
                }
                record("c_translate_unsynchronized", start.elapsed(), iters)
            })
        });
        group.bench_function(BenchmarkId::new("d_mutex_hashmap", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for &gfn in black_box(&gfns) {
                        black_box(map.lock().get(&gfn).copied());
                    }
                }
                record("d_mutex_hashmap", start.elapsed(), iters)
            })
        });
        // Reference primitives, 64 per iteration like the rest: what one full
        // fence and one uncontended locked read-modify-write cost here.
        group.bench_function(BenchmarkId::new("p_fence_seqcst", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for i in 0..RUN as u64 {
                        // A store between fences, as in the Dekker pattern of
                        // translate (mode store, fence, requests load); LLVM
                        // merges adjacent fences with nothing between them.
                        black_box(&word).store(i, Ordering::Relaxed);
                        fence(Ordering::SeqCst);
                    }
                }
                record("p_fence_seqcst", start.elapsed(), iters)
            })
        });
        group.bench_function(BenchmarkId::new("p_compare_exchange", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for i in 0..RUN as u64 {
                        let _ = black_box(&word).compare_exchange(
                            i,
                            i + 1,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    word.store(0, Ordering::Relaxed);
                }
                record("p_compare_exchange", start.elapsed(), iters)
            })
        });
        group.bench_function(BenchmarkId::new("p_pin", RUN), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..RUN {
                        drop(black_box(reclaimer.pin()));
                    }
                }
                record("p_pin", start.elapsed(), iters)
            })
        });
        group.bench_function(
            BenchmarkId::new("e_translate_per_call_2_threads", RUN),
            |b| {
                b.iter_custom(|iters| {
                    let vm = &vm;
                    let elapsed = two_threads(|t| {
                        for _ in 0..iters {
                            for &gfn in black_box(&gfns) {
                                black_box(vm.translate(VcpuId(t), gfn).expect("translate"));
                            }
                        }
                    });
                    record("e_translate_per_call_2_threads", elapsed, iters)
                })
            },
        );
        group.bench_function(BenchmarkId::new("f_mutex_hashmap_2_threads", RUN), |b| {
            b.iter_custom(|iters| {
                let map = &map;
                let elapsed = two_threads(|_| {
                    for _ in 0..iters {
                        for &gfn in black_box(&gfns) {
                            black_box(map.lock().get(&gfn).copied());
                        }
                    }
                });
                record("f_mutex_hashmap_2_threads", elapsed, iters)
            })
        });
        group.finish();
    }
    c.final_summary();
    if !test_mode() {
        report(&samples);
    }
}

/// Runs `work(0)` and `work(1)` on two threads started together; returns the
/// longer of the two running times.
fn two_threads(work: impl Fn(usize) + Sync) -> Duration {
    let ready = AtomicU64::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (ready, work) = (&ready, &work);
                s.spawn(move || {
                    ready.fetch_add(1, Ordering::AcqRel);
                    while ready.load(Ordering::Acquire) < 2 {
                        std::hint::spin_loop();
                    }
                    let start = Instant::now();
                    work(t);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .max()
            .unwrap_or_default()
    })
}

fn report(samples: &[(&'static str, f64)]) {
    let med = |name: &str| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, ns)| *ns)
            .collect();
        (median(&v), v.len())
    };
    let names = [
        ("a_translate_run", "(a) translate_run, 64 gfns per pin"),
        ("b_translate_per_call", "(b) translate, per call"),
        (
            "b2_translate_claimed",
            "(b2) translate per call, vCPU claimed once (`ClaimedVcpu`)",
        ),
        ("c_translate_unsynchronized", "(c) translate_unsynchronized"),
        ("d_mutex_hashmap", "(d) Mutex<HashMap> lookup"),
        (
            "e_translate_per_call_2_threads",
            "(e) translate, per call, 2 threads at once",
        ),
        (
            "f_mutex_hashmap_2_threads",
            "(f) Mutex<HashMap> lookup, 2 threads at once",
        ),
        (
            "p_fence_seqcst",
            "(p1) one relaxed store + fence(SeqCst), for reference",
        ),
        (
            "p_compare_exchange",
            "(p2) one uncontended compare_exchange, for reference",
        ),
        (
            "p_pin",
            "(p3) one crossbeam `Reclaimer::pin` + drop, for reference",
        ),
    ];
    if let Some((name, _)) = names.iter().find(|(name, _)| med(name).1 == 0) {
        // A filtered run (`-- b_translate`): no report from part of the rows.
        println!("\nB4: no samples of {name} in this run, so no report written");
        return;
    }
    let (c_ns, _) = med("c_translate_unsynchronized");
    let mut body = String::from(
        "| variant | samples | time per translate (median) | relative to (c) |\n|---|---|---|---|\n",
    );
    let mut bars = Vec::new();
    for (i, (name, label)) in names.iter().enumerate() {
        let (ns, n) = med(name);
        body.push_str(&format!(
            "| {label} | {n} | {} | {:.2}x |\n",
            fmt_ns(ns),
            ns / c_ns
        ));
        bars.push(Bar {
            label: SHORT[i].to_string(),
            value: ns,
            color: PALETTE[[0, 3, 3, 2, 1, 3, 1, 5, 5, 5][i]],
        });
    }
    let (a, _) = med("a_translate_run");
    let (b, _) = med("b_translate_per_call");
    let (b2, _) = med("b2_translate_claimed");
    let (d, _) = med("d_mutex_hashmap");
    let (e, _) = med("e_translate_per_call_2_threads");
    let (f, _) = med("f_mutex_hashmap_2_threads");
    let verdict = |met: bool| if met { "met" } else { "missed" };
    body.push_str(&format!(
        "\nGoals (P4): (a) at most 1.1x (c): {:.2}x, {}. (b) faster than (d): (b)/(d) = {:.2}, {}; \
         (b2)/(d) = {:.2}, {}. (b) at most 1.5x (c): {:.2}x, {}; (b2): {:.2}x, {}. \
         With two threads: (e)/(f) = {:.2}.\n",
        a / c_ns,
        verdict(a / c_ns <= 1.1),
        b / d,
        verdict(b < d),
        b2 / d,
        verdict(b2 < d),
        b / c_ns,
        verdict(b / c_ns <= 1.5),
        b2 / c_ns,
        verdict(b2 / c_ns <= 1.5),
        e / f,
    ));
    body.push_str(
        "\nMedians over every sample (warm-up included); 64 mapped gfns in different last-level pages, 512 sptes per page, 3 levels, one vCPU, no other thread of this benchmark except in (e) and (f). Times per translate are per thread.\n",
    );
    write_report("b4_translate", &body);
    if let Err(e) = bar_figure(
        &figure_file("b4_translate"),
        "B4: cost of one translate of a mapped gfn (median)",
        "ns per translate",
        &bars,
        false,
        None,
        &|v| format!("{v:.1} ns"),
    ) {
        eprintln!("figure: {e}");
    }
}

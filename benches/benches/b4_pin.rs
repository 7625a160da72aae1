//! B4 (pin): the cost of `Reclaimer::pin` as one thread uses more VMs.
//!
//! One thread holds `n` reclaimers (one per VM: 1, 4, 5, 16 or 64) and pins
//! them round-robin, dropping each guard at once, so that every pin is for a
//! different reclaimer than the last (the worst case for a last-used cache).
//! Both backends: `crossbeam` (crossbeam-epoch through this thread's handle per
//! reclaimer) and `ebr` (the facade's EBR, 64 slots). Criterion reports the
//! time per pin; goal P4: flat from 1 to 64 reclaimers per thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use fastzap::ReclaimBackend;
use fastzap::checking::sync::Reclaimer;
use fastzap_benches::{fmt_ns, group_name, median, test_mode, write_report};

const COUNTS: [usize; 5] = [1, 4, 5, 16, 64];

fn backends() -> [(&'static str, ReclaimBackend); 2] {
    [
        ("crossbeam", ReclaimBackend::Crossbeam),
        ("ebr", ReclaimBackend::small(64)),
    ]
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    // (backend, n, ns per pin) of every sample.
    let mut samples: Vec<(&'static str, usize, f64)> = Vec::new();
    {
        let mut group = c.benchmark_group(group_name("b4_pin_reclaimers_per_thread"));
        group.throughput(Throughput::Elements(1));
        for (name, backend) in backends() {
            for n in COUNTS {
                let reclaimers: Vec<Reclaimer> = (0..n)
                    .map(|_| Reclaimer::new(backend).expect("backend"))
                    .collect();
                group.bench_function(BenchmarkId::new(name, n), |b| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        let mut i = 0;
                        for _ in 0..iters {
                            drop(black_box(reclaimers[i].pin()));
                            i += 1;
                            if i == n {
                                i = 0;
                            }
                        }
                        let elapsed = start.elapsed();
                        samples.push((name, n, elapsed.as_nanos() as f64 / iters.max(1) as f64));
                        elapsed
                    })
                });
            }
        }
        group.finish();
    }
    c.final_summary();
    if test_mode() {
        return;
    }
    let mut body = String::from(
        "### B4 (pin): `Reclaimer::pin` with n reclaimers per thread, pinned round-robin\n\n\
         | backend | 1 | 4 | 5 | 16 | 64 | 64 / 1 |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, _) in backends() {
        let med = |n: usize| {
            median(
                &samples
                    .iter()
                    .filter(|s| s.0 == name && s.1 == n)
                    .map(|s| s.2)
                    .collect::<Vec<_>>(),
            )
        };
        let cells: Vec<String> = COUNTS.iter().map(|&n| fmt_ns(med(n))).collect();
        body.push_str(&format!(
            "| {name} | {} | {:.2}x |\n",
            cells.join(" | "),
            med(64) / med(1)
        ));
    }
    body.push_str(
        "\nMedians over criterion's samples (each sample: time / pins). Goal P4: flat from 1 to 64 \
         reclaimers per thread. `ebr` is `ReclaimBackend::small(64)`.\n",
    );
    write_report("b4_pin", &body);
}

//! B7: memslots at the kernel's scale, in the shape of the kernel's
//! `memslot_perf_test`: one guest memory (65,528 pages, 256 MiB) split into N
//! slots, back to back in gfns and in host addresses, for N = 32, 1,024,
//! 16,384 and 32,764 (`KVM_USER_MEM_SLOTS`; then 2 pages per slot). The
//! memory stays the same, so that what changes with N is the number of slots,
//! not the working set. A VM has 512 sptes per page, 3 levels, 2 vCPUs, every
//! page faulted in on vCPU 0. At each N:
//!
//! - `create`: the total time of the N `create_memslot` calls into an empty
//!   VM, then whether the 32,765th is refused (`MmuError::TooManySlots`) and
//!   changes nothing;
//! - `fault`: one `page_fault` on a mapped gfn (it looks the slot up, takes
//!   `mmu_lock` and walks to the present spte): the first gfn of the first
//!   slot, the first gfn of the last slot, and a pseudo-random gfn per call;
//! - `invalidate`: one one-page `invalidate_range` on a pseudo-random page (the
//!   host-range lookup, the rmap walk, the host's remap);
//! - `lookup`: `Memslots::lookup` of the last slot's gfn, and of a
//!   pseudo-random gfn, alone.
//!
//! Side by side, the same operations on the memslots as they were before this
//! bench (`vector`): a sorted `Vec` that each update clones, re-sorts and
//! scans, and that each lookup scans. The `Vec` algorithm no longer exists in
//! `fastzap`, so this is a copy of its data-structure part with the same slot
//! layout (two reference-counted arrays per slot), without the VM around it: a
//! lower bound on what the `Vec` cost. Its `create` is timed once per N, outside
//! criterion (16,384 creates take seconds), and only up to N = 1,024 in quick
//! test mode.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use fastzap::checking::sync::Arc;
use fastzap::{Fault, Gfn, Hva, Memslots, MmuError, SlotId, SlotSpec, VcpuId, Vm};
use fastzap_benches::{
    USERSPACE_BASE, bench_config, fault_in, fmt_ns, group_name, median, test_mode, write_report,
};

const PAGE: u64 = 4096;
/// The guest's memory, in pages: 2 pages for each of 32,764 slots.
const GUEST_PAGES: u64 = 2 * Memslots::MAX_SLOTS as u64;
const NS: [usize; 4] = [32, 1_024, 16_384, Memslots::MAX_SLOTS];
const V0: VcpuId = VcpuId(0);
/// Pseudo-random gfns per N, cycled through by the random variants.
const RANDOM: usize = 4096;

/// Pages per slot when the guest is split into `n` slots.
fn slot_pages(n: usize) -> u64 {
    GUEST_PAGES / n as u64
}

/// Slot `i` of `n`: its pages right after slot `i - 1`'s, in gfns and in host
/// addresses.
fn spec(n: usize, i: usize) -> SlotSpec {
    let base = i as u64 * slot_pages(n);
    SlotSpec {
        id: SlotId(i as u16),
        base_gfn: Gfn(base),
        npages: slot_pages(n),
        userspace_addr: Hva(USERSPACE_BASE + base * PAGE),
    }
}

fn new_vm() -> Vm {
    Vm::new(bench_config(2, 512, 3, 1)).expect("valid benchmark configuration")
}

/// Creates slots `0..n` in an empty VM; returns the VM and the time taken.
fn create(n: usize) -> (Vm, Duration) {
    let vm = new_vm();
    let start = Instant::now();
    for i in 0..n {
        vm.create_memslot(spec(n, i)).expect("slot fits");
    }
    (vm, start.elapsed())
}

/// A fixed pseudo-random sequence of the gfns mapped with `n` slots
/// (xorshift).
fn random_gfns(n: usize) -> Vec<u64> {
    let mapped = n as u64 * slot_pages(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..RANDOM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % mapped
        })
        .collect()
}

/// The memslots before B7: a sorted `Vec`, cloned, re-sorted and scanned.
mod vector {
    use super::{Arc, PAGE};

    #[derive(Clone)]
    #[allow(dead_code)] // the arrays are carried, as the slot's rmap and lpage_info were
    pub struct Slot {
        pub id: u16,
        pub base_gfn: u64,
        pub npages: u64,
        pub userspace_addr: u64,
        rmap: Arc<Vec<u64>>,
        lpage_info: Arc<Vec<u64>>,
    }

    #[derive(Default)]
    pub struct Slots {
        pub generation: u64,
        pub slots: Vec<Slot>,
    }

    impl Slots {
        /// `create_memslot`'s data-structure part: the id check, the overlap
        /// scan, then `next`: clone, push, sort.
        pub fn create(&self, id: u16, base_gfn: u64, npages: u64, hva: u64) -> Option<Slots> {
            if self.slots.iter().any(|s| s.id == id) {
                return None;
            }
            if self
                .slots
                .iter()
                .any(|s| base_gfn < s.base_gfn + s.npages && s.base_gfn < base_gfn + npages)
            {
                return None;
            }
            let mut slots = self.slots.clone();
            slots.push(Slot {
                id,
                base_gfn,
                npages,
                userspace_addr: hva,
                rmap: Arc::new(vec![0; npages as usize]),
                lpage_info: Arc::new(vec![0; 1]),
            });
            slots.sort_by_key(|s| s.base_gfn);
            Some(Slots {
                generation: self.generation + 1,
                slots,
            })
        }

        /// `search_memslots` as it was: a scan.
        pub fn lookup(&self, gfn: u64) -> Option<&Slot> {
            self.slots
                .iter()
                .find(|s| gfn >= s.base_gfn && gfn - s.base_gfn < s.npages)
        }

        /// `hva_targets` as it was: every slot, each asked for the gfns whose
        /// host page intersects `[start, end)`.
        pub fn hva_targets(&self, start: u64, end: u64) -> Vec<(&Slot, u64)> {
            self.slots
                .iter()
                .flat_map(|s| {
                    let (lo, hi) = (s.userspace_addr, s.userspace_addr + s.npages * PAGE);
                    let (a, b) = (start.max(lo), end.min(hi));
                    let gfns = if a < b {
                        s.base_gfn + (a - lo) / PAGE..s.base_gfn + (b - lo).div_ceil(PAGE)
                    } else {
                        0..0
                    };
                    gfns.map(move |g| (s, g))
                })
                .collect()
        }
    }
}

fn vector_create(n: usize) -> (vector::Slots, Duration) {
    let mut slots = vector::Slots::default();
    let start = Instant::now();
    for i in 0..n {
        let s = spec(n, i);
        slots = slots
            .create(s.id.0, s.base_gfn.0, s.npages, s.userspace_addr.0)
            .expect("slot fits");
    }
    (slots, start.elapsed())
}

/// Nanoseconds per call of each sample, by (operation, N).
#[derive(Default)]
struct Samples(Vec<(String, usize, f64)>);

impl Samples {
    fn push(&mut self, op: &str, n: usize, elapsed: Duration, iters: u64) {
        self.0.push((
            op.to_string(),
            n,
            elapsed.as_nanos() as f64 / iters.max(1) as f64,
        ));
    }
    fn median(&self, op: &str, n: usize) -> f64 {
        let v: Vec<f64> = self
            .0
            .iter()
            .filter(|(o, m, _)| o == op && *m == n)
            .map(|(_, _, ns)| *ns)
            .collect();
        median(&v)
    }
}

/// The first gfn of slot `i` of `n`.
fn gfn_of(n: usize, i: usize) -> u64 {
    i as u64 * slot_pages(n)
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut samples = Samples::default();
    let mut refused = Vec::new();

    // create: a fresh VM each iteration; the time of its N creates.
    {
        let mut group = c.benchmark_group(group_name("b7_create"));
        for n in NS {
            group.bench_function(BenchmarkId::new("map", n), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (vm, took) = create(n);
                        total += took;
                        samples.push("create", n, took, 1);
                        drop(vm);
                    }
                    total
                })
            });
        }
        group.finish();
    }

    // The VMs the other groups share: N slots, every gfn faulted in on vCPU 0,
    // and the answer to slot N + 1 when N is the limit.
    let vms: Vec<(usize, Vm)> = NS
        .iter()
        .map(|&n| {
            let (vm, _) = create(n);
            vm.handle_requests(V0).expect("requests");
            for gfn in 0..gfn_of(n, n) {
                fault_in(&vm, V0, gfn, true);
            }
            if n == Memslots::MAX_SLOTS {
                let generation = vm.memslots().generation();
                let pages = vm.shadow_pages();
                let got = vm.create_memslot(spec(n, n));
                let unchanged = vm.slot_count() == n
                    && vm.memslots().generation() == generation
                    && vm.shadow_pages() == pages;
                refused.push((got, unchanged));
            }
            (n, vm)
        })
        .collect();

    {
        let mut group = c.benchmark_group(group_name("b7_fault"));
        for (n, vm) in &vms {
            let n = *n;
            let random = random_gfns(n);
            let last = gfn_of(n, n - 1);
            for (pos, pick) in [
                ("first", &(|_: usize| 0u64) as &dyn Fn(usize) -> u64),
                ("last", &|_| last),
                ("random", &|k| random[k % RANDOM]),
            ] {
                let op = format!("fault_{pos}");
                group.bench_function(BenchmarkId::new(pos, n), |b| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for k in 0..iters as usize {
                            let gfn = Gfn(pick(k));
                            let got = vm.page_fault(V0, gfn, false).expect("fault");
                            debug_assert!(matches!(got, Fault::Mapped { .. }));
                            black_box(got);
                        }
                        let took = start.elapsed();
                        samples.push(&op, n, took, iters);
                        took
                    })
                });
            }
        }
        group.finish();
    }

    {
        let mut group = c.benchmark_group(group_name("b7_invalidate_one_page"));
        for (n, vm) in &vms {
            let n = *n;
            let random = random_gfns(n);
            group.bench_function(BenchmarkId::new("random", n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for k in 0..iters as usize {
                        let hva = USERSPACE_BASE + random[k % RANDOM] * PAGE;
                        black_box(
                            vm.invalidate_range(Hva(hva), Hva(hva + PAGE))
                                .expect("range"),
                        );
                    }
                    let took = start.elapsed();
                    samples.push("invalidate", n, took, iters);
                    took
                })
            });
        }
        group.finish();
    }

    // The data structures alone: the map's lookup against the vector's, and
    // the vector's host-range scan.
    let vectors: Vec<(usize, vector::Slots, Option<Duration>)> = NS
        .iter()
        .map(|&n| {
            if test_mode() && n > 1_024 {
                let (slots, _) = vector_create(1_024.min(n));
                (n, slots, None)
            } else {
                let (slots, took) = vector_create(n);
                (n, slots, Some(took))
            }
        })
        .collect();
    {
        let mut group = c.benchmark_group(group_name("b7_lookup_last_slot"));
        for ((n, vm), (_, slots, _)) in vms.iter().zip(&vectors) {
            let n = *n;
            let memslots = vm.memslots();
            let gfn = gfn_of(n, n - 1);
            group.bench_function(BenchmarkId::new("map", n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(memslots.lookup(Gfn(black_box(gfn))));
                    }
                    let took = start.elapsed();
                    samples.push("lookup_map", n, took, iters);
                    took
                })
            });
            let random = random_gfns(n);
            group.bench_function(BenchmarkId::new("map_random_gfn", n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for k in 0..iters as usize {
                        black_box(memslots.lookup(Gfn(random[k % RANDOM])));
                    }
                    let took = start.elapsed();
                    samples.push("lookup_map_random", n, took, iters);
                    took
                })
            });
            let last = slots.slots.last().map_or(0, |s| s.base_gfn);
            group.bench_function(BenchmarkId::new("vector", n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(slots.lookup(black_box(last)));
                    }
                    let took = start.elapsed();
                    samples.push("lookup_vector", n, took, iters);
                    took
                })
            });
            let hva = USERSPACE_BASE + last * PAGE;
            group.bench_function(BenchmarkId::new("vector_hva_scan", n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(slots.hva_targets(black_box(hva), hva + PAGE));
                    }
                    let took = start.elapsed();
                    samples.push("hva_vector", n, took, iters);
                    took
                })
            });
        }
        group.finish();
    }
    c.final_summary();
    if !test_mode() {
        let creates: Vec<(usize, Option<Duration>)> =
            vectors.iter().map(|(n, _, took)| (*n, *took)).collect();
        report(&samples, &creates, &refused);
    }
}

fn verdict(met: bool, ratio: f64, goal: f64) -> String {
    if met {
        format!("met ({:.0}% of the bound)", 100.0 * ratio / goal)
    } else {
        format!("missed by {:.2}x", ratio / goal)
    }
}

fn report(
    samples: &Samples,
    vector_create: &[(usize, Option<Duration>)],
    refused: &[(Result<(), MmuError>, bool)],
) {
    let base = NS[0];
    let fault = |pos: &str, n: usize| samples.median(&format!("fault_{pos}"), n);
    let mut body = format!(
        "Medians over criterion's samples. The guest has {GUEST_PAGES} pages at every N. \
         Ratios compare each N with 32 slots, in the same run.\n\n\
         | slots | pages per slot | create, total | fault: first slot | last slot | random gfn | worst fault / 32 slots | one-page `invalidate_range`, random page | rate at 32 / rate here |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut worst_fault: f64 = 0.0;
    let mut worst_inval: f64 = 0.0;
    for n in NS {
        let ratio = ["first", "last", "random"]
            .iter()
            .map(|p| fault(p, n) / fault(p, base))
            .fold(0.0, f64::max);
        let inval = samples.median("invalidate", n);
        let inval_ratio = inval / samples.median("invalidate", base);
        worst_fault = worst_fault.max(ratio);
        worst_inval = worst_inval.max(inval_ratio);
        body.push_str(&format!(
            "| {n} | {} | {} | {} | {} | {} | {ratio:.2} | {} ({:.2} M/s) | {inval_ratio:.2} |\n",
            slot_pages(n),
            fmt_ns(samples.median("create", n)),
            fmt_ns(fault("first", n)),
            fmt_ns(fault("last", n)),
            fmt_ns(fault("random", n)),
            fmt_ns(inval),
            1e3 / inval,
        ));
    }
    let create_max = samples.median("create", Memslots::MAX_SLOTS);
    let (got, unchanged) = refused
        .first()
        .map_or(("not run".to_string(), false), |(got, unchanged)| {
            (format!("{got:?}"), *unchanged)
        });
    let typed = matches!(
        refused.first(),
        Some((Err(MmuError::TooManySlots { .. }), true))
    );
    body.push_str(&format!(
        "\n| goal | bound | measured | verdict |\n|---|---|---|---|\n\
         | creating {max} slots, total | 1 s | {} | {} |\n\
         | a fault on any slot, against 32 slots (worst of first/last/random, every N) | 2x | {worst_fault:.2}x | {} |\n\
         | a one-page `invalidate_range`, against 32 slots (every N) | 2x | {worst_inval:.2}x | {} |\n\
         | slot {} | a typed error, nothing changed | `{got}`, slots/generation/pages unchanged: {unchanged} | {} |\n",
        fmt_ns(create_max),
        verdict(create_max < 1e9, create_max / 1e9, 1.0),
        verdict(worst_fault <= 2.0, worst_fault, 2.0),
        verdict(worst_inval <= 2.0, worst_inval, 2.0),
        Memslots::MAX_SLOTS + 1,
        if typed { "met" } else { "missed" },
        max = Memslots::MAX_SLOTS,
    ));
    body.push_str(
        "\nThe data structures alone: the persistent map (`Memslots::lookup`) against \
         the sorted `Vec` as it was (a copy of its algorithm, without the VM around it; \
         its create is one timed run).\n\n\
         | slots | create, total: VM with the map | `Vec` alone | lookup of the last slot: map | `Vec` | lookup of a random gfn: map | one-page host-range scan: `Vec` |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for &(n, took) in vector_create {
        body.push_str(&format!(
            "| {n} | {} | {} | {} | {} | {} | {} |\n",
            fmt_ns(samples.median("create", n)),
            took.map_or("not run".into(), |t| fmt_ns(t.as_nanos() as f64)),
            fmt_ns(samples.median("lookup_map", n)),
            fmt_ns(samples.median("lookup_vector", n)),
            fmt_ns(samples.median("lookup_map_random", n)),
            fmt_ns(samples.median("hva_vector", n)),
        ));
    }
    write_report("b7_memslots", &body);
}

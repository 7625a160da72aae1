//! A native multi-threaded stress of the TDP MMU: vCPU threads fault and
//! translate while one thread invalidates everything and zaps all, and
//! another runs the notifiers and deletes and re-creates slots. Every translation is
//! checked against the host after the operations it may race have returned:
//! - a pfn the host took away (`invalidate_range`, `change_pte`) before the
//!   translate began is never returned (the notifier reached every root,
//!   valid and invalid, and flushed);
//! - a gfn of a slot deleted before the translate began is never mapped;
//! - any other answer is the host's current pfn, or one taken away while
//!   the translate ran.

use fastzap::checking::sync::{AtomicBool, AtomicU64, Mutex, Ordering};
use std::collections::HashMap;

use crate::common::*;
use crate::tdp;
use fastzap::*;

struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the operations thread has finished, stamped with `seq` at return.
#[derive(Default)]
struct Done {
    /// pfn taken away -> seq.
    dead_pfns: HashMap<u64, u64>,
    /// Deleted gfn ranges, with the seq of the delete's return.
    dead_gfns: Vec<(u64, u64, u64)>,
    /// Live slots: (id, base gfn, npages, spec).
    live: Vec<SlotSpec>,
}

const NPAGES: u64 = 48;

fn run(deletion: DeletionStrategy, seed: u64) {
    let mut cfg = tdp(Config::native());
    cfg.vcpus = 3;
    cfg.spte_count = 8;
    cfg.levels = 4;
    cfg.batch = 16;
    cfg.deletion = deletion;
    cfg.audit_points = false;
    let vm = Vm::new(cfg).unwrap();
    let done = Mutex::new(Done::default());
    let seq = AtomicU64::new(1);
    let stop = AtomicBool::new(false);
    let checked = AtomicU64::new(0);
    for id in 0..2u16 {
        let spec = slot(id, u64::from(id) * 64, NPAGES);
        vm.create_memslot(spec).unwrap();
        done.lock().live.push(spec);
    }
    std::thread::scope(|s| {
        for v in 0..3usize {
            let (vm, done, seq, stop, checked) = (&vm, &done, &seq, &stop, &checked);
            s.spawn(move || {
                let mut rng = Xs(seed * 7919 + v as u64 + 1);
                let vcpu = VcpuId(v);
                while !stop.load(Ordering::Acquire) {
                    vm.handle_requests(vcpu).unwrap();
                    let spec = {
                        let d = done.lock();
                        d.live[(rng.next() % d.live.len() as u64) as usize]
                    };
                    let gfn = spec.base_gfn.0 + rng.next() % NPAGES;
                    if rng.next().is_multiple_of(3) {
                        vm.page_fault(vcpu, Gfn(gfn), rng.next().is_multiple_of(2)).unwrap();
                        continue;
                    }
                    let start = seq.load(Ordering::Acquire);
                    let t = vm.translate(vcpu, Gfn(gfn)).unwrap();
                    let Translation::Mapped { pfn, .. } = t else { continue };
                    let now_host = vm.hva_to_pfn(hva(&spec, gfn)).unwrap();
                    let d = done.lock();
                    if let Some(&killed) = d.dead_pfns.get(&pfn.0) {
                        assert!(
                            killed >= start,
                            "vcpu{v} gfn {gfn}: pfn {:#x} taken away at seq {killed}, translate began at {start}",
                            pfn.0
                        );
                    } else if let Some(&(b, e, at)) =
                        d.dead_gfns.iter().find(|&&(b, e, at)| (b..e).contains(&gfn) && at < start)
                    {
                        panic!("vcpu{v} gfn {gfn} mapped after slot [{b}, {e}) was deleted at seq {at}");
                    } else {
                        assert_eq!(pfn, now_host, "vcpu{v} gfn {gfn}: not the host's page");
                    }
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The zapper: invalidate-all and zap-all, racing the notifiers, so
        // that a notifier finds invalid roots in the middle of their zap.
        {
            let (vm, stop) = (&vm, &stop);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    if n.is_multiple_of(5) {
                        vm.zap_all().unwrap();
                    } else {
                        vm.invalidate_zap_all_pages().unwrap();
                    }
                    // Leave the vCPUs time to fill their TLBs in between.
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            });
        }
        // The operations thread. Stop the others even if it panics.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = StopOnDrop(&stop);
        // Let the vCPUs map and check something before the storm.
        while checked.load(Ordering::Relaxed) < 100 {
            fastzap::checking::sync::yield_now();
        }
        let mut rng = Xs(seed + 99);
        let mut next_base = 128u64;
        for round in 0..300u64 {
            let spec = {
                let d = done.lock();
                d.live[(rng.next() % d.live.len() as u64) as usize]
            };
            match rng.next() % 7 {
                0 => {
                    vm.flush_reclaim();
                }
                1 | 2 => {
                    let first = rng.next() % NPAGES;
                    let len = 1 + rng.next() % 8;
                    let last = (first + len).min(NPAGES);
                    let olds: Vec<u64> = (first..last)
                        .map(|g| vm.hva_to_pfn(hva(&spec, spec.base_gfn.0 + g)).unwrap().0)
                        .collect();
                    // In flight from now on: a translate racing it may still
                    // return these pfns.
                    for &pfn in &olds {
                        done.lock().dead_pfns.insert(pfn, u64::MAX);
                    }
                    vm.invalidate_range(
                        hva(&spec, spec.base_gfn.0 + first),
                        hva(&spec, spec.base_gfn.0 + last),
                    )
                    .unwrap();
                    let at = seq.fetch_add(1, Ordering::AcqRel);
                    // d62007edf01f: when the notifier returns, no root,
                    // valid or invalid (perhaps mid-zap), maps the old pages.
                    let leaves = vm.tdp_leaves();
                    let kept = leaves.iter().find(|l| olds.contains(&l.3));
                    assert!(kept.is_none(), "after invalidate_range: {kept:?}");
                    let mut d = done.lock();
                    for pfn in olds {
                        d.dead_pfns.insert(pfn, at);
                    }
                }
                3 => {
                    let gfn = spec.base_gfn.0 + rng.next() % NPAGES;
                    let page = hva(&spec, gfn);
                    let old = vm.hva_to_pfn(page).unwrap().0;
                    done.lock().dead_pfns.insert(old, u64::MAX);
                    vm.change_pte(page).unwrap();
                    let at = seq.fetch_add(1, Ordering::AcqRel);
                    done.lock().dead_pfns.insert(old, at);
                }
                4 => {
                    let (s, e) = (
                        hva(&spec, spec.base_gfn.0),
                        hva(&spec, spec.base_gfn.0 + NPAGES),
                    );
                    vm.clear_flush_young(s, e).unwrap();
                }
                5 => {
                    vm.test_young(hva(&spec, spec.base_gfn.0), hva(&spec, spec.base_gfn.0 + 1))
                        .unwrap();
                }
                _ => {
                    // Delete the slot; re-create it at a gfn range never used.
                    vm.delete_memslot(spec.id).unwrap();
                    let at = seq.fetch_add(1, Ordering::AcqRel);
                    let fresh = SlotSpec {
                        base_gfn: Gfn(next_base),
                        ..spec
                    };
                    next_base += 64;
                    let mut d = done.lock();
                    d.dead_gfns
                        .push((spec.base_gfn.0, spec.base_gfn.0 + NPAGES, at));
                    d.live.retain(|l| l.id != spec.id);
                    drop(d);
                    vm.create_memslot(fresh).unwrap();
                    done.lock().live.push(fresh);
                }
            }
            if round % 50 == 0 {
                vm.flush_reclaim();
            }
        }
    });
    let checked = checked.load(Ordering::Relaxed);
    eprintln!("{deletion:?} seed {seed}: {checked} translations checked");
    assert!(checked > 100, "too few translations checked: {checked}");
    let violations = vm.runtime_violations();
    assert!(violations.is_empty(), "{violations:?}");
    let counts = vm.counts_after_drop();
    assert_eq!(counts.pages.allocated, counts.pages.freed, "{counts:?}");
}

#[test]
fn stress_zap_all_delete() {
    for seed in 1..=2 {
        run(DeletionStrategy::Merged311, seed);
    }
}

#[test]
fn stress_quirk_off_delete() {
    for seed in 1..=2 {
        run(DeletionStrategy::SlotOnlyQuirkOff, seed);
    }
}

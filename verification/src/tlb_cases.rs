//! # The flush-site twins' sequential cases
//!
//! [`tlb_cases`]: fixed sequences of calls on `Config::model()`, with the
//! audit after every step, in which vCPU 0 fills its TLB through a walk and
//! another operation takes the mapping away. With every flush in place the
//! vCPU finds a request pending before it can hit the entry; without the
//! flush the mutant drops, the TLB answers with the killed mapping (I4). The
//! child processes that run a mutant ([`crate::child`]) run it.

use fastzap::checking::Mutant;
use fastzap::{Config, Gfn, Hva, MmuError, SlotId, SlotSpec, Translation, VcpuId, Vm};

use crate::scripted::ScenarioResult;

const V0: VcpuId = VcpuId(0);
const BASE: u64 = 0x10_0000;
const PAGE: u64 = 4096;

type Step<'a> = dyn Fn(&Vm) -> Result<(), MmuError> + 'a;

/// Every vCPU handles its requests until none is left.
fn enter(vm: &Vm) -> Result<(), MmuError> {
    for _ in 0..4 {
        for v in 0..vm.config().vcpus {
            vm.handle_requests(VcpuId(v))?;
        }
    }
    Ok(())
}

/// vCPU 0 maps gfn 1 and touches it: its TLB holds the translation.
fn fill(vm: &Vm) -> Result<(), MmuError> {
    vm.page_fault(V0, Gfn(1), true)?;
    vm.translate(V0, Gfn(1)).map(drop)
}

/// vCPU 0 touches gfn 1 again (and handles what it finds pending).
fn touch(vm: &Vm) -> Result<(), MmuError> {
    if vm.translate(V0, Gfn(1))? == Translation::RequestPending {
        enter(vm)?;
    }
    Ok(())
}

/// The model's configuration with one address space: both vCPUs share a root.
fn one_address_space() -> Config {
    let mut config = Config::model();
    config.address_spaces = 1;
    config
}

/// Runs the three cases in turn: `invalidate_range` of gfn 1's page;
/// `change_pte` of it; and the shrinker's commit of a child page older than
/// the root above it (the shrinker zaps the root first, leaving its child
/// valid and unlinked; the new root links the same child again), followed by
/// an `invalidate_range` that finds no spte to unmap and so flushes nothing.
pub fn tlb_cases(mutant: Option<Mutant>, report: &mut dyn FnMut(&str)) -> ScenarioResult {
    let mut result = ScenarioResult::default();
    let slot0 = |vm: &Vm| -> Result<(), MmuError> {
        vm.create_memslot(SlotSpec {
            id: SlotId(0),
            base_gfn: Gfn(0),
            npages: 4,
            userspace_addr: Hva(BASE),
        })?;
        enter(vm)
    };
    let gfn1 = (Hva(BASE + PAGE), Hva(BASE + 2 * PAGE));
    let invalidate: [(&str, &Step<'_>); 4] = [
        ("create slot 0", &slot0),
        ("vCPU 0 fills its TLB", &fill),
        ("invalidate_range of gfn 1", &|vm| {
            vm.invalidate_range(gfn1.0, gfn1.1).map(drop)
        }),
        ("vCPU 0 touches gfn 1", &touch),
    ];
    let change: [(&str, &Step<'_>); 4] = [
        ("create slot 0", &slot0),
        ("vCPU 0 fills its TLB", &fill),
        ("change_pte of gfn 1", &|vm| vm.change_pte(gfn1.0).map(drop)),
        ("vCPU 0 touches gfn 1", &touch),
    ];
    let commit: [(&str, &Step<'_>); 7] = [
        ("create slot 0", &slot0),
        ("fault gfn 1", &|vm| {
            vm.page_fault(V0, Gfn(1), true).map(drop)
        }),
        ("shrink the root", &|vm| {
            vm.shrink(1)?;
            enter(vm)
        }),
        ("vCPU 0 fills its TLB", &fill),
        ("shrink the older child", &|vm| vm.shrink(1).map(drop)),
        ("invalidate_range of gfn 1", &|vm| {
            vm.invalidate_range(gfn1.0, gfn1.1).map(drop)
        }),
        ("vCPU 0 touches gfn 1", &touch),
    ];
    let cases: [(Config, &[(&str, &Step<'_>)]); 3] = [
        (Config::model(), &invalidate),
        (Config::model(), &change),
        (one_address_space(), &commit),
    ];
    for (mut config, steps) in cases {
        config.mutant = mutant;
        let vm = match Vm::new(config) {
            Ok(vm) => vm,
            Err(e) => {
                result.problems.push(format!("Vm::new: {e}"));
                return result;
            }
        };
        for (name, run) in steps {
            result.steps += 1;
            let mut problem = |p: String| {
                report(&p);
                result.problems.push(p);
            };
            if let Err(e) = run(&vm) {
                problem(format!("{name}: {e}"));
            }
            if let Err(violations) = fastzap::check::audit(&vm) {
                for v in violations.into_iter().take(4) {
                    problem(format!("after {name}: {v}"));
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tlb_cases_pass_without_a_mutant() {
        let clean = tlb_cases(None, &mut |_| {});
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        assert_eq!(clean.steps, 15);
    }

    #[test]
    fn each_tlb_case_catches_its_twin_with_i4_first() {
        for m in [
            Mutant::InvalidateRangeWithoutFlush,
            Mutant::ChangePteWithoutFlush,
            Mutant::CommitWithoutFlush,
        ] {
            let r = tlb_cases(Some(m), &mut |_| {});
            let first = r
                .problems
                .first()
                .unwrap_or_else(|| panic!("{m:?} escaped"));
            assert!(
                first.contains("I4 no stale translation") && first.contains("TLB"),
                "{m:?}: {first}"
            );
        }
    }
}

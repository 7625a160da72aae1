//! # The scripted cases
//!
//! Two fixed sequences of calls on `Config::model()`, with the audit after
//! every step: [`scenario`], which goes over every operation once, and
//! [`move_case`], bug 10's sequential case. The native check
//! `audit-scenario` runs the first on each MMU ([`scenario_on`]; the audit on
//! the shadow MMU only); the child processes that run a mutant
//! ([`crate::child`]) run both on the shadow MMU, whose mutants they are.

use fastzap::checking::Mutant;
use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, Hva, Mmu, MmuError, SlotId, SlotSpec, Translation,
    VcpuId, Vm,
};

use crate::mmu;

/// The result of a scripted scenario: steps run, and what went wrong.
#[derive(Debug, Default)]
pub struct ScenarioResult {
    /// Steps run.
    pub steps: u64,
    /// Violations and unexpected errors, with the step that showed them.
    pub problems: Vec<String>,
}

/// A scripted scenario on `Config::model()` (4 gfns, 2-bit generation):
/// slots, faults in both address spaces, MMIO, the fast and the eager zap,
/// faults on an obsolete root, every notifier, the shrinker, MOVE, DELETE with
/// both strategies, generation wraparound. The audit runs after every step.
pub fn scenario(mutant: Option<Mutant>) -> ScenarioResult {
    scenario_on(Mmu::Shadow, mutant)
}

/// [`scenario`] on `mmu`. Its second DELETE is the seed's v3 where `mmu` has
/// it, else the last deletion `mmu` has ([`mmu::deletions`]). The audit after
/// every step is the shadow MMU's ([`mmu::shadow_internals`]): on another MMU
/// every call must succeed and the drain settle.
pub fn scenario_on(mmu: Mmu, mutant: Option<Mutant>) -> ScenarioResult {
    scenario_reporting_on(mmu, mutant, &mut |_| {})
}

/// [`scenario`], calling `report` with each problem as soon as it is found (a
/// mutant may corrupt memory and crash the process before the end).
pub fn scenario_reporting(mutant: Option<Mutant>, report: &mut dyn FnMut(&str)) -> ScenarioResult {
    scenario_reporting_on(Mmu::Shadow, mutant, report)
}

fn scenario_reporting_on(
    mmu: Mmu,
    mutant: Option<Mutant>,
    report: &mut dyn FnMut(&str),
) -> ScenarioResult {
    let mut config = Config::model();
    config.mmu = mmu;
    config.mutant = mutant;
    let shadow = mmu::shadow_internals(mmu);
    let second_delete = mmu::deletion_for(mmu, DeletionStrategy::SeedV3, |n| n - 1);
    let mut result = ScenarioResult::default();
    let vm = match Vm::new(config) {
        Ok(vm) => vm,
        Err(e) => {
            result.problems.push(format!("Vm::new: {e}"));
            return result;
        }
    };
    let (v0, v1) = (VcpuId(0), VcpuId(1));
    let slot = |id: u16, base_gfn: u64, npages: u64, page: u64| SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base_gfn),
        npages,
        userspace_addr: Hva(0x10_0000 + page * 4096),
    };
    let mut step = |name: &str, run: &dyn Fn(&Vm) -> Result<(), MmuError>| {
        result.steps += 1;
        if let Err(e) = run(&vm) {
            report(&format!("{name}: {e}"));
            result.problems.push(format!("{name}: {e}"));
        }
        if !shadow {
            return;
        }
        if let Err(violations) = fastzap::check::audit(&vm) {
            for v in violations.into_iter().take(4) {
                report(&format!("after {name}: {v}"));
                result.problems.push(format!("after {name}: {v}"));
            }
        }
    };
    let access = |vm: &Vm, v: VcpuId, gfn: u64, write: bool| -> Result<(), MmuError> {
        for _ in 0..4 {
            match vm.translate(v, Gfn(gfn))? {
                Translation::RequestPending => {
                    vm.handle_requests(v)?;
                }
                Translation::Miss => {
                    if let Fault::Retry(_) = vm.page_fault(v, Gfn(gfn), write)? {
                        vm.handle_requests(v)?;
                    }
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    };
    let fill = |vm: &Vm| -> Result<(), MmuError> {
        for gfn in 0..4 {
            access(vm, v0, gfn, gfn % 2 == 0)?;
            access(vm, v1, gfn, false)?;
        }
        Ok(())
    };
    step("create slot 0", &|vm| vm.create_memslot(slot(0, 0, 2, 0)));
    step("create slot 1", &|vm| vm.create_memslot(slot(1, 2, 1, 8)));
    step("first accesses", &fill);
    step("fast zap", &|vm| vm.invalidate_zap_all_pages().map(drop));
    step("fault on the obsolete root", &|vm| {
        vm.page_fault(v0, Gfn(1), true).map(drop)
    });
    step("fault on the obsolete root (smm)", &|vm| {
        vm.page_fault(v1, Gfn(3), false).map(drop)
    });
    step("accesses after reload", &fill);
    step("young", &|vm| {
        vm.test_young(Hva(0x10_0000), Hva(0x10_0000 + 16 * 4096))?;
        vm.clear_flush_young(Hva(0x10_0000), Hva(0x10_0000 + 16 * 4096))
            .map(drop)
    });
    step("change_pte", &|vm| vm.change_pte(Hva(0x10_0000)).map(drop));
    step("accesses after change_pte", &fill);
    step("invalidate_range", &|vm| {
        vm.invalidate_range(Hva(0x10_0000), Hva(0x10_0000 + 4096))
            .map(drop)
    });
    step("accesses after invalidate_range", &fill);
    step("eager zap", &|vm| vm.zap_all().map(drop));
    step("fault on the zapped root", &|vm| {
        vm.page_fault(v0, Gfn(0), false).map(drop)
    });
    step("accesses after eager zap", &fill);
    step("shrink", &|vm| vm.shrink(1).map(drop));
    step("accesses after shrink", &fill);
    step("move slot 1", &|vm| vm.move_memslot(SlotId(1), Gfn(3)));
    step("accesses after move", &fill);
    step("delete slot 0 (merged 3.11)", &|vm| {
        vm.delete_memslot_with(SlotId(0), DeletionStrategy::Merged311)
    });
    step("accesses after delete", &fill);
    step("create slot 0 again", &|vm| {
        vm.create_memslot(slot(0, 0, 2, 4))
    });
    step("accesses after create", &fill);
    step("delete slot 0 (seed v3)", &|vm| {
        vm.delete_memslot_with(SlotId(0), second_delete)
    });
    step("accesses after delete", &fill);
    step("fault before the wrap", &|vm| access(vm, v0, 0, true));
    for _ in 0..4 {
        step("fast zap with the vCPUs out", &|vm| {
            vm.invalidate_zap_all_pages().map(drop)
        });
    }
    step(
        "fault on a root invalid a full generation cycle ago",
        &|vm| vm.page_fault(v0, Gfn(1), true).map(drop),
    );
    step("translate after the wrap", &|vm| {
        vm.translate(v0, Gfn(1)).map(drop)
    });
    for _ in 0..5 {
        step("fast zap (generation wraps)", &|vm| {
            vm.invalidate_zap_all_pages().map(drop)
        });
        step("accesses", &fill);
    }
    if !vm.drain(64) {
        result
            .problems
            .push(format!("drain did not settle: {:?}", vm.counts()));
    }
    result
}

/// One step of a scripted case.
type Step<'a> = dyn Fn(&Vm) -> Result<(), MmuError> + 'a;

/// Bug 10's sequential case: a slot of two pages at gfn 0, a write fault on
/// gfn 1, the slot MOVEd to gfn 1, a fault on gfn 2 (the moved slot's second
/// page); the audit after every step. A MOVE that keeps the old rmap and
/// lpage_info arrays leaves the new mapping on the old slot's rmap (I1).
pub fn move_case(mutant: Option<Mutant>) -> ScenarioResult {
    let mut config = Config::model();
    config.mutant = mutant;
    let mut result = ScenarioResult::default();
    let vm = match Vm::new(config) {
        Ok(vm) => vm,
        Err(e) => {
            result.problems.push(format!("Vm::new: {e}"));
            return result;
        }
    };
    let enter = |vm: &Vm| -> Result<(), MmuError> {
        for v in 0..2 {
            vm.handle_requests(VcpuId(v))?;
        }
        Ok(())
    };
    let steps: [(&str, &Step<'_>); 5] = [
        ("create slot 0", &|vm| {
            vm.create_memslot(SlotSpec {
                id: SlotId(0),
                base_gfn: Gfn(0),
                npages: 2,
                userspace_addr: Hva(0x10_0000),
            })?;
            enter(vm)
        }),
        ("write fault gfn 1", &|vm| {
            vm.page_fault(VcpuId(0), Gfn(1), true).map(drop)
        }),
        ("move slot 0 to gfn 1", &|vm| {
            vm.move_memslot(SlotId(0), Gfn(1))?;
            enter(vm)
        }),
        ("fault gfn 2", &|vm| {
            vm.page_fault(VcpuId(0), Gfn(2), false).map(drop)
        }),
        ("drain", &|vm| {
            vm.drain(8);
            Ok(())
        }),
    ];
    for (name, run) in steps {
        result.steps += 1;
        if let Err(e) = run(&vm) {
            result.problems.push(format!("{name}: {e}"));
        }
        if let Err(violations) = fastzap::check::audit(&vm) {
            for v in violations.into_iter().take(4) {
                result.problems.push(format!("after {name}: {v}"));
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_runs_on_every_mmu() {
        for mmu in Mmu::ALL {
            let r = scenario_on(mmu, None);
            assert!(r.steps > 40, "{mmu:?}: {} steps", r.steps);
            assert!(r.problems.is_empty(), "{mmu:?}: {:?}", r.problems);
        }
    }

    /// The audit is the shadow MMU's: a mutant it exposes on the shadow MMU
    /// goes unreported on the TDP MMU's run, which skips it. (Until the TDP
    /// MMU exists, `Vm::new` builds a shadow VM whatever `Config::mmu` says.)
    #[test]
    fn the_audit_runs_on_the_shadow_mmu_only() {
        let m = Some(Mutant::SkipRmapForObsolete);
        assert!(!scenario_on(Mmu::Shadow, m).problems.is_empty());
        let tdp = scenario_on(Mmu::Tdp, m).problems;
        assert!(!tdp.iter().any(|p| p.starts_with("after ")), "{tdp:?}");
    }

    #[test]
    fn the_move_case_passes_without_the_mutant_and_fails_with_it() {
        let clean = move_case(None);
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        let bug = move_case(Some(Mutant::MoveReusesMetadata));
        assert!(
            bug.problems.iter().any(|p| p.contains("I1 rmap integrity")),
            "{:?}",
            bug.problems
        );
    }
}

//! The end of a stress run: quiesce the vCPUs, audit the quiescent VM, drain
//! the reclaimer and check that the counters settled.

use fastzap::{VcpuId, Vm};

use super::StressReport;

/// Quiesce, audit, drain and check the counters.
pub(super) fn finish(vm: &Vm, report: &mut StressReport) {
    for v in 0..vm.config().vcpus {
        if let Err(e) = vm.handle_requests(VcpuId(v)) {
            report
                .violations
                .push(format!("final handle_requests: {e}"));
        }
    }
    // The audit and the counters below are the shadow MMU's own structures
    // (crate::mmu::shadow_internals): shadow pages, rmaps, descriptors. On
    // the TDP MMU the drain's verdict is what remains to check.
    let shadow = crate::mmu::shadow_internals(vm.config().mmu);
    if shadow {
        if let Err(violations) = fastzap::check::audit(vm) {
            report
                .violations
                .extend(violations.iter().take(32).map(|v| format!("audit: {v}")));
        }
    } else {
        // The audit reads the shadow MMU's structures; what the protocol's
        // run-time checks recorded on any MMU is reported here (the audit
        // reports it on the shadow MMU).
        report.violations.extend(
            vm.runtime_violations()
                .iter()
                .take(32)
                .map(|v| format!("run time: {v}")),
        );
    }
    report.settled = vm.drain(10_000);
    let counts = vm.counts();
    report.counts = counts;
    if !report.settled {
        report
            .violations
            .push(format!("drain did not settle the counters: {counts:?}"));
    }
    if !shadow {
        return;
    }
    if counts.pages.retired != counts.pages.freed || counts.descs.retired != counts.descs.freed {
        report.violations.push(format!(
            "retired != freed after drain: pages {:?}, descs {:?}",
            counts.pages, counts.descs
        ));
    }
    let pages = vm.shadow_pages() as u64;
    if counts.pages.live() != pages {
        report.violations.push(format!(
            "{} pages live (allocated - freed) but {pages} in the page table",
            counts.pages.live()
        ));
    }
    let slots = vm.slot_count() as u64;
    if counts.rmaps.live() != slots {
        report.violations.push(format!(
            "{} rmaps live (allocated - freed) for {slots} slots",
            counts.rmaps.live()
        ));
    }
}

#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! Helpers shared by the native-lane test files (`mod common;`).
#![allow(dead_code)]

use fastzap::check::*;
use fastzap::*;

/// Bytes per guest page.
pub const PAGE: u64 = PAGE_SIZE;

/// A slot spec whose host range is private to `id`: 16 MiB apart per id.
pub fn slot(id: u16, base_gfn: u64, npages: u64) -> SlotSpec {
    SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base_gfn),
        npages,
        userspace_addr: Hva(0x100_0000 * (u64::from(id) + 1)),
    }
}

/// The host virtual address backing `gfn` in `spec`.
pub fn hva(spec: &SlotSpec, gfn: u64) -> Hva {
    Hva(spec.userspace_addr.0 + (gfn - spec.base_gfn.0) * PAGE)
}

/// The pfn the host backs `hva` with before any remap (identity on the page).
pub fn initial_pfn(hva: Hva) -> Pfn {
    Pfn(hva.0 >> 12)
}

/// A VM with `cfg`, panicking (in a test) if the config is refused.
pub fn vm(cfg: Config) -> Vm {
    Vm::new(cfg).expect("test config is valid")
}

/// `handle_requests` on every vCPU, as each would before entering the guest,
/// until none has a request pending: one vCPU dropping an invalid root flushes
/// every TLB, which is a new request for the others. Bounded: panics if the
/// requests do not settle in a few rounds.
#[track_caller]
pub fn enter_all(vm: &Vm) {
    for _ in 0..4 {
        for v in 0..vm.config().vcpus {
            vm.handle_requests(VcpuId(v)).expect("vcpu exists");
        }
        if (0..vm.config().vcpus).all(|v| vm.pending_requests(VcpuId(v)) == Ok(Requests::NONE)) {
            return;
        }
    }
    panic!("requests did not settle");
}

/// Asserts the full audit passes, printing every violation if not.
#[track_caller]
pub fn assert_audit(vm: &Vm) {
    if let Err(found) = fastzap::check::audit(vm) {
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        panic!("audit failed:\n{}", text.join("\n"));
    }
}

/// Asserts that grace periods settle every retired object and that nothing
/// retired was left unfreed.
#[track_caller]
pub fn assert_drains(vm: &Vm) {
    let found = fastzap::checking::check_reclamation_completes(vm, 64);
    if let Some(first) = found.first() {
        fail_as(vm, first.invariant, first.detail.clone());
    }
}

/// The number of events whose `what` satisfies `pred`.
pub fn count_events(vm: &Vm, pred: impl Fn(&What) -> bool) -> usize {
    vm.events().iter().filter(|e| pred(&e.what)).count()
}

/// The invariant a failed outcome check breaks, reported as such: if the audit
/// finds violations, they are the report (the invariant fires first);
/// otherwise the outcome itself is reported under `invariant`.
#[track_caller]
pub fn fail_as(vm: &Vm, invariant: Invariant, what: String) -> ! {
    match fastzap::check::audit(vm) {
        Err(found) => {
            let text: Vec<String> = found.iter().map(ToString::to_string).collect();
            panic!("{what}; the audit found:\n{}", text.join("\n"))
        }
        Ok(()) => panic!("{}: {what} (the audit saw nothing)", invariant.name()),
    }
}

/// Asserts the VM holds `expected` shadow pages. A page count off is a page
/// lifetime (I3) or retention (I8) failure: the audit reports it first.
#[track_caller]
pub fn assert_pages(vm: &Vm, expected: usize) {
    let pages = vm.shadow_pages();
    if pages != expected {
        fail_as(
            vm,
            Invariant::I3,
            format!("{pages} shadow pages, expected {expected}"),
        );
    }
}

/// Asserts what `translate` returns. A wrong answer is a stale (I4) or a
/// missing translation: the audit reports any invariant it breaks first.
#[track_caller]
pub fn assert_translate(vm: &Vm, vcpu: VcpuId, gfn: Gfn, expected: Translation) {
    let got = vm.translate(vcpu, gfn).expect("a valid translate");
    if got != expected {
        fail_as(
            vm,
            Invariant::I4,
            format!(
                "translate(vcpu{}, gfn {gfn}) = {got:?}, expected {expected:?}",
                vcpu.0
            ),
        );
    }
}

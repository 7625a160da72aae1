#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! Helpers shared by the native-lane test files (`mod common;`).
#![allow(dead_code)]

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
    if let Err(found) = fastzap::audit(vm) {
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        panic!("audit failed:\n{}", text.join("\n"));
    }
}

/// Asserts that grace periods settle every retired object and that nothing
/// retired was left unfreed.
#[track_caller]
pub fn assert_drains(vm: &Vm) {
    assert!(vm.drain(64), "counters did not settle: {:?}", vm.counts());
    let c = vm.counts();
    assert_eq!(c.pages.retired, c.pages.freed, "{c:?}");
    assert_eq!(c.descs.retired, c.descs.freed, "{c:?}");
    assert_eq!(c.rmaps.retired, c.rmaps.freed, "{c:?}");
}

/// The number of events whose `what` satisfies `pred`.
pub fn count_events(vm: &Vm, pred: impl Fn(&What) -> bool) -> usize {
    vm.events().iter().filter(|e| pred(&e.what)).count()
}

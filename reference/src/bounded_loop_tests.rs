//! # The bounded request loop, in recorded histories
//!
//! `handle_requests` goes round its request loop a few times at most
//! (`handle_requests_claimed` in core/src/request.rs). A history the shuttle
//! lane recorded from S1 (`lin-s1`, the audit points off) shows what that
//! bound lets a caller see: vCPU 1's handle_requests, overlapping the
//! zapper's second fast invalidation, spent its last round on the reload
//! that invalidation requested; it freed its root, which the invalidation
//! had made obsolete and which was the last user of it, and the commit
//! flushed every TLB, vCPU 1's own after its last look. So vCPU 0, which had
//! handled every request, translated to `RequestPending`, and vCPU 1's next
//! handle_requests found the flush.

use fastzap::{
    Config, Fault, Gfn, Handled, Hva, Pfn, Requests, RetryReason, SlotId, SlotSpec, Translation,
    VcpuId, ZapStats,
};

use crate::linearizability::{History, Limits, Record, check};
use crate::op::{Op, Outcome};

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

fn config() -> Config {
    let mut config = Config::model();
    config.vcpus = 2;
    config.address_spaces = 1;
    config
}

fn handle(
    actor: &str,
    call: u64,
    ret: u64,
    v: VcpuId,
    requests: Requests,
    reloaded: bool,
) -> Record {
    let handled = Handled { requests, reloaded };
    Record::at(
        actor,
        call,
        ret,
        Op::HandleRequests(v),
        Outcome::Handled(Ok(handled)),
    )
}

fn fault(actor: &str, call: u64, ret: u64, v: VcpuId, gfn: u64, write: bool, f: Fault) -> Record {
    let op = Op::PageFault {
        vcpu: v,
        gfn,
        write,
    };
    Record::at(actor, call, ret, op, Outcome::Fault(Ok(f)))
}

fn pending(actor: &str, call: u64, ret: u64, v: VcpuId, r: Requests) -> Record {
    Record::at(
        actor,
        call,
        ret,
        Op::PendingRequests(v),
        Outcome::Requests(Ok(r)),
    )
}

fn translate(actor: &str, call: u64, ret: u64, v: VcpuId, t: Translation) -> Record {
    let op = Op::Translate { vcpu: v, gfn: 1 };
    Record::at(actor, call, ret, op, Outcome::Translation(Ok(t)))
}

fn zap(call: u64, ret: u64) -> Record {
    Record::at(
        "zapper",
        call,
        ret,
        Op::ZapAllFast,
        Outcome::Zap(Ok(ZapStats::default())),
    )
}

fn mapped(pfn: u64) -> Fault {
    Fault::Mapped { pfn: Pfn(pfn) }
}

fn both() -> Requests {
    Requests::RELOAD | Requests::TLB_FLUSH
}

const OBSOLETE: Fault = Fault::Retry(RetryReason::ObsoleteRoot);

fn slot() -> Record {
    Record::at(
        "main",
        0,
        1,
        Op::CreateSlot(SlotSpec {
            id: SlotId(0),
            base_gfn: Gfn(0),
            npages: 4,
            userspace_addr: Hva(0x10_0000),
        }),
        Outcome::Unit(Ok(())),
    )
}

/// The recorded history is linearizable: vCPU 1's t18..t28 handle_requests
/// goes after vCPU 0's look at t25..t26 and leaves a flush for both.
#[test]
fn a_last_round_reload_leaves_its_own_flush_pending() {
    let h = vec![
        slot(),
        handle("main", 2, 3, V0, Requests::RELOAD, true),
        handle("main", 4, 5, V1, Requests::RELOAD, true),
        fault("main", 6, 7, V0, 0, true, mapped(0x100)),
        zap(8, 19),
        zap(20, 23),
        fault("vcpu0", 9, 11, V0, 1, true, OBSOLETE),
        pending("vcpu0", 12, 13, V0, both()),
        handle("vcpu0", 14, 21, V0, both(), true),
        fault("vcpu0", 22, 24, V0, 2, false, mapped(0x102)),
        handle("vcpu0", 25, 26, V0, Requests::NONE, false),
        fault("vcpu0", 27, 30, V0, 3, true, mapped(0x103)),
        translate("vcpu0", 31, 34, V0, Translation::RequestPending),
        fault("vcpu1", 10, 15, V1, 2, true, OBSOLETE),
        pending("vcpu1", 16, 17, V1, both()),
        handle("vcpu1", 18, 28, V1, both(), true),
        fault("vcpu1", 29, 32, V1, 2, false, mapped(0x102)),
        handle("vcpu1", 33, 35, V1, Requests::TLB_FLUSH, false),
        fault("vcpu1", 36, 37, V1, 3, true, mapped(0x103)),
        translate("vcpu1", 38, 39, V1, Translation::Miss),
    ];
    check(&config(), &History::new(h), Limits::default()).expect("linearizable");
}

/// vCPU 1 reloads (t8..t12) after two fast invalidations, the second at
/// `second_zap`; `last` is what its next handle_requests finds.
fn reload_then_look(second_zap: (u64, u64), last: Requests) -> History {
    History::new(vec![
        slot(),
        handle("vcpu1", 2, 3, V1, Requests::RELOAD, true),
        zap(4, 5),
        zap(second_zap.0, second_zap.1),
        handle("vcpu1", 8, 12, V1, both(), true),
        handle("vcpu1", 13, 14, V1, last, false),
    ])
}

/// Not anything goes: when both invalidations returned before vCPU 1's
/// reload was invoked, no request can come between the rounds of its loop,
/// which handles the flush its own commit made, and nothing is left. (An
/// allowance for every reload, overlapped or not, fails this test.)
#[test]
fn a_reload_with_no_overlapping_writer_leaves_nothing() {
    let history = reload_then_look((6, 7), Requests::NONE);
    check(&config(), &history, Limits::default()).expect("linearizable");
    let history = reload_then_look((6, 7), Requests::TLB_FLUSH);
    let err = check(&config(), &history, Limits::default()).expect_err("no flush is left");
    assert!(err.to_string().contains("no request was pending"), "{err}");
}

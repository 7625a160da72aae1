//! # TDP zaps that yield, in recorded histories
//!
//! The TDP MMU's zaps hold `mmu_lock` for write but yield at lock breaks
//! (`tdp_mmu_zap_leafs` with `may_block`, core/src/tdp/notifier.rs and
//! core/src/tdp/memslot.rs). Histories the shuttle lane recorded on the TDP
//! MMU show what another caller sees meanwhile.
//!
//! `lin-s10-tdp`: the notifier's `invalidate_range` over slot 0 yields, and
//! a DELETE of slot 0 (invalidate-all and the zap of the invalid root, under
//! the read lock) takes one of the two leaves first: the notifier counts 1.
//!
//! `lin-s3-tdp`: a quirk-off DELETE of slot 0 (`kvm_mmu_zap_memslot`)
//! flushes at a lock break; vCPU 0 handles the flush, then translates gfn 1,
//! which the zap has not reached yet: still its old mapping, before the
//! DELETE returned.

use fastzap::{
    Config, DeletionStrategy, Fault, Gfn, Handled, Hva, Pfn, Requests, RetryReason, SlotId,
    SlotSpec, Translation, VcpuId,
};

use crate::linearizability::{History, Limits, Record, check};
use crate::op::{Op, Outcome};

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

fn config() -> Config {
    spaces(1)
}

fn spaces(address_spaces: u8) -> Config {
    let mut config = Config::model();
    config.vcpus = 2;
    config.address_spaces = address_spaces;
    config
}

fn create(call: u64, id: u16, base: u64, hva: u64) -> Record {
    let spec = SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base),
        npages: 2,
        userspace_addr: Hva(hva),
    };
    Record::at(
        "main",
        call,
        call + 1,
        Op::CreateSlot(spec),
        Outcome::Unit(Ok(())),
    )
}

fn delete(call: u64, ret: u64, strategy: DeletionStrategy) -> Record {
    let op = Op::DeleteSlot {
        id: SlotId(0),
        strategy: Some(strategy),
    };
    Record::at("memslot", call, ret, op, Outcome::Unit(Ok(())))
}

fn handle(actor: &str, call: u64, v: VcpuId, requests: Requests, reloaded: bool) -> Record {
    let handled = Handled { requests, reloaded };
    let outcome = Outcome::Handled(Ok(handled));
    Record::at(actor, call, call + 1, Op::HandleRequests(v), outcome)
}

fn fault(actor: &str, call: u64, v: VcpuId, gfn: u64, write: bool, f: Fault) -> Record {
    let op = Op::PageFault {
        vcpu: v,
        gfn,
        write,
    };
    Record::at(actor, call, call + 1, op, Outcome::Fault(Ok(f)))
}

fn mapped(pfn: u64) -> Fault {
    Fault::Mapped { pfn: Pfn(pfn) }
}

fn translate(actor: &str, call: u64, v: VcpuId, gfn: u64, t: Translation) -> Record {
    let op = Op::Translate { vcpu: v, gfn };
    Record::at(actor, call, call + 1, op, Outcome::Translation(Ok(t)))
}

fn translated(pfn: u64, writable: bool) -> Translation {
    Translation::Mapped {
        pfn: Pfn(pfn),
        writable,
    }
}

/// The `lin-s10-tdp` history, with the DELETE over `delete`.
fn s10(delete_at: (u64, u64)) -> History {
    let unmap = Op::InvalidateRange {
        start: 0x10_0000,
        end: 0x10_2000,
    };
    History::new(vec![
        create(0, 0, 0, 0x10_0000),
        create(2, 1, 2, 0x20_0000),
        handle("main", 4, V0, Requests::RELOAD, true),
        handle("main", 6, V1, Requests::RELOAD, true),
        fault("main", 8, V0, 0, true, mapped(256)),
        fault("main", 10, V0, 1, true, mapped(257)),
        fault("main", 12, V0, 2, true, mapped(512)),
        fault("vcpu0", 14, V0, 0, true, mapped(256)),
        fault("vcpu0", 16, V0, 1, true, mapped(257)),
        handle("vcpu0", 18, V0, Requests::NONE, false),
        translate("vcpu0", 20, V0, 0, translated(256, true)),
        Record::at("notifier", 22, 30, unmap, Outcome::Count(Ok(1))),
        translate("vcpu1", 23, V1, 2, Translation::RequestPending),
        handle("vcpu1", 25, V1, Requests::TLB_FLUSH, false),
        fault(
            "vcpu1",
            27,
            V1,
            2,
            false,
            Fault::Retry(RetryReason::NotifierRace),
        ),
        delete(delete_at.0, delete_at.1, DeletionStrategy::Merged311),
    ])
}

/// The recorded history is linearizable: the DELETE overlaps the notifier,
/// and took one of its two leaves at a lock break.
#[test]
fn a_yielding_notifier_may_count_what_an_overlapping_delete_left() {
    check(&config(), &s10((29, 31)), Limits::default()).expect("linearizable");
}

/// Not anything goes: with the DELETE invoked after the notifier returned,
/// nothing could take the leaves, and counting one of two is refused.
#[test]
fn a_notifier_with_no_overlapping_zap_counts_every_certain_leaf() {
    let err = check(&config(), &s10((31, 32)), Limits::default()).expect_err("a leaf uncounted");
    assert!(
        err.to_string().contains("unmapped 1, expected 2..=2"),
        "{err}"
    );
}

/// The `lin-s3-tdp` history up to vCPU 0's translate of gfn 1, with the
/// quirk-off DELETE over `delete_at`; `notifiers` adds what the notifier and
/// vCPU 1 did after it.
fn s3(delete_at: (u64, u64), notifiers: bool) -> Vec<Record> {
    let young = |call, start, end, op_young: bool, clear: bool| {
        let op = if clear {
            Op::ClearFlushYoung { start, end }
        } else {
            Op::TestYoung { start, end }
        };
        Record::at("notifier", call, call + 1, op, Outcome::Young(Ok(op_young)))
    };
    let mut h = vec![
        create(0, 0, 0, 0x10_0000),
        create(2, 1, 2, 0x20_0000),
        handle("main", 4, V0, Requests::RELOAD, true),
        handle("main", 6, V1, Requests::RELOAD, true),
        fault("main", 8, V0, 0, true, mapped(256)),
        fault("main", 10, V0, 1, false, mapped(257)),
        fault("main", 12, V1, 0, false, mapped(256)),
        fault("main", 14, V0, 2, false, mapped(512)),
        translate("main", 16, V0, 0, translated(256, true)),
        delete(delete_at.0, delete_at.1, DeletionStrategy::SlotOnlyQuirkOff),
        fault(
            "vcpu0",
            19,
            V0,
            1,
            true,
            Fault::Retry(RetryReason::InvalidSlot),
        ),
        handle("vcpu0", 21, V0, Requests::TLB_FLUSH, false),
        translate("vcpu0", 23, V0, 1, translated(257, false)),
    ];
    if notifiers {
        h.extend([
            translate("vcpu1", 25, V1, 0, Translation::RequestPending),
            handle("vcpu1", 27, V1, Requests::TLB_FLUSH, false),
            translate("vcpu1", 29, V1, 0, translated(256, false)),
            young(31, 0x10_0000, 0x10_2000, true, true),
            young(33, 0x10_0000, 0x10_2000, false, false),
        ]);
    }
    h
}

/// The recorded history is linearizable: the DELETE's zap had not reached
/// gfn 1 (nor gfn 0 of vCPU 1's address space) when the vCPUs translated.
#[test]
fn a_yielding_slot_zap_may_leave_a_leaf_mapped_after_its_flush() {
    check(
        &spaces(2),
        &History::new(s3((18, 35), true)),
        Limits::default(),
    )
    .expect("linearizable");
}

/// Not anything goes: once the DELETE returned, its zap reached every leaf
/// of the slot, and the old mapping is refused (I4).
#[test]
fn a_returned_slot_zap_leaves_no_leaf_mapped() {
    let history = History::new(s3((18, 22), false));
    let err = check(&spaces(2), &history, Limits::default()).expect_err("a stale mapping");
    let refused = "translate(vcpu0, gfn 1) = Mapped { pfn: Pfn(257), writable: false }";
    assert!(err.to_string().contains(refused), "{err}");
}

/// Not after an unmap either: an `invalidate_range` over the slot placed
/// after the DELETE (the INVALID slot still reaches its pages) removes the
/// leaves the zap had not reached, and they can no longer be translated.
#[test]
fn an_unmap_removes_what_a_yielding_slot_zap_left() {
    let mut records = s3((18, 35), false);
    let last = records.pop().expect("the translate");
    let unmap = Op::InvalidateRange {
        start: 0x10_0000,
        end: 0x10_2000,
    };
    records.push(Record::at("notifier", 22, 23, unmap, Outcome::Count(Ok(0))));
    records.push(Record {
        call: 24,
        ret: 25,
        ..last
    });
    let history = History::new(records);
    let err = check(&spaces(2), &history, Limits::default()).expect_err("a stale mapping");
    let refused = "translate(vcpu0, gfn 1) = Mapped { pfn: Pfn(257), writable: false }";
    assert!(err.to_string().contains(refused), "{err}");
}

//! # The races of `SPEC.md`, one function per scenario
//!
//! Each scenario is one model execution: it builds a tiny VM (2 sptes per page,
//! 2 levels, 4 gfns), sets up the state the race needs on the main thread, spawns
//! the racing actors through the facade (loom or shuttle threads, or std threads
//! natively), joins them, and ends with [`finish`](crate::harness::finish): the full audit, the
//! observations its threads made, and a drain. The same functions run under
//! loom (narrow: two actors, crossbeam-epoch, or three with the small EBR) and
//! under shuttle (wide: more actors and operations).
//!
//! Each scenario also names coverage marks: interleavings it is about, counted
//! in the [`Tally`], whose floors the tests assert. A scenario whose race never
//! happens is a vacuous scenario, and its test fails.
//!
//! The scenarios live by family, one file each under `scenarios/`: faults
//! and reloads (`fault.rs`), lockless readers and reclamation (`reclaim.rs`),
//! memslot deletes (`memslot.rs`), the MMIO generation (`mmio.rs`) and the
//! MMU notifiers (`notifier.rs`, and `s11c.rs`), the vCPU's TLB (`tlb.rs`), and the
//! slot-only DELETEs of 2019 and after (`slot2019.rs`, and against TLBs
//! `slot2019_tlb.rs`). This module holds what they
//! share, the [`Scenario`] record and the lists ([`ALL`], [`FINDINGS`]), and
//! re-exports every scenario.

use fastzap::VcpuId;
use fastzap::check::{Actor, Event, Invariant, What};
use fastzap::checking::sync::{Arc, JoinHandle, spawn};

use crate::harness::{Params, World};
use crate::tally::Tally;

mod fault;
mod memslot;
mod mmio;
mod notifier;
mod reclaim;
mod s11c;
mod slot2019;
mod slot2019_tlb;
mod tlb;

pub use fault::{
    S1, S5, S6, S8, s1_fault_vs_invalidate_all, s5_obsolete_root_freed_by_free_roots,
    s6_fault_into_passed_root, s8_generation_wrap,
};
pub use memslot::{
    S3, S3S, S10, s3_seed_v3_delete_vs_fault_and_aging, s3s_seed_v3_delete_vs_shrinker,
    s10_merged_delete_vs_fault_and_notifier,
};
pub use mmio::{
    S9, S9F, S9W, s9_mmio_generation, s9f_fault_between_wrap_zap_and_publish,
    s9w_mmio_generation_wrap,
};
pub use notifier::{S4, S11, s4_notifier_in_lock_break, s11_fault_vs_invalidate_range};
pub use reclaim::{
    S2, S2B, S7, s2_translate_vs_reclaim, s2b_translate_vs_per_batch_commit, s7_shrinker_vs_zap,
};
pub use s11c::{S11C, s11c_fault_vs_change_pte_and_aging};
pub use slot2019::{
    S2019, S2019F, S2019Q, s2019_slot_only_delete_vs_vcpu, s2019f_flushing_delete_vs_vcpu,
    s2019q_quirk_off_delete_vs_vcpu,
};
pub use slot2019_tlb::{
    S2019FL, S2019FV, S2019L, S2019QL, S2019QV, S2019V, s2019fl_large_page, s2019fv_two_vcpus,
    s2019l_large_page, s2019ql_large_page, s2019qv_two_vcpus, s2019v_two_vcpus,
};
pub use tlb::{S12, s12_tlb_vs_invalidate_range};

/// A scenario: its name, what it checks, its coverage marks, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name (`s1`...), used for counterexample files.
    pub name: &'static str,
    /// One line: the race.
    pub race: &'static str,
    /// The invariants it asserts (besides the full audit every execution runs).
    pub invariants: &'static [Invariant],
    /// Names of its coverage marks, by index.
    pub marks: &'static [&'static str],
    /// One execution.
    pub run: fn(&Params, &Tally),
}

/// Every scenario, in order.
pub const ALL: &[Scenario] = &[
    S1, S2, S2B, S3, S3S, S4, S5, S6, S7, S8, S9, S9W, S10, S11, S11C, S12, S2019, S2019F, S2019Q,
    S2019V, S2019FV, S2019QV, S2019L, S2019FL, S2019QL,
];

/// Scenarios that fail on the correct protocol: findings, reported.
pub const FINDINGS: &[Scenario] = &[S9F];

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// Runs an invalidation-like operation; a livelocked zap is an I6 violation
/// (the zap gave up after its step bound), any other error a bug in the model.
/// The zapper thread of most scenarios: one fast invalidate-all, checked.
fn spawn_fast_zapper(w: &Arc<World>) -> JoinHandle<()> {
    let w = w.clone();
    spawn(move || {
        zap_checked(
            &w,
            "invalidate_zap_all_pages",
            w.vm.invalidate_zap_all_pages(),
        )
    })
}

fn zap_checked(w: &World, what: &str, result: Result<fastzap::ZapStats, fastzap::MmuError>) {
    match result {
        Ok(_) => {}
        Err(e @ fastzap::MmuError::ZapLivelock { .. }) => {
            w.violate(Invariant::I6, format!("{what}: {e}"))
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Like [`zap_checked`] for operations returning `()`.
fn op_checked(w: &World, what: &str, result: Result<(), fastzap::MmuError>) {
    zap_checked(w, what, result.map(|()| fastzap::ZapStats::default()));
}

/// Whether `actor` took `mmu_lock` while the zapper was between a lock break
/// and its next acquisition.
fn locked_inside_lock_break(events: &[Event], actor: Actor) -> bool {
    let mut in_break = false;
    for event in events {
        match (&event.actor, &event.what) {
            (Actor::Zapper | Actor::Memslot, What::LockBreak { .. }) => in_break = true,
            (Actor::Zapper | Actor::Memslot, What::Lock) => in_break = false,
            (a, What::Lock) if *a == actor && in_break => return true,
            _ => {}
        }
    }
    false
}

/// Whether an event matching `pred` was logged after the first event matching
/// `after` (by anyone).
fn after(events: &[Event], after: impl Fn(&Event) -> bool, pred: impl Fn(&Event) -> bool) -> bool {
    events.iter().skip_while(|e| !after(e)).any(pred)
}

/// Whether an event matching `pred` was logged after the first event matching
/// `start` and before the last event of `actor`: inside that actor's operation.
fn during(
    events: &[Event],
    start: impl Fn(&Event) -> bool,
    actor: Actor,
    pred: impl Fn(&Event) -> bool,
) -> bool {
    let Some(first) = events.iter().position(start) else {
        return false;
    };
    let Some(last) = events.iter().rposition(|e| e.actor == actor) else {
        return false;
    };
    first < last && events[first..last].iter().any(pred)
}

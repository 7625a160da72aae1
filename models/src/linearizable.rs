//! # S1, S3, S4 and S10, recorded and checked for linearizability (shuttle lane)
//!
//! The audit says the VM's internal state is sound; this says that every
//! result a caller saw was allowed. Each scenario here is the wide shuttle
//! shape of its namesake in [`scenarios`](crate::scenarios), with every public
//! call, the setup's included, made through a [`Recorder`]. When the actors
//! have joined, the history is checked against the sequential reference
//! ([`fastzap_reference::linearizability::check`]) and then, unless a twin
//! asks to skip it, the execution ends with the usual [`finish`] (audit and
//! drain).
//!
//! The recorded scenarios observe a little more than the originals, so that the
//! checker has results to judge: a vCPU that saw `Retry(ObsoleteRoot)` reads
//! its pending requests (S1's I5 check, now judged by the reference), and the
//! vCPUs translate after reloading (S4, S10).

use fastzap::checking::sync::ghost::GhostMutex;
use fastzap::checking::sync::{Arc, JoinHandle, spawn};
use fastzap::{DeletionStrategy, Fault, RetryReason, SlotId, VcpuId};
use fastzap_reference::linearizability::{History, Limits, Witness, check};

use crate::harness::{Params, World, config, finish, slot, slot_hva, world};
use crate::history::{Caller, Recorder};
use crate::mailbox::set_last_failure;

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);
const VCPU_NAMES: [&str; 2] = ["vcpu0", "vcpu1"];

/// What the checks of many executions found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinStats {
    /// Histories checked (and found linearizable).
    pub histories: u64,
    /// Histories with at least two operations overlapping in real time.
    pub overlapping: u64,
    /// Overlapping pairs, summed over histories.
    pub overlapping_pairs: u64,
    /// Reference steps taken by the searches (orders explored).
    pub states: u64,
    /// Failed search states met again and skipped.
    pub memo_hits: u64,
    /// The most reference steps one history needed.
    pub max_states: u64,
    /// The most operations in one history.
    pub max_ops: u64,
}

impl LinStats {
    fn add(&mut self, history: &History, witness: &Witness) {
        let pairs = history.overlapping_pairs() as u64;
        self.histories += 1;
        self.overlapping += u64::from(pairs > 0);
        self.overlapping_pairs += pairs;
        self.states += witness.states;
        self.memo_hits += witness.memo_hits;
        self.max_states = self.max_states.max(witness.states);
        self.max_ops = self.max_ops.max(history.records.len() as u64);
    }
}

impl std::fmt::Display for LinStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} histories linearizable, {} with overlapping operations ({} overlapping pairs); \
             {} reference steps (orders explored), {} memo hits, at most {} steps and {} operations \
             in one history",
            self.histories,
            self.overlapping,
            self.overlapping_pairs,
            self.states,
            self.memo_hits,
            self.max_states,
            self.max_ops
        )
    }
}

/// What a run checks, and what its checks found.
#[derive(Debug)]
pub struct Checking {
    /// Run `finish` (audit and drain) after the linearizability check. A twin
    /// turns it off to show that the linearizability check alone catches its
    /// mutant.
    pub audit: bool,
    /// The statistics.
    pub stats: GhostMutex<LinStats>,
}

impl Checking {
    /// Linearizability, then the audit (`audit`) or not.
    pub fn new(audit: bool) -> Checking {
        Checking {
            audit,
            stats: GhostMutex::new(LinStats::default()),
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> LinStats {
        self.stats.with(|s| *s)
    }
}

/// A recorded scenario.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    /// The name of the scenario it records (`s1`...).
    pub name: &'static str,
    /// One execution.
    pub run: fn(&Params, &Checking),
}

/// S1 recorded.
pub const S1: Recorded = Recorded {
    name: "s1",
    run: s1_recorded,
};
/// S3 recorded.
pub const S3: Recorded = Recorded {
    name: "s3",
    run: s3_recorded,
};
/// S3 recorded with `change_pte` (a finding).
pub const S3_CHANGE_PTE: Recorded = Recorded {
    name: "s3",
    run: s3_recorded_with_change_pte,
};
/// S4 recorded.
pub const S4: Recorded = Recorded {
    name: "s4",
    run: s4_recorded,
};
/// S10 recorded.
pub const S10: Recorded = Recorded {
    name: "s10",
    run: s10_recorded,
};

/// One execution's world and recorder, shared by its actors.
#[derive(Debug)]
struct Run {
    w: Arc<World>,
    rec: Recorder,
}

impl Run {
    fn new(config: fastzap::Config) -> Arc<Run> {
        Arc::new(Run {
            w: world(config),
            rec: Recorder::new(),
        })
    }

    fn caller(&self, actor: &'static str) -> Caller<'_> {
        self.rec.actor(&self.w.vm, actor)
    }

    /// Spawns `actor` running `body` with its recorded view of the VM.
    fn spawn(
        self: &Arc<Run>,
        actor: &'static str,
        body: impl FnOnce(Caller<'_>) + Send + 'static,
    ) -> JoinHandle<()> {
        let run = self.clone();
        spawn(move || body(run.caller(actor)))
    }

    /// Joins `actors`, then [`Run::end`].
    fn join_and_end<const N: usize>(
        &self,
        actors: [JoinHandle<()>; N],
        scenario: &str,
        params: &Params,
        checking: &Checking,
    ) {
        for t in actors {
            t.join().expect("actor");
        }
        self.end(scenario, params, checking);
    }

    /// Checks the history, then (if `checking.audit`) ends with [`finish`].
    fn end(&self, scenario: &str, params: &Params, checking: &Checking) {
        let history = self.rec.history();
        match check(self.w.vm.config(), &history, Limits::default()) {
            Ok(witness) => checking.stats.with(|s| s.add(&history, &witness)),
            Err(e) => {
                let message = format!(
                    "linearizability violated in {scenario} ({} lane, {} MMU, mutant {:?}, reclaim {:?})\n{e}",
                    fastzap::checking::sync::LANE,
                    params.mmu.name(),
                    params.mutant,
                    params.reclaim
                );
                // What core did, one column per actor: where each request
                // was made and taken, to set beside the history.
                let events = self.w.vm.events();
                let message = format!(
                    "{message}\ntimeline of the execution, one column per actor:\n{}",
                    crate::timeline::render_columns(&events, &[])
                );
                set_last_failure(message.clone());
                panic!("{message}");
            }
        }
        if checking.audit {
            finish(&self.w, scenario, params);
        }
    }
}

/// Translates `gfn`, handles the requests, translates it again.
fn look_reload_look(c: Caller<'_>, vcpu: VcpuId, gfn: u64) {
    c.translate(vcpu, gfn).expect("translate");
    c.handle_requests(vcpu).expect("handle");
    c.translate(vcpu, gfn).expect("translate");
}

/// A fault; one that finds its root obsolete reads the pending requests,
/// which must include the reload (the reference checks it: S1's I5 check).
fn fault(c: Caller<'_>, vcpu: VcpuId, gfn: u64, write: bool) -> Fault {
    let fault = c.page_fault(vcpu, gfn, write).expect("valid fault");
    if fault == Fault::Retry(RetryReason::ObsoleteRoot) {
        c.pending_requests(vcpu).expect("valid vcpu");
    }
    fault
}

/// S1 recorded: two vCPUs fault, reload, fault and translate while the zapper
/// invalidates everything twice.
pub fn s1_recorded(params: &Params, checking: &Checking) {
    let run = Run::new(config(params, 2, 1));
    let main = run.caller("main");
    main.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in [V0, V1] {
        main.handle_requests(v).expect("handle");
    }
    main.page_fault(V0, 0, true).expect("fault");
    let zapper = run.spawn("zapper", |c| {
        for _ in 0..2 {
            let _ = c.invalidate_zap_all_pages();
        }
    });
    let [vcpu0, vcpu1] = [V0, V1].map(|vcpu| {
        run.spawn(VCPU_NAMES[vcpu.0], move |c| {
            fault(c, vcpu, 1 + vcpu.0 as u64, true);
            c.handle_requests(vcpu).expect("handle");
            fault(c, vcpu, 2, false);
            c.handle_requests(vcpu).expect("handle");
            fault(c, vcpu, 3, true);
            c.translate(vcpu, 1).expect("translate");
        })
    });
    run.join_and_end([zapper, vcpu0, vcpu1], S1.name, params, checking);
}

/// S3 recorded: the seed's v3 delete of slot 0 (unpublish, bump, unmap the
/// rmap outside `mmu_lock`, zap) while the notifier ages slot 0's host range
/// and tests it, vCPU 0 faults gfn 1 (and reloads and translates it), and
/// vCPU 1, in the other address space, translates gfn 0 before and after
/// reloading.
///
/// Without S3's `change_pte`: with it the correct protocol is not
/// linearizable (a finding). Core's `hva_targets` chains the published slots
/// and the zombies, and `delete_seed_v3` makes the slot a zombie before it
/// unpublishes it, so in between a notifier walks the slot's rmap twice:
/// `change_pte` rewrites every spte twice and returns twice the number of
/// sptes that map the page (and `invalidate_range` remaps the host page
/// twice). [`s3_recorded_with_change_pte`] shows it.
pub fn s3_recorded(params: &Params, checking: &Checking) {
    s3_with(params, checking, false);
}

/// S3 recorded with the notifier's `change_pte` too: not linearizable on the
/// correct protocol, a finding (see [`s3_recorded`]).
pub fn s3_recorded_with_change_pte(params: &Params, checking: &Checking) {
    s3_with(params, checking, true);
}

fn s3_with(params: &Params, checking: &Checking, change_pte: bool) {
    let run = Run::new(config(params, 2, 2));
    let main = run.caller("main");
    main.create_memslot(slot(0, 0, 2)).expect("slot");
    main.create_memslot(slot(1, 2, 2)).expect("slot");
    for v in [V0, V1] {
        main.handle_requests(v).expect("handle");
    }
    main.page_fault(V0, 0, true).expect("fault");
    main.page_fault(V0, 1, false).expect("fault");
    main.page_fault(V1, 0, false).expect("fault");
    main.page_fault(V0, 2, false).expect("fault");
    main.translate(V0, 0).expect("translate");
    let hva = slot_hva(0);
    let deletion = params.deletion(DeletionStrategy::SeedV3);
    let memslot = run.spawn("memslot", move |c| {
        let _ = c.delete_memslot_with(SlotId(0), deletion);
    });
    let notifier = run.spawn("notifier", move |c| {
        c.clear_flush_young(hva, hva + 2 * 4096)
            .expect("clear_flush_young");
        if change_pte {
            c.change_pte(hva).expect("change_pte");
        }
        c.test_young(hva, hva + 2 * 4096).expect("test_young");
    });
    let vcpu0 = run.spawn("vcpu0", |c| {
        if matches!(fault(c, V0, 1, true), Fault::Retry(_)) {
            c.handle_requests(V0).expect("handle");
        }
        c.translate(V0, 1).expect("translate");
    });
    let vcpu1 = run.spawn("vcpu1", |c| look_reload_look(c, V1, 0));
    run.join_and_end([memslot, notifier, vcpu0, vcpu1], S3.name, params, checking);
}

/// S4 recorded: one page per batch; the notifier invalidates gfn 2's host page
/// inside the zap's lock breaks, vCPU 1 faults gfn 3 and vCPU 0, which mapped
/// gfn 2, translates it before and after reloading.
pub fn s4_recorded(params: &Params, checking: &Checking) {
    let mut cfg = config(params, 2, 1);
    cfg.batch = 1;
    let run = Run::new(cfg);
    let main = run.caller("main");
    main.create_memslot(slot(0, 0, 4)).expect("slot");
    for v in [V0, V1] {
        main.handle_requests(v).expect("handle");
    }
    main.page_fault(V0, 0, true).expect("fault");
    main.page_fault(V0, 2, true).expect("fault");
    let hva = slot_hva(0) + 2 * 4096;
    let zapper = run.spawn("zapper", |c| {
        let _ = c.invalidate_zap_all_pages();
    });
    let notifier = run.spawn("notifier", move |c| {
        c.invalidate_range(hva, hva + 4096)
            .expect("invalidate_range");
    });
    let vcpu1 = run.spawn("vcpu1", |c| {
        fault(c, V1, 3, true);
        c.handle_requests(V1).expect("handle");
        c.translate(V1, 3).expect("translate");
    });
    let vcpu0 = run.spawn("vcpu0", |c| look_reload_look(c, V0, 2));
    run.join_and_end([zapper, notifier, vcpu1, vcpu0], S4.name, params, checking);
}

/// S10 recorded: the 3.11 delete of slot 0 while vCPU 0 faults on its gfns
/// (handling requests after a retry) and then translates gfn 0, the notifier
/// invalidates slot 0's host range, and vCPU 1 translates and faults gfn 2 of
/// slot 1.
///
/// With the model's 2-bit MMIO generation the delete's final publish
/// (generation 4) wraps it, so the delete bumps `mmu_valid_gen` twice, at two
/// instants (the checker's [`Placed::Bump`](fastzap_reference::linearizability::Placed::Bump)
/// event).
pub fn s10_recorded(params: &Params, checking: &Checking) {
    let run = Run::new(config(params, 2, 1));
    let main = run.caller("main");
    main.create_memslot(slot(0, 0, 2)).expect("slot");
    main.create_memslot(slot(1, 2, 2)).expect("slot");
    for v in [V0, V1] {
        main.handle_requests(v).expect("handle");
    }
    for gfn in 0..3 {
        main.page_fault(V0, gfn, true).expect("fault");
    }
    let hva = slot_hva(0);
    let deletion = params.deletion(DeletionStrategy::Merged311);
    let memslot = run.spawn("memslot", move |c| {
        let _ = c.delete_memslot_with(SlotId(0), deletion);
    });
    let vcpu0 = run.spawn("vcpu0", |c| {
        for gfn in [0, 1] {
            if matches!(fault(c, V0, gfn, true), Fault::Retry(_)) {
                c.handle_requests(V0).expect("handle");
            }
        }
        c.handle_requests(V0).expect("handle");
        c.translate(V0, 0).expect("translate");
    });
    let notifier = run.spawn("notifier", move |c| {
        c.invalidate_range(hva, hva + 2 * 4096)
            .expect("invalidate_range");
    });
    let vcpu1 = run.spawn("vcpu1", |c| {
        c.translate(V1, 2).expect("translate");
        c.handle_requests(V1).expect("handle");
        fault(c, V1, 2, false);
    });
    run.join_and_end(
        [memslot, vcpu0, notifier, vcpu1],
        S10.name,
        params,
        checking,
    );
}

//! # Litmus models: each fence pair of the protocol by itself
//!
//! The scenarios of [`scenarios`](crate::scenarios) run whole operations, and
//! there the halves of a fence pair are wrapped in other synchronization: the
//! epoch pin's own fence, `mmu_lock`, the vCPU claim. A missing fence can hide
//! behind them (a bug hunt removed the requester's `fence(SeqCst)` in
//! `make_all_cpus_request` and no lane noticed). Each model here drives the
//! two halves of one pair with the protocol's own functions
//! ([`fastzap::checking::litmus`]) and nothing in between, observes the
//! outcome the pair exists to forbid, and panics naming the invariant that
//! outcome breaks. `SPEC.md`'s "Litmus models" states each pair.
//!
//! | model | pair | forbidden outcome | invariant |
//! |---|---|---|---|
//! | [`l1_request_vs_walk`] | request bits + `fence(SeqCst)` + read `vcpu->mode` / `vcpu->mode` + `fence(SeqCst)` + read requests (Dekker) | the walk sees no request and the requester does not wait for it | I3 |
//! | [`l2_root_publication`] | root page built, `root_hpa` stored `Release` / `root_hpa` loaded `Acquire`, body read | the walker reads the root before its construction is visible | I3 |
//! | [`l2b_child_publication`] | child page built, the parent's non-leaf spte stored `Release` by a fault / the walk's `Acquire` spte load on another vCPU, child read | the walk reads the child before its construction is visible | I3 |
//! | [`l3_in_flux_vs_reload`] | in-flux flag, then the reload request (`fetch_or` release) / `take_requests` (acquire), then the flag | the vCPU takes the wrap's reload but reads the memslots as not in flux | I7 |
//!
//! Every execution counts itself in the [`Tally`] and marks which allowed
//! outcome it reached, so a test can assert that the model explored more than
//! one execution and reached each allowed outcome.

use fastzap::check::Invariant;
use fastzap::checking::Mutant;
use fastzap::checking::litmus;
use fastzap::checking::sync::{Arc, AtomicBool, Ordering, spawn};
use fastzap::{Config, Fault, Gfn, ReclaimBackend, Requests, Translation, VcpuId, Vm};

use crate::tally::{Flag, Tally};

const V0: VcpuId = VcpuId(0);
const V1: VcpuId = VcpuId(1);

/// The marks of [`l1_request_vs_walk`].
pub const L1_MARKS: &[&str] = &[
    "the walk saw the request; the requester did not wait",
    "the walk saw no request; the requester waited for it",
    "each saw the other: the walk stopped and the requester waited",
];

/// The marks of [`l2_root_publication`].
pub const L2_MARKS: &[&str] = &[
    "the walker saw no root yet",
    "the walker saw the new root, stamped with the current generation",
];

/// The marks of [`l2b_child_publication`].
pub const L2B_MARKS: &[&str] = &[
    "the walk found no child yet (Miss)",
    "the walk followed the new child to the fault's leaf (Mapped)",
];

/// The marks of [`l3_in_flux_vs_reload`].
pub const L3_MARKS: &[&str] = &[
    "the vCPU took no reload (its old root is obsolete: it faults nothing into it)",
    "the vCPU took the reload and saw the memslots in flux",
    "the vCPU saw the memslots in flux before the reload reached it",
];

/// The VM of one execution, shared by its threads. If the execution panics (a
/// twin caught), the VM is leaked instead of dropped: loom's report of a read
/// of a page that is not ordered after its construction leaves that page
/// in mid-read, and the VM's destructor, which poisons every page, would
/// panic again during the unwind and abort the test.
struct Held(Option<Arc<Vm>>);

impl Held {
    fn new(vm: Vm) -> Held {
        Held(Some(Arc::new(vm)))
    }

    fn share(&self) -> Held {
        Held(self.0.clone())
    }
}

impl std::ops::Deref for Held {
    type Target = Vm;
    fn deref(&self) -> &Vm {
        self.0.as_ref().expect("held until dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.0.take());
        }
    }
}

/// A one-vCPU VM of the model configuration, without the event log or audit
/// points (nothing here reads them), on the small EBR, with `mutant`.
fn vm(mutant: Option<Mutant>) -> Held {
    let mut config = Config::model();
    config.vcpus = 1;
    config.address_spaces = 1;
    config.reclaim = ReclaimBackend::small(2);
    config.events = false;
    config.audit_points = false;
    config.mutant = mutant;
    Held::new(Vm::new(config).expect("the model configuration is valid"))
}

/// L1, the request/`vcpu->mode` Dekker pair. The requester
/// (`kvm_flush_remote_tlbs` in `commit_zap_page`) runs `make_all_cpus_request`
/// and then frees the page (a facade atomic stands for its memory). The vCPU
/// announces a lockless walk (`walk_shadow_page_lockless_begin`), reads its
/// requests as `translate` does, and if none is pending walks: it reads the
/// page. Either the walk sees the request and stops, or the requester sees
/// the walk and waits for its end; if neither, the walk can read the page
/// after the requester freed it: I3.
pub fn l1_request_vs_walk(mutant: Option<Mutant>, tally: &'static Tally) {
    tally.execution();
    let vm = vm(mutant);
    // A new vCPU starts with a reload pending; take it, so that the only
    // request is the requester's.
    litmus::take_requests(&vm, V0);
    let freed = Arc::new(AtomicBool::new(false));
    // Ghost (invisible to loom): the walk's reads are over.
    let walk_over: &'static Flag = Box::leak(Box::default());
    let requester = {
        let (vm, freed) = (vm.share(), freed.clone());
        spawn(move || {
            litmus::request_all_vcpus(&vm, Requests::TLB_FLUSH);
            let waited = walk_over.is_up();
            // commit_zap_page: the flush returned, free the page.
            freed.store(true, Ordering::Relaxed);
            waited
        })
    };
    litmus::walk_lockless_begin(&vm, V0);
    let requests = vm.pending_requests(V0).expect("vCPU 0 exists");
    let walked = requests.is_empty();
    if walked && freed.load(Ordering::Relaxed) {
        panic!(
            "{}: vCPU 0's lockless walk saw no request and read a page that \
             make_all_cpus_request's caller freed: the requester did not wait for the walk \
             (litmus L1, mutant {mutant:?})",
            Invariant::I3.name()
        );
    }
    walk_over.raise();
    litmus::walk_lockless_end(&vm, V0);
    let waited = requester.join().expect("requester");
    match (walked, waited) {
        (false, false) => tally.mark(0),
        (true, true) => tally.mark(1),
        (false, true) => tally.mark(2),
        // The walk saw no request and the requester did not wait, but the walk
        // read the page before the free: the race was not lost this time.
        (true, false) => {}
    }
}

/// L2, root publication. The vCPU's reload (`mmu_alloc_direct_roots`, under
/// `mmu_lock`) builds a root page of the current generation and stores its
/// address in `root_hpa` (`Release`); a lockless walk of the same vCPU loads
/// it (`Acquire`), reads the page's body and compares its `mmu_valid_gen`
/// with the current one (`current_root`). In the VM the two run on one vCPU
/// and its claim orders them too; the model leaves the claim out to check the
/// pair alone. The generation was bumped once before, so the root is stamped
/// 1, not the initial 0. A walker that sees the address must see the page as
/// built: loom reports any read of it that is not ordered after its
/// construction (a causality violation on the page's body or `role.invalid`),
/// which is a read outside the page's lifetime: I3.
pub fn l2_root_publication(mutant: Option<Mutant>, tally: &'static Tally) {
    tally.execution();
    let vm = vm(mutant);
    vm.invalidate_zap_all_pages()
        .expect("an empty VM zaps in one step");
    let generation = vm.mmu_valid_gen();
    let publisher = {
        let vm = vm.share();
        spawn(move || litmus::mmu_alloc_roots(&vm, V0))
    };
    let seen = litmus::current_root(&vm, V0);
    let published = publisher.join().expect("publisher");
    match seen {
        Err(Translation::Miss) => tally.mark(0),
        Ok((page, stamped)) => {
            assert!(
                page == published && stamped == generation,
                "{}: the walker took page {page:?} of generation {stamped} as vCPU 0's root; \
                 the reload published {published:?} of generation {generation} (litmus L2, \
                 mutant {mutant:?})",
                Invariant::I5.name()
            );
            tally.mark(1);
        }
        Err(other) => panic!("current_root returned {other:?}"),
    }
    let violations = vm.runtime_violations();
    assert!(violations.is_empty(), "{violations:?}");
}

/// L2b, child page publication. vCPUs 0 and 1 share one root (one address
/// space). vCPU 1 faults on gfn 0 (`__direct_map`: `get_page` builds the child
/// page under `mmu_lock`, then the root's non-leaf spte is stored `Release`,
/// then the leaf); vCPU 0 translates gfn 0 (the whole lockless walk of
/// [`Vm::translate`]: mode, fence, requests, epoch pin, root check, then each
/// spte loaded `Acquire`). The two vCPUs share no claim and the walk takes no
/// lock, so the spte's Release and Acquire are all that orders the walk after
/// the child's construction; the pins of the two sides are not between the
/// pair (the fault's precedes the child's construction). A walk that reads the
/// child unordered after its construction reads a page outside its lifetime:
/// loom reports it (a causality violation on the child's body): I3.
pub fn l2b_child_publication(mutant: Option<Mutant>, tally: &'static Tally) {
    tally.execution();
    let mut config = Config::model();
    config.vcpus = 2;
    config.address_spaces = 1;
    config.reclaim = ReclaimBackend::small(3);
    config.events = false;
    config.audit_points = false;
    config.mutant = mutant;
    let vm = Held::new(Vm::new(config).expect("the model configuration is valid"));
    vm.create_memslot(crate::harness::slot(0, 0, 4))
        .expect("slot 0");
    for vcpu in [V0, V1] {
        vm.handle_requests(vcpu)
            .expect("the vCPU loads the shared root");
    }
    let faulter = {
        let vm = vm.share();
        spawn(move || vm.page_fault(V1, Gfn(0), false).expect("vCPU 1 faults"))
    };
    let seen = vm.translate(V0, Gfn(0)).expect("vCPU 0 translates");
    let fault = faulter.join().expect("faulter");
    match (seen, fault) {
        (Translation::Miss, _) => tally.mark(0),
        (Translation::Mapped { pfn, .. }, Fault::Mapped { pfn: mapped }) => {
            assert_eq!(
                pfn,
                mapped,
                "{}: vCPU 0 translated gfn 0 to {pfn:?}, the fault mapped {mapped:?}",
                Invariant::I4.name()
            );
            tally.mark(1);
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    let violations = vm.runtime_violations();
    assert!(violations.is_empty(), "{violations:?}");
}

/// L3, the memslots' in-flux flag against the fault's MMIO decision, carried
/// by the wrap's reload. A memslots update whose MMIO generation wraps marks
/// the published memslots in flux, then zaps all, which requests a reload
/// from every vCPU (`install_memslots`, then `kvm_reload_remote_mmus`). A vCPU
/// that takes that reload (`kvm_check_request` at entry) loads a fresh root;
/// a fault that then loads the memslots still published must see them in
/// flux and cache no MMIO decision, because an MMIO spte stamped with their
/// generation in the fresh root would not be reached by the zap and would
/// match again one wrap later. The model stops at the fault's decision
/// (`update_in_progress` on the memslots it loaded). In the VM `mmu_lock`
/// orders the same chain as well (the reload takes it after the bump's
/// hold); the model leaves it out to check the request's own ordering.
pub fn l3_in_flux_vs_reload(mutant: Option<Mutant>, tally: &'static Tally) {
    tally.execution();
    let vm = vm(mutant);
    litmus::take_requests(&vm, V0);
    let updater = {
        let vm = vm.share();
        spawn(move || {
            litmus::begin_memslots_update(&vm);
            litmus::request_all_vcpus(&vm, Requests::RELOAD | Requests::TLB_FLUSH);
        })
    };
    let taken = litmus::take_requests(&vm, V0);
    let slots = vm.memslots();
    let in_flux = slots.update_in_progress();
    if taken.reload() && !in_flux {
        panic!(
            "{}: vCPU 0 took the wrap's reload but read memslots generation {} as not in \
             flux: its next fault would cache an MMIO spte stamped with it in the fresh root, \
             which the wrap's zap no longer reaches (litmus L3, mutant {mutant:?})",
            Invariant::I7.name(),
            slots.generation()
        );
    }
    updater.join().expect("updater");
    match (taken.reload(), in_flux) {
        (false, false) => tally.mark(0),
        (true, true) => tally.mark(1),
        (false, true) => tally.mark(2),
        (true, false) => unreachable!("panicked above"),
    }
}

//! # What every execution ends with
//!
//! A scenario builds a [`World`] (the VM plus what its threads observed), runs
//! its actors, joins them, and calls [`finish`]. `finish` is the same in every
//! lane: the full audit (every invariant of `Invariant::ALL`, plus every violation
//! recorded at run time),
//! the observations the scenario's threads made, and a drain that must free
//! everything retired. On any violation it renders the execution's timeline,
//! writes it as a Mermaid diagram and a counterexample file
//! ([`crate::results::Counterexample`]) under `target/counterexamples/` (or
//! the results directory `verify` names), and panics
//! with a message that starts with the violated invariant's name, so that a
//! mutant twin can expect it (`#[should_panic(expected = "I3 page lifetime")]`).

use fastzap::check::{Event, Invariant, Violation};
use fastzap::checking::Mutant;
use fastzap::checking::sync::Arc;
use fastzap::checking::sync::ghost::GhostLog;
use fastzap::{Config, DeletionStrategy, Gfn, Hva, Mmu, ReclaimBackend, SlotId, SlotSpec, Vm};

use crate::mailbox;
use crate::tally::Flag;
use crate::timeline;

/// How one scenario is run: which bug to re-introduce, which reclamation, and
/// how many actors.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The protocol mutant, or `None` for the correct protocol.
    pub mutant: Option<Mutant>,
    /// The epoch implementation: crossbeam (loom, 2 threads) or the small EBR.
    pub reclaim: ReclaimBackend,
    /// More actors and operations (the shuttle lane); off for loom.
    pub wide: bool,
    /// A third actor in a narrow model (a second vCPU in S1 and S2), for loom
    /// with the small EBR.
    pub third: bool,
    /// The MMU (`Config::mmu`): the shadow MMU unless [`Params::on`] says.
    pub mmu: Mmu,
    /// `Config::audit_points` outside loom: on unless
    /// [`Params::without_audit_points`] says.
    pub audit_points: bool,
}

impl Params {
    /// The correct protocol with `reclaim`, narrow.
    pub const fn narrow(reclaim: ReclaimBackend) -> Params {
        Params {
            mutant: None,
            reclaim,
            wide: false,
            third: false,
            mmu: Mmu::Shadow,
            audit_points: true,
        }
    }

    /// The correct protocol with `reclaim`, wide.
    pub const fn wide(reclaim: ReclaimBackend) -> Params {
        Params {
            mutant: None,
            reclaim,
            wide: true,
            third: false,
            mmu: Mmu::Shadow,
            audit_points: true,
        }
    }

    /// The same with `mutant`.
    pub const fn with_mutant(self, mutant: Mutant) -> Params {
        Params {
            mutant: Some(mutant),
            ..self
        }
    }

    /// The same with a third actor.
    pub const fn with_third_actor(self) -> Params {
        Params {
            third: true,
            ..self
        }
    }

    /// The same with `reclaim`.
    pub const fn with_reclaim(self, reclaim: ReclaimBackend) -> Params {
        Params { reclaim, ..self }
    }

    /// The same on `mmu`.
    pub const fn on(self, mmu: Mmu) -> Params {
        Params { mmu, ..self }
    }

    /// The same with the audit points off: no audit inside operations, and
    /// the schedules shuttle explores without the yields the audit points
    /// add (the full audit still ends each execution).
    pub const fn without_audit_points(self) -> Params {
        Params {
            audit_points: false,
            ..self
        }
    }

    /// `wanted` if this MMU has it, else the last deletion it has (in
    /// [`DeletionStrategy::ALL`]'s order): a scenario deletes only as its MMU
    /// can (`Mmu::supports`).
    pub fn deletion(&self, wanted: DeletionStrategy) -> DeletionStrategy {
        if self.mmu.supports(wanted) {
            return wanted;
        }
        DeletionStrategy::ALL
            .into_iter()
            .rfind(|d| self.mmu.supports(*d))
            .unwrap_or(wanted)
    }
}

/// The small EBR with `slots` participant slots and no EBR mutant.
pub const fn small(slots: usize) -> ReclaimBackend {
    ReclaimBackend::small(slots)
}

/// One execution's world: the VM, what its threads saw, and ghost flags.
#[derive(Debug)]
pub struct World {
    /// The VM under test.
    pub vm: Vm,
    /// Violations observed by the scenario's own threads.
    pub seen: GhostLog<Violation>,
    /// Ghost flags the scenario may use (for example "the reader is done").
    pub flags: [Flag; 4],
}

impl World {
    /// Records a violation seen by one of the scenario's threads.
    pub fn violate(&self, invariant: Invariant, detail: String) {
        self.seen.push_always(Violation::new(invariant, detail));
    }
}

/// The model configuration for `params`: 2 sptes per page, 2 levels (4 gfns), a
/// 2-bit generation, the event log and (unless `params` turns them off) the
/// audit points on; `vcpus` vCPUs in `address_spaces` address spaces.
pub fn config(params: &Params, vcpus: usize, address_spaces: u8) -> Config {
    let mut config = Config::model();
    config.vcpus = vcpus;
    config.address_spaces = address_spaces;
    config.mmu = params.mmu;
    config.reclaim = params.reclaim;
    config.mutant = params.mutant;
    // Under loom the audit points' extra loads of every spte trip loom's own
    // internal assertion on modification orders (tokio-rs/loom#252, "this
    // sometimes fails") in later loads; the full audit still ends every loom
    // execution, and shuttle keeps the audit points, on every MMU: what they
    // check on the TDP MMU is core's to say (checkpoint.rs), and turning them
    // off changes the schedules shuttle explores (the twins without them,
    // `Params::without_audit_points`, explore those too).
    config.audit_points = !cfg!(loom) && params.audit_points;
    config
}

/// Builds the world for `config`.
pub fn world(config: Config) -> Arc<World> {
    Arc::new(World {
        vm: Vm::new(config).expect("model configuration is valid"),
        seen: GhostLog::new(true),
        flags: Default::default(),
    })
}

/// A memslot of `npages` at `base_gfn`; slot `id` lives at host address
/// `0x10_0000 * (id + 1)`.
pub fn slot(id: u16, base_gfn: u64, npages: u64) -> SlotSpec {
    SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base_gfn),
        npages,
        userspace_addr: Hva(slot_hva(id)),
    }
}

/// The host address of slot `id`'s first page.
pub const fn slot_hva(id: u16) -> u64 {
    0x10_0000 * (id as u64 + 1)
}

/// Rounds of grace periods `finish` runs before it demands that every retired
/// object was freed.
pub const DRAIN_ROUNDS: usize = 4;

/// Ends an execution of `scenario`: audit, observations, drain. Panics with the
/// violated invariant's name, the details and the timeline if anything broke.
/// The violations are reported in detection order
/// ([`fastzap::check::detection_order`]): first those recorded while the execution
/// ran (the ghost's, as it recorded them, then the scenario threads' own
/// probes), then those only the end audit found, then the drain's (I9).
pub fn finish(world: &World, scenario: &str, params: &Params) {
    let vm = &world.vm;
    // The story ends here: the audit below takes mmu_lock too, and its lock
    // events are not part of the execution.
    let events = vm.events();
    let mut during = vm.runtime_violations();
    during.extend(world.seen.snapshot());
    // The end audit checks the shadow MMU's own structures (rmaps, shadow
    // pages, descriptors), which the TDP MMU does not have; what a caller
    // sees is the linearizability check's, on every MMU.
    let at_end = if vm.config().mmu == Mmu::Shadow {
        fastzap::check::audit(vm).err().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut found = fastzap::check::detection_order(&during, &at_end);
    if found.is_empty() {
        found = fastzap::checking::check_reclamation_completes(vm, DRAIN_ROUNDS);
    }
    if found.is_empty() {
        return;
    }
    fail(&events, scenario, params, found);
}

/// Reports a failed execution and panics.
fn fail(events: &[Event], scenario: &str, params: &Params, found: Vec<Violation>) -> ! {
    let first = found[0].invariant;
    let name = format!(
        "{scenario}-{}{}{}",
        fastzap::checking::sync::LANE,
        // The shadow MMU's names as before; another MMU's apart from them.
        if params.mmu == Mmu::Shadow {
            String::new()
        } else {
            format!("-{}", params.mmu.name())
        },
        params.mutant.map(|m| format!("-{m:?}")).unwrap_or_default()
    );
    let name = if params.audit_points {
        name
    } else {
        format!("{name}-no-audit-points")
    };
    let dir = crate::results::counterexample_dir();
    let written = timeline::write_mermaid(&dir, &name, events, &found);
    let record = crate::results::Counterexample::new(
        &name,
        scenario,
        params.mutant.map(|m| format!("{m:?}")),
        events,
        &found,
    )
    .write(&dir);
    mailbox::set_last_counterexample(record.as_ref().ok().cloned());
    let mut message = format!(
        "{} violated in {scenario} ({} lane, {} MMU, mutant {:?}, reclaim {:?})\n",
        first.name(),
        fastzap::checking::sync::LANE,
        params.mmu.name(),
        params.mutant,
        params.reclaim
    );
    message.push_str(&format!("{}{}\n", fastzap::check::FIRST_DETECTED, found[0]));
    message.push_str("in detection order:\n");
    for violation in &found {
        message.push_str(&format!("  - {violation}\n"));
    }
    message.push_str("\ntimeline of the failing execution, one column per actor:\n");
    message.push_str(&timeline::render_columns(events, &found));
    match written {
        Ok(path) => message.push_str(&format!("mermaid sequence diagram: {}\n", path.display())),
        Err(e) => message.push_str(&format!("(could not write the mermaid diagram: {e})\n")),
    }
    if let Ok(path) = &record {
        message.push_str(&format!("counterexample: {}\n", path.display()));
    }
    mailbox::set_last_failure(message.clone());
    panic!("{message}");
}

//! # Conformance: the implementation against the reference, as a state machine
//!
//! The test is a [proptest-state-machine](proptest_state_machine) test: a
//! [`ReferenceStateMachine`](proptest_state_machine::ReferenceStateMachine)
//! generates the transitions ([`machine::Machine`]) and a
//! [`StateMachineTest`] runs them ([`Conformance`]). Each case is a [`Setup`]
//! (a configuration and an opening of 1 to 4 slots, after which every vCPU
//! handles its first requests) and 50 to 80 [`Step`]s over the whole public
//! API of [`Vm`]: create, delete (configured strategy, 3.11 or seed v3) and
//! move slots; fault, translate (synchronized, unsynchronized, runs), handle
//! and read requests, guest accesses; fast and eager invalidate-all; every
//! notifier; the shrinker; reclamation (`flush_reclaim`, `drain`); and invalid
//! calls of every [`Invalid`] class, generated on purpose.
//!
//! ## Where the oracle lives
//!
//! [`Reference`] is observation-driven: [`Reference::step`] checks an observed
//! outcome against the set it allows and resolves its own uncertainty from
//! it (a `translate` that did not return `RequestPending` proves no request
//! was pending), so it cannot predict one outcome by itself and cannot be the
//! `ReferenceStateMachine`, which must evolve without seeing the system. So
//! the two halves are split:
//!
//! - the generation model ([`machine::Model`]) is small and deterministic:
//!   the setup, the exact slot table (memslot calls and their errors are
//!   exact, and the model uses the reference's own validation), deleted ids and
//!   recently faulted gfns. It only steers generation toward relevant
//!   transitions; every transition is legal in every state, so shrinking is
//!   never rejected by a precondition;
//! - the system under test ([`Sut`]) holds the [`Vm`] *and* the [`Reference`]
//!   oracle, and does every check.
//!
//! ## What is checked
//!
//! After every call (a guest access is several calls, each checked):
//!
//! 1. the outcome is one the reference allows ([`Reference::step`]), errors
//!    included, each exactly;
//! 2. `mmu_valid_gen`, the memslots (and their generation, `slot_count`, no
//!    slot left INVALID and no update left in progress), every vCPU's pending
//!    requests and its root (none, valid of the current generation, or not
//!    valid) agree with the reference, and every pfn the reference holds for a
//!    leaf is the one `hva_to_pfn` gives for the leaf's host page;
//! 3. [`fastzap::check::audit()`] passes (every invariant, and any violation recorded at
//!    run time);
//! 4. a call that returned an error changed nothing ([`Snapshot`]: memslots,
//!    counts, `mmu_valid_gen`, shadow pages, pending requests, the event log,
//!    the zap history, the vCPU operation count);
//! 5. a zap's returned statistics are the last entry of the zap history.
//!
//! After every transition the generation model's slot table equals the
//! reference's ([`StateMachineTest::check_invariants`]). At the end
//! ([`StateMachineTest::teardown`]) the reclaimer drains and the counters
//! settle: every retired page and descriptor freed, every live page in the
//! page table, one live rmap per slot. A panic inside the VM is caught by the
//! runner and is a failure like any other.
//!
//! ## Configurations
//!
//! [`Setup::config`]: 16 gfns as 4 sptes per page and 2 levels or 2 sptes
//! and 4 levels; a 2-bit `mmu_valid_gen` and a 2-bit MMIO generation, so both
//! wrap within a case; 2 or 3 vCPUs; 1 or 2 address spaces; either configured
//! deletion strategy (and both explicitly, through `delete_memslot_with`);
//! descriptors of 2 or 3 sptes; crossbeam-epoch or the facade's small EBR.
//!
//! ## The public API, covered
//!
//! Every public method of [`Vm`] runs in every case: the calls of [`Op`] as
//! transitions; `flush_reclaim` and `drain` as transitions; `new`, `config`,
//! `memslots`, `slot_count`, `mmu_valid_gen`, `pending_requests`, `root`,
//! `hva_to_pfn`, `counts`, `events`, `zap_history`, `vcpu_operations`,
//! `shadow_pages` and (through the audit) `runtime_violations` by the checks.
//! Three errors cannot show here: `InvalidConfig` (a bad [`Config`];
//! `core/tests/errors.rs` covers each rule), `VcpuBusy` (needs a second
//! thread on the vCPU) and `ZapLivelock` (needs a mutant); the reference
//! allows none of them.
//!
//! ## Running and shrinking
//!
//! [`run_many`] and [`run_many_with`] drive the strategy with a seeded
//! [`TestRunner`]; a failure is shrunk by proptest-state-machine
//! (transitions deleted from the back, then each simplified, then the setup),
//! made 1-minimal by [`minimize`] (no single transition or opening slot can be
//! removed and still fail), and reported as a numbered sequence with its
//! length before and after shrinking. Panics are how a transition fails, so
//! their messages are silenced on the running thread while a run shrinks.
//! Statistics count transitions, calls, failed calls per [`Invalid`] class,
//! `Mapped` translations and generation wraps, so that a generator that stops
//! producing a class shows. [`run_case`] replays one fixed [`Case`].
//!
//! `fastzap verify` runs 10,000 cases (`--cases`); `cargo test` runs 128
//! through `prop_state_machine!` (`FASTZAP_CASES` overrides), 64 more for the
//! statistics, and mutants for shrinking.
//!
//! ## Where each part is
//!
//! - `ops`: the [`Setup`], the [`Step`]s, a [`Case`] and how an [`Op`] runs
//!   ([`apply`]);
//! - `stats`: the [`Invalid`] classes and the [`CaseStats`];
//! - `sut`: the [`Sut`] and its [`Snapshot`];
//! - [`machine`]: the generation model ([`Model`], [`Machine`]);
//! - `driver`: the [`StateMachineTest`] glue ([`Conformance`], [`run_case`]);
//! - `minimize`: [`minimize`] and [`Shrunk`];
//! - `runner`: [`run_many`] and its [`ConformanceReport`].
//!
//! [`Config`]: fastzap::Config
//! [`Op`]: fastzap_reference::reference::Op
//! [`Reference`]: fastzap_reference::reference::Reference
//! [`Reference::step`]: fastzap_reference::reference::Reference::step
//! [`StateMachineTest`]: proptest_state_machine::StateMachineTest
//! [`StateMachineTest::check_invariants`]: proptest_state_machine::StateMachineTest::check_invariants
//! [`StateMachineTest::teardown`]: proptest_state_machine::StateMachineTest::teardown
//! [`TestRunner`]: proptest::test_runner::TestRunner
//! [`Vm`]: fastzap::Vm

mod driver;
pub mod machine;
mod minimize;
mod ops;
mod runner;
mod stats;
mod sut;

pub use driver::{Conformance, run_case};
pub use machine::{Machine, Model, TRANSITIONS};
pub use minimize::{MINIMIZE_RUNS, Shrunk, minimize};
pub use ops::{Case, Setup, Step, apply, describe};
pub use runner::{
    ConformanceReport, run_many, run_many_on, run_many_sized, run_many_sized_on, run_many_with,
};
pub use stats::{CaseStats, Invalid};
pub use sut::{Snapshot, Sut};

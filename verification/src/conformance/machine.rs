//! The generation model: the [`ReferenceStateMachine`] half of the
//! conformance test.
//!
//! [`Model`] is deterministic and small: the case's [`Setup`], the exact slot
//! table (validated by [`Reference::create_memslot`] and
//! [`Reference::move_memslot`], so it cannot drift from the oracle's), the ids
//! deleted since they were last created, and the gfns faulted since the last
//! zap-all, delete or move. It does not predict outcomes; it only makes the next transition
//! relevant: mostly existing slots, gfns inside slots or recently faulted, and
//! host ranges that back a slot, with each class of invalid call generated on
//! purpose at a low rate.
//!
//! Every transition is legal in every state (an invalid call is part of the API
//! under test and must fail cleanly), so [`ReferenceStateMachine::preconditions`]
//! accepts everything and shrinking never has a deletion or a simplification
//! rejected.
//!
//! `prop_oneof!` and [`Union`] build `std::sync::Arc`s, which the workspace's
//! clippy configuration forbids outside the sync facade; nothing here shares
//! state between threads, so the lint is allowed in this module.
#![allow(clippy::disallowed_types)]

use std::fmt;
use std::ops::RangeInclusive;

use fastzap::checking::Mutant;
use fastzap::{Gfn, Hva, Mmu, SlotId, SlotSpec, VcpuId};
use fastzap_reference::reference::{Op, PAGE_SIZE, Reference};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::{BoxedStrategy, Union};
use proptest_state_machine::{ReferenceStateMachine, Sequential};

use super::ops::{Setup, Step};
use crate::mmu;

/// Gfns of every generated configuration (4 sptes x 2 levels, or 2 x 4).
pub const GFNS: u64 = 16;
/// Slot ids the generator uses for slots that may exist.
const SLOT_IDS: u16 = 6;
/// Host pages the generator places slots in (they may overlap: two gfns then
/// share a host page).
const HOST_PAGES: u64 = 12;
/// Transitions per case, after the opening.
pub const TRANSITIONS: RangeInclusive<usize> = 50..=80;

/// The generation model. See the module documentation.
#[derive(Clone)]
pub struct Model {
    /// The configuration and the opening.
    pub setup: Setup,
    /// Holds the slot table (its `slots` field, nothing else is used), so
    /// that the reference's own validation decides which memslot calls fail.
    table: Reference,
    /// Ids deleted and not created again: deleting one is a double delete.
    deleted: Vec<SlotId>,
    /// Gfns faulted since the last zap-all, slot delete or slot move.
    touched: Vec<u64>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("setup", &self.setup)
            .field("slots", &self.table.slots)
            .field("deleted", &self.deleted)
            .field("touched", &self.touched)
            .finish()
    }
}

impl Model {
    /// The model after the opening of `setup`.
    pub fn new(setup: Setup) -> Model {
        let mut model = Model {
            table: Reference::new(&setup.config()),
            setup,
            deleted: Vec::new(),
            touched: Vec::new(),
        };
        for spec in model.setup.opening.clone() {
            model.create(&spec);
        }
        model
    }

    /// The slots, sorted by base gfn.
    pub fn slots(&self) -> &[SlotSpec] {
        &self.table.slots
    }

    fn create(&mut self, spec: &SlotSpec) {
        if self.table.create_memslot(spec).is_ok() {
            self.table.slots.push(*spec);
            self.table.slots.sort_by_key(|s| s.base_gfn);
            self.deleted.retain(|d| *d != spec.id);
        }
    }

    fn free_ids(&self) -> Vec<SlotId> {
        (0..SLOT_IDS)
            .map(SlotId)
            .filter(|id| self.slots().iter().all(|s| s.id != *id))
            .collect()
    }

    /// Every (base, npages) with 1 to 4 pages that fits below [`GFNS`] and
    /// overlaps no slot other than `except`.
    fn free_ranges(&self, except: Option<SlotId>, npages: RangeInclusive<u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for n in npages {
            for base in 0..=GFNS.saturating_sub(n) {
                let clear = self.slots().iter().all(|s| {
                    Some(s.id) == except
                        || base + n <= s.base_gfn.0
                        || s.base_gfn.0 + s.npages <= base
                });
                if clear {
                    out.push((base, n));
                }
            }
        }
        out
    }

    fn slot_gfns(&self) -> Vec<u64> {
        self.slots()
            .iter()
            .flat_map(|s| s.base_gfn.0..s.base_gfn.0 + s.npages)
            .collect()
    }

    fn slot_hvas(&self) -> Vec<u64> {
        let mut hvas: Vec<u64> = self
            .slots()
            .iter()
            .flat_map(|s| (0..s.npages).map(|i| s.userspace_addr.0 + i * PAGE_SIZE))
            .collect();
        hvas.sort_unstable();
        hvas.dedup();
        hvas
    }

    // ----- strategies -------------------------------------------------------

    fn vcpu(&self) -> BoxedStrategy<VcpuId> {
        let n = self.setup.vcpus;
        // Mostly real vCPUs, sometimes one that does not exist.
        prop_oneof![24 => (0..n).prop_map(VcpuId), 1 => (n..n + 3).prop_map(VcpuId)].boxed()
    }

    fn gfn(&self) -> BoxedStrategy<u64> {
        let mut arms: Vec<(u32, BoxedStrategy<u64>)> = vec![(4, (0..GFNS).boxed())];
        let in_slots = self.slot_gfns();
        if !in_slots.is_empty() {
            arms.push((12, select(in_slots).boxed()));
        }
        if !self.touched.is_empty() {
            arms.push((6, select(self.touched.clone()).boxed()));
        }
        arms.push((1, (GFNS..GFNS + 4).boxed()));
        arms.push((1, Just(u64::MAX).boxed()));
        Union::new_weighted(arms).boxed()
    }

    /// A host range: mostly pages that back a slot, sometimes anywhere,
    /// rarely empty or reversed (`BadHvaRange`).
    fn hva_range(&self) -> BoxedStrategy<(u64, u64)> {
        let mut arms: Vec<(u32, BoxedStrategy<(u64, u64)>)> = vec![(
            3,
            (0..16 * PAGE_SIZE, 1..4 * PAGE_SIZE)
                .prop_map(|(s, l)| (s, s + l))
                .boxed(),
        )];
        let hvas = self.slot_hvas();
        if !hvas.is_empty() {
            arms.push((
                8,
                (select(hvas), 0..PAGE_SIZE, 1..3 * PAGE_SIZE)
                    .prop_map(|(h, off, l)| (h + off, h + off + l))
                    .boxed(),
            ));
        }
        arms.push((1, (0..16 * PAGE_SIZE).prop_map(|s| (s, s)).boxed()));
        arms.push((1, (1..16 * PAGE_SIZE).prop_map(|s| (s, s - 1)).boxed()));
        Union::new_weighted(arms).boxed()
    }

    fn hva(&self) -> BoxedStrategy<u64> {
        let mut arms: Vec<(u32, BoxedStrategy<u64>)> = vec![(2, (0..16 * PAGE_SIZE).boxed())];
        let hvas = self.slot_hvas();
        if !hvas.is_empty() {
            arms.push((
                8,
                (select(hvas), 0..PAGE_SIZE)
                    .prop_map(|(h, o)| h + o)
                    .boxed(),
            ));
        }
        arms.push((1, Just(u64::MAX).boxed()));
        Union::new_weighted(arms).boxed()
    }

    fn host(&self) -> BoxedStrategy<u64> {
        (0..HOST_PAGES).prop_map(|p| p * PAGE_SIZE).boxed()
    }

    /// The memslot calls, valid and invalid, each invalid class on purpose.
    fn slot_calls(&self, arms: &mut Vec<(u32, BoxedStrategy<Step>)>) {
        let create = |id: BoxedStrategy<SlotId>,
                      range: BoxedStrategy<(u64, u64)>,
                      host: BoxedStrategy<u64>| {
            (id, range, host)
                .prop_map(|(id, (base_gfn, npages), userspace_addr)| {
                    Step::Call(Op::CreateSlot(SlotSpec {
                        id,
                        base_gfn: Gfn(base_gfn),
                        npages,
                        userspace_addr: Hva(userspace_addr),
                    }))
                })
                .boxed()
        };
        let delete = |ids: BoxedStrategy<SlotId>| {
            // The configured deletion, or one the MMU has.
            let strategy = Union::new(
                std::iter::once(None)
                    .chain(mmu::deletions(self.setup.mmu).into_iter().map(Some))
                    .map(Just),
            );
            (ids, strategy)
                .prop_map(|(id, strategy)| Step::Call(Op::DeleteSlot { id, strategy }))
                .boxed()
        };
        let move_to = |to: BoxedStrategy<(SlotId, u64)>| {
            to.prop_map(|(id, base_gfn)| Step::Call(Op::MoveSlot { id, base_gfn }))
                .boxed()
        };
        let free_ids = self.free_ids();
        let ids: Vec<SlotId> = self.slots().iter().map(|s| s.id).collect();
        let free = self.free_ranges(None, 1..=4);
        if !free_ids.is_empty() {
            let fresh = select(free_ids).boxed();
            if !free.is_empty() {
                arms.push((4, create(fresh.clone(), select(free).boxed(), self.host())));
            }
            // A zero-sized slot (`EmptySlot`).
            let empty = (0..GFNS).prop_map(|b| (b, 0)).boxed();
            arms.push((1, create(fresh.clone(), empty, self.host())));
            // Past the last gfn (`GfnOutOfRange`).
            let past = prop_oneof![
                (GFNS - 3..GFNS).prop_map(|b| (b, 4)),
                (0..GFNS).prop_map(|b| (b, u64::MAX)),
            ];
            arms.push((1, create(fresh.clone(), past.boxed(), self.host())));
            // A host range that is unaligned or ends past 2^48 (`BadHostRange`).
            let bad_host = prop_oneof![Just(0x1234u64), Just((1 << 48) - PAGE_SIZE)].boxed();
            let two = (0..GFNS - 1).prop_map(|b| (b, 2)).boxed();
            arms.push((1, create(fresh.clone(), two, bad_host)));
            // A fresh id over an existing slot's last gfn (`SlotOverlap`).
            let over: Vec<(u64, u64)> = self
                .slots()
                .iter()
                .map(|s| (s.base_gfn.0 + s.npages - 1, 1))
                .collect();
            if !over.is_empty() {
                arms.push((1, create(fresh, select(over).boxed(), self.host())));
            }
        }
        // An id never used (`UnknownSlot`), for delete and move.
        let unknown = (SLOT_IDS..SLOT_IDS + 2).prop_map(SlotId).boxed();
        arms.push((1, delete(unknown.clone())));
        arms.push((1, move_to((unknown, 0..GFNS).boxed())));
        if !self.deleted.is_empty() {
            // A double delete (`UnknownSlot`).
            arms.push((1, delete(select(self.deleted.clone()).boxed())));
        }
        if ids.is_empty() {
            return;
        }
        // An id in use (`SlotExists`).
        let one = (0..GFNS - 1).prop_map(|b| (b, 1)).boxed();
        arms.push((1, create(select(ids.clone()).boxed(), one, self.host())));
        arms.push((3, delete(select(ids.clone()).boxed())));
        // Past the last gfn (`GfnOutOfRange`).
        let past = prop_oneof![Just(GFNS), Just(u64::MAX)];
        arms.push((1, move_to((select(ids), past).boxed())));
        let mut moves = Vec::new();
        let mut onto = Vec::new();
        for s in self.slots() {
            for (base, _) in self.free_ranges(Some(s.id), s.npages..=s.npages) {
                if base != s.base_gfn.0 {
                    moves.push((s.id, base));
                }
            }
            // Onto another slot (`SlotOverlap`).
            for o in self.slots() {
                if o.id != s.id && o.base_gfn.0 + s.npages <= GFNS {
                    onto.push((s.id, o.base_gfn.0));
                }
            }
        }
        if !moves.is_empty() {
            arms.push((2, move_to(select(moves).boxed())));
        }
        if !onto.is_empty() {
            arms.push((1, move_to(select(onto).boxed())));
        }
    }

    /// The next transition: see the module documentation.
    pub fn transition(&self) -> BoxedStrategy<Step> {
        let (vcpu, gfn) = (self.vcpu(), self.gfn());
        let call = |weight: u32, s: BoxedStrategy<Op>| (weight, s.prop_map(Step::Call).boxed());
        let mut arms = vec![
            call(
                14,
                (vcpu.clone(), gfn.clone())
                    .prop_map(|(vcpu, gfn)| Op::Translate { vcpu, gfn })
                    .boxed(),
            ),
            call(
                12,
                (vcpu.clone(), gfn.clone(), any::<bool>())
                    .prop_map(|(vcpu, gfn, write)| Op::PageFault { vcpu, gfn, write })
                    .boxed(),
            ),
            (
                10,
                (vcpu.clone(), gfn.clone(), any::<bool>())
                    .prop_map(|(vcpu, gfn, write)| Step::Access { vcpu, gfn, write })
                    .boxed(),
            ),
            call(7, vcpu.clone().prop_map(Op::HandleRequests).boxed()),
            call(
                2,
                (vcpu.clone(), gfn.clone())
                    .prop_map(|(vcpu, gfn)| Op::TranslateUnsynchronized { vcpu, gfn })
                    .boxed(),
            ),
            call(
                3,
                (vcpu.clone(), prop::collection::vec(gfn, 0..4))
                    .prop_map(|(vcpu, gfns)| Op::TranslateRun { vcpu, gfns })
                    .boxed(),
            ),
            call(1, vcpu.prop_map(Op::PendingRequests).boxed()),
            call(3, Just(Op::ZapAllFast).boxed()),
            call(1, Just(Op::ZapAllEager).boxed()),
            call(
                2,
                prop_oneof![Just(0usize), 1usize..4, Just(usize::MAX)]
                    .prop_map(Op::Shrink)
                    .boxed(),
            ),
            call(
                3,
                self.hva_range()
                    .prop_map(|(start, end)| Op::InvalidateRange { start, end })
                    .boxed(),
            ),
            call(
                2,
                self.hva_range()
                    .prop_map(|(start, end)| Op::ClearFlushYoung { start, end })
                    .boxed(),
            ),
            call(
                1,
                self.hva_range()
                    .prop_map(|(start, end)| Op::TestYoung { start, end })
                    .boxed(),
            ),
            call(2, self.hva().prop_map(|hva| Op::ChangePte { hva }).boxed()),
            (1, Just(Step::FlushReclaim).boxed()),
            (1, Just(Step::Drain).boxed()),
        ];
        self.slot_calls(&mut arms);
        Union::new_weighted(arms).boxed()
    }
}

/// A configuration and an opening: [`Setup`]'s documentation lists the
/// choices. The opening creates 1 to 4 slots, slot `i` at gfn `4 i`. The
/// shadow MMU's; [`setup_strategy_on`] for another.
pub fn setup_strategy(mutant: Option<Mutant>) -> BoxedStrategy<Setup> {
    setup_strategy_on(Mmu::Shadow, mutant)
}

/// [`setup_strategy`] on `mmu`: the configured deletion is one `mmu` has.
pub fn setup_strategy_on(mmu: Mmu, mutant: Option<Mutant>) -> BoxedStrategy<Setup> {
    let opening = prop::collection::vec((1u64..=4, 0..HOST_PAGES), 1..=4).prop_map(|slots| {
        slots
            .into_iter()
            .enumerate()
            .map(|(i, (npages, page))| SlotSpec {
                id: SlotId(i as u16),
                base_gfn: Gfn(4 * i as u64),
                npages,
                userspace_addr: Hva(page * PAGE_SIZE),
            })
            .collect::<Vec<_>>()
    });
    (
        2usize..=3,
        1u8..=2,
        Union::new(mmu::deletions(mmu).into_iter().map(Just)),
        prop_oneof![3 => Just((4usize, 2u8)), 1 => Just((2, 4))],
        2usize..=3,
        any::<bool>(),
        opening,
    )
        .prop_map(
            move |(vcpus, address_spaces, deletion, shape, desc_capacity, small_ebr, opening)| {
                Setup {
                    mmu,
                    vcpus,
                    address_spaces,
                    deletion,
                    shape,
                    desc_capacity,
                    small_ebr,
                    mutant,
                    opening,
                }
            },
        )
        .boxed()
}

/// The [`ReferenceStateMachine`] over [`Model`], for clean VMs.
/// [`sequential`] builds the same strategy with a mutant.
#[derive(Debug, Clone, Copy)]
pub struct Machine;

impl ReferenceStateMachine for Machine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        setup_strategy(None).prop_map(Model::new).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        state.transition()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        let clear_touched = match step {
            Step::Call(Op::CreateSlot(spec)) => {
                state.create(spec);
                false
            }
            Step::Call(Op::DeleteSlot { id, .. }) => {
                let before = state.table.slots.len();
                state.table.slots.retain(|s| s.id != *id);
                if state.table.slots.len() < before && !state.deleted.contains(id) {
                    state.deleted.push(*id);
                }
                true
            }
            Step::Call(Op::MoveSlot { id, base_gfn }) => {
                if state.table.move_memslot(*id, *base_gfn).is_ok() {
                    for s in &mut state.table.slots {
                        if s.id == *id {
                            s.base_gfn = Gfn(*base_gfn);
                        }
                    }
                    state.table.slots.sort_by_key(|s| s.base_gfn);
                }
                true
            }
            Step::Call(Op::ZapAllFast | Op::ZapAllEager) => true,
            Step::Call(Op::PageFault { gfn, .. }) | Step::Access { gfn, .. } => {
                if *gfn < GFNS && !state.touched.contains(gfn) {
                    state.touched.push(*gfn);
                }
                false
            }
            _ => false,
        };
        if clear_touched {
            state.touched.clear();
        }
        state
    }
}

/// The sequential strategy of [`Machine`] with `transitions` transitions per
/// case, every case's VM built with `mutant`, on the shadow MMU.
pub fn sequential(
    transitions: RangeInclusive<usize>,
    mutant: Option<Mutant>,
) -> Sequential<Model, Step, BoxedStrategy<Model>, BoxedStrategy<Step>> {
    sequential_on(Mmu::Shadow, transitions, mutant)
}

/// [`sequential`] on `mmu`.
pub fn sequential_on(
    mmu: Mmu,
    transitions: RangeInclusive<usize>,
    mutant: Option<Mutant>,
) -> Sequential<Model, Step, BoxedStrategy<Model>, BoxedStrategy<Step>> {
    Sequential::new(
        transitions.into(),
        move || setup_strategy_on(mmu, mutant).prop_map(Model::new).boxed(),
        Machine::preconditions,
        Machine::transitions,
        Machine::apply,
    )
}

//! # Linearizability of concurrent histories
//!
//! A [`History`] is what the callers of one [`Vm`] saw: for every public call,
//! the actor that made it, the [`Op`], the instants of its invocation and of
//! its response on one global logical clock, and the [`Outcome`]. It is
//! *linearizable* if its operations can be put in one sequential order that
//! respects real time (an operation that returned before another was invoked
//! comes first) and that the sequential [`Reference`] accepts, outcome by
//! outcome. Then every result a caller saw was one the specification allows
//! for some instant between its call and its return.
//!
//! [`check`] searches for such an order the way Wing and Gong (1993) do, with
//! the state caching of Lowe (2017): a depth-first search that, at each step,
//! tries every *minimal* pending operation (one invoked before every pending
//! operation's response), steps a clone of the reference with it, and goes
//! deeper on success. A (placed set, reference state) pair that failed once is
//! remembered and never explored again. The search is bounded
//! ([`Limits::max_states`]): a history too big to decide gives
//! [`CheckError::TooBig`], never a hang.
//!
//! ## Outcomes only concurrency can produce
//!
//! The reference is sequential; some outcomes need another operation to be
//! running at the same time. The checker computes, for each operation, what
//! overlaps it in real time ([`Overlap`]) and passes it to
//! [`Reference::step_overlapping`]: a fault's `Retry(InvalidSlot)` is allowed
//! only if a memslot DELETE or MOVE overlaps it, `Retry(NotifierRace)` only if
//! a notifier does, and a translate that overlaps an operation removing sptes
//! may be judged as a bare walk (it checks the requests and walks at two
//! instants).
//!
//! Operations that are not atomic in the implementation are placed at their
//! atomic step: a fast invalidation at its generation bump, which empties the
//! page tables and requests the reloads in one `mmu_lock` hold; a DELETE or
//! MOVE at once (its INVALID copy is what `Retry(InvalidSlot)` covers); a
//! notifier at its unmap. What they do afterwards (the requests landing on
//! each vCPU in turn, the batches of `zap_obsolete_pages` with their TLB flush
//! requests) ends at a second event of the same operation, its *tail*
//! ([`Placed::Tail`], [`Reference::end_invalidation`]), which the checker
//! places like an operation with the same interval, after the operation
//! itself. Tails are only added to operations that overlap another. The
//! reference module's "Concurrent histories" section lists what is allowed
//! between the two. The security property is untouched: once an invalidation
//! of X is placed the reference holds no leaf for X, so no pfn mapped before
//! it is allowed for X, whatever overlaps.
//!
//! Some memslot updates bump `mmu_valid_gen` at an instant of their own: a
//! publish that wraps the MMIO generation is preceded by an invalidation (a
//! second bump after a DELETE's own, and a vCPU can reload between the two
//! and find its new root obsolete), and the seed v3 DELETE unpublishes the
//! slot before it bumps (a fault in between finds the slot gone and its root
//! current). Such a bump is a third event of the operation ([`Placed::Bump`],
//! [`Reference::deferred_bump`]), between the operation and its tail, and a
//! no-op if the update made none.
//!
//! ## Where each part lives
//!
//! - `call.rs`: making a call on a shared `Vm` ([`apply_shared`]) and
//!   printing it ([`show_op`], [`show_outcome`]);
//! - `history.rs`: the history type ([`Record`], [`History`]);
//! - `verdict.rs`: what the check answers ([`Witness`], [`Placed`],
//!   [`CheckError`], [`NotLinearizable`]);
//! - `search.rs`: the search itself ([`check`], [`check_from`], [`Limits`]).
//!
//! The tests below check histories through this public face.
//!
//! [`Vm`]: fastzap::Vm
//! [`Op`]: crate::reference::Op
//! [`Outcome`]: crate::reference::Outcome
//! [`Overlap`]: crate::reference::Overlap
//! [`Reference`]: crate::reference::Reference
//! [`Reference::step_overlapping`]: crate::reference::Reference::step_overlapping
//! [`Reference::end_invalidation`]: crate::reference::Reference::end_invalidation
//! [`Reference::deferred_bump`]: crate::reference::Reference::deferred_bump

pub use crate::call::{apply_shared, show_op, show_outcome};
pub use crate::history::{History, Record};
pub use crate::search::{Limits, check, check_from};
pub use crate::verdict::{CheckError, NotLinearizable, Placed, Witness};

#[cfg(test)]
mod tests {
    use fastzap::{
        Config, Fault, Gfn, Handled, Hva, Pfn, Requests, RetryReason, SlotId, SlotSpec,
        Translation, VcpuId, ZapStats,
    };

    use super::*;
    use crate::op::{Op, Outcome};

    const V0: VcpuId = VcpuId(0);
    const HVA: u64 = 0x10_0000;

    fn config() -> Config {
        let mut config = Config::model();
        config.vcpus = 1;
        config.address_spaces = 1;
        config
    }

    /// Slot 0 over gfns 0..4, vCPU 0 loaded, gfn 1 faulted to pfn 0x100: t0 to t5.
    fn setup() -> Vec<Record> {
        vec![
            Record::at(
                "main",
                0,
                1,
                Op::CreateSlot(SlotSpec {
                    id: SlotId(0),
                    base_gfn: Gfn(0),
                    npages: 4,
                    userspace_addr: Hva(HVA),
                }),
                Outcome::Unit(Ok(())),
            ),
            Record::at(
                "main",
                2,
                3,
                Op::HandleRequests(V0),
                Outcome::Handled(Ok(Handled {
                    requests: Requests::RELOAD,
                    reloaded: true,
                })),
            ),
            Record::at(
                "main",
                4,
                5,
                Op::PageFault {
                    vcpu: V0,
                    gfn: 1,
                    write: true,
                },
                Outcome::Fault(Ok(Fault::Mapped { pfn: Pfn(0x100) })),
            ),
        ]
    }

    fn translate(call: u64, ret: u64, t: Translation) -> Record {
        Record::at(
            "vcpu0",
            call,
            ret,
            Op::Translate { vcpu: V0, gfn: 1 },
            Outcome::Translation(Ok(t)),
        )
    }

    const STALE: Translation = Translation::Mapped {
        pfn: Pfn(0x100),
        writable: true,
    };

    #[test]
    fn sequential_history_is_its_own_witness() {
        let mut h = setup();
        h.push(translate(6, 7, STALE));
        let w = check(&config(), &History::new(h), Limits::default()).expect("linearizable");
        assert_eq!(w.order.len(), 4);
    }

    /// The translate is invoked first, but it saw the zap's reload request:
    /// only the order zap, translate is accepted.
    #[test]
    fn concurrent_history_needing_reordering_passes() {
        let mut h = setup();
        h.push(translate(10, 30, Translation::RequestPending));
        h.push(Record::at(
            "zapper",
            12,
            14,
            Op::ZapAllFast,
            Outcome::Zap(Ok(ZapStats::default())),
        ));
        let history = History::new(h);
        assert_eq!(history.overlapping_pairs(), 1);
        let w = check(&config(), &history, Limits::default()).expect("linearizable");
        let pos = |p| w.order.iter().position(|&q| q == p).expect("placed");
        assert!(pos(Placed::Op(4)) < pos(Placed::Op(3)), "{:?}", w.order);
    }

    /// The security property: the invalidation of gfn 1's host page returned
    /// before the translate was invoked, and the translate returned the old pfn.
    #[test]
    fn stale_pfn_after_invalidate_range_is_rejected() {
        let mut h = setup();
        h.push(Record::at(
            "notifier",
            10,
            11,
            Op::InvalidateRange {
                start: HVA + 4096,
                end: HVA + 2 * 4096,
            },
            Outcome::Count(Ok(1)),
        ));
        h.push(Record::at(
            "vcpu0",
            12,
            13,
            Op::HandleRequests(V0),
            Outcome::Handled(Ok(Handled {
                requests: Requests::TLB_FLUSH,
                reloaded: false,
            })),
        ));
        h.push(translate(14, 15, STALE));
        // A zap overlapping everything, which must not excuse the stale pfn.
        h.push(Record::at(
            "zapper",
            9,
            16,
            Op::ZapAllFast,
            Outcome::Zap(Ok(ZapStats::default())),
        ));
        let err = check(&config(), &History::new(h), Limits::default()).expect_err("stale");
        let CheckError::NotLinearizable(n) = &err else {
            panic!("{err}")
        };
        assert!(n.refused.iter().any(|(i, _)| *i == 5), "{err}");
        let text = err.to_string();
        assert!(text.contains("vcpu0:"), "{text}");
        assert!(text.contains("translate(vcpu0, gfn 1) -> Mapped"), "{text}");
    }

    #[test]
    fn invalid_slot_retry_needs_an_overlapping_delete() {
        let fault = |call, ret| {
            Record::at(
                "vcpu0",
                call,
                ret,
                Op::PageFault {
                    vcpu: V0,
                    gfn: 2,
                    write: false,
                },
                Outcome::Fault(Ok(Fault::Retry(RetryReason::InvalidSlot))),
            )
        };
        let delete = |call, ret| {
            Record::at(
                "memslot",
                call,
                ret,
                Op::DeleteSlot {
                    id: SlotId(0),
                    strategy: Some(fastzap::DeletionStrategy::Merged311),
                },
                Outcome::Unit(Ok(())),
            )
        };
        let mut alone = setup();
        alone.push(fault(10, 11));
        alone.push(delete(12, 13));
        let err = check(&config(), &History::new(alone), Limits::default());
        assert!(
            matches!(err, Err(CheckError::NotLinearizable(_))),
            "{err:?}"
        );
        let mut overlapped = setup();
        overlapped.push(fault(10, 13));
        overlapped.push(delete(11, 12));
        check(&config(), &History::new(overlapped), Limits::default()).expect("linearizable");
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

    fn fault(call: u64, ret: u64, gfn: u64, got: Fault) -> Record {
        Record::at(
            "vcpu0",
            call,
            ret,
            Op::PageFault {
                vcpu: V0,
                gfn,
                write: false,
            },
            Outcome::Fault(Ok(got)),
        )
    }

    #[test]
    fn notifier_race_needs_an_overlapping_notifier() {
        let race = Fault::Retry(RetryReason::NotifierRace);
        let notifier = |call, ret| {
            Record::at(
                "notifier",
                call,
                ret,
                Op::InvalidateRange {
                    start: HVA + 3 * 4096,
                    end: HVA + 4 * 4096,
                },
                Outcome::Count(Ok(0)),
            )
        };
        let mut alone = setup();
        alone.extend([fault(10, 11, 2, race), notifier(12, 13)]);
        assert!(check(&config(), &History::new(alone), Limits::default()).is_err());
        let mut overlapped = setup();
        overlapped.extend([fault(10, 13, 2, race), notifier(11, 12)]);
        check(&config(), &History::new(overlapped), Limits::default()).expect("linearizable");
    }

    /// A lockless translate can see the bumped generation before the reload
    /// request of the same `mmu_lock` hold lands, and a `handle_requests`
    /// can find nothing to do in between (S4 and S1 under shuttle).
    #[test]
    fn a_translate_between_the_bump_and_the_request_may_miss() {
        let mut h = setup();
        h.push(zap(10, 20));
        h.push(translate(11, 12, Translation::Miss));
        h.push(Record::at(
            "vcpu0",
            13,
            14,
            Op::HandleRequests(V0),
            Outcome::Handled(Ok(Handled::default())),
        ));
        h.push(translate(15, 16, Translation::RequestPending));
        check(&config(), &History::new(h), Limits::default()).expect("linearizable");
    }

    /// A fault that finds its root obsolete took `mmu_lock` after the bump,
    /// whose hold made the reload request: the request is certainly pending,
    /// however the zap overlaps (bug 2, `ReloadOutsideLock`, breaks this).
    #[test]
    fn an_obsolete_root_proves_the_reload() {
        let mut h = setup();
        h.push(zap(10, 30));
        h.push(fault(11, 12, 2, Fault::Retry(RetryReason::ObsoleteRoot)));
        h.push(Record::at(
            "vcpu0",
            13,
            14,
            Op::PendingRequests(V0),
            Outcome::Requests(Ok(Requests::TLB_FLUSH)),
        ));
        let err = check(&config(), &History::new(h), Limits::default()).expect_err("bug 2");
        assert!(
            err.to_string().contains("a reload must be pending"),
            "{err}"
        );
    }

    /// Once a fast invalidation has returned, its reload request has landed:
    /// a vCPU that looked at its requests too early, while it ran, and still
    /// holds its obsolete root must reload (I5).
    #[test]
    fn an_early_look_does_not_excuse_a_missed_reload() {
        let handle = |call, ret| {
            Record::at(
                "vcpu0",
                call,
                ret,
                Op::HandleRequests(V0),
                Outcome::Handled(Ok(Handled::default())),
            )
        };
        let mut h = setup();
        h.extend([zap(10, 30), handle(11, 12), handle(13, 14)]);
        check(&config(), &History::new(h.clone()), Limits::default()).expect("early looks");
        h.push(handle(31, 32));
        let err = check(&config(), &History::new(h), Limits::default()).expect_err("I5");
        assert!(err.to_string().contains("a reload was due"), "{err}");
    }

    /// A translate judged as a walk may miss, but it may not map a pfn the
    /// reference does not hold.
    #[test]
    fn a_walk_never_maps_a_foreign_pfn() {
        let mut h = setup();
        h.push(zap(10, 20));
        h.push(translate(
            11,
            12,
            Translation::Mapped {
                pfn: Pfn(0x999),
                writable: true,
            },
        ));
        assert!(check(&config(), &History::new(h), Limits::default()).is_err());
    }

    #[test]
    fn a_bounded_search_says_too_big() {
        let mut h = setup();
        h.push(translate(6, 7, STALE));
        let err = check(&config(), &History::new(h), Limits { max_states: 2 });
        assert!(matches!(err, Err(CheckError::TooBig { .. })), "{err:?}");
    }
}

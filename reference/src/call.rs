//! # One call of the public API: made on a shared `Vm`, and read back
//!
//! The calls a recorded history holds are made by [`apply_shared`], the way
//! a concurrent caller makes them (every operation but the sequential
//! probe `translate_unsynchronized` takes `&Vm`), and printed in the API's
//! own words by [`show_op`] and [`show_outcome`], so that a counterexample
//! reads as the calls a VMM would write. Mirrors the public methods of
//! `core/src/vm.rs`.

use std::fmt;

use fastzap::{Gfn, Hva, Vm};

use crate::op::{Op, Outcome};

/// `op` in the API's own words.
pub fn show_op(op: &Op) -> String {
    match op {
        Op::HandleRequests(v) => format!("handle_requests(vcpu{})", v.0),
        Op::PageFault { vcpu, gfn, write } => format!(
            "page_fault(vcpu{}, gfn {gfn}, {})",
            vcpu.0,
            if *write { "write" } else { "read" }
        ),
        Op::Translate { vcpu, gfn } => format!("translate(vcpu{}, gfn {gfn})", vcpu.0),
        Op::TranslateUnsynchronized { vcpu, gfn } => {
            format!("translate_unsynchronized(vcpu{}, gfn {gfn})", vcpu.0)
        }
        Op::TranslateRun { vcpu, gfns } => format!("translate_run(vcpu{}, {gfns:?})", vcpu.0),
        Op::PendingRequests(v) => format!("pending_requests(vcpu{})", v.0),
        Op::ZapAllFast => "invalidate_zap_all_pages()".into(),
        Op::ZapAllEager => "zap_all()".into(),
        Op::CreateSlot(s) => format!(
            "create_memslot(slot {}, gfn {}+{}, hva {:#x})",
            s.id.0, s.base_gfn.0, s.npages, s.userspace_addr.0
        ),
        Op::DeleteSlot { id, strategy } => match strategy {
            None => format!("delete_memslot(slot {})", id.0),
            Some(s) => format!("delete_memslot_with(slot {}, {s:?})", id.0),
        },
        Op::MoveSlot { id, base_gfn } => format!("move_memslot(slot {}, gfn {base_gfn})", id.0),
        Op::InvalidateRange { start, end } => format!("invalidate_range({start:#x}, {end:#x})"),
        Op::ClearFlushYoung { start, end } => format!("clear_flush_young({start:#x}, {end:#x})"),
        Op::TestYoung { start, end } => format!("test_young({start:#x}, {end:#x})"),
        Op::ChangePte { hva } => format!("change_pte({hva:#x})"),
        Op::Shrink(n) => format!("shrink({n})"),
    }
}

/// `outcome` without the `Ok(...)` of a success.
pub fn show_outcome(outcome: &Outcome) -> String {
    fn ok<T: fmt::Debug>(r: &Result<T, fastzap::MmuError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("Err({e:?})"),
        }
    }
    match outcome {
        Outcome::Handled(r) => ok(r),
        Outcome::Fault(r) => ok(r),
        Outcome::Translation(r) => ok(r),
        Outcome::Translations(r) => ok(r),
        Outcome::Requests(Ok(v)) => format!("{:#x}", v.bits()),
        Outcome::Requests(r) => ok(r),
        Outcome::Zap(Ok(_)) => "Ok".into(),
        Outcome::Zap(r) => ok(r),
        Outcome::Unit(r) => ok(r),
        Outcome::Count(r) => ok(r),
        Outcome::Young(r) => ok(r),
    }
}

/// Runs `op` on a shared `vm`, as a concurrent caller does. `translate_unsynchronized`
/// needs `&mut Vm` (it is the sequential tests' probe): it is not a concurrent
/// operation, and this panics on it.
pub fn apply_shared(vm: &Vm, op: &Op) -> Outcome {
    match op {
        Op::TranslateUnsynchronized { .. } => {
            panic!("translate_unsynchronized needs &mut Vm: not a concurrent operation")
        }
        Op::HandleRequests(v) => Outcome::Handled(vm.handle_requests(*v)),
        Op::PageFault { vcpu, gfn, write } => {
            Outcome::Fault(vm.page_fault(*vcpu, Gfn(*gfn), *write))
        }
        Op::Translate { vcpu, gfn } => Outcome::Translation(vm.translate(*vcpu, Gfn(*gfn))),
        Op::TranslateRun { vcpu, gfns } => {
            let gfns: Vec<Gfn> = gfns.iter().map(|&g| Gfn(g)).collect();
            let mut out = Vec::new();
            Outcome::Translations(vm.translate_run(*vcpu, &gfns, &mut out).map(|()| out))
        }
        Op::PendingRequests(v) => Outcome::Requests(vm.pending_requests(*v)),
        Op::ZapAllFast => Outcome::Zap(vm.invalidate_zap_all_pages()),
        Op::ZapAllEager => Outcome::Zap(vm.zap_all()),
        Op::CreateSlot(spec) => Outcome::Unit(vm.create_memslot(*spec)),
        Op::DeleteSlot { id, strategy } => Outcome::Unit(match strategy {
            None => vm.delete_memslot(*id),
            Some(s) => vm.delete_memslot_with(*id, *s),
        }),
        Op::MoveSlot { id, base_gfn } => Outcome::Unit(vm.move_memslot(*id, Gfn(*base_gfn))),
        Op::InvalidateRange { start, end } => {
            Outcome::Count(vm.invalidate_range(Hva(*start), Hva(*end)))
        }
        Op::ClearFlushYoung { start, end } => {
            Outcome::Young(vm.clear_flush_young(Hva(*start), Hva(*end)))
        }
        Op::TestYoung { start, end } => Outcome::Young(vm.test_young(Hva(*start), Hva(*end))),
        Op::ChangePte { hva } => Outcome::Count(vm.change_pte(Hva(*hva))),
        Op::Shrink(nr) => Outcome::Count(vm.shrink(*nr)),
    }
}

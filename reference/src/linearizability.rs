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

use std::collections::HashSet;
use std::fmt;

use fastzap::{Config, Gfn, Hva, Vm};

use crate::reference::{Divergence, Op, Outcome, Overlap, Reference};

/// One completed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Who called (`vcpu0`, `zapper`, `main`...).
    pub actor: String,
    /// The call.
    pub op: Op,
    /// The instant before the call.
    pub call: u64,
    /// The instant after it returned (greater than `call`).
    pub ret: u64,
    /// What it returned.
    pub outcome: Outcome,
}

impl Record {
    /// Whether the two calls overlap in real time.
    pub fn overlaps(&self, other: &Record) -> bool {
        self.call < other.ret && other.call < self.ret
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[t{}..t{}] {} -> {}",
            self.call,
            self.ret,
            show_op(&self.op),
            show_outcome(&self.outcome)
        )
    }
}

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

/// The completed calls of one execution, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The calls.
    pub records: Vec<Record>,
}

impl History {
    /// A history of `records`.
    pub fn new(records: Vec<Record>) -> History {
        History { records }
    }

    /// Pairs of calls that overlap in real time.
    pub fn overlapping_pairs(&self) -> usize {
        let r = &self.records;
        (0..r.len())
            .map(|i| (i + 1..r.len()).filter(|&j| r[i].overlaps(&r[j])).count())
            .sum()
    }

    /// The actors, in order of their first call.
    pub fn actors(&self) -> Vec<&str> {
        let mut by_first: Vec<&Record> = self.records.iter().collect();
        by_first.sort_by_key(|r| r.call);
        let mut actors: Vec<&str> = Vec::new();
        for r in by_first {
            if !actors.contains(&r.actor.as_str()) {
                actors.push(&r.actor);
            }
        }
        actors
    }

    /// The history, one block per actor, calls in the order they were made,
    /// each with its index (`#i`) and interval.
    pub fn per_actor(&self) -> String {
        let mut out = String::new();
        for actor in self.actors() {
            out.push_str(&format!("  {actor}:\n"));
            let mut mine: Vec<(usize, &Record)> = self
                .records
                .iter()
                .enumerate()
                .filter(|(_, r)| r.actor == actor)
                .collect();
            mine.sort_by_key(|(_, r)| r.call);
            for (i, r) in mine {
                out.push_str(&format!("    #{i:<3} {r}\n"));
            }
        }
        out
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.per_actor())
    }
}

/// Bounds on the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Reference steps the search may take before it gives up.
    pub max_states: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_states: 1_000_000,
        }
    }
}

/// One event the search places: an operation, or a later instant of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Operation `i` of the history.
    Op(usize),
    /// The generation bump memslot update `i` makes at an instant of its
    /// own, if any: after `Op(i)`, before `Tail(i)`.
    Bump(usize),
    /// The end of operation `i`: its requests have landed and its batches
    /// are done.
    Tail(usize),
}

impl fmt::Display for Placed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placed::Op(i) => write!(f, "#{i}"),
            Placed::Bump(i) => write!(f, "#{i}.bump"),
            Placed::Tail(i) => write!(f, "#{i}.tail"),
        }
    }
}

/// A linearization found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The order, operations and tails.
    pub order: Vec<Placed>,
    /// Reference steps taken.
    pub states: u64,
    /// Failed (placed set, reference) pairs met again and skipped.
    pub memo_hits: u64,
}

/// No order places every operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    /// The history.
    pub history: History,
    /// The longest prefix any order reached.
    pub prefix: Vec<Placed>,
    /// The operations that could come next after it, each with why the
    /// reference refused it there.
    pub refused: Vec<(usize, Divergence)>,
    /// Reference steps taken.
    pub states: u64,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops = self.history.records.len();
        let placed = self.prefix.iter().filter(|p| matches!(p, Placed::Op(_)));
        writeln!(
            f,
            "not linearizable: no order consistent with real time is accepted by the reference \
             ({ops} operations, {} reference steps)",
            self.states
        )?;
        writeln!(f, "history, per actor:")?;
        f.write_str(&self.history.per_actor())?;
        writeln!(
            f,
            "longest linearizable prefix ({} of {ops} operations):",
            placed.count()
        )?;
        for p in &self.prefix {
            match p {
                Placed::Op(i) => {
                    let r = &self.history.records[*i];
                    writeln!(f, "    {p:<8} {:<8} {r}", r.actor)?;
                }
                Placed::Bump(i) => writeln!(
                    f,
                    "    {p:<8} {:<8} (the deferred generation bump of {}, if any)",
                    self.history.records[*i].actor,
                    show_op(&self.history.records[*i].op)
                )?,
                Placed::Tail(i) => writeln!(
                    f,
                    "    {p:<8} {:<8} (the requests and batches of {} end)",
                    self.history.records[*i].actor,
                    show_op(&self.history.records[*i].op)
                )?,
            }
        }
        writeln!(f, "no operation can come next:")?;
        for (i, why) in &self.refused {
            let r = &self.history.records[*i];
            writeln!(
                f,
                "    #{i:<7} {:<8} {r}\n             refused: {why}",
                r.actor
            )?;
        }
        Ok(())
    }
}

/// Why [`check`] found no witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The history is not linearizable.
    NotLinearizable(Box<NotLinearizable>),
    /// The search hit [`Limits::max_states`] before deciding.
    TooBig {
        /// Operations in the history.
        ops: usize,
        /// Reference steps taken.
        states: u64,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable(n) => n.fmt(f),
            CheckError::TooBig { ops, states } => write!(
                f,
                "history too big to decide: {ops} operations, gave up after {states} reference steps"
            ),
        }
    }
}

impl std::error::Error for CheckError {}

/// A placeable event, with its real-time interval.
#[derive(Debug, Clone, Copy)]
struct Event {
    placed: Placed,
    /// The event that must be placed before this one.
    after: Option<usize>,
    call: u64,
    ret: u64,
}

struct Search<'h> {
    history: &'h History,
    events: Vec<Event>,
    /// Per operation: what overlaps it.
    overlap: Vec<Overlap>,
    /// Per operation: the index of its tail event, if any.
    tail_of: Vec<Option<usize>>,
    limits: Limits,
    states: u64,
    memo_hits: u64,
    failed: HashSet<(Vec<u64>, Reference)>,
    order: Vec<Placed>,
    best: Vec<Placed>,
    best_len: Option<usize>,
    best_refused: Vec<(usize, Divergence)>,
    too_big: bool,
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn flip(bits: &mut [u64], i: usize) {
    bits[i / 64] ^= 1 << (i % 64);
}

impl Search<'_> {
    /// Whether event `e` may come next: not placed, the event it comes after
    /// placed, and invoked before every unplaced event's response.
    fn minimal(&self, done: &[u64], e: usize, min_ret: u64) -> bool {
        if is_set(done, e) {
            return false;
        }
        if self.events[e].after.is_some_and(|a| !is_set(done, a)) {
            return false;
        }
        self.events[e].call < min_ret
    }

    /// Depth-first search from `state` with `done` placed. True when every
    /// event is placed.
    fn dfs(&mut self, done: &mut Vec<u64>, state: &Reference) -> bool {
        let n = self.events.len();
        if self.order.len() == n {
            return true;
        }
        if self.failed.contains(&(done.clone(), state.clone())) {
            self.memo_hits += 1;
            return false;
        }
        let min_ret = (0..n)
            .filter(|&e| !is_set(done, e))
            .map(|e| self.events[e].ret)
            .min()
            .unwrap_or(u64::MAX);
        // Operations first, tails last: a later tail is never less permissive.
        let mut candidates: Vec<usize> =
            (0..n).filter(|&e| self.minimal(done, e, min_ret)).collect();
        candidates.sort_by_key(|&e| !matches!(self.events[e].placed, Placed::Op(_)));
        let mut refused = Vec::new();
        for e in candidates {
            if self.states >= self.limits.max_states {
                self.too_big = true;
                return false;
            }
            self.states += 1;
            let mut next = state.clone();
            let stepped = match self.events[e].placed {
                Placed::Op(i) => {
                    let r = &self.history.records[i];
                    let tail = self.tail_of[i].map(|_| i as u64);
                    next.step_overlapping(&r.op, &r.outcome, self.overlap[i], tail)
                }
                Placed::Bump(i) => {
                    next.deferred_bump(i as u64);
                    Ok(())
                }
                Placed::Tail(i) => {
                    next.end_invalidation(i as u64);
                    Ok(())
                }
            };
            match stepped {
                Ok(()) => {
                    flip(done, e);
                    self.order.push(self.events[e].placed);
                    if self.dfs(done, &next) {
                        return true;
                    }
                    self.order.pop();
                    flip(done, e);
                    if self.too_big {
                        return false;
                    }
                }
                Err(why) => {
                    if let Placed::Op(i) = self.events[e].placed {
                        refused.push((i, why));
                    }
                }
            }
        }
        if self.best_len.is_none_or(|best| self.order.len() > best) {
            self.best_len = Some(self.order.len());
            self.best = self.order.clone();
            self.best_refused = refused;
        }
        self.failed.insert((done.clone(), state.clone()));
        false
    }
}

/// Searches for an order of `history` that respects real time and that the
/// reference, started from `initial`, accepts.
pub fn check_from(
    initial: &Reference,
    history: &History,
    limits: Limits,
) -> Result<Witness, CheckError> {
    let records = &history.records;
    let mut events: Vec<Event> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Event {
            placed: Placed::Op(i),
            after: None,
            call: r.call,
            ret: r.ret,
        })
        .collect();
    let mut tail_of = vec![None; records.len()];
    for (i, r) in records.iter().enumerate() {
        let overlapped = records
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.overlaps(r));
        if Reference::has_tail(&r.op, &r.outcome) && overlapped {
            let mut after = i;
            if Reference::may_defer_bump(&r.op) {
                after = events.len();
                events.push(Event {
                    placed: Placed::Bump(i),
                    after: Some(i),
                    call: r.call,
                    ret: r.ret,
                });
            }
            tail_of[i] = Some(events.len());
            events.push(Event {
                placed: Placed::Tail(i),
                after: Some(after),
                call: r.call,
                ret: r.ret,
            });
        }
    }
    let overlap = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut o = Overlap::NONE;
            for (j, other) in records.iter().enumerate() {
                if i != j && r.overlaps(other) {
                    o.add(&other.op);
                }
            }
            o
        })
        .collect();
    let mut search = Search {
        history,
        overlap,
        tail_of,
        limits,
        states: 0,
        memo_hits: 0,
        failed: HashSet::new(),
        order: Vec::new(),
        best: Vec::new(),
        best_len: None,
        best_refused: Vec::new(),
        too_big: false,
        events,
    };
    let mut done = vec![0u64; search.events.len().div_ceil(64).max(1)];
    if search.dfs(&mut done, initial) {
        return Ok(Witness {
            order: search.order,
            states: search.states,
            memo_hits: search.memo_hits,
        });
    }
    if search.too_big {
        return Err(CheckError::TooBig {
            ops: records.len(),
            states: search.states,
        });
    }
    Err(CheckError::NotLinearizable(Box::new(NotLinearizable {
        history: history.clone(),
        prefix: search.best,
        refused: search.best_refused,
        states: search.states,
    })))
}

/// [`check_from`] a fresh VM of `config`: the history must include the
/// setup calls too.
pub fn check(config: &Config, history: &History, limits: Limits) -> Result<Witness, CheckError> {
    check_from(&Reference::new(config), history, limits)
}

#[cfg(test)]
mod tests {
    use fastzap::{
        Fault, Handled, Pfn, Requests, RetryReason, SlotId, SlotSpec, Translation, VcpuId, ZapStats,
    };

    use super::*;

    const V0: VcpuId = VcpuId(0);
    const HVA: u64 = 0x10_0000;

    fn config() -> Config {
        let mut config = Config::model();
        config.vcpus = 1;
        config.address_spaces = 1;
        config
    }

    fn rec(actor: &str, call: u64, ret: u64, op: Op, outcome: Outcome) -> Record {
        Record {
            actor: actor.into(),
            op,
            call,
            ret,
            outcome,
        }
    }

    /// Slot 0 over gfns 0..4, vCPU 0 loaded, gfn 1 faulted to pfn 0x100: t0 to t5.
    fn setup() -> Vec<Record> {
        vec![
            rec(
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
            rec(
                "main",
                2,
                3,
                Op::HandleRequests(V0),
                Outcome::Handled(Ok(Handled {
                    requests: Requests::RELOAD,
                    reloaded: true,
                })),
            ),
            rec(
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
        rec(
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
        h.push(rec(
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
        h.push(rec(
            "notifier",
            10,
            11,
            Op::InvalidateRange {
                start: HVA + 4096,
                end: HVA + 2 * 4096,
            },
            Outcome::Count(Ok(1)),
        ));
        h.push(rec(
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
        h.push(rec(
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
            rec(
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
            rec(
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
        rec(
            "zapper",
            call,
            ret,
            Op::ZapAllFast,
            Outcome::Zap(Ok(ZapStats::default())),
        )
    }

    fn fault(call: u64, ret: u64, gfn: u64, got: Fault) -> Record {
        rec(
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
            rec(
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
        h.push(rec(
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
        h.push(rec(
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
            rec(
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

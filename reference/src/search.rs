//! # The search: Wing and Gong, with Lowe's state cache
//!
//! [`check`] looks for an order of a history's events that respects real
//! time and that the [`Reference`] accepts: a depth-first search that, at
//! each step, tries every *minimal* pending event (one invoked before every
//! pending event's response), steps a clone of the reference with it, and
//! goes deeper on success. A (placed set, reference state) pair that failed
//! once is remembered and never explored again. Each operation is judged
//! with what overlaps it in real time ([`Overlap`]); an operation that acts
//! after its atomic step, and overlaps another, gets a tail event (and a
//! memslot update a bump event) with the same interval, placed after it.
//! The search is bounded ([`Limits::max_states`]).

use std::collections::HashSet;

use fastzap::Config;

use crate::history::History;
use crate::op::Divergence;
use crate::overlap::Overlap;
use crate::state::Reference;
use crate::verdict::{CheckError, NotLinearizable, Placed, Witness};

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

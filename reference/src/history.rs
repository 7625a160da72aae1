//! # Histories: the completed calls of one execution
//!
//! A [`Record`] is one call as its caller saw it: the actor, the [`Op`], the
//! instants of its invocation and of its response on one global logical
//! clock, and the [`Outcome`]. A [`History`] is the records of one
//! execution, in any order; it prints one block per actor.

use std::fmt;

use crate::call::{show_op, show_outcome};
use crate::op::{Op, Outcome};

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
    /// A record of `actor`'s call `op` between instants `call` and `ret`
    /// (the recorded histories of the tests).
    #[cfg(test)]
    pub(crate) fn at(actor: &str, call: u64, ret: u64, op: Op, outcome: Outcome) -> Record {
        Record {
            actor: actor.into(),
            op,
            call,
            ret,
            outcome,
        }
    }

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

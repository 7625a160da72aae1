//! # What the check answers: a witness, or why there is none
//!
//! A [`Witness`] is an order of the history's events ([`Placed`]: each
//! operation, and the later instants of the operations that act after their
//! atomic step) that respects real time and that the reference accepts. A
//! [`CheckError`] says the history is not linearizable, with the longest
//! prefix any order reached and why the reference refused each operation
//! that could come next ([`NotLinearizable`]), or that the search gave up.

use std::fmt;

use crate::call::show_op;
use crate::history::History;
use crate::op::Divergence;

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

/// Why [`check`](crate::linearizability::check) found no witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The history is not linearizable.
    NotLinearizable(Box<NotLinearizable>),
    /// The search hit
    /// [`Limits::max_states`](crate::linearizability::Limits::max_states)
    /// before deciding.
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

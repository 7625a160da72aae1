//! # Execution counts
//!
//! Every model counts the executions the checker ran and, per scenario, the
//! executions that reached the interleaving the scenario is about (a fault that
//! found its root obsolete, a page freed while a reader was still running...).
//! A test asserts floors on both, so that a model that silently shrinks, or that
//! never reaches its race, fails instead of passing vacuously.
//!
//! The counters are plain std atomics on purpose: they are ghost state, and a
//! facade atomic would add scheduling points to the model it measures.

#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How many coverage marks a scenario can name.
pub const MARKS: usize = 4;

/// Per-test counters: executions, and executions that hit each coverage mark.
#[derive(Debug)]
pub struct Tally {
    executions: AtomicUsize,
    marks: [AtomicUsize; MARKS],
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// All zero. `const`, so that a test can keep its tally in a `static`.
    pub const fn new() -> Tally {
        Tally {
            executions: AtomicUsize::new(0),
            marks: [const { AtomicUsize::new(0) }; MARKS],
        }
    }

    /// Counts one execution.
    pub fn execution(&self) {
        self.executions.fetch_add(1, Relaxed);
    }

    /// Counts one execution that reached mark `index`.
    pub fn mark(&self, index: usize) {
        self.marks[index].fetch_add(1, Relaxed);
    }

    /// Executions so far.
    pub fn executions(&self) -> usize {
        self.executions.load(Relaxed)
    }

    /// Executions that reached mark `index`.
    pub fn marked(&self, index: usize) -> usize {
        self.marks[index].load(Relaxed)
    }

    /// Sets every counter back to zero (before a second run in the same test).
    pub fn reset(&self) {
        self.executions.store(0, Relaxed);
        for mark in &self.marks {
            mark.store(0, Relaxed);
        }
    }
}

/// A ghost flag shared between the threads of one execution (for example "the
/// reader has finished"), invisible to the checkers.
#[derive(Debug, Default)]
pub struct Flag(std::sync::atomic::AtomicBool);

impl Flag {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the flag is up.
    pub fn is_up(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

//! I6 from the ghost's own observations (feature `ghost`): what a zap of the
//! obsolete pages did, counted by the ghost as it happens, never read from
//! the zap loop's own counters.
//!
//! A [`ZapWatch`] is open for as long as `zap_obsolete_pages` runs. The
//! ghost counts, for the zap's actor:
//!
//! - the pages the walk examined ([`ZapWatch::examined`], the one hook in
//!   the loop);
//! - the `mmu_lock` holds, from the actor's `Lock` events, and the pages
//!   prepared in each, from its `PrepareZap` events (the events every
//!   operation emits; the ghost looks at them while a watch is open, whether
//!   or not the event log is on).
//!
//! A pass of the walk ends in a prepare, a lock break (a new hold) or the end
//! of the zap, so the zap's steps (pages examined plus passes) are
//! `examined + prepared + holds`, without the loop saying so. I6 breaks when
//! those steps pass [`zap_step_bound`], when one hold prepares more than a
//! batch, or when one zap prepares a page twice (prepared pages are invalid,
//! and the walk skips invalid pages: a page prepared twice is a walk that
//! does not advance). Each breach is recorded the moment the ghost sees it.

use std::collections::HashSet;

use crate::event::{Actor, What};
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::stats::zap_step_bound;

/// What the ghost saw of one zap.
#[derive(Debug, Clone)]
pub(crate) struct ZapSeen {
    /// The zap's number among the VM's watched zaps.
    pub(crate) number: u64,
    /// Its actor.
    pub(crate) actor: Actor,
    /// Pages in the VM when it began (read by the ghost, under the lock).
    pub(crate) pages_at_start: u64,
    /// Pages the walk examined.
    pub(crate) examined: u64,
    /// `mmu_lock` holds.
    pub(crate) holds: u64,
    /// Pages prepared in all.
    pub(crate) prepared: u64,
    /// Pages prepared in the current hold.
    prepared_in_hold: u64,
    /// The most pages prepared in one hold.
    pub(crate) max_prepared_in_hold: u64,
    /// The pages prepared.
    seen: HashSet<PageId>,
    /// A page prepared twice, if any (the first).
    pub(crate) prepared_twice: Option<PageId>,
    /// Open watches on this record (two zaps of one actor may overlap when
    /// invalidations are not serialized; their counts are then summed, and
    /// so are their bounds).
    depth: u64,
    /// Whether each breach was already recorded.
    reported: [bool; 3],
}

impl ZapSeen {
    pub(crate) fn new(number: u64, actor: Actor, pages_at_start: u64) -> ZapSeen {
        ZapSeen {
            number,
            actor,
            pages_at_start,
            examined: 0,
            // The watch opens inside the zap's first hold.
            holds: 1,
            prepared: 0,
            prepared_in_hold: 0,
            max_prepared_in_hold: 0,
            seen: HashSet::new(),
            prepared_twice: None,
            depth: 1,
            reported: [false; 3],
        }
    }

    /// The zap's steps: pages examined plus passes (each pass ends in a
    /// prepare, a lock break or the end).
    pub(crate) fn steps(&self) -> u64 {
        self.examined
            .saturating_add(self.prepared)
            .saturating_add(self.holds)
    }

    /// Another zap of the same actor began while this one runs.
    pub(crate) fn nest(&mut self, pages_at_start: u64) {
        self.depth += 1;
        self.pages_at_start = self.pages_at_start.saturating_add(pages_at_start);
    }

    /// One watch closed; whether none is left.
    pub(crate) fn unnest(&mut self) -> bool {
        self.depth = self.depth.saturating_sub(1);
        self.depth == 0
    }

    /// The walk examined one page.
    pub(crate) fn examined(&mut self) {
        self.examined = self.examined.saturating_add(1);
    }

    /// Counts one event of the zap's actor.
    pub(crate) fn observe(&mut self, what: &What) {
        match what {
            What::Lock => {
                self.holds = self.holds.saturating_add(1);
                self.prepared_in_hold = 0;
            }
            What::PrepareZap { sp, .. } => {
                self.prepared = self.prepared.saturating_add(1);
                self.prepared_in_hold = self.prepared_in_hold.saturating_add(1);
                self.max_prepared_in_hold = self.max_prepared_in_hold.max(self.prepared_in_hold);
                if !self.seen.insert(*sp) && self.prepared_twice.is_none() {
                    self.prepared_twice = Some(*sp);
                }
            }
            _ => {}
        }
    }

    /// The I6 breaches seen so far, each with the same text every time it is
    /// asked (the run-time record and the audit's report are one violation).
    pub(crate) fn breaches(&self, batch: usize, vcpus: usize) -> Vec<Violation> {
        let mut out = Vec::new();
        let v = |detail: String| Violation::new(Invariant::I6, detail);
        let (n, actor) = (self.number, self.actor);
        let bound = zap_step_bound(self.pages_at_start, vcpus);
        if self.steps() > bound {
            out.push(v(format!(
                "zap #{n} by {actor} took more than {bound} steps (pages examined plus passes, \
                 counted by the ghost), the bound for {} pages at start",
                self.pages_at_start
            )));
        }
        if self.max_prepared_in_hold > batch as u64 {
            out.push(v(format!(
                "zap #{n} by {actor} prepared more than {batch} pages in one mmu_lock hold"
            )));
        }
        if let Some(sp) = self.prepared_twice {
            out.push(v(format!(
                "zap #{n} by {actor} prepared {sp} twice: its walk does not advance"
            )));
        }
        out
    }

    /// The breaches not yet recorded, marked recorded.
    pub(crate) fn new_breaches(&mut self, batch: usize, vcpus: usize) -> Vec<Violation> {
        let all = self.breaches(batch, vcpus);
        let mut out = Vec::new();
        for breach in all {
            let kind = if breach.detail.contains("steps") {
                0
            } else if breach.detail.contains("one mmu_lock hold") {
                1
            } else {
                2
            };
            if !self.reported[kind] {
                self.reported[kind] = true;
                out.push(breach);
            }
        }
        out
    }
}

/// An open watch on one zap; closing it (drop) ends the zap's record.
#[must_use = "the watch ends when dropped"]
pub(crate) struct ZapWatch<'g> {
    pub(super) ghost: &'g super::Ghost,
    pub(super) actor: Actor,
}

impl ZapWatch<'_> {
    /// The zap's walk examined one page.
    #[inline]
    pub(crate) fn examined(&self) {
        self.ghost.zap_examined(self.actor);
    }
}

impl Drop for ZapWatch<'_> {
    fn drop(&mut self) {
        self.ghost.zap_closed(self.actor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zap_is_judged_by_what_the_ghost_counted() {
        let mut seen = ZapSeen::new(0, Actor::Zapper, 2);
        for sp in [PageId(1), PageId(2)] {
            seen.examined();
            seen.observe(&What::PrepareZap {
                sp,
                kept_root: false,
            });
        }
        seen.examined();
        assert_eq!(seen.steps(), 2 + 3 + 1);
        assert!(seen.breaches(2, 1).is_empty(), "{:?}", seen.breaches(2, 1));
        assert_eq!(seen.new_breaches(1, 1).len(), 1, "two prepares in one hold");
        assert!(seen.new_breaches(1, 1).is_empty(), "recorded once");
        seen.observe(&What::Lock);
        seen.observe(&What::PrepareZap {
            sp: PageId(1),
            kept_root: true,
        });
        let twice = seen.new_breaches(8, 1);
        assert_eq!(twice.len(), 1);
        assert!(twice[0].detail.contains("prepared sp#1 twice"), "{twice:?}");
        for _ in 0..zap_step_bound(2, 1) {
            seen.examined();
        }
        assert!(seen.new_breaches(8, 1)[0].detail.contains("steps"));
    }
}

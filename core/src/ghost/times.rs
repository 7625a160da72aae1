//! The ghost clock's records for I4 (feature `ghost`): per run of gfns, the
//! times of the latest invalidation that covered it, and the mmu-notifier
//! invalidations by host address.

use std::collections::BTreeMap;
use std::ops::Range;

/// The mmu-notifier invalidations the ghost has seen, by host address: those
/// in flight with their begin times, and per host address the (begun, ended)
/// times of the latest that ended.
#[derive(Debug, Default)]
pub(super) struct NotifierLedger {
    pub(super) in_flight: Vec<(Range<u64>, u64)>,
    pub(super) done: KillMap,
}

/// For runs of gfns, the (cut, returned) times of the latest invalidation
/// that covered them. Non-overlapping intervals keyed by their first gfn.
#[derive(Debug, Default)]
pub(super) struct KillMap {
    runs: BTreeMap<u64, (u64, (u64, u64))>,
}

impl KillMap {
    /// Records `times` for every gfn of `range`, replacing older records there.
    pub(super) fn insert(&mut self, range: Range<u64>, times: (u64, u64)) {
        if range.is_empty() {
            return;
        }
        let overlapping: Vec<u64> = self
            .runs
            .range(..range.end)
            .rev()
            .take_while(|(_, (end, _))| *end > range.start)
            .map(|(start, _)| *start)
            .collect();
        for start in overlapping {
            let (end, old) = self.runs.remove(&start).expect("listed above");
            if start < range.start {
                self.runs.insert(start, (range.start, old));
            }
            if end > range.end {
                self.runs.insert(range.end, (end, old));
            }
        }
        self.runs.insert(range.start, (range.end, times));
    }

    /// The times recorded for `gfn`, if any.
    pub(super) fn get(&self, gfn: u64) -> Option<(u64, u64)> {
        let (_, (end, times)) = self.runs.range(..=gfn).next_back()?;
        (gfn < *end).then_some(*times)
    }
}

#[cfg(test)]
mod tests {
    use super::KillMap;

    #[test]
    fn kill_map_keeps_the_latest_times_per_gfn() {
        let mut k = KillMap::default();
        k.insert(0..10, (1, 2));
        k.insert(4..6, (3, 4));
        k.insert(9..12, (5, 6));
        assert_eq!(k.get(0), Some((1, 2)));
        assert_eq!(k.get(3), Some((1, 2)));
        assert_eq!(k.get(4), Some((3, 4)));
        assert_eq!(k.get(5), Some((3, 4)));
        assert_eq!(k.get(6), Some((1, 2)));
        assert_eq!(k.get(8), Some((1, 2)));
        assert_eq!(k.get(9), Some((5, 6)));
        assert_eq!(k.get(11), Some((5, 6)));
        assert_eq!(k.get(12), None);
        k.insert(0..20, (7, 8));
        assert!((0..20).all(|g| k.get(g) == Some((7, 8))));
        assert_eq!(k.runs.len(), 1);
        k.insert(3..3, (9, 9));
        assert_eq!(k.get(3), Some((7, 8)));
    }
}

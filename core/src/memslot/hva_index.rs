//! The memslots' host-range index (`hva_tree`): which slots back a host
//! address range, for the mmu-notifiers. Slots may share host pages, so it is
//! an interval query over ranges that may overlap.

use super::{Map, Memslot};
use crate::ids::SlotId;

/// The slots by host range. KVM lets slots share host pages, so this is an
/// interval query over ranges that may overlap: the slots starting inside the
/// range, found by key, and those starting before it that reach into it. For
/// the latter it walks back from the range's start, and stops after the first
/// slot if no two slots overlap (then only the nearest can reach in), else once
/// a slot starts more than the longest slot's length before it.
#[derive(Debug, Clone)]
pub(super) struct HvaIndex {
    /// `(hva start, id)` to the slot: a copy of the one in `Memslots::slots`
    /// (the same rmap and `lpage_info`, the same flags), so that a host-range
    /// query reads its slots without a second lookup.
    pub(super) by_start: Map<(u64, SlotId), Memslot>,
    /// How many slots have each host length (for the longest one).
    pub(super) lengths: Map<u64, u64>,
    /// How many pairs of slots share host pages.
    pub(super) overlaps: u64,
}

impl Default for HvaIndex {
    fn default() -> Self {
        HvaIndex {
            by_start: Map::new(),
            lengths: Map::new(),
            overlaps: 0,
        }
    }
}

impl HvaIndex {
    /// The slots whose host range intersects `[start, end)`,
    /// in one walk back from `end`: first the slots starting inside the range,
    /// then those starting before it that reach into it. One range of the map,
    /// so one descent from each end of it.
    pub(super) fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Memslot> + '_ {
        let end = end.max(start);
        let longest = self.lengths.get_max().map_or(0, |&(len, _)| len);
        let disjoint = self.overlaps == 0;
        let mut before = 0usize;
        self.by_start
            .range(..(end, SlotId(0)))
            .rev()
            .take_while(move |((lo, _), _)| {
                if *lo >= start {
                    return true;
                }
                before += 1;
                lo.saturating_add(longest) > start && (!disjoint || before == 1)
            })
            .map(|(_, slot)| slot)
            .filter(move |slot| {
                let (lo, hi) = slot.hva_range();
                lo >= start || hi > start
            })
    }

    pub(super) fn insert(&mut self, slot: &Memslot) {
        let (lo, hi) = slot.hva_range();
        self.overlaps += self.overlapping(lo, hi).count() as u64;
        self.by_start.insert((lo, slot.id), slot.clone());
        let count = self.lengths.get(&(hi - lo)).copied().unwrap_or(0);
        self.lengths.insert(hi - lo, count + 1);
    }

    /// Sets `flags` on `slot`'s copy.
    pub(super) fn set_flags(&mut self, slot: &Memslot, flags: u32) {
        if let Some(copy) = self.by_start.get_mut(&(slot.userspace_addr, slot.id)) {
            copy.flags |= flags;
        }
    }

    pub(super) fn remove(&mut self, slot: &Memslot) {
        let (lo, hi) = slot.hva_range();
        if self.by_start.remove(&(lo, slot.id)).is_none() {
            return;
        }
        self.overlaps -= self.overlapping(lo, hi).count() as u64;
        match self.lengths.get(&(hi - lo)).copied() {
            Some(1) | None => {
                self.lengths.remove(&(hi - lo));
            }
            Some(count) => {
                self.lengths.insert(hi - lo, count - 1);
            }
        }
    }
}

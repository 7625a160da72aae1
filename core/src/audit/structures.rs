//! I9 to I11: the structures beside the MMU that used to be guarded by plain
//! assertions, whose breakage named no invariant: the reclamation counts
//! (I9), the memslot indexes (I10) and the vCPU claim (I11); and the gfns a
//! leaf maps ([`leaf_gfns`]), which I1 and I4 share.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;

use crate::ghost::{Counts, LifeCounts};
use crate::invariant::{Invariant, Violation};
use crate::memslot::Memslots;
use crate::page::PageBody;
use crate::vm::Vm;

/// The gfns a present leaf at `index` of the page `body` maps, and the pfn
/// of the first: one for a leaf of level 1; `spte_count` for a large leaf
/// (`is_large_pte`), whose pfn for its `i`-th gfn is `pfn + i`. The audit's
/// I1 and I4 checks judge every small page of a large mapping through this.
pub(crate) fn leaf_gfns(vm: &Vm, body: &PageBody, index: usize) -> Range<u64> {
    let first = vm.spte_gfn(body, index);
    let span = if body.role.level > 1 {
        vm.config.spte_count as u64
    } else {
        1
    };
    first..first.saturating_add(span)
}

/// The reclaimed kinds of [`Counts`], by name.
fn kinds(c: Counts) -> [(&'static str, LifeCounts); 3] {
    [
        ("pages", c.pages),
        ("descriptors", c.descs),
        ("rmaps", c.rmaps),
    ]
}

/// I9, the counts half, on a quiescent VM: per kind, `freed <= retired <=
/// allocated` (`retired = freed + pending`, with nothing pending below zero);
/// and, where the reclaimer counts its queue (the small EBR), every retired
/// page or descriptor not yet freed has a deferred free queued (rmaps are
/// freed at once, so none of them may be pending). A retired object with no
/// deferred free is one no grace period will ever free.
pub(crate) fn check_i9_reclamation_counts(vm: &Vm) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I9, detail);
    let counts = vm.ghost.counts();
    for (kind, c) in kinds(counts) {
        if c.freed > c.retired {
            out.push(v(format!(
                "{kind}: {} freed but only {} retired",
                c.freed, c.retired
            )));
        }
        if c.retired > c.allocated {
            out.push(v(format!(
                "{kind}: {} retired but only {} allocated",
                c.retired, c.allocated
            )));
        }
    }
    if counts.rmaps.pending() > 0 {
        out.push(v(format!(
            "rmaps: {} retired and not freed (an rmap is freed as it is retired)",
            counts.rmaps.pending()
        )));
    }
    let pending = counts
        .pages
        .pending()
        .saturating_add(counts.descs.pending());
    if let Some(queued) = vm.reclaimer.pending()
        && pending > queued as u64
    {
        out.push(v(format!(
            "{pending} pages and descriptors retired and not freed, but only {queued} deferred \
             frees queued: the rest will never be freed"
        )));
    }
    out
}

/// I9, the completion half: runs up to `rounds` grace periods (each a
/// barrier: every free deferred before it has run), then reports every kind
/// with a retired object still not freed. The caller holds no guard and no
/// lock, and nothing else runs on the VM.
pub(crate) fn check_i9_drained(vm: &Vm, rounds: usize) -> Vec<Violation> {
    if vm.drain(rounds) {
        return Vec::new();
    }
    kinds(vm.ghost.counts())
        .into_iter()
        .filter(|(_, c)| c.pending() > 0)
        .map(|(kind, c)| {
            Violation::new(
                Invariant::I9,
                format!(
                    "{kind}: {} retired but not freed after {rounds} grace periods \
                     ({} retired, {} freed)",
                    c.pending(),
                    c.retired,
                    c.freed
                ),
            )
        })
        .collect()
}

/// I10 memslot indexes agree, for one generation of the memslots: the map by
/// base gfn, the id index and the host-address index hold the same slots
/// (same id, gfns, host range, flags, rmap); each slot is filed under its
/// own base gfn; no two slots' gfn ranges overlap; the host index's length
/// counts and overlap count are those of its slots.
pub(crate) fn check_i10_memslot_indexes(slots: &Memslots) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I10, detail);
    let ix = slots.index_view();
    let (n, ids, hva) = (ix.slots.len(), ix.ids.len(), ix.by_start.len());
    if n != ids || n != hva {
        out.push(v(format!(
            "{n} slots by gfn, {ids} by id, {hva} by host address"
        )));
    }
    let mut end_of_previous: Option<(u64, u16)> = None;
    for (base, slot) in ix.slots.iter() {
        let id = slot.id.0;
        if *base != slot.base_gfn {
            out.push(v(format!(
                "slot {id} (base gfn {}) is filed under gfn {base}",
                slot.base_gfn
            )));
        }
        if let Some((end, other)) = end_of_previous
            && slot.base_gfn < end
        {
            out.push(v(format!(
                "slot {id} at gfn {} overlaps slot {other}, which ends at {end}",
                slot.base_gfn
            )));
        }
        end_of_previous = Some((slot.base_gfn.saturating_add(slot.npages), id));
        if ix.ids.get(&slot.id) != Some(base) {
            out.push(v(format!(
                "slot {id}: the id index says base gfn {:?}, the gfn map {base}",
                ix.ids.get(&slot.id)
            )));
        }
        match ix.by_start.get(&(slot.userspace_addr, slot.id)) {
            None => out.push(v(format!("slot {id} is missing from the host index"))),
            Some(copy) => {
                if copy.base_gfn != slot.base_gfn
                    || copy.npages != slot.npages
                    || copy.flags != slot.flags
                    || !std::ptr::eq(&*copy.rmap, &*slot.rmap)
                    || !std::ptr::eq(&*copy.lpage_info, &*slot.lpage_info)
                {
                    out.push(v(format!(
                        "slot {id}: the host index's copy differs (gfn {} / {}, pages {} / {}, \
                         flags {:#x} / {:#x}, same rmap {})",
                        copy.base_gfn,
                        slot.base_gfn,
                        copy.npages,
                        slot.npages,
                        copy.flags,
                        slot.flags,
                        std::ptr::eq(&*copy.rmap, &*slot.rmap)
                    )));
                }
            }
        }
    }
    let mut lengths: HashMap<u64, u64> = HashMap::new();
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(hva);
    for slot in ix.by_start.values() {
        let (lo, hi) = slot.hva_range();
        *lengths.entry(hi - lo).or_default() += 1;
        ranges.push((lo, hi));
    }
    let indexed: HashMap<u64, u64> = ix.lengths.iter().map(|(l, c)| (*l, *c)).collect();
    if indexed != lengths {
        out.push(v(format!(
            "the host index counts lengths {indexed:?}, its slots have {lengths:?}"
        )));
    }
    let overlaps = overlapping_pairs(&mut ranges);
    if overlaps != ix.overlaps {
        out.push(v(format!(
            "the host index counts {} overlapping pairs, its slots have {overlaps}",
            ix.overlaps
        )));
    }
    out
}

/// The pairs of `[lo, hi)` ranges that intersect, in O(n log n + pairs'
/// count): a sweep by start, with the ends of the ranges still open.
fn overlapping_pairs(ranges: &mut [(u64, u64)]) -> u64 {
    ranges.sort_unstable();
    let mut open: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut pairs = 0u64;
    for &(lo, hi) in ranges.iter() {
        while open.peek().is_some_and(|Reverse(end)| *end <= lo) {
            open.pop();
        }
        pairs = pairs.saturating_add(open.len() as u64);
        open.push(Reverse(hi));
    }
    pairs
}

/// I11 vCPU claim exclusive, between operations: no claim holds two
/// holders (the ghost also reports a second holder as it claims), and a
/// vCPU's claim flag is set exactly when a claim holds it. Inside an
/// operation the flag and the ghost's holder count change one after the
/// other, so this runs only in the quiescent audit.
pub(crate) fn check_i11_vcpu_claims(vm: &Vm) -> Vec<Violation> {
    let mut out = Vec::new();
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        let holders = vcpu.ghost.holders();
        let flag = vcpu.is_claimed();
        if holders > 1 || flag != (holders == 1) {
            out.push(Violation::new(
                Invariant::I11,
                format!("vcpu{index}: {holders} claims hold it, its claim flag is {flag}"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::overlapping_pairs;

    #[test]
    fn the_sweep_counts_intersecting_pairs() {
        let mut ranges = [(0, 10), (5, 15), (10, 20), (30, 40), (0, 100)];
        // (0,10)-(5,15), (5,15)-(10,20), and (0,100) with the other four.
        assert_eq!(overlapping_pairs(&mut ranges), 6);
        assert_eq!(overlapping_pairs(&mut []), 0);
    }
}

//! The invariant checks of I1 to I5, one function per invariant of
//! `SPEC.md` (I6 is in `progress.rs`, I7 in `mmio.rs`, I8 in `bounds.rs`, I9 to
//! I11 in `structures.rs`). Each takes the held `mmu_lock` and a pinned guard, and
//! returns what it finds.

use std::collections::{HashMap, HashSet};

use crate::event::Actor;
use crate::ghost::PageLife;
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::memslot::Memslot;
use crate::mmu::MmuLock;
use crate::page::PagePtr;
use crate::rmap::Rmap;
use crate::rmap::SptePtr;
use crate::spte::Spte;
use crate::sync::{Guard, Ordering};
use crate::vcpu::VcpuMode;
use crate::vm::Vm;

use super::leaf_gfns;

/// Addresses of the pages in the page table: an rmap entry or spte pointing
/// anywhere else points at retired memory, and is reported without touching it.
pub(super) fn live_pages(lk: &MmuLock<'_>) -> HashSet<usize> {
    lk.pages.values().map(|m| m.ptr.addr()).collect()
}

/// `allocated - retired` of a ghost counter, or, when corrupt state has
/// retired more than was allocated, the violation of `invariant` that says
/// so: the audit reports corrupt counts, it never panics on them.
fn unretired(
    invariant: Invariant,
    what: &str,
    counts: crate::ghost::LifeCounts,
) -> Result<u64, Violation> {
    counts.allocated.checked_sub(counts.retired).ok_or_else(|| {
        Violation::new(
            invariant,
            format!(
                "{what} counts disagree: {} retired but only {} allocated",
                counts.retired, counts.allocated
            ),
        )
    })
}

/// Every rmap the audit can see: the published slots and the unpublished ones.
fn all_slots(vm: &Vm, lk: &MmuLock<'_>) -> Vec<Memslot> {
    let mut slots: Vec<Memslot> = vm.memslots.load_full().iter().cloned().collect();
    slots.extend(lk.zombies.iter().cloned());
    slots
}

/// I1 rmap integrity: every present leaf spte of a live page is on exactly one
/// rmap head, its gfn's slot's head of its level (a large spte: the level-2
/// head of its large page, `__gfn_to_rmap`); every rmap entry points to a
/// present leaf spte of the head's level, of the gfn the entry is filed under,
/// in a page that is not freed.
pub(crate) fn check_i1_rmap_integrity(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I1, detail);
    let live = live_pages(lk);
    let mut on_rmaps: HashMap<u64, Vec<(u16, u64, u8)>> = HashMap::new();
    let mut seen_slot_ids = HashSet::new();
    for slot in all_slots(vm, lk) {
        if !seen_slot_ids.insert((slot.id, slot.base_gfn)) {
            continue;
        }
        for index in 0..slot.rmap.len() {
            let (level, gfn) = slot.rmap_head(index);
            for sptep in slot.rmap.entries(guard, index) {
                on_rmaps
                    .entry(sptep.pack())
                    .or_default()
                    .push((slot.id.0, gfn, level));
                if !live.contains(&sptep.page.addr()) {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: rmap entry points into a freed page",
                        slot.id.0
                    )));
                    continue;
                }
                let page = sptep.page.get(guard);
                let body = page.body();
                let raw = page.sptes[sptep.index].load(Ordering::Acquire);
                if !Spte::is_leaf(raw) {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: rmap entry {}[{}] is not a present leaf",
                        slot.id.0, body.id, sptep.index
                    )));
                } else if body.role.level != level {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: level-{level} rmap entry {}[{}] is a level-{} spte",
                        slot.id.0, body.id, sptep.index, body.role.level
                    )));
                } else if vm.spte_gfn(&body, sptep.index) != gfn {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: rmap entry {}[{}] maps gfn {}",
                        slot.id.0,
                        body.id,
                        sptep.index,
                        vm.spte_gfn(&body, sptep.index)
                    )));
                }
            }
        }
    }
    for meta in lk.pages.values() {
        let page = meta.ptr.get(guard);
        let body = page.body();
        if body.role.level > 2 {
            continue;
        }
        for index in 0..page.sptes.len() {
            let raw = page.sptes[index].load(Ordering::Acquire);
            if !Spte::is_leaf(raw) {
                continue;
            }
            if body.role.level == 2 && !Spte::is_large_pte(raw) {
                out.push(v(format!(
                    "{}[{index}] is a leaf above level 1 without PT_PAGE_SIZE_MASK",
                    body.id
                )));
            }
            let gfn = vm.spte_gfn(&body, index);
            let key = SptePtr {
                page: meta.ptr,
                index,
            }
            .pack();
            let homes = on_rmaps.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let slot = vm.gfn_to_slot(lk, gfn);
            match (homes, slot) {
                ([(slot_id, home_gfn, level)], Some(slot))
                    if *slot_id == slot.id.0 && *home_gfn == gfn && *level == body.role.level => {}
                ([], _) => out.push(v(format!(
                    "{}[{index}] maps gfn {gfn} but is on no rmap",
                    body.id
                ))),
                (homes, _) => out.push(v(format!(
                    "{}[{index}] maps gfn {gfn} and is on {} rmap entries {homes:?}",
                    body.id,
                    homes.len()
                ))),
            }
        }
    }
    out
}

/// I1 once the seed-v3 delete's unmap and grace period are over: no present
/// spte maps a gfn of the deleted slot. (A notifier that rewrote a spte on the
/// remove-only rmap while the unmapper cleared it, bug 4, leaves one behind,
/// on no rmap.)
pub(crate) fn check_i1_slot_unmapped(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
    slot: &Memslot,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for meta in lk.pages.values().filter(|m| m.role.level <= 2) {
        let page = meta.ptr.get(guard);
        let body = page.body();
        for (index, spte) in page.sptes.iter().enumerate() {
            let covered = leaf_gfns(vm, &body, index);
            let gfn = covered.start;
            if covered.into_iter().any(|g| slot.contains(g))
                && Spte::is_leaf(spte.load(Ordering::Acquire))
            {
                out.push(Violation::new(
                    Invariant::I1,
                    format!(
                        "{}[{index}] still maps gfn {gfn} of deleted slot {} after the unmap, on no rmap",
                        body.id, slot.id.0
                    ),
                ));
            }
        }
    }
    out
}

/// I2 descriptor availability: chains are well formed (no cycle, no empty
/// descriptor and no hole on a normal rmap, no retired or freed descriptor
/// reachable from a head), and the descriptors on chains are exactly the ones
/// allocated and not retired.
pub(crate) fn check_i2_descriptors(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
    quiescent: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I2, detail);
    let mut on_chains = 0u64;
    let mut seen = HashSet::new();
    for slot in all_slots(vm, lk) {
        if !seen.insert(&*slot.rmap as *const Rmap as usize) {
            continue;
        }
        let remove_only = slot.rmap.is_remove_only();
        for index in 0..slot.rmap.len() {
            let shape = slot.rmap.shape(guard, index);
            on_chains = on_chains.saturating_add(shape.descs as u64);
            let at = format!(
                "slot {} gfn {}",
                slot.id.0,
                slot.base_gfn.saturating_add(index as u64)
            );
            if shape.cycle {
                out.push(v(format!("{at}: descriptor chain has a cycle")));
            }
            if shape.poisoned > 0 {
                out.push(v(format!(
                    "{at}: a freed descriptor is reachable from the head"
                )));
            }
            if shape.retired > 0 {
                out.push(v(format!(
                    "{at}: a retired descriptor is reachable from the head"
                )));
            }
            if !remove_only && shape.empty_descs > 0 {
                out.push(v(format!(
                    "{at}: empty descriptor on a normal rmap's chain"
                )));
            }
            if !remove_only && shape.holes > 0 {
                out.push(v(format!("{at}: hole in a normal rmap's chain")));
            }
            if !remove_only && shape.descs > 0 && shape.entries < 2 {
                out.push(v(format!(
                    "{at}: descriptor chain holding {} entries",
                    shape.entries
                )));
            }
        }
    }
    if quiescent {
        match unretired(Invariant::I2, "descriptor", vm.ghost.counts().descs) {
            Ok(unretired) if unretired != on_chains => out.push(v(format!(
                "{unretired} descriptors allocated and not retired, but {on_chains} on chains"
            ))),
            Ok(_) => {}
            Err(corrupt) => out.push(corrupt),
        }
    }
    out
}

/// I3 page lifetime: pages in the page table are live and unpoisoned; each is on
/// the active list or on a zap list, and in the hash; an invalid page stays on
/// the active list only while it is somebody's root; `root_count` is the number
/// of vCPUs using the page; and the counters agree with the page table (nothing
/// leaked, nothing retired twice).
pub(crate) fn check_i3_page_lifetime(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
    quiescent: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I3, detail);
    let mut root_users: HashMap<PageId, u32> = HashMap::new();
    for id in lk.roots.iter().flatten() {
        let users = root_users.entry(*id).or_default();
        *users = users.saturating_add(1);
    }
    let zap_list: HashSet<_> = lk.zapped_obsolete.iter().copied().collect();
    for (id, meta) in lk.pages.iter() {
        let page = meta.ptr.get(guard);
        let body = page.body();
        if body.poisoned || page.ghost.life() != PageLife::Live {
            out.push(v(format!(
                "{id} is in the page table but {:?}",
                page.ghost.life()
            )));
        }
        let on_active = meta
            .active_key
            .is_some_and(|k| lk.active.get(&k) == Some(id));
        let on_zap = meta.on_zap_list && zap_list.contains(id);
        if on_active == on_zap {
            out.push(v(format!(
                "{id}: on active list {on_active}, on zap list {on_zap}"
            )));
        }
        if !lk
            .hash
            .get(&(meta.gfn, meta.role))
            .is_some_and(|l| l.contains(id))
        {
            out.push(v(format!("{id} is not in the gfn hash")));
        }
        let users = root_users.get(id).copied().unwrap_or(0);
        if meta.root_count != users {
            out.push(v(format!(
                "{id}: root_count {} but {users} vCPUs use it",
                meta.root_count
            )));
        }
        if quiescent && on_active && meta.invalid && meta.root_count == 0 {
            out.push(v(format!(
                "{id} is invalid, unused and still on the active list (leak)"
            )));
        }
    }
    if lk.active.len().checked_add(lk.zapped_obsolete.len()) != Some(lk.pages.len()) {
        out.push(v(format!(
            "active {} + zapped {} != pages {}",
            lk.active.len(),
            lk.zapped_obsolete.len(),
            lk.pages.len()
        )));
    }
    // A TDP VM's tables share the page counters (its shadow state is empty).
    let in_table = lk.pages.len() + vm.tdp.as_ref().map_or(0, |t| t.live_tables());
    match unretired(Invariant::I3, "page", vm.ghost.counts().pages) {
        Ok(unretired) if unretired != in_table as u64 => out.push(v(format!(
            "{unretired} pages allocated and not retired, {in_table} in the page table"
        ))),
        Ok(_) => {}
        Err(corrupt) => out.push(corrupt),
    }
    out
}

/// I4 no stale translation (state half; the run-time half is in `translate`):
/// a vCPU with no pending request has a root of the current generation; the
/// lock-side and lockless roots agree; no vCPU is left inside a walk; and no
/// present leaf in a page of the current generation maps a gfn whose slot is
/// gone, INVALID, or now backed by another pfn.
pub(crate) fn check_i4_no_stale_translation(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I4, detail);
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        let addr = vcpu.root.load(Ordering::Acquire).addr();
        let lock_side = lk.roots[index]
            .and_then(|id| lk.pages.get(&id))
            .map(|m| m.ptr.addr());
        if lock_side.unwrap_or(0) != addr {
            out.push(v(format!(
                "vcpu{index}: lockless root and lock-side root disagree"
            )));
        }
        if vcpu.mode() != VcpuMode::OutsideGuest {
            out.push(v(format!("vcpu{index} is still {:?}", vcpu.mode())));
        }
        if vcpu.requests().is_empty()
            && let Some(meta) = lk.roots[index].and_then(|id| lk.pages.get(&id))
            && lk.is_obsolete(meta)
        {
            out.push(v(format!(
                "vcpu{index} handled its requests but its root is obsolete"
            )));
        }
    }
    let slots = vm.memslots.load_full();
    // The TLBs: a vCPU with no request pending may run the guest, which
    // would use its TLB entries as they are. Each must still be what the
    // host maps at a gfn of a valid slot (the flush that empties a stale
    // entry is a request until it is handled).
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        if !vcpu.requests().is_empty() {
            continue;
        }
        for (gfn, hit) in vcpu.tlb.entries() {
            let pfn = hit.pfn;
            match slots.search(gfn) {
                None => out.push(v(format!(
                    "vcpu{index}'s TLB maps gfn {gfn}, which has no slot, to pfn {pfn:#x} with no flush pending"
                ))),
                Some(s) if s.is_invalid() => out.push(v(format!(
                    "vcpu{index}'s TLB maps gfn {gfn}, on an INVALID slot, with no flush pending"
                ))),
                Some(s) if vm.host.hva_to_pfn(s.gfn_to_hva(gfn)) != pfn => out.push(v(format!(
                    "vcpu{index}'s TLB maps gfn {gfn} to pfn {pfn:#x}, which the host has remapped, \
                     with no flush pending"
                ))),
                Some(_) => {}
            }
        }
    }
    for meta in lk.pages.values() {
        if lk.is_obsolete(meta) || meta.role.level > 2 {
            continue;
        }
        let page = meta.ptr.get(guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            let Spte::Leaf { pfn: first, .. } =
                Spte::decode(page.sptes[index].load(Ordering::Acquire))
            else {
                continue;
            };
            // Every small page of a large mapping.
            let covered = leaf_gfns(vm, &body, index);
            for (gfn, pfn) in covered.zip(first..) {
                match slots.search(gfn) {
                    None => out.push(v(format!(
                        "{}: gfn {gfn} has no slot but maps pfn {pfn:#x}",
                        body.id
                    ))),
                    Some(s) if s.is_invalid() => out.push(v(format!(
                        "{}: gfn {gfn} is on an INVALID slot but mapped",
                        body.id
                    ))),
                    Some(s) if vm.host.hva_to_pfn(s.gfn_to_hva(gfn)) != pfn => {
                        out.push(v(format!(
                            "{}: gfn {gfn} maps pfn {pfn:#x}, which the host has remapped",
                            body.id
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    out
}

/// I4, the notifier half, for a model thread while other operations are in
/// flight: every present leaf spte of every page in the page table, obsolete and
/// invalid pages included, maps the pfn that now backs its gfn's host page.
/// Called right after an mmu-notifier invalidation returned, it says that the
/// invalidation reached every spte of the range, those of invalid and obsolete
/// pages too (bug 13, d62007edf01f). Takes `mmu_lock` (logged as the notifier).
pub(crate) fn check_i4_notifier_reach(vm: &Vm) -> Vec<Violation> {
    let guard = vm.reclaimer.pin();
    let lk = vm.lock_mmu(Actor::Notifier);
    let mut out = Vec::new();
    for meta in lk.pages.values() {
        if meta.role.level > 2 {
            continue;
        }
        let page = meta.ptr.get(&guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            let Spte::Leaf { pfn: first, .. } =
                Spte::decode(page.sptes[index].load(Ordering::Acquire))
            else {
                continue;
            };
            // Every small page of a large mapping.
            for (gfn, pfn) in leaf_gfns(vm, &body, index).zip(first..) {
                if let Some(slot) = vm.gfn_to_slot(&lk, gfn)
                    && vm.host.hva_to_pfn(slot.gfn_to_hva(gfn)) != pfn
                {
                    out.push(Violation::new(
                    Invariant::I4,
                    format!(
                        "{} ({}) still maps gfn {gfn} to pfn {pfn:#x}, which the host has remapped",
                        body.id,
                        if lk.is_obsolete(meta) {
                            "obsolete"
                        } else {
                            "current"
                        }
                    ),
                ));
                }
            }
        }
    }
    out
}

/// I4 as `invalidate_range` returns, with `mmu_lock` still held: no present
/// spte of its (slot, gfn) targets is left on any rmap, obsolete and invalid
/// pages included (bug 13), nor on the level-2 rmap of their large pages (a
/// large spte over any of them).
pub(crate) fn check_i4_range_unmapped(
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
    targets: &[(Memslot, u64)],
) -> Vec<Violation> {
    let _held = lk;
    let mut out = Vec::new();
    for (slot, gfn) in targets {
        let entries = slot
            .rmap_heads(*gfn)
            .flat_map(|head| slot.rmap.entries(guard, head));
        for sptep in entries {
            if Spte::is_leaf(sptep.spte(guard).load(Ordering::Acquire)) {
                let sp = sptep.page.get(guard).body().id;
                out.push(Violation::new(
                    Invariant::I4,
                    format!("invalidate_range returned with gfn {gfn} still mapped by {sp}"),
                ));
            }
        }
    }
    out
}

/// I5 obsolete never reused: at most one page of the current generation per
/// (gfn, level) in the hash; a page of the current generation was born in the
/// current generation epoch (a wrapped generation did not revive it); every
/// non-leaf spte points to a live child of the same generation that lists it as
/// a parent, so nothing was linked under an obsolete page; vCPU roots are valid
/// pages of the current epoch unless a reload is pending.
pub(crate) fn check_i5_obsolete_never_reused(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I5, detail);
    let live = live_pages(lk);
    for ((gfn, role), ids) in lk.hash.iter() {
        let level = role.level;
        let current: Vec<_> = ids
            .iter()
            .filter(|id| lk.pages.get(*id).is_some_and(|m| !lk.is_obsolete(m)))
            .collect();
        if current.len() > 1 {
            out.push(v(format!(
                "gfn {gfn} L{level}: {} valid pages {current:?}",
                current.len()
            )));
        }
    }
    for (id, meta) in lk.pages.iter() {
        if !meta.invalid
            && meta.mmu_valid_gen == lk.mmu_valid_gen
            && meta.born_epoch != lk.gen_epoch
        {
            out.push(v(format!(
                "{id} of generation {} was born in epoch {} but the epoch is {}: revived by wraparound",
                meta.mmu_valid_gen,
                meta.born_epoch.get(),
                lk.gen_epoch.get()
            )));
        }
        let page = meta.ptr.get(guard);
        for index in 0..page.sptes.len() {
            let Spte::NonLeaf(addr) = Spte::decode(page.sptes[index].load(Ordering::Acquire))
            else {
                continue;
            };
            if !live.contains(&addr.addr()) {
                out.push(v(format!("{id}[{index}] links a freed child")));
                continue;
            }
            let Some(child) = PagePtr::from_addr(addr) else {
                continue;
            };
            let child_id = child.get(guard).body().id;
            let Some(child_meta) = lk.pages.get(&child_id) else {
                continue;
            };
            if child_meta.born_epoch != meta.born_epoch || child_meta.invalid {
                out.push(v(format!(
                    "{id} (epoch {}) links {child_id} (epoch {}, invalid {}): a child under an obsolete page",
                    meta.born_epoch.get(),
                    child_meta.born_epoch.get(),
                    child_meta.invalid
                )));
            }
            if !child_meta.parent_ptes.contains(&(*id, index)) {
                out.push(v(format!(
                    "{child_id} does not list its parent {id}[{index}]"
                )));
            }
        }
    }
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        // A vCPU inside an operation may have taken its requests (the swap at the
        // top of handle_requests) and not yet reloaded: at an audit point that is
        // a transient, not a kept root. Only idle vCPUs are judged.
        if vcpu.requests().reload() || vcpu.is_claimed() {
            continue;
        }
        if let Some(meta) = lk.roots[index].and_then(|id| lk.pages.get(&id))
            && (meta.invalid || meta.born_epoch != lk.gen_epoch)
        {
            out.push(v(format!(
                "vcpu{index} uses a root that is invalid ({}) or from epoch {} (now {}) with no reload pending",
                meta.invalid,
                meta.born_epoch.get(),
                lk.gen_epoch.get()
            )));
        }
    }
    out
}

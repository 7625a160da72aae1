//! # The audit: one function per invariant (`mmu_audit.c`)
//!
//! Each `check_*` function states one invariant of `SPEC.md` and returns the
//! [`Violation`]s it finds. [`audit`] runs all of them on a quiescent VM (no
//! operation in flight): at the end of every test, model execution and proptest
//! step. `Vm::audit_point` runs the subset that holds whenever `mmu_lock` is
//! free of writers, at named points inside operations, when
//! [`Config::audit_points`](crate::Config::audit_points) is on.
//!
//! Some violations can only be seen as they happen (a reader that reads a freed
//! page, a translation that returns an invalidated pfn); the protocol records
//! those as ghost state and [`audit`] reports them too.

use std::collections::{HashMap, HashSet};

use crate::mmu::MmuLock;
use crate::page::{PageLife, PagePtr};
use crate::rmap::SptePtr;
use crate::spte::Spte;
use crate::sync::Guard;
use crate::vcpu::VcpuMode;
use crate::vm::Vm;

/// The invariants of `SPEC.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// Rmap integrity.
    I1,
    /// Descriptor availability.
    I2,
    /// Page lifetime.
    I3,
    /// No stale translation.
    I4,
    /// Obsolete never reused.
    I5,
    /// Progress.
    I6,
    /// MMIO generation.
    I7,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 7] = [
        Invariant::I1,
        Invariant::I2,
        Invariant::I3,
        Invariant::I4,
        Invariant::I5,
        Invariant::I6,
        Invariant::I7,
    ];

    /// The invariant's name in `SPEC.md`.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::I1 => "I1 rmap integrity",
            Invariant::I2 => "I2 descriptor availability",
            Invariant::I3 => "I3 page lifetime",
            Invariant::I4 => "I4 no stale translation",
            Invariant::I5 => "I5 obsolete never reused",
            Invariant::I6 => "I6 progress",
            Invariant::I7 => "I7 MMIO generation",
        }
    }
}

/// One broken invariant, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: Invariant, detail: String) -> Violation {
        Violation { invariant, detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.invariant.name(), self.detail)
    }
}

/// Named places where operations run the locked audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPoint {
    /// After `kvm_mmu_commit_zap_page`.
    AfterCommitZap,
    /// After `zap_obsolete_pages` finished.
    AfterZapObsolete,
    /// After a page fault installed a spte.
    AfterFault,
    /// After a memslot update.
    AfterMemslotUpdate,
}

/// Runs every check on a quiescent VM. `Ok` means all seven invariants hold and
/// no violation was recorded at run time.
pub fn audit(vm: &Vm) -> Result<(), Vec<Violation>> {
    let guard = vm.reclaimer.pin();
    let lk = vm.lock_mmu(crate::event::Actor::Zapper);
    let mut found = vm.runtime_violations();
    found.extend(check_i1_rmap_integrity(vm, &lk, &guard));
    found.extend(check_i2_descriptors(vm, &lk, &guard, true));
    found.extend(check_i3_page_lifetime(vm, &lk, &guard, true));
    found.extend(check_i4_no_stale_translation(vm, &lk, &guard));
    found.extend(check_i5_obsolete_never_reused(vm, &lk, &guard));
    found.extend(check_i6_progress(vm, &lk));
    found.extend(check_i7_mmio_generation(vm, &lk, &guard));
    if found.is_empty() { Ok(()) } else { Err(found) }
}

impl Vm {
    /// Runs the checks that hold under `mmu_lock` even while other operations
    /// are in flight, if audit points are enabled; records what it finds.
    pub(crate) fn audit_point(&self, lk: &MmuLock<'_>, guard: &Guard<'_>, point: AuditPoint) {
        if !self.config.audit_points {
            return;
        }
        let mut found = check_i3_page_lifetime(self, lk, guard, false);
        found.extend(check_i5_obsolete_never_reused(self, lk, guard));
        found.extend(check_i6_progress(self, lk));
        found.extend(mmio_sptes_trusted_rightly(self, lk, guard));
        if self.ghost.lockless_unmappers.get() == 0 {
            found.extend(check_i2_descriptors(self, lk, guard, false));
        }
        for mut violation in found {
            violation.detail = format!("[{point:?}] {}", violation.detail);
            self.ghost.violate(violation);
        }
    }
}

/// Addresses of the pages in the page table: an rmap entry or spte pointing
/// anywhere else points at retired memory, and is reported without touching it.
fn live_pages(lk: &MmuLock<'_>) -> HashSet<usize> {
    lk.pages.values().map(|m| m.ptr.addr()).collect()
}

/// Every rmap the audit can see: the published slots and the unpublished ones.
fn all_slots(vm: &Vm, lk: &MmuLock<'_>) -> Vec<crate::memslot::Memslot> {
    let mut slots = vm.memslots.load_full().slots.clone();
    slots.extend(lk.zombies.iter().cloned());
    slots
}

/// I1 rmap integrity: every present leaf spte of a live page is on exactly one
/// rmap, the one for its gfn's slot; every rmap entry points to a present leaf
/// spte, of the gfn the entry is filed under, in a page that is not freed.
pub fn check_i1_rmap_integrity(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<crate::Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I1, detail);
    let live = live_pages(lk);
    let mut on_rmaps: HashMap<u64, Vec<(u16, u64)>> = HashMap::new();
    let mut seen_slot_ids = HashSet::new();
    for slot in all_slots(vm, lk) {
        if !seen_slot_ids.insert((slot.id, slot.base_gfn)) {
            continue;
        }
        for index in 0..slot.rmap.len() {
            let gfn = slot.base_gfn + index as u64;
            for sptep in slot.rmap.entries(guard, index) {
                on_rmaps
                    .entry(sptep.pack())
                    .or_default()
                    .push((slot.id.0, gfn));
                if !live.contains(&sptep.page.addr()) {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: rmap entry points into a freed page",
                        slot.id.0
                    )));
                    continue;
                }
                let page = sptep.page.get(guard);
                let body = page.body();
                let raw = page.sptes[sptep.index].load(crate::sync::Ordering::Acquire);
                if !Spte::is_leaf(raw) {
                    out.push(v(format!(
                        "slot {} gfn {gfn}: rmap entry {}[{}] is not a present leaf",
                        slot.id.0, body.id, sptep.index
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
        if body.role.level != 1 {
            continue;
        }
        for index in 0..page.sptes.len() {
            let raw = page.sptes[index].load(crate::sync::Ordering::Acquire);
            if !Spte::is_leaf(raw) {
                continue;
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
                ([(slot_id, home_gfn)], Some(slot))
                    if *slot_id == slot.id.0 && *home_gfn == gfn => {}
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

/// I2 descriptor availability: chains are well formed (no cycle, no empty
/// descriptor and no hole on a normal rmap, no retired or freed descriptor
/// reachable from a head), and the descriptors on chains are exactly the ones
/// allocated and not retired.
pub fn check_i2_descriptors(
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
        if !seen.insert(&*slot.rmap as *const crate::rmap::Rmap as usize) {
            continue;
        }
        let remove_only = slot.rmap.is_remove_only();
        for index in 0..slot.rmap.len() {
            let shape = slot.rmap.shape(guard, index);
            on_chains += shape.descs as u64;
            let at = format!("slot {} gfn {}", slot.id.0, slot.base_gfn + index as u64);
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
        let counts = vm.counts().descs;
        let unretired = counts.allocated - counts.retired;
        if unretired != on_chains {
            out.push(v(format!(
                "{unretired} descriptors allocated and not retired, but {on_chains} on chains"
            )));
        }
    }
    out
}

/// I3 page lifetime: pages in the page table are live and unpoisoned; each is on
/// the active list or on a zap list, and in the hash; an invalid page stays on
/// the active list only while it is somebody's root; `root_count` is the number
/// of vCPUs using the page; and the counters agree with the page table (nothing
/// leaked, nothing retired twice).
pub fn check_i3_page_lifetime(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
    quiescent: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I3, detail);
    let mut root_users: HashMap<crate::PageId, u32> = HashMap::new();
    for id in lk.roots.iter().flatten() {
        *root_users.entry(*id).or_default() += 1;
    }
    let zap_list: HashSet<_> = lk.zapped_obsolete.iter().copied().collect();
    for (id, meta) in lk.pages.iter() {
        let page = meta.ptr.get(guard);
        let body = page.body();
        if body.poisoned || page.life() != PageLife::Live {
            out.push(v(format!(
                "{id} is in the page table but {:?}",
                page.life()
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
    if lk.active.len() + lk.zapped_obsolete.len() != lk.pages.len() {
        out.push(v(format!(
            "active {} + zapped {} != pages {}",
            lk.active.len(),
            lk.zapped_obsolete.len(),
            lk.pages.len()
        )));
    }
    let counts = vm.counts().pages;
    if counts.allocated - counts.retired != lk.pages.len() as u64 {
        out.push(v(format!(
            "{} pages allocated and not retired, {} in the page table",
            counts.allocated - counts.retired,
            lk.pages.len()
        )));
    }
    out
}

/// I4 no stale translation (state half; the run-time half is in `translate`):
/// a vCPU with no pending request has a root of the current generation; the
/// lock-side and lockless roots agree; no vCPU is left inside a walk; and no
/// present leaf in a page of the current generation maps a gfn whose slot is
/// gone, INVALID, or now backed by another pfn.
pub fn check_i4_no_stale_translation(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I4, detail);
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        let addr = vcpu.root.load(crate::sync::Ordering::Acquire) as usize;
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
        if vcpu.requests.load(crate::sync::Ordering::Acquire) == 0
            && let Some(meta) = lk.roots[index].and_then(|id| lk.pages.get(&id))
            && lk.is_obsolete(meta, None)
        {
            out.push(v(format!(
                "vcpu{index} handled its requests but its root is obsolete"
            )));
        }
    }
    let slots = vm.memslots.load_full();
    for meta in lk.pages.values() {
        if lk.is_obsolete(meta, None) || meta.role.level != 1 {
            continue;
        }
        let page = meta.ptr.get(guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            if let Spte::Leaf { pfn, .. } =
                Spte::decode(page.sptes[index].load(crate::sync::Ordering::Acquire))
            {
                let gfn = vm.spte_gfn(&body, index);
                match slots.lookup(gfn) {
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
pub fn check_notifier_reach(vm: &Vm) -> Vec<Violation> {
    let guard = vm.reclaimer.pin();
    let lk = vm.lock_mmu(crate::event::Actor::Notifier);
    let mut out = Vec::new();
    for meta in lk.pages.values() {
        if meta.role.level != 1 {
            continue;
        }
        let page = meta.ptr.get(&guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            let Spte::Leaf { pfn, .. } =
                Spte::decode(page.sptes[index].load(crate::sync::Ordering::Acquire))
            else {
                continue;
            };
            let gfn = vm.spte_gfn(&body, index);
            if let Some(slot) = vm.gfn_to_slot(&lk, gfn)
                && vm.host.hva_to_pfn(slot.gfn_to_hva(gfn)) != pfn
            {
                out.push(Violation::new(
                    Invariant::I4,
                    format!(
                        "{} ({}) still maps gfn {gfn} to pfn {pfn:#x}, which the host has remapped",
                        body.id,
                        if lk.is_obsolete(meta, None) {
                            "obsolete"
                        } else {
                            "current"
                        }
                    ),
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
pub fn check_i5_obsolete_never_reused(
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
            .filter(|id| lk.pages.get(*id).is_some_and(|m| !lk.is_obsolete(m, None)))
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
                meta.mmu_valid_gen, meta.born_epoch, lk.gen_epoch
            )));
        }
        let page = meta.ptr.get(guard);
        for index in 0..page.sptes.len() {
            let Spte::NonLeaf(addr) =
                Spte::decode(page.sptes[index].load(crate::sync::Ordering::Acquire))
            else {
                continue;
            };
            if !live.contains(&addr) {
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
                    meta.born_epoch, child_meta.born_epoch, child_meta.invalid
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
        if vcpu.requests.load(crate::sync::Ordering::Acquire) & crate::vcpu::REQ_RELOAD != 0
            || vcpu.busy.get() != 0
        {
            continue;
        }
        if let Some(meta) = lk.roots[index].and_then(|id| lk.pages.get(&id))
            && (meta.invalid || meta.born_epoch != lk.gen_epoch)
        {
            out.push(v(format!(
                "vcpu{index} uses a root that is invalid ({}) or from epoch {} (now {}) with no reload pending",
                meta.invalid, meta.born_epoch, lk.gen_epoch
            )));
        }
    }
    out
}

/// I6 progress: every zap stayed within its bound (proportional to the pages
/// that existed when it began) and never prepared more than a batch per lock
/// hold; and, once nothing is in flight, no obsolete page is left on the active
/// list except in-use roots.
pub fn check_i6_progress(vm: &Vm, lk: &MmuLock<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I6, detail);
    for (n, zap) in vm.zap_history().iter().enumerate() {
        let bound = crate::mmu::zap_step_bound(zap.pages_at_start, vm.config.vcpus);
        if zap.steps > bound {
            out.push(v(format!(
                "zap #{n} took {} steps, bound {bound}",
                zap.steps
            )));
        }
        if zap.holds > 1 && zap.max_batch > vm.config.batch as u64 {
            out.push(v(format!(
                "zap #{n} prepared {} pages in one hold, batch {}",
                zap.max_batch, vm.config.batch
            )));
        }
    }
    if vm.slots_lock.try_lock().is_some() {
        for id in lk.active.values() {
            let meta = &lk.pages[id];
            if meta.mmu_valid_gen != lk.mmu_valid_gen && !meta.invalid {
                out.push(v(format!(
                    "{id} of generation {} survived the zap",
                    meta.mmu_valid_gen
                )));
            }
        }
    }
    out
}

/// I7 MMIO generation: an MMIO spte in a page of the current generation that
/// the protocol would trust (its masked generation equals the current one) was
/// built from the current memslots; and a vCPU's MMIO cache entry, if current,
/// names a gfn that no slot maps.
pub fn check_i7_mmio_generation(vm: &Vm, lk: &MmuLock<'_>, guard: &Guard<'_>) -> Vec<Violation> {
    let mut out = mmio_sptes_trusted_rightly(vm, lk, guard);
    let v = |detail: String| Violation::new(Invariant::I7, detail);
    let slots = vm.memslots.load_full();
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        let gfn = vcpu.mmio_gfn.load(crate::sync::Ordering::Relaxed);
        if gfn != 0
            && vcpu.mmio_gen.load(crate::sync::Ordering::Relaxed) == slots.generation
            && slots.lookup(gfn - 1).is_some()
        {
            out.push(v(format!(
                "vcpu{index}: MMIO cache for gfn {} but a slot maps it",
                gfn - 1
            )));
        }
    }
    out
}

/// The spte half of I7, which also holds while other operations run (the audit
/// points use it): an MMIO spte of a current page that the protocol would trust
/// (its masked generation is the current one) was built from the current
/// memslots, and names a gfn that no slot maps, INVALID slots included.
fn mmio_sptes_trusted_rightly(vm: &Vm, lk: &MmuLock<'_>, guard: &Guard<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I7, detail);
    let slots = vm.memslots.load_full();
    let mask = (1u64 << vm.config.mmio_gen_bits) - 1;
    for meta in lk.pages.values() {
        if lk.is_obsolete(meta, None) {
            continue;
        }
        let page = meta.ptr.get(guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            let Spte::Mmio {
                generation,
                ghost_generation,
            } = Spte::decode(page.sptes[index].load(crate::sync::Ordering::Acquire))
            else {
                continue;
            };
            if generation != slots.generation & mask {
                continue;
            }
            if ghost_generation != slots.generation & 0xffff_ffff {
                out.push(v(format!(
                    "{}[{index}]: MMIO spte from slots gen {ghost_generation} matches gen {}",
                    body.id, slots.generation
                )));
            }
            let gfn = vm.spte_gfn(&body, index);
            if let Some(slot) = slots.lookup(gfn) {
                out.push(v(format!(
                    "{}[{index}]: trusted MMIO spte for gfn {gfn}, which slot {} maps",
                    body.id, slot.id.0
                )));
            }
        }
    }
    out
}

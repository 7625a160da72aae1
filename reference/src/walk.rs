//! # Translations: `translate`, `translate_run`, `translate_unsynchronized`
//!
//! Mirrors `core/src/walk.rs`, the lockless read path: what the guest sees
//! when it touches a gfn. [`Allowed`] is what the reference lets a
//! translation be now. A vCPU whose address space certainly holds a leaf
//! for X translates X to exactly that leaf's pfn if no request is pending
//! (and its MMIO cache does not hold X), and a `Mapped{pfn}` is allowed
//! only from a leaf the reference holds (the security property, I4). A
//! translation that is not `RequestPending` proves no request was pending.
//! `translate_unsynchronized` is the bare walk of the vCPU's root, with no
//! requests check; a `translate` overlapping an spte writer may be judged as
//! one, since it checks the requests and walks at two instants.

use fastzap::{MmuError, Translation, VcpuId};

use crate::op::{Divergence, ensure, expect_err, expect_ok};
use crate::overlap::Overlap;
use crate::state::{Leaf, Reference, Root, Tri};

/// What the reference allows a translation to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `RequestPending` is allowed.
    pub pending: bool,
    /// Only `RequestPending` is allowed.
    pub only_pending: bool,
    /// `Miss` is allowed.
    pub miss: bool,
    /// `Mmio` is allowed.
    pub mmio: bool,
    /// `Mapped` is allowed, with this pfn (`None`: the host page's current pfn,
    /// not yet seen) and, if known, this writable bit.
    pub mapped: Option<(Option<u64>, Option<bool>)>,
}

impl Allowed {
    fn admits(&self, t: Translation) -> bool {
        match t {
            Translation::RequestPending => self.pending,
            _ if self.only_pending => false,
            Translation::Miss => self.miss,
            Translation::Mmio => self.mmio,
            Translation::Mapped { pfn, writable } => self.mapped.is_some_and(|(p, w)| {
                p.is_none_or(|p| p == pfn.0) && w.is_none_or(|w| w == writable)
            }),
        }
    }
}

impl Reference {
    /// `translate(vcpu, gfn)`.
    pub(crate) fn step_translate(
        &mut self,
        vcpu: VcpuId,
        gfn: u64,
        r: &Result<Translation, MmuError>,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        match self.check_gfn(gfn).and_then(|_| self.check_vcpu(vcpu)) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let t = expect_ok(r)?;
                self.translation(vcpu.0, gfn, t, overlap)
            }
        }
    }

    /// `translate_unsynchronized(vcpu, gfn)`.
    pub(crate) fn step_translate_unsynchronized(
        &mut self,
        vcpu: VcpuId,
        gfn: u64,
        r: &Result<Translation, MmuError>,
    ) -> Result<(), Divergence> {
        match self.check_gfn(gfn).and_then(|_| self.check_vcpu(vcpu)) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let t = expect_ok(r)?;
                self.unsynchronized(vcpu.0, gfn, t)
            }
        }
    }

    /// `translate_run(vcpu, gfns)`: one answer per gfn, all of them
    /// `RequestPending` or none, each judged as a `translate`.
    pub(crate) fn step_translate_run(
        &mut self,
        vcpu: VcpuId,
        gfns: &[u64],
        r: &Result<Vec<Translation>, MmuError>,
    ) -> Result<(), Divergence> {
        let valid = gfns
            .iter()
            .try_for_each(|g| self.check_gfn(*g))
            .and_then(|_| self.check_vcpu(vcpu));
        match valid {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let ts = expect_ok(r)?;
                ensure(ts.len() == gfns.len(), || {
                    format!(
                        "translate_run of {} gfns gave {} results",
                        gfns.len(),
                        ts.len()
                    )
                })?;
                let pending = ts.iter().filter(|t| **t == Translation::RequestPending);
                let pending = pending.count();
                ensure(pending == 0 || pending == ts.len(), || {
                    format!("translate_run mixed RequestPending with answers: {ts:?}")
                })?;
                for (g, t) in gfns.iter().zip(ts) {
                    self.translation(vcpu.0, *g, t, Overlap::NONE)?;
                }
                Ok(())
            }
        }
    }

    /// What `translate(vcpu, gfn)` may return now.
    pub fn allowed_translation(&self, v: usize, gfn: u64) -> Allowed {
        let vm = &self.vcpus[v];
        let mut allowed = Allowed {
            pending: vm.pending != Tri::Clear,
            only_pending: vm.pending == Tri::Set,
            miss: false,
            mmio: false,
            mapped: None,
        };
        let space = &self.spaces[self.space_of(v)];
        if vm.mmio_cache == Some((gfn, self.slots_generation)) {
            allowed.mmio = true;
        } else if let Some(l) = space.leaves.get(&gfn) {
            allowed.mapped = Some((l.pfn, l.writable));
            allowed.miss = !l.certain;
        } else if let Some(m) = space
            .mmio
            .get(&gfn)
            .filter(|m| m.generation == self.slots_generation)
        {
            allowed.mmio = true;
            allowed.miss = !m.certain;
        } else {
            allowed.miss = true;
        }
        allowed
    }

    /// What `translate_unsynchronized(vcpu, gfn)` may return now: the bare
    /// walk of the vCPU's root, with no requests check, no generation check and
    /// no MMIO cache. An obsolete root was emptied when it was zapped, so it
    /// gives `Miss`; otherwise it is the walk of [`Reference::allowed_translation`].
    pub fn allowed_unsynchronized(&self, v: usize, gfn: u64) -> Allowed {
        let mut allowed = Allowed {
            pending: false,
            only_pending: false,
            miss: true,
            mmio: false,
            mapped: None,
        };
        if self.vcpus[v].root == Root::Obsolete && self.retains {
            // The obsolete root still leads to the retained pages, which this
            // walk (no generation or request check) reads as they are.
            allowed.mmio = true;
            allowed.mapped = Some((None, None));
            return allowed;
        }
        if matches!(self.vcpus[v].root, Root::None | Root::Obsolete) {
            return allowed;
        }
        // A root the shrinker may have zapped may no longer be the address
        // space's current root, whose contents the reference tracks.
        let current = self.vcpus[v].root == Root::Current;
        let space = &self.spaces[self.space_of(v)];
        if let Some(l) = space.leaves.get(&gfn) {
            allowed.mapped = Some((l.pfn, l.writable));
            allowed.miss = !l.certain || !current;
        } else if let Some(m) = space
            .mmio
            .get(&gfn)
            .filter(|m| m.generation == self.slots_generation)
        {
            allowed.mmio = true;
            allowed.miss = !m.certain || !current;
        }
        allowed
    }

    /// Checks one unsynchronized translation. It learns only what the walk
    /// changed: the accessed bit, and the MMIO cache when it met an MMIO spte.
    fn unsynchronized(&mut self, v: usize, gfn: u64, got: Translation) -> Result<(), Divergence> {
        let allowed = self.allowed_unsynchronized(v, gfn);
        ensure(allowed.admits(got), || {
            format!("translate_unsynchronized(vcpu{v}, gfn {gfn}) = {got:?}, allowed {allowed:?}")
        })?;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { .. } => {
                if let Some(l) = self.spaces[sp].leaves.get_mut(&gfn) {
                    l.accessed = Some(true).filter(|_| l.certain);
                }
            }
            Translation::Mmio => self.vcpus[v].mmio_cache = Some((gfn, self.slots_generation)),
            _ => {}
        }
        Ok(())
    }

    /// Checks one translation and learns from it. With an overlapping spte
    /// writer, a translation that is not `RequestPending` may also be judged
    /// as a bare walk ([`Reference::walked`]).
    fn translation(
        &mut self,
        v: usize,
        gfn: u64,
        got: Translation,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        let allowed = self.allowed_translation(v, gfn);
        if !allowed.admits(got)
            && let Some(hva) = self.unreached_leaf(v, gfn, got)
        {
            if let (Some(hva), Translation::Mapped { pfn, .. }) = (hva, got) {
                self.host.observe(hva, pfn.0)?;
            }
            self.no_requests(v);
            return Ok(());
        }
        if !allowed.admits(got) && overlap.spte_writer && got != Translation::RequestPending {
            return self.walked(v, gfn, got);
        }
        ensure(allowed.admits(got), || {
            format!("translate(vcpu{v}, gfn {gfn}) = {got:?}, allowed {allowed:?}")
        })?;
        if got == Translation::RequestPending {
            self.vcpus[v].pending = Tri::Set;
            return Ok(());
        }
        // No request was pending, so the root is a valid current one (an
        // invalid or obsolete root always comes with a reload request).
        self.no_requests(v);
        let generation = self.slots_generation;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { pfn, writable } => {
                let pfn = pfn.0;
                if allowed.mapped.is_some_and(|(p, _)| p.is_none()) {
                    let slot = self.backing_slot(gfn).copied().ok_or_else(|| {
                        format!("translate(vcpu{v}, gfn {gfn}) = {got:?}: no slot maps the gfn")
                    })?;
                    self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                }
                self.spaces[sp].leaves.insert(
                    gfn,
                    Leaf {
                        pfn: Some(pfn),
                        writable: Some(writable),
                        accessed: Some(true),
                        certain: true,
                    },
                );
            }
            Translation::Mmio => {
                if self.vcpus[v].mmio_cache != Some((gfn, generation)) {
                    // It came from an MMIO spte, which the walk cached.
                    if let Some(m) = self.spaces[sp].mmio.get_mut(&gfn) {
                        m.certain = true;
                    }
                }
                self.vcpus[v].mmio_cache = Some((gfn, generation));
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `got` is the mapping a leaf of a deleted slot had before a
    /// `SlotOnlyQuirkOff` DELETE still in flight removed it
    /// ([`InFlight::unreached`]): its zap yields at lock breaks, flushing
    /// before each, so a translate after the vCPU handled that flush may
    /// still walk to a leaf the zap has not reached. Only while no request is
    /// certainly pending and no slot maps the gfn; the DELETE's return
    /// (its tail) ends it, so no stale pfn is allowed once it returned.
    /// `Some(None)`: the leaf's pfn is `got`'s; `Some(Some(hva))`: the leaf
    /// points at the new pfn of `hva`'s host page (`change_pte`), to observe.
    ///
    /// [`InFlight::unreached`]: crate::state::InFlight
    fn unreached_leaf(&self, v: usize, gfn: u64, got: Translation) -> Option<Option<u64>> {
        let Translation::Mapped { pfn, writable } = got else {
            return None;
        };
        let sp = self.space_of(v);
        if self.vcpus[v].pending == Tri::Set || self.slot_of(gfn).is_some() {
            return None;
        }
        let unreached = self.in_flight.iter().flat_map(|f| &f.unreached);
        let (_, _, hva, l) = unreached
            .filter(|(s, g, _, l)| {
                *s == sp && *g == gfn && l.writable.is_none_or(|w| w == writable)
            })
            .find(|(_, _, _, l)| l.pfn.is_none_or(|p| p == pfn.0))?;
        Some(l.pfn.is_none().then_some(*hva))
    }

    /// A translation judged as a bare walk, for a translate that overlaps an
    /// operation that removes sptes and then requests a flush or a reload.
    /// Lockless walkers see the removal (a zapped spte, or the bumped
    /// `mmu_valid_gen` that fails the root check) before the request made in
    /// the same `mmu_lock` hold: the requester only waits for walkers to end
    /// (`make_all_cpus_request`). So the translate may have checked the
    /// requests before and walked after, at an instant no sequential order
    /// of the two operations has: it may return `Miss` whatever the reference
    /// holds (a miss maps nothing). `Mapped` must still come from a leaf the
    /// reference holds (so never a pfn an invalidation already removed), and
    /// `Mmio` from the cache or an MMIO spte of the current memslots. Nothing
    /// is learnt about the requests.
    fn walked(&mut self, v: usize, gfn: u64, got: Translation) -> Result<(), Divergence> {
        let mut allowed = self.allowed_unsynchronized(v, gfn);
        allowed.miss = true;
        allowed.mmio |= self.vcpus[v].mmio_cache == Some((gfn, self.slots_generation));
        ensure(allowed.admits(got), || {
            format!(
                "translate(vcpu{v}, gfn {gfn}) = {got:?}, allowed {:?}, or as a walk overlapping \
                 an invalidation {allowed:?}",
                self.allowed_translation(v, gfn)
            )
        })?;
        let sp = self.space_of(v);
        match got {
            Translation::Mapped { pfn, .. } => {
                let pfn = pfn.0;
                if allowed.mapped.is_some_and(|(p, _)| p.is_none()) {
                    let slot = self.backing_slot(gfn).copied().ok_or_else(|| {
                        format!("translate(vcpu{v}, gfn {gfn}) = {got:?}: no slot maps the gfn")
                    })?;
                    self.host.observe(Self::hva_of(&slot, gfn), pfn)?;
                }
                if let Some(l) = self.spaces[sp].leaves.get_mut(&gfn) {
                    l.pfn = Some(pfn);
                    l.accessed = Some(true).filter(|_| l.certain);
                }
            }
            Translation::Mmio => self.vcpus[v].mmio_cache = Some((gfn, self.slots_generation)),
            _ => {}
        }
        Ok(())
    }
}

//! I7, MMIO generation: the spte half, which also holds while other
//! operations run, and the vCPUs' MMIO caches.

use crate::invariant::{Invariant, Violation};
use crate::mmu::MmuLock;
use crate::spte::Spte;
use crate::sync::{Guard, Ordering};
use crate::vm::Vm;

/// I7 MMIO generation: an MMIO spte in a page of the current generation that
/// the protocol would trust (its masked generation equals the current one) was
/// built from the current memslots; and a vCPU's MMIO cache entry, if current,
/// names a gfn that no slot maps.
pub(crate) fn check_i7_mmio_generation(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = mmio_sptes_trusted_rightly(vm, lk, guard);
    let v = |detail: String| Violation::new(Invariant::I7, detail);
    let slots = vm.memslots.load_full();
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        // The cache holds gfn + 1; 0 is empty.
        if let Some(gfn) = vcpu.mmio_gfn.load(Ordering::Relaxed).checked_sub(1)
            && vcpu.mmio_gen.load(Ordering::Relaxed) == slots.generation
            && slots.search(gfn).is_some()
        {
            out.push(v(format!(
                "vcpu{index}: MMIO cache for gfn {gfn} but a slot maps it"
            )));
        }
    }
    out
}

/// The spte half of I7, which also holds while other operations run (the audit
/// points use it): an MMIO spte of a current page that the protocol would trust
/// (its masked generation is the current one) was built from the current
/// memslots, and names a gfn that no slot maps, INVALID slots included.
pub(crate) fn mmio_sptes_trusted_rightly(
    vm: &Vm,
    lk: &MmuLock<'_>,
    guard: &Guard<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |detail: String| Violation::new(Invariant::I7, detail);
    let slots = vm.memslots.load_full();
    let mask = 1u64
        .checked_shl(vm.config.mmio_gen_bits)
        .map_or(u64::MAX, |bit| bit.wrapping_sub(1));
    for meta in lk.pages.values() {
        if lk.is_obsolete(meta) {
            continue;
        }
        let page = meta.ptr.get(guard);
        let body = page.body();
        for index in 0..page.sptes.len() {
            let Spte::Mmio {
                generation,
                ghost_generation,
            } = Spte::decode(page.sptes[index].load(Ordering::Acquire))
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
            if let Some(slot) = slots.search(gfn) {
                out.push(v(format!(
                    "{}[{index}]: trusted MMIO spte for gfn {gfn}, which slot {} maps",
                    body.id, slot.id.0
                )));
            }
        }
    }
    out
}

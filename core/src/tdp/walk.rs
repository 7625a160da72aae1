//! # The lockless translate on a TDP VM (the hardware's walk)
//!
//! What the guest sees at a gfn, without `mmu_lock`, in the order the
//! shadow MMU's `walk.rs` gives: the vCPU announces the walk in its mode
//! (the handshake of `vcpu.rs`), then its requests (a vCPU with requests
//! pending is outside guest mode), then its TLB (`tlb.rs`), then its MMIO
//! cache, then a walk from its root inside an epoch pin. A walk that maps
//! a gfn writable fills the TLB; a walk sets the Accessed bit of the leaf
//! it uses, by compare-and-exchange, as the hardware does.
//!
//! The root is the vCPU's own reference: it cannot be freed while the vCPU
//! holds it, and the tables under it are freed only after a grace period
//! that this walk's pin holds back.

use crate::ghost::Visited;
use crate::sync::{Guard, Ordering};
use crate::vcpu::Vcpu;

use super::TdpCtx;
use super::root::TdpRoot;
use super::spte::{ACCESSED, Spte};
use super::table::TablePtr;

/// What a TDP translate saw (the shadow MMU's `Translation`, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    Mapped { pfn: u64, writable: bool },
    Mmio,
    Miss,
    RequestPending,
}

/// Translates each of `gfns` (checked) for `v` with one entry: one mode
/// announcement, one requests check, one pin.
pub(crate) fn translate_run(
    ctx: &TdpCtx<'_>,
    v: &Vcpu,
    vcpu: usize,
    gfns: impl Iterator<Item = u64>,
    out: &mut impl FnMut(Seen),
) {
    v.walk_lockless_begin(ctx.config);
    let start = ctx.ghost.now();
    if !v.requests().is_empty() {
        gfns.for_each(|_| out(Seen::RequestPending));
        v.walk_lockless_end();
        return;
    }
    let root = ctx.tdp.vcpu_roots[vcpu].lock().clone();
    let guard = ctx.reclaimer.pin();
    for gfn in gfns {
        if let Some(hit) = v.tlb.lookup(ctx.ghost, gfn, start) {
            out(Seen::Mapped {
                pfn: hit.pfn,
                writable: hit.writable,
            });
            continue;
        }
        if let Some(hit) = mmio_cache_hit(ctx, v, gfn) {
            out(hit);
            continue;
        }
        let seen = match &root {
            Some(root) if !root.is_invalid() => walk(ctx, v, &guard, root, gfn, start),
            _ => Seen::Miss,
        };
        out(seen);
    }
    drop(guard);
    v.walk_lockless_end();
}

/// [`Vm::translate_unsynchronized`](crate::Vm::translate_unsynchronized) on
/// a TDP VM: the walk of [`translate_run`] from the vCPU's root, without the
/// mode announcement, the requests check, the TLB or the MMIO cache, so
/// that it answers what the tables hold. The caller's `&mut Vm` excludes
/// every other operation; the pin is kept only because the walk derefs
/// tables through one (taking it touches nothing another thread uses). An
/// invalid root was emptied by its zap before the zap returned; the walk
/// reads it as it is, and the stale-translation check (I4) judges only
/// walks from a valid root, as the shadow MMU's judges only current ones.
pub(crate) fn translate_unsynchronized(ctx: &TdpCtx<'_>, v: &Vcpu, vcpu: usize, gfn: u64) -> Seen {
    let Some(root) = ctx.tdp.vcpu_roots[vcpu].lock().clone() else {
        return Seen::Miss;
    };
    let start = if root.is_invalid() {
        0
    } else {
        ctx.ghost.now()
    };
    let guard = ctx.reclaimer.pin();
    walk(ctx, v, &guard, &root, gfn, start)
}

/// The vCPU's MMIO cache, trusted while its memslots generation is current.
fn mmio_cache_hit(ctx: &TdpCtx<'_>, v: &Vcpu, gfn: u64) -> Option<Seen> {
    if v.mmio_gfn.load(Ordering::Relaxed) != gfn + 1 {
        return None;
    }
    let slots = ctx.memslots.load();
    (v.mmio_gen.load(Ordering::Relaxed) == slots.generation).then_some(Seen::Mmio)
}

fn walk(
    ctx: &TdpCtx<'_>,
    v: &Vcpu,
    guard: &Guard<'_>,
    root: &TdpRoot,
    gfn: u64,
    start: u64,
) -> Seen {
    let mut visited = Visited::default();
    let mut table = root.table.get(guard);
    let mut level = root.level;
    let seen = loop {
        visited.push(&table.ghost);
        let index = ctx.index(gfn, level);
        let cell = &table.sptes[index];
        let raw = cell.read();
        match raw.decode() {
            Spte::Table(child) if level > 1 => {
                table = child.get(guard);
                level -= 1;
            }
            Spte::Leaf {
                pfn,
                writable,
                accessed,
                ..
            } => {
                if !accessed {
                    let _ = cell.cmpxchg(raw, raw.with(ACCESSED));
                }
                let installed = table.ghost.installed(index);
                ctx.ghost
                    .check_not_stale(gfn, pfn, installed, start, table.id);
                v.tlb.fill(ctx.ghost, gfn, pfn, writable, installed);
                break Seen::Mapped { pfn, writable };
            }
            Spte::Mmio { generation } => {
                let slots = ctx.memslots.load();
                let mask = (1u64 << ctx.config.mmio_gen_bits) - 1;
                break if generation == slots.generation & mask && slots.search(gfn).is_none() {
                    v.mmio_gfn.store(gfn + 1, Ordering::Relaxed);
                    v.mmio_gen.store(slots.generation, Ordering::Relaxed);
                    Seen::Mmio
                } else {
                    Seen::Miss
                };
            }
            _ => break Seen::Miss,
        }
    };
    ctx.ghost.check_outlived(&visited, |sp| {
        format!("TDP table {sp} freed while a translate of gfn {gfn} was inside it")
    });
    seen
}

/// `kvm_tdp_mmu_get_walk` for the MMIO fast path: the MMIO generation at
/// the end of `gfn`'s path, if the path ends in an MMIO entry.
pub(crate) fn get_mmio_spte(
    ctx: &TdpCtx<'_>,
    guard: &Guard<'_>,
    root: &TdpRoot,
    gfn: u64,
) -> Option<u64> {
    let mut ptr: TablePtr = root.table;
    for level in (1..=root.level).rev() {
        match ptr.get(guard).sptes[ctx.index(gfn, level)].read().decode() {
            Spte::Table(child) if level > 1 => ptr = child,
            Spte::Mmio { generation } => return Some(generation),
            _ => return None,
        }
    }
    None
}

//! # The slot-only zap of a DELETE (`SlotOnly2019`, `SlotOnlyFlushing2020`, `SlotOnlyQuirkOff`)
//!
//! Mirrors `core/src/memslot_zap.rs`. Unlike the zap-all strategies, a
//! slot-only DELETE bumps no generation and asks no vCPU to reload (unless
//! it zaps a root): what a caller may observe afterwards is
//!
//! - the deleted slot's gfns hold no leaf: once the DELETE returned and the
//!   vCPU handled its requests, they translate to `Miss` (or `Mmio`);
//! - another slot's translation may stay mapped. With `SlotOnlyQuirkOff` it
//!   certainly does (only leaves are zapped: fastzap's pages are all direct,
//!   and fcd1ec9cb59c zaps only pages that shadow guest page tables). With
//!   the 2019 hash walk (`SlotOnly2019`, `SlotOnlyFlushing2020`), a page
//!   keyed by one of the slot's gfns is zapped with whatever else it maps:
//!   the leaves and MMIO sptes at or above the slot's first gfn become only
//!   possible, and if the slot holds gfn 0, where every root is keyed, the
//!   roots are zapped too: each vCPU with a current root must reload, and
//!   every entry becomes only possible;
//! - a flush (a TLB_FLUSH request to every vCPU) if a leaf was zapped or a
//!   page committed: certain when a certain leaf was zapped, possible
//!   otherwise;
//! - with `SlotOnlyQuirkOff` overlapping another operation, until the DELETE
//!   returns: a leaf it removed may still be translated (the TDP MMU's
//!   `kvm_mmu_zap_memslot` yields at lock breaks and flushes before each,
//!   core/src/tdp/memslot.rs), kept in its `InFlight::unreached`.

use fastzap::{DeletionStrategy, SlotSpec};

use crate::state::{Reference, Root, Tri};

impl Reference {
    /// `kvm_arch_flush_shadow_memslot` of a slot-only `strategy` for `slot`,
    /// between the INVALID copy's publish and the final one.
    pub(crate) fn zap_slot_only(&mut self, slot: SlotSpec, strategy: DeletionStrategy) {
        let (base, end) = (slot.base_gfn.0, slot.base_gfn.0 + slot.npages);
        let in_slot = |g: u64| g >= base && g < end;
        // The rmap pass: every leaf of the slot, in any address space.
        let mut flush = Tri::Clear;
        // A quirk-off zap that overlaps another operation (it has a tail)
        // yields at lock breaks: its leaves stay reachable until it reaches
        // them (`Reference::unreached_leaf`).
        let yields = strategy == DeletionStrategy::SlotOnlyQuirkOff && self.deferring.is_some();
        for (i, s) in self.spaces.iter_mut().enumerate() {
            let gone: Vec<u64> = s.leaves.range(base..end).map(|(g, _)| *g).collect();
            for g in gone {
                let leaf = s.leaves.remove(&g).expect("listed");
                if yields {
                    let hva = Self::hva_of(&slot, g);
                    self.unreached.push((i, g, hva, leaf));
                }
                flush = match (flush, leaf.certain) {
                    (_, true) | (Tri::Set, _) => Tri::Set,
                    _ => Tri::Maybe,
                };
            }
        }
        // Leaves a deferring DELETE retained on the slot's rmap go too.
        let retained: Vec<u64> = self.retained.range(base..end).map(|(g, _)| *g).collect();
        for g in retained {
            self.retained.remove(&g);
            flush = flush.weaken();
        }
        if strategy != DeletionStrategy::SlotOnlyQuirkOff {
            // The hash walk: pages keyed by the slot's gfns, whose commit flushes.
            flush = flush.weaken();
            let roots_zapped = in_slot(0);
            for s in &mut self.spaces {
                for (g, l) in s.leaves.iter_mut() {
                    if roots_zapped || *g >= base {
                        l.certain = false;
                    }
                }
                for (g, m) in s.mmio.iter_mut() {
                    if roots_zapped || *g >= base {
                        m.certain = false;
                    }
                }
            }
            if roots_zapped {
                self.zap_roots();
            }
        }
        for v in &mut self.vcpus {
            v.pending = match flush {
                Tri::Set => Tri::Set,
                Tri::Maybe => v.pending.weaken(),
                Tri::Clear => v.pending,
            };
        }
    }

    /// Every root (keyed by gfn 0) zapped by the 2019 hash walk: a current
    /// root certainly existed, so every vCPU is asked to reload; a root
    /// that may be stale was perhaps still valid, and perhaps asked the
    /// same.
    fn zap_roots(&mut self) {
        let any_current = self.vcpus.iter().any(|v| v.root == Root::Current);
        let any_maybe = self.vcpus.iter().any(|v| v.root == Root::MaybeObsolete);
        for v in &mut self.vcpus {
            if any_current {
                v.reload = Tri::Set;
                v.pending = Tri::Set;
            } else if any_maybe {
                v.reload = v.reload.weaken();
                v.pending = v.pending.weaken();
            }
            if v.root != Root::None {
                v.root = Root::Obsolete;
            }
        }
    }
}

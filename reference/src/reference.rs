//! # The sequential reference model: what a user of a [`Vm`](fastzap::Vm) may observe
//!
//! [`Reference`] is the specification of fastzap's public API for one caller
//! issuing one operation at a time. It knows nothing of shadow pages, rmaps,
//! descriptors or epochs: it tracks only what a user can see.
//!
//! - **Memslots**: id, base gfn, size and host address of every slot, in
//!   base order, and the memslots generation. Every memslot call returns
//!   exactly the error core's `__kvm_set_memory_region` validation order gives
//!   (see [`Reference::create_memslot`]), or succeeds.
//! - **The host**: a version per host page. `invalidate_range` remaps the
//!   host pages in its range that back a slot (only those can be mapped by a
//!   spte; fastzap's host leaves the others alone so that a huge range costs
//!   nothing), and `change_pte` remaps its page. The reference does not know pfn values; it
//!   learns the pfn of each (page, version) the first time it sees it. After
//!   that the pfn must never change, and two different (page, version) pairs
//!   must never share a pfn. So a remapped page gets a new pfn.
//! - **Per address space** (with `address_spaces == 2`, odd vCPUs use the
//!   second): for each gfn, the leaf (pfn, writable, accessed) or the MMIO
//!   entry the current page tables may hold, each either *certain* or only
//!   *possible*.
//! - **Per vCPU**: the root (none, current, obsolete, or maybe obsolete),
//!   whether requests (and a reload in particular) are pending (clear, maybe,
//!   set), and the one-entry MMIO cache.
//! - `mmu_valid_gen`, exactly.
//!
//! [`Reference::step`] checks an observed outcome against the set of outcomes
//! allowed for an operation, then updates the model. It uses the observed
//! outcome to resolve its own uncertainty. For example, a translation that did
//! not return `RequestPending` proves that no request was pending.
//!
//! ## Exact where the protocol is exact
//!
//! - Errors, memslots, the memslots generation and `mmu_valid_gen` are exact.
//!   One fast invalidation per `invalidate_zap_all_pages`, DELETE or MOVE,
//!   plus one per memslots publish whose generation wraps the MMIO generation
//!   to 0 (the fix for bug 15).
//! - A vCPU that faulted gfn X (`Mapped{pfn}`), when nothing has invalidated X
//!   since (fast or eager zap-all, DELETE or MOVE of any slot, the shrinker,
//!   `invalidate_range` covering X's host page), translates X to exactly
//!   `Mapped{pfn, writable}` if no request is pending. `change_pte` on X's
//!   host page changes this to the new pfn, read-only.
//! - A vCPU whose MMIO cache holds X from the current memslots generation, or
//!   whose page tables certainly hold an MMIO spte for X from that generation,
//!   translates X to exactly `Mmio` if no request is pending.
//! - A fault returns `Mapped` with the current host pfn where a slot maps the
//!   gfn, `Mmio` where none does, `Retry(NoRoot)` before the first
//!   `handle_requests`, and `Retry(ObsoleteRoot)` while the root is obsolete.
//!   `Retry(InvalidSlot)` and `Retry(NotifierRace)` need a concurrent memslot
//!   update or notifier, so one caller never sees them (see
//!   [Concurrent histories](#concurrent-histories)).
//!
//! ## Permissive where the implementation may vary (each choice)
//!
//! - **Pending requests.** Freeing an invalid root, committing zapped pages
//!   and the notifiers request TLB flushes from every vCPU when they removed
//!   something. The reference tracks requests as clear, maybe, or set. Maybe
//!   allows `RequestPending` or the normal answer. Observing requests
//!   (`pending_requests`, `translate`, `handle_requests`) makes it exact again.
//! - **The shrinker** zaps some of the oldest pages, which the reference does not
//!   know about. After `shrink(n > 0)`, every leaf and MMIO entry becomes possible
//!   rather than certain, and every current root may be obsolete. A zapped parent
//!   leaves its children, with their leaves, on the active list, and a later
//!   fault may link them again. So a possible leaf stays possible after a
//!   `Miss`: it may reappear without a fault, with its old (still valid) pfn.
//!   It can only be stale after an invalidation, and those clear it.
//! - **Writable and accessed bits** are exact while the leaf is certain. A fault
//!   on a leaf that is only possible may find it or install a fresh one, so the
//!   bit becomes unknown unless both cases agree.
//! - **Counts returned by notifiers** (`invalidate_range`, `change_pte`) lie
//!   between the number of certain leaves and the number of possible leaves in
//!   the range, over all address spaces. `test_young` and `clear_flush_young`
//!   must be true if a certain leaf in the range is certainly accessed. They
//!   must be false if no leaf is possible there.
//! - **`shrink(n)`** returns at most `n` when `n > 0`, and 0 when `n == 0`.
//! - **Page tables are per address space, not per vCPU.** vCPUs of one address
//!   space share its current root. So one vCPU may translate to `Mapped` or
//!   `Mmio` what another vCPU of the same address space faulted. The MMIO
//!   *cache* is per vCPU and exact.
//! - **`translate_unsynchronized`** walks the vCPU's root with no requests
//!   check, so it may answer where `translate` would say `RequestPending`. An
//!   obsolete root was emptied when it was zapped, so it gives `Miss`. A root
//!   the shrinker may have zapped may give `Miss` for anything.
//!
//! ## The security property (I4)
//!
//! A `Mapped{pfn}` translation is allowed only from a leaf the reference holds.
//! Every invalidation of X removes X's leaf from every address space (or, for
//! `change_pte`, points it at the new pfn). So after an invalidation of X has
//! returned, no pfn mapped before it can be returned for X.
//!
//! ## Concurrent histories
//!
//! The linearizability checker ([`crate::linearizability`]) places the
//! operations of a concurrent history one at a time with
//! [`Reference::step_overlapping`], which takes what overlaps the operation in
//! real time ([`Overlap`]) and, for an operation that acts after its atomic
//! step, a *tail* that the checker places later
//! ([`Reference::end_invalidation`]). Sequential use ([`Reference::step`])
//! has no overlap and no tail, and is unchanged. The allowances, each narrow
//! and each for an outcome only concurrency produces:
//!
//! - **Retries.** `Retry(InvalidSlot)` needs an overlapping DELETE or MOVE,
//!   `Retry(NotifierRace)` an overlapping notifier; either is a no-op.
//! - **Requests land one vCPU at a time.** `make_all_cpus_request` sets each
//!   vCPU's bit in turn, and lockless callers (`translate`,
//!   `pending_requests`, a `handle_requests` with nothing to do) can look in
//!   between. The requests of an operation with a tail are only *maybe*
//!   pending for a vCPU until the tail, and certainly pending at the tail
//!   if the vCPU has not looked since. A `handle_requests` that did not
//!   reload keeps an obsolete root. A fault that finds its root obsolete
//!   still proves the reload: it takes `mmu_lock`, and the reload is made in
//!   the hold that bumps the generation.
//! - **A bounded request loop.** `handle_requests` goes round its loop a few
//!   times at most (core/src/request.rs). A reload that an spte writer
//!   overlaps may spend its last round freeing a root the writer made invalid,
//!   whose commit flushes every TLB, its own vCPU's after its last look: that
//!   vCPU may return with the flush pending (`bounded_loop_tests.rs`).
//! - **Batches.** While a fast invalidation's batches run (until its tail),
//!   requests may appear at any step (each batch's commit flushes), and
//!   notifiers may still meet the obsolete leaves: their count has no upper
//!   bound, and `*_young` may say true.
//! - **Bumps of their own.** A publish that wraps the MMIO generation is
//!   preceded by an invalidation, and the seed v3 DELETE unpublishes its slot
//!   before it bumps: with a tail, such a bump is carried out when the checker
//!   places it ([`Reference::deferred_bump`]), between the operation and its
//!   tail, and until then the seed v3 slot is a zombie whose leaves stay
//!   mapped and which the notifiers still reach (as core's zombies are).
//! - **A translate is two reads.** It checks the requests, then walks. An
//!   operation that removes sptes and then makes a request can fall between
//!   them, so a translate overlapping one may also be judged as a bare walk:
//!   `Miss` is always allowed (it maps nothing), `Mapped` only from a leaf the
//!   reference holds, `Mmio` only from the cache or a current MMIO spte.
//!
//! None of these allows a pfn that an invalidation placed earlier removed:
//! the security property holds for concurrent histories as stated above.
//!
//! ## Where each rule lives
//!
//! One file per family of operations, as `core/src` is split by kernel
//! event; each file names only the files above it in this list:
//!
//! - `host.rs`: [`Host`], the pfn the reference learns per host page and
//!   version (core's `host.rs`);
//! - `op.rs`: the calls ([`Op`]) and what they return ([`Outcome`]);
//! - `overlap.rs`: what overlaps an operation of a concurrent history
//!   ([`Overlap`]);
//! - `state.rs`: the state ([`Reference`], [`VcpuModel`], [`Space`]) and the
//!   lookups every operation shares (core's `vm.rs` and `vcpu.rs`);
//! - `zap.rs`: the fast invalidation, the eager zap and the shrinker (core's
//!   `zap.rs`);
//! - `requests.rs`: `handle_requests`, `pending_requests` and what a look at
//!   the requests learns (core's `request.rs` and `vcpu.rs`);
//! - `tail.rs`: what an operation does after its atomic step, in a
//!   concurrent history (the batches of core's `zap.rs`,
//!   `make_all_cpus_request`);
//! - `memslot.rs`: create, delete and move (core's `memslot_update.rs`);
//! - `fault.rs`: `page_fault` (core's `fault.rs`);
//! - `walk.rs`: the translations and what each may return ([`Allowed`],
//!   core's `walk.rs`);
//! - `notifier.rs`: `invalidate_range`, `change_pte` and the `*_young`
//!   notifiers (core's `notifier.rs`);
//! - `step.rs`: [`Reference::step`] and [`Reference::step_overlapping`],
//!   which send each operation to its family.

pub use crate::host::{Host, PAGE_SIZE};
pub use crate::op::{Divergence, Op, Outcome};
pub use crate::overlap::Overlap;
pub use crate::state::{Leaf, MmioEntry, Reference, Root, Space, Tri, VcpuModel};
pub use crate::walk::Allowed;

//! The ghost state, compiled out (no `ghost` feature): the same names as
//! `on.rs`, empty, and methods that do nothing. Only what the protocol calls
//! is here; what only the checkers read (the counters' values, the event log,
//! the violations) does not exist in this build.

use std::ops::Range;

use crate::config::Config;
use crate::event::{Actor, What};
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::stats::ZapStats;

/// No ghost state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ghost;

/// A counter that counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoCounter;

impl NoCounter {
    #[inline(always)]
    pub(crate) fn alloc(&self) {}
    #[inline(always)]
    pub(crate) fn retire(&self) {}
    #[inline(always)]
    pub(crate) fn free(&self) {}
}

impl Ghost {
    #[inline(always)]
    pub(crate) fn new(_config: &Config) -> Ghost {
        Ghost
    }
    #[inline(always)]
    pub(crate) fn event(&self, _actor: Actor, _what: impl FnOnce() -> What) {}
    #[inline(always)]
    pub(crate) fn violate(&self, _invariant: Invariant, _detail: impl FnOnce() -> String) {}
    #[inline(always)]
    pub(crate) fn record(&self, _violation: Violation) {}
    #[inline(always)]
    pub(crate) fn saw_freed(
        &self,
        _invariant: Invariant,
        _freed: impl FnOnce() -> bool,
        _detail: impl FnOnce() -> String,
    ) -> bool {
        false
    }
    #[inline(always)]
    pub(crate) fn check_outlived(
        &self,
        _visited: &Visited<'_>,
        _reader: impl Fn(PageId) -> String,
    ) {
    }
    #[inline(always)]
    pub(crate) fn pages(&self) -> NoCounter {
        NoCounter
    }
    #[inline(always)]
    pub(crate) fn descs(&self) -> NoCounter {
        NoCounter
    }
    #[inline(always)]
    pub(crate) fn rmaps(&self) -> NoCounter {
        NoCounter
    }
    /// Without the checking code freed memory really goes.
    ///
    /// # Safety
    /// As `on.rs`'s twin: `object` comes from `Box::leak`, is released once,
    /// and nothing can reach it any more.
    #[inline(always)]
    pub(crate) unsafe fn release<T: Send + 'static>(
        &self,
        object: std::ptr::NonNull<T>,
        _bytes: usize,
    ) {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(object.as_ptr()) });
    }
    #[inline(always)]
    pub(crate) fn next_desc_id(&self) -> u64 {
        0
    }
    /// Without the checking code the VM owns every page in its page table.
    #[inline(always)]
    pub(crate) fn page_dropped(&self, _page: &PageGhost) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn tick(&self) -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn kill_runs(&self, _runs: impl IntoIterator<Item = Range<u64>>, _cut: u64) {}
    #[inline(always)]
    pub(crate) fn kill_gfns(&self, _gfns: impl Iterator<Item = u64>, _cut: u64) {}
    #[inline(always)]
    pub(crate) fn kill_all(&self, _cut: u64) {}
    #[inline(always)]
    pub(crate) fn check_not_stale(
        &self,
        _gfn: u64,
        _pfn: u64,
        _installed: u64,
        _start: u64,
        _sp: PageId,
    ) {
    }
    #[inline(always)]
    pub(crate) fn notifier_locked_begin(&self, _hvas: Range<u64>) -> u64 {
        0
    }
    #[inline(always)]
    pub(crate) fn notifier_locked_end(&self, _hvas: Range<u64>, _begun: u64) {}
    #[inline(always)]
    pub(crate) fn check_pfn_fresh(&self, _hva: u64, _pfn: u64, _gfn: u64, _snapshot: u64) {}
    #[inline(always)]
    pub(crate) fn record_zap(&self, _stats: ZapStats) {}
    #[inline(always)]
    pub(crate) fn watch_zap(&self, _actor: Actor, _pages: usize) -> ZapWatch<'_> {
        ZapWatch(std::marker::PhantomData)
    }
    #[inline(always)]
    pub(crate) fn vcpu_claimed(&self, _vcpu: &VcpuGhost, _index: usize) {}
    #[inline(always)]
    pub(crate) fn unmapper_begin(&self) {}
    #[inline(always)]
    pub(crate) fn unmapper_end(&self) {}
}

/// No page ghost.
#[derive(Debug, Default)]
pub(crate) struct PageGhost;

impl PageGhost {
    #[inline(always)]
    pub(crate) fn new(_id: PageId, _sptes: usize) -> PageGhost {
        PageGhost
    }
    #[inline(always)]
    pub(crate) fn installed_at(&self, _index: usize, _at: u64) {}
    #[inline(always)]
    pub(crate) fn installed(&self, _index: usize) -> u64 {
        0
    }
    /// Without the checking code every retirement is taken as the first.
    #[inline(always)]
    pub(crate) fn retired(&self) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn freed(&self) {}
}

/// No record of visited pages.
#[derive(Debug, Default)]
pub(crate) struct Visited<'g>(std::marker::PhantomData<&'g ()>);

impl<'g> Visited<'g> {
    #[inline(always)]
    pub(crate) fn push(&mut self, _page: &'g PageGhost) {}
}

/// No descriptor ghost.
#[derive(Debug, Default)]
pub(crate) struct DescGhost;

impl DescGhost {
    #[inline(always)]
    pub(crate) const fn new(_id: u64) -> DescGhost {
        DescGhost
    }
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        0
    }
    /// Without the checking code every retirement is taken as the first.
    #[inline(always)]
    pub(crate) fn retire(&self) -> bool {
        true
    }
    #[inline(always)]
    pub(crate) fn freed(&self) {}
    #[inline(always)]
    pub(crate) fn is_freed(&self) -> bool {
        false
    }
    #[inline(always)]
    pub(crate) fn is_retired(&self) -> bool {
        false
    }
}

/// No TLB ghost.
#[derive(Debug, Default)]
pub(crate) struct TlbGhost<const N: usize>;

impl<const N: usize> TlbGhost<N> {
    #[inline(always)]
    pub(crate) const fn new() -> TlbGhost<N> {
        TlbGhost
    }
    #[inline(always)]
    pub(crate) fn filled(&self, _ghost: &Ghost, _slot: usize, _installed: u64) {}
    #[inline(always)]
    pub(crate) fn check_hit(
        &self,
        _ghost: &Ghost,
        _slot: usize,
        _gfn: u64,
        _pfn: u64,
        _start: u64,
    ) {
    }
}

/// No vCPU ghost.
#[derive(Debug, Default)]
pub(crate) struct VcpuGhost;

impl VcpuGhost {
    #[inline(always)]
    pub(crate) const fn new() -> VcpuGhost {
        VcpuGhost
    }
    #[inline(always)]
    pub(crate) fn op(&self) {}
    #[inline(always)]
    pub(crate) fn release(&self) {}
}

/// No zap watch (the lifetime matches the checking build's, which borrows
/// the ghost).
#[derive(Debug)]
pub(crate) struct ZapWatch<'g>(std::marker::PhantomData<&'g ()>);

impl ZapWatch<'_> {
    #[inline(always)]
    pub(crate) fn examined(&self) {}
}

/// No generation epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct GenEpoch;

impl GenEpoch {
    #[inline(always)]
    pub(crate) const fn new() -> GenEpoch {
        GenEpoch
    }
    #[inline(always)]
    pub(crate) fn bump(&mut self) {}
}

//! The ghost state, compiled in (feature `ghost`).

use std::ops::Range;
use std::ptr::NonNull;

use crate::config::Config;
use crate::event::{Actor, Event, What};
use crate::ids::PageId;
use crate::invariant::{Invariant, Violation};
use crate::stats::ZapStats;
use crate::sync::ghost::{GhostArc, GhostCounter, GhostLog, GhostMutex, GhostU64, LifeCounter};

pub use crate::sync::ghost::LifeCounts;

pub(crate) use super::objects::*;
use super::progress::ZapSeen;
pub(crate) use super::progress::ZapWatch;
use super::quarantine::{Kept, Quarantine};
use super::times::{KillMap, NotifierLedger};

/// How many violations a VM keeps (a broken protocol repeats itself).
const MAX_VIOLATIONS: usize = 256;

/// How many zaps the history keeps (plus every one that broke I6).
const ZAP_HISTORY: usize = 4096;

/// A VM's ghost state, shared with its rmaps and deferred frees.
#[derive(Debug, Clone)]
pub(crate) struct Ghost(GhostArc<State>);

#[derive(Debug)]
struct State {
    pages: LifeCounter,
    descs: LifeCounter,
    rmaps: LifeCounter,
    events: GhostLog<Event>,
    event_seq: GhostCounter,
    violations: GhostLog<Violation>,
    /// The ghost clock: install, invalidation and walk times.
    clock: GhostU64,
    /// Per gfn: (cut, returned) of the latest invalidation that returned.
    kills: GhostMutex<KillMap>,
    /// (cut, returned) of the latest invalidate-all that returned.
    kill_all: GhostMutex<(u64, u64)>,
    /// The latest cut of any invalidation that returned: a mapping installed
    /// at or after it cannot be stale, so `check_not_stale` skips the lookups.
    latest_cut: GhostU64,
    /// The mmu-notifier invalidations, by host address, for I4 at the source.
    notifiers: GhostMutex<NotifierLedger>,
    zaps: GhostMutex<Vec<ZapStats>>,
    /// I6 from the ghost's own observations: the zaps being watched (one
    /// record per actor), how many are open, how many were watched, and the
    /// closed ones that broke I6 (`progress.rs`).
    zap_watch: GhostMutex<Vec<ZapSeen>>,
    watching: GhostU64,
    zaps_watched: GhostCounter,
    zaps_broken: GhostMutex<Vec<ZapSeen>>,
    /// The steps the ghost counted for the last zap it stopped watching.
    last_zap_steps: GhostU64,
    /// Lockless unmappers in flight (the audit points skip rmap checks then).
    lockless_unmappers: GhostU64,
    /// The pages and descriptors released lately, poisoned and kept: a bug
    /// (a mutant, or a plain edit of the protocol) may leave pointers to them
    /// behind (bug 1 leaves rmap entries into freed pages), and a later read
    /// must see the poison, not another object or unmapped memory. See
    /// [`Ghost::release`] for how long they are kept.
    quarantine: GhostMutex<Quarantine>,
    /// The next descriptor id (descriptors are named in violations).
    desc_ids: GhostCounter,
    /// `Config::batch` and `Config::vcpus`, for the I6 test of `record_zap`.
    batch: usize,
    vcpus: usize,
}

/// Allocation counts of the three reclaimed kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Shadow pages.
    pub pages: LifeCounts,
    /// `PteListDesc`s.
    pub descs: LifeCounts,
    /// Rmap arrays.
    pub rmaps: LifeCounts,
}

impl Counts {
    /// Whether every retired object has been freed.
    pub fn settled(&self) -> bool {
        self.pages.pending() == 0 && self.descs.pending() == 0 && self.rmaps.pending() == 0
    }
}

impl Ghost {
    pub(crate) fn new(config: &Config) -> Ghost {
        Ghost(GhostArc::new(State {
            pages: LifeCounter::default(),
            descs: LifeCounter::default(),
            rmaps: LifeCounter::default(),
            events: GhostLog::new(config.events),
            event_seq: GhostCounter::default(),
            violations: GhostLog::new(true),
            clock: GhostU64::new(0),
            kills: GhostMutex::new(KillMap::default()),
            kill_all: GhostMutex::new((0, 0)),
            latest_cut: GhostU64::new(0),
            notifiers: GhostMutex::new(NotifierLedger::default()),
            zaps: GhostMutex::new(Vec::new()),
            zap_watch: GhostMutex::new(Vec::new()),
            watching: GhostU64::new(0),
            zaps_watched: GhostCounter::default(),
            zaps_broken: GhostMutex::new(Vec::new()),
            last_zap_steps: GhostU64::new(0),
            lockless_unmappers: GhostU64::new(0),
            quarantine: GhostMutex::new(Quarantine::new(config.mutant.is_none())),
            desc_ids: GhostCounter::default(),
            batch: config.batch,
            vcpus: config.vcpus,
        }))
    }

    // ----- the event log -----------------------------------------------------

    /// Records that `actor` did `what` (built only if the log is on, or a
    /// zap is being watched: the watch counts its actor's events).
    #[inline]
    pub(crate) fn event(&self, actor: Actor, what: impl FnOnce() -> What) {
        let log = self.0.events.enabled();
        if !log && self.0.watching.get() == 0 {
            return;
        }
        let what = what();
        if self.0.watching.get() != 0 {
            self.zap_event(actor, &what);
        }
        if log {
            let seq = self.0.event_seq.next();
            self.0.events.push_always(Event { seq, actor, what });
        }
    }

    /// The event log so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.events.snapshot()
    }

    // ----- violations --------------------------------------------------------

    /// Records a violation of `invariant` seen at run time.
    pub(crate) fn violate(&self, invariant: Invariant, detail: impl FnOnce() -> String) {
        self.record(Violation::new(invariant, detail()));
    }

    /// Records a violation seen at run time.
    pub(crate) fn record(&self, violation: Violation) {
        self.event(Actor::Check, || What::Violated {
            invariant: violation.invariant,
            detail: violation.detail.clone(),
        });
        if self.0.violations.len() < MAX_VIOLATIONS {
            self.0.violations.push_always(violation);
        }
    }

    /// The violations recorded at run time.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        self.0.violations.snapshot()
    }

    /// A reader's check that what it is reading was not freed under it:
    /// if `freed()` says it was, records a violation of `invariant` and
    /// returns true, and the reader stops.
    #[inline]
    pub(crate) fn saw_freed(
        &self,
        invariant: Invariant,
        freed: impl FnOnce() -> bool,
        detail: impl FnOnce() -> String,
    ) -> bool {
        let seen = freed();
        if seen {
            self.violate(invariant, detail);
        }
        seen
    }

    /// I3 for a reader that just finished: every page it visited must still be
    /// unfreed ("shadow pages outlive their readers").
    pub(crate) fn check_outlived(&self, visited: &Visited<'_>, reader: impl Fn(PageId) -> String) {
        for page in &visited.0 {
            if page.life() == PageLife::Freed {
                self.violate(Invariant::I3, || reader(page.id));
            }
        }
    }

    // ----- allocation counters -----------------------------------------------

    /// Shadow-page counters.
    #[inline]
    pub(crate) fn pages(&self) -> &LifeCounter {
        &self.0.pages
    }

    /// Descriptor counters.
    #[inline]
    pub(crate) fn descs(&self) -> &LifeCounter {
        &self.0.descs
    }

    /// Rmap counters.
    #[inline]
    pub(crate) fn rmaps(&self) -> &LifeCounter {
        &self.0.rmaps
    }

    /// Every counter.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            pages: self.0.pages.get(),
            descs: self.0.descs.get(),
            rmaps: self.0.rmaps.get(),
        }
    }

    /// Takes a poisoned object whose memory the protocol releases (`bytes`
    /// of it, heap parts included), and keeps it, poisoned, in the VM's
    /// quarantine: in a checking build freed memory is not reused, whatever
    /// [`Config::mutant`] says, so a use after free reads poison and is
    /// reported (I2, I3) instead of crashing. Without the checking code the
    /// object is dropped at once.
    ///
    /// How long: under a mutant, until the ghost state is dropped (with the
    /// VM, its rmaps and its deferred frees); a mutant's dangling pointers
    /// can outlive any window (bug 1's rmap entries). Otherwise the
    /// quarantine is a FIFO of
    /// [`QUARANTINE_BYTES`](super::quarantine::QUARANTINE_BYTES), as AddressSanitizer's
    /// is: an object is given back once that much memory was freed after
    /// it, and a use after free later than that is not guaranteed to be
    /// seen. Unbounded, verify's 10^7-operation stress grew past 1.8 GiB.
    /// The cost: a checking build's memory grows by up to that much per VM
    /// (without bound under a mutant).
    ///
    /// The object is kept as the raw pointer it was allocated as, not as a
    /// `Box`: a `Box` claims unique access, and a buggy reader that still
    /// reads the object through its own pointer would make the `Box`'s
    /// eventual drop undefined behaviour (Miri's Tree Borrows reports it).
    ///
    /// # Safety
    /// `object` comes from `Box::leak` (or `Box::into_raw`), is released
    /// once, and no correct reader can reach it any more.
    pub(crate) unsafe fn release<T: Send + 'static>(&self, object: NonNull<T>, bytes: usize) {
        unsafe fn drop_box<T>(object: *mut ()) {
            // SAFETY: `Kept::give_back`'s contract, from `release`'s.
            drop(unsafe { Box::from_raw(object.cast::<T>()) });
        }
        let kept = Kept {
            object: object.cast(),
            bytes,
            drop: drop_box::<T>,
        };
        let Ok(evicted) = self.0.quarantine.with(|q| q.push(kept)) else {
            // Already kept: released twice. The retirement checks
            // (`PageGhost::retire`, `DescGhost::retire`) report the second
            // retirement; here its memory is not given back twice.
            return;
        };
        for old in evicted {
            // SAFETY: it entered the quarantine after its grace period, and
            // QUARANTINE_BYTES were freed since: in a correct protocol nothing
            // reaches it; it came from a `Box` and leaves the quarantine once.
            unsafe { old.give_back() };
        }
    }

    /// How many released objects are quarantined.
    #[cfg(all(test, not(any(loom, shuttle))))]
    pub(crate) fn quarantined(&self) -> usize {
        self.0.quarantine.with(|q| q.kept.len())
    }

    /// A fresh descriptor id.
    pub(crate) fn next_desc_id(&self) -> u64 {
        self.0.desc_ids.next()
    }

    /// A page of the page table released with its VM, outside any grace
    /// period: if it is live, counts it retired and freed and says that the
    /// VM owns it. A page a bug already handed to the reclaimer is the
    /// reclaimer's (and the quarantine's): records I3 and says not to
    /// release it again.
    pub(crate) fn page_dropped(&self, page: &PageGhost) -> bool {
        let life = page.life();
        if life != PageLife::Live {
            self.violate(Invariant::I3, || {
                format!(
                    "{} still in the page table when its VM was dropped, but {life:?}",
                    page.id
                )
            });
            return false;
        }
        self.0.pages.retire();
        self.0.pages.free();
        true
    }

    // ----- the ghost clock and I4 --------------------------------------------

    /// Advances the ghost clock and returns the new time.
    #[inline]
    pub(crate) fn tick(&self) -> u64 {
        self.0.clock.increment()
    }

    /// The ghost time now.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.0.clock.get()
    }

    /// Every mapping of a gfn in `runs` installed before `cut` is dead from
    /// now on. Costs O(log n) per run, whatever its length.
    pub(crate) fn kill_runs(&self, runs: impl IntoIterator<Item = Range<u64>>, cut: u64) {
        let returned = self.tick();
        self.0.kills.with(|k| {
            for run in runs {
                k.insert(run, (cut, returned));
            }
        });
        self.0.latest_cut.raise(cut);
    }

    /// [`Ghost::kill_runs`] for a list of gfns, grouped into runs.
    pub(crate) fn kill_gfns(&self, gfns: impl Iterator<Item = u64>, cut: u64) {
        let mut runs: Vec<Range<u64>> = Vec::new();
        for gfn in gfns {
            match runs.last_mut() {
                Some(run) if run.end == gfn => run.end += 1,
                _ => runs.push(gfn..gfn + 1),
            }
        }
        self.kill_runs(runs, cut);
    }

    /// Every mapping installed before `cut` is dead from now on.
    pub(crate) fn kill_all(&self, cut: u64) {
        let returned = self.tick();
        self.0.kill_all.with(|k| *k = (cut, returned));
        self.0.latest_cut.raise(cut);
    }

    /// I4 at run time: a translation that began at `start`, after an
    /// invalidation of `gfn` returned, must not return a mapping installed
    /// before that invalidation.
    pub(crate) fn check_not_stale(
        &self,
        gfn: u64,
        pfn: u64,
        installed: u64,
        start: u64,
        sp: PageId,
    ) {
        for (cut, returned) in self.killed_before(gfn, installed, start) {
            self.violate(Invariant::I4, || {
                format!(
                    "stale translation: gfn {gfn} -> pfn {pfn:#x} in {sp}, installed at t{installed}, \
                     invalidated at t{cut} (returned t{returned}), translate began t{start}"
                )
            });
        }
    }

    /// I4 through the TLB: a translation served from a TLB entry filled at
    /// `filled` from a spte installed at `installed`, in a translate that
    /// began at `start`, is stale if an invalidation that killed that spte
    /// returned before `start` (its flush should have emptied the entry).
    pub(crate) fn check_tlb_hit(
        &self,
        gfn: u64,
        pfn: u64,
        installed: u64,
        filled: u64,
        start: u64,
    ) {
        for (cut, returned) in self.killed_before(gfn, installed, start) {
            self.violate(Invariant::I4, || {
                format!(
                    "stale translation from the TLB: gfn {gfn} -> pfn {pfn:#x}, spte installed at \
                     t{installed}, entry filled at t{filled}, invalidated at t{cut} (returned \
                     t{returned}), translate began t{start}"
                )
            });
        }
    }

    /// The invalidations (cut, returned) that killed a mapping of `gfn`
    /// installed at `installed` and returned at or before `start`.
    fn killed_before(
        &self,
        gfn: u64,
        installed: u64,
        start: u64,
    ) -> impl Iterator<Item = (u64, u64)> {
        let kills = if installed >= self.0.latest_cut.get() {
            [(0, 0); 2]
        } else {
            let all = self.0.kill_all.with(|k| *k);
            let one = self.0.kills.with(|k| k.get(gfn)).unwrap_or((0, 0));
            [all, one]
        };
        kills
            .into_iter()
            .filter(move |&(cut, returned)| returned != 0 && returned <= start && installed < cut)
    }

    // ----- I4 at the source: the pfn a fault read ----------------------------

    /// An mmu-notifier invalidation of the host range `hvas` begins: called
    /// with `mmu_lock` held, where it raises `mmu_notifier_count`, which is the
    /// moment a fault can first see it. Returns its begin time.
    pub(crate) fn notifier_locked_begin(&self, hvas: Range<u64>) -> u64 {
        let begun = self.tick();
        self.0.notifiers.with(|n| n.in_flight.push((hvas, begun)));
        begun
    }

    /// The invalidation that began at `begun` ends: called with `mmu_lock`
    /// held, before it bumps `mmu_notifier_seq`.
    pub(crate) fn notifier_locked_end(&self, hvas: Range<u64>, begun: u64) {
        let ended = self.tick();
        self.0.notifiers.with(|n| {
            if let Some(at) = n.in_flight.iter().position(|(_, b)| *b == begun) {
                n.in_flight.swap_remove(at);
            }
            n.done.insert(hvas, (begun, ended));
        });
    }

    /// I4 where the pfn was read: a fault that took its `mmu_notifier_seq`
    /// snapshot at `snapshot`, then read `pfn` at host address `hva`, installs
    /// it (with `mmu_lock` held). No invalidation of `hva` may overlap the
    /// interval from the snapshot to now: one still in flight, or one that
    /// ended after the snapshot, may have taken the page away after the read.
    /// This is what `mmu_notifier_retry` guarantees; the install time of a
    /// spte cannot show it, because the install comes after the invalidation.
    pub(crate) fn check_pfn_fresh(&self, hva: u64, pfn: u64, gfn: u64, snapshot: u64) {
        let (in_flight, done) = self.0.notifiers.with(|n| {
            let in_flight = n
                .in_flight
                .iter()
                .find(|(r, _)| r.contains(&hva))
                .map(|(r, b)| (r.clone(), *b));
            (in_flight, n.done.get(hva))
        });
        if let Some((range, begun)) = in_flight {
            self.violate(Invariant::I4, || {
                format!(
                    "fault installs gfn {gfn} -> pfn {pfn:#x}, read from hva {hva:#x} after the \
                     notifier snapshot t{snapshot}, while invalidate_range \
                     [{:#x}, {:#x}) (begun t{begun}) is in flight",
                    range.start, range.end
                )
            });
        } else if let Some((begun, ended)) = done
            && ended > snapshot
        {
            self.violate(Invariant::I4, || {
                format!(
                    "fault installs gfn {gfn} -> pfn {pfn:#x}, read from hva {hva:#x} with the \
                     notifier snapshot t{snapshot}, but an invalidation of that hva ran \
                     t{begun} to t{ended}: the pfn may be stale (mmu_notifier_retry)"
                )
            });
        }
    }

    // ----- I6 ------------------------------------------------------------------

    /// Keeps a zap's stats for I6. The history is bounded: past `ZAP_HISTORY`
    /// entries the oldest one that keeps I6 is dropped, so a long run does not
    /// grow its memory, and no entry that breaks I6 is ever lost.
    pub(crate) fn record_zap(&self, stats: ZapStats) {
        let (batch, vcpus) = (self.0.batch, self.0.vcpus);
        self.0.zaps.with(|z| {
            z.push(stats);
            if z.len() > ZAP_HISTORY
                && let Some(old) = z.iter().position(|s| !s.breaks_i6(batch, vcpus))
            {
                z.remove(old);
            }
        });
    }

    /// The zaps recorded so far.
    pub(crate) fn zaps(&self) -> Vec<ZapStats> {
        self.0.zaps.with(|z| z.clone())
    }

    /// `zap_obsolete_pages` of `actor` begins, inside its first `mmu_lock`
    /// hold, with `pages` pages in the VM: the ghost watches it until the
    /// returned watch is dropped (`progress.rs`).
    pub(crate) fn watch_zap(&self, actor: Actor, pages: usize) -> ZapWatch<'_> {
        let number = self.0.zaps_watched.next();
        self.0
            .zap_watch
            .with(|w| match w.iter_mut().find(|z| z.actor == actor) {
                Some(open) => open.nest(pages as u64),
                None => w.push(ZapSeen::new(number, actor, pages as u64)),
            });
        self.0.watching.increment();
        ZapWatch { ghost: self, actor }
    }

    /// The watched zap of `actor` examined a page.
    pub(super) fn zap_examined(&self, actor: Actor) {
        self.zap_update(actor, ZapSeen::examined);
    }

    /// An event of `actor` while a zap is watched.
    fn zap_event(&self, actor: Actor, what: &What) {
        if matches!(what, What::Lock | What::PrepareZap { .. }) {
            self.zap_update(actor, |z| z.observe(what));
        }
    }

    /// Applies `f` to `actor`'s watched zap, then records the I6 breaches it
    /// now shows for the first time.
    fn zap_update(&self, actor: Actor, f: impl FnOnce(&mut ZapSeen)) {
        let (batch, vcpus) = (self.0.batch, self.0.vcpus);
        let breaches = self.0.zap_watch.with(|w| {
            let Some(z) = w.iter_mut().find(|z| z.actor == actor) else {
                return Vec::new();
            };
            f(z);
            z.new_breaches(batch, vcpus)
        });
        for breach in breaches {
            self.record(breach);
        }
    }

    /// The watch of `actor`'s zap ends.
    pub(super) fn zap_closed(&self, actor: Actor) {
        let (batch, vcpus) = (self.0.batch, self.0.vcpus);
        let closed = self.0.zap_watch.with(|w| {
            let at = w.iter().position(|z| z.actor == actor)?;
            w[at].unnest().then(|| w.swap_remove(at))
        });
        self.0.watching.decrement();
        if let Some(z) = &closed {
            self.0.last_zap_steps.set(z.steps());
        }
        if let Some(z) = closed
            && !z.breaches(batch, vcpus).is_empty()
        {
            self.0.zaps_broken.with(|b| {
                if b.len() < MAX_VIOLATIONS {
                    b.push(z);
                }
            });
        }
    }

    /// I6 as the ghost observed it: the breaches of every watched zap, open
    /// or closed (the audit's `check_i6_progress` reports them).
    pub(crate) fn zap_breaches(&self) -> Vec<Violation> {
        let (batch, vcpus) = (self.0.batch, self.0.vcpus);
        let mut out: Vec<Violation> = self
            .0
            .zaps_broken
            .with(|b| b.iter().flat_map(|z| z.breaches(batch, vcpus)).collect());
        self.0.zap_watch.with(|w| {
            out.extend(w.iter().flat_map(|z| z.breaches(batch, vcpus)));
        });
        out
    }

    /// How many zaps the ghost watched, and the steps it counted for the
    /// last one it stopped watching.
    #[cfg(all(test, not(any(loom, shuttle))))]
    pub(crate) fn zaps_watched(&self) -> (u64, u64) {
        (self.0.zaps_watched.get(), self.0.last_zap_steps.get())
    }

    // ----- I11: the vCPU claim ------------------------------------------------

    /// vCPU `index` was claimed: counts the claim's holder, and records I11
    /// if another holds it too (two threads on one vCPU).
    pub(crate) fn vcpu_claimed(&self, vcpu: &VcpuGhost, index: usize) {
        let holders = vcpu.hold();
        if holders > 1 {
            self.violate(Invariant::I11, || {
                format!(
                    "vcpu{index} claimed while {} other claims hold it",
                    holders - 1
                )
            });
        }
    }

    // ----- the seed's lockless unmapper ----------------------------------------

    /// A lockless unmapper began.
    pub(crate) fn unmapper_begin(&self) {
        self.0.lockless_unmappers.increment();
    }

    /// A lockless unmapper ended.
    pub(crate) fn unmapper_end(&self) {
        self.0.lockless_unmappers.decrement();
    }

    /// Whether a lockless unmapper is running (rmaps may be mid-change).
    pub(crate) fn unmapper_running(&self) -> bool {
        self.0.lockless_unmappers.get() != 0
    }
}

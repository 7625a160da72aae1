//! # What a zap did, and I6's bound on it
//!
//! [`ZapStats`] is the return value of every zap: work counts the protocol
//! keeps anyway (pages, holds, steps), plus `mmu_lock` hold times when the
//! `hold-timing` feature is on. The progress invariant (I6) is stated over it:
//! [`zap_step_bound`] and `ZapStats::breaks_i6` are the one definition the
//! zap loop, the ghost history and the audit share (the checking code's
//! `fastzap::check` makes them public).

/// Work done by one zap, for I6 and the benchmarks.
///
/// ```
/// use fastzap::{Config, Gfn, Hva, SlotId, SlotSpec, VcpuId, Vm};
///
/// let mut config = Config::native();
/// config.batch = 1;
/// let vm = Vm::new(config)?;
/// vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 16, userspace_addr: Hva(0x10_0000) })?;
/// vm.handle_requests(VcpuId(0))?;
/// vm.page_fault(VcpuId(0), Gfn(0), true)?; // a root and two pages below it
/// let stats = vm.invalidate_zap_all_pages()?;
/// assert_eq!((stats.pages_at_start, stats.zapped, stats.max_batch), (3, 3, 1));
/// assert_eq!(stats.committed, 2); // the root waits for its vCPU to reload
/// assert!(stats.holds >= 3);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZapStats {
    /// Pages in the VM when the zap began.
    pub pages_at_start: u64,
    /// Pages prepared (zapped).
    pub zapped: u64,
    /// Lock holds taken by the zap loop.
    pub holds: u64,
    /// The most pages prepared in one hold.
    pub max_batch: u64,
    /// Loop steps (pages examined).
    pub steps: u64,
    /// Pages retired through the epoch by the zap's commits (per batch, or
    /// the final one in the 3.11 shape).
    pub committed: u64,
    /// Nanoseconds `mmu_lock` was held for the generation bump and the reload
    /// requests (0 for the eager zap, and without the `hold-timing` feature).
    pub bump_hold_ns: u64,
    /// The longest single `mmu_lock` hold of the zap loop, in nanoseconds (for
    /// the eager zap: its one hold; 0 without `hold-timing`).
    pub max_hold_ns: u64,
    /// The longest hold that ended in a lock break: one batch (0 if the zap
    /// never broke the lock, or without `hold-timing`).
    pub max_batch_hold_ns: u64,
    /// The zap loop's last hold, which ends with the final commit (without
    /// `hold-timing`: 0).
    pub final_hold_ns: u64,
    /// Nanoseconds from the start of the operation until its last page was
    /// committed (0 without `hold-timing`).
    pub total_ns: u64,
    /// Every hold that ended in a lock break, by length (empty without
    /// `hold-timing`): the distribution behind `max_batch_hold_ns`.
    pub batch_holds: HoldHistogram,
}

/// A histogram of `mmu_lock` hold lengths in power-of-two buckets: bucket `i`
/// counts holds of `2^i` to `2^(i+1) - 1` nanoseconds (bucket 0 also counts
/// 0 ns, the last one everything longer). Fixed size and `Copy`, so a zap
/// records every hold without allocating under the lock. It is the type of
/// [`ZapStats::batch_holds`], filled with the `hold-timing` feature.
///
/// ```
/// use fastzap::HoldHistogram;
///
/// let mut holds = HoldHistogram::default();
/// for ns in [100, 150, 3_000] {
///     holds.push(ns);
/// }
/// assert_eq!(holds.count(), 3);
/// assert_eq!(holds.at_least(2_048), 1);
/// assert_eq!(holds.quantile_upper_ns(0.5), Some(255)); // the median, 150, is in 128..=255
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldHistogram {
    buckets: [u32; 32],
}

impl HoldHistogram {
    /// Counts one hold of `ns` nanoseconds.
    ///
    /// ```
    /// use fastzap::HoldHistogram;
    ///
    /// let mut holds = HoldHistogram::default();
    /// holds.push(0);
    /// holds.push(1_000_000);
    /// assert_eq!(holds.count(), 2);
    /// assert_eq!(holds.at_least(1 << 19), 1);
    /// ```
    #[inline]
    pub fn push(&mut self, ns: u64) {
        let bucket = (u64::BITS - 1).saturating_sub(ns.max(1).leading_zeros()) as usize;
        let bucket = bucket.min(self.buckets.len() - 1);
        self.buckets[bucket] = self.buckets[bucket].saturating_add(1);
    }

    /// Holds counted.
    ///
    /// ```
    /// use fastzap::HoldHistogram;
    ///
    /// let mut holds = HoldHistogram::default();
    /// assert_eq!(holds.count(), 0);
    /// (0..5).for_each(|i| holds.push(i * 1_000));
    /// assert_eq!(holds.count(), 5);
    /// ```
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|&n| u64::from(n)).sum()
    }

    /// Holds of at least `ns` nanoseconds, counted by bucket: every hold in a
    /// bucket whose lower bound is at least `ns`.
    ///
    /// ```
    /// use fastzap::HoldHistogram;
    ///
    /// let mut holds = HoldHistogram::default();
    /// [10, 1_000, 100_000].into_iter().for_each(|ns| holds.push(ns));
    /// assert_eq!(holds.at_least(1), 3);
    /// assert_eq!(holds.at_least(1 << 16), 1); // 100_000 is in 65_536..=131_071
    /// assert_eq!(holds.at_least(1 << 20), 0);
    /// ```
    pub fn at_least(&self, ns: u64) -> u64 {
        self.buckets
            .iter()
            .enumerate()
            .filter(|&(i, _)| (1u64 << i) >= ns)
            .map(|(_, &n)| u64::from(n))
            .sum()
    }

    /// An upper bound of the `q`-quantile (0 < `q` <= 1): the upper end of the
    /// bucket in which it falls, so within 2x above the true value. `None`
    /// when nothing was counted or `q` is out of range.
    ///
    /// ```
    /// use fastzap::HoldHistogram;
    ///
    /// let mut holds = HoldHistogram::default();
    /// [100, 100, 100, 5_000].into_iter().for_each(|ns| holds.push(ns));
    /// assert_eq!(holds.quantile_upper_ns(0.5), Some(127)); // 100 is in 64..=127
    /// assert_eq!(holds.quantile_upper_ns(1.0), Some(8_191)); // 5_000 is in 4_096..=8_191
    /// assert_eq!(holds.quantile_upper_ns(0.0), None);
    /// assert_eq!(HoldHistogram::default().quantile_upper_ns(0.5), None);
    /// ```
    pub fn quantile_upper_ns(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 || !(q > 0.0 && q <= 1.0) {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some((1u64 << (i + 1)) - 1);
            }
        }
        None
    }

    /// Adds `other`'s counts to these.
    ///
    /// ```
    /// use fastzap::HoldHistogram;
    ///
    /// let (mut a, mut b) = (HoldHistogram::default(), HoldHistogram::default());
    /// a.push(100);
    /// b.push(5_000);
    /// a.merge(&b);
    /// assert_eq!(a.count(), 2);
    /// assert_eq!(a.at_least(4_096), 1);
    /// ```
    pub fn merge(&mut self, other: &HoldHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a = a.saturating_add(b);
        }
    }
}

/// The most steps (pages examined, plus one per pass) `zap_obsolete_pages` may
/// take, for a zap that began with `pages_at_start` pages (I6). A pass examines
/// at most the invalid roots still in use (one per vCPU), the page it zaps and
/// the page it stops at; there is at most one pass per zapped page and one per
/// lock break. Pages created during the zap are of the new generation, at the
/// head, and never examined.
#[cfg(feature = "ghost")]
pub fn zap_step_bound(pages_at_start: u64, vcpus: usize) -> u64 {
    (2 * pages_at_start + 2) * (vcpus as u64 + 4) + 16
}

#[cfg(feature = "ghost")]
impl ZapStats {
    /// Whether this zap broke I6: more steps than its bound, or more pages
    /// prepared in one hold than `batch` (a zap that never broke the lock is
    /// the eager one, which may prepare everything in its one hold).
    pub(crate) fn breaks_i6(&self, batch: usize, vcpus: usize) -> bool {
        self.steps > zap_step_bound(self.pages_at_start, vcpus)
            || (self.holds > 1 && self.max_batch > batch as u64)
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use super::HoldHistogram;

    #[test]
    fn hold_histogram_buckets_and_quantiles() {
        let mut h = HoldHistogram::default();
        assert_eq!(h.quantile_upper_ns(0.5), None);
        for _ in 0..999 {
            h.push(1_000); // bucket 9: 512..1023
        }
        h.push(5_000_000); // bucket 22: 4,194,304..8,388,607
        assert_eq!(h.count(), 1_000);
        assert_eq!(h.quantile_upper_ns(0.5), Some(1_023));
        assert_eq!(h.quantile_upper_ns(0.999), Some(1_023));
        assert_eq!(h.quantile_upper_ns(1.0), Some(8_388_607));
        assert_eq!(h.at_least(1 << 20), 1);
        assert_eq!(h.quantile_upper_ns(0.0), None);
        assert_eq!(h.quantile_upper_ns(f64::NAN), None);
        h.push(0);
        h.push(u64::MAX);
        assert_eq!(h.count(), 1_002);
        let mut sum = HoldHistogram::default();
        sum.merge(&h);
        sum.merge(&h);
        assert_eq!(sum.count(), 2_004);
    }
}

/// The most obsolete pages an invalidation may leave in the VM when it returns
/// (I8): the obsolete roots that vCPUs still use (at most one per vCPU; each is
/// freed by `mmu_free_roots` when its vCPU reloads), plus at most one batch of
/// prepared pages parked on `zapped_obsolete_pages` for the shrinker. The
/// protocol leaves no parked page today; the batch is room for a delete that
/// leaves its last commit to later reclamation, as the seed allows ("until
/// page allocator reclaims page").
#[cfg(feature = "ghost")]
pub fn retain_bound(batch: usize, vcpus: usize) -> u64 {
    vcpus as u64 + batch as u64
}

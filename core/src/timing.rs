//! # `mmu_lock` hold timing, switchable
//!
//! With the `hold-timing` feature a [`Stopwatch`] reads the monotonic clock;
//! without it, it is empty and reads 0, so the protocol carries no clock reads.
//! Timing is observation: no decision of the protocol depends on it.

/// A started clock.
#[cfg(feature = "hold-timing")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch(std::time::Instant);

#[cfg(feature = "hold-timing")]
impl Stopwatch {
    /// Starts the clock.
    #[inline]
    pub(crate) fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Nanoseconds since [`Stopwatch::start`].
    #[inline]
    pub(crate) fn ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that is not there: every reading is 0.
#[cfg(not(feature = "hold-timing"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch;

#[cfg(not(feature = "hold-timing"))]
impl Stopwatch {
    /// Does nothing.
    #[inline(always)]
    pub(crate) fn start() -> Stopwatch {
        Stopwatch
    }

    /// 0.
    #[inline(always)]
    pub(crate) fn ns(&self) -> u64 {
        0
    }
}

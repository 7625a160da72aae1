//! # Resident memory over the long stress
//!
//! The long stress (`native-stress-long` in [`crate::checks`]) samples the
//! process's resident memory every 50 ms. [`memory_growth`] judges the
//! samples; a run with too few of them is not judged, and the row says so
//! ([`crate::report::CheckOutcome::unjudged`]) rather than passing.

use crate::report::CheckOutcome;

/// The fewest resident-memory samples that judge growth (two quarters of
/// two samples to compare).
pub const MEMORY_SAMPLES: usize = 8;

/// What the resident-memory samples of a run say about growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryGrowth {
    /// Too few samples: growth is not judged.
    NotJudged {
        /// The samples taken.
        samples: usize,
    },
    /// Judged: the largest sample of the second and of the last quarter (KiB)
    /// and whether the last exceeds the second by more than a quarter plus
    /// 32 MiB.
    Judged {
        /// Samples taken.
        samples: usize,
        /// The second quarter's largest sample.
        early: u64,
        /// The last quarter's largest sample.
        late: u64,
        /// Whether memory grew.
        grew: bool,
    },
}

/// Judges `samples` (resident memory in KiB, in time order).
pub fn memory_growth(samples: &[u64]) -> MemoryGrowth {
    if samples.len() < MEMORY_SAMPLES {
        return MemoryGrowth::NotJudged {
            samples: samples.len(),
        };
    }
    let q = samples.len() / 4;
    let early = samples[q..2 * q].iter().copied().max().unwrap_or(0);
    let late = samples[3 * q..].iter().copied().max().unwrap_or(0);
    MemoryGrowth::Judged {
        samples: samples.len(),
        early,
        late,
        grew: late > early + early / 4 + 32 * 1024,
    }
}

/// The long stress's row: the stress's own `outcome` and the memory verdict.
pub fn long_stress_outcome(outcome: CheckOutcome, memory: MemoryGrowth, peak: u64) -> CheckOutcome {
    match memory {
        MemoryGrowth::NotJudged { samples } => {
            let why = format!(
                "resident memory growth not judged: {samples} samples, {MEMORY_SAMPLES} needed"
            );
            CheckOutcome {
                detail: format!("{}; {why} (peak {} MiB)", outcome.detail, peak / 1024),
                unjudged: Some(why),
                ..outcome
            }
        }
        MemoryGrowth::Judged {
            samples,
            early,
            late,
            grew,
        } => {
            let detail = format!(
                "{}; resident memory over {samples} samples: second quarter max {} MiB, last quarter max {} MiB, process peak {} MiB{}",
                outcome.detail,
                early / 1024,
                late / 1024,
                peak / 1024,
                if grew { " -- GREW" } else { "" }
            );
            CheckOutcome {
                passed: outcome.passed && !grew,
                detail,
                ..outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_with_too_few_samples_is_not_judged() {
        let stress = CheckOutcome::pass(10, "ops", "10 ops");
        let one = memory_growth(&[100_000]);
        assert_eq!(one, MemoryGrowth::NotJudged { samples: 1 });
        let row = long_stress_outcome(stress.clone(), one, 0);
        assert!(
            row.unjudged
                .as_deref()
                .is_some_and(|w| w.contains("not judged"))
        );
        // Enough flat samples: judged, no growth.
        let flat = memory_growth(&[100_000; 16]);
        assert!(matches!(flat, MemoryGrowth::Judged { grew: false, .. }));
        let row = long_stress_outcome(stress.clone(), flat, 0);
        assert!(row.passed && row.unjudged.is_none());
        // Growth fails the row.
        let mut growing = vec![100_000; 12];
        growing.extend([400_000; 4]);
        let row = long_stress_outcome(stress, memory_growth(&growing), 0);
        assert!(!row.passed);
    }
}

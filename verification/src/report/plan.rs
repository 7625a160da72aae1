//! What a run is asked to do: the [`Plan`] (which lanes, which scenario or
//! mutant, where the report goes) and the native checks' [`Options`].

use std::path::PathBuf;
use std::time::Duration;

use fastzap::Mmu;

/// The options of one `verify` run.
#[derive(Debug, Clone)]
pub struct Options {
    /// A short run.
    pub quick: bool,
    /// Operations for the native stress.
    pub stress_ops: u64,
    /// The stress's wall-clock bound.
    pub stress_wall: Duration,
    /// Conformance cases.
    pub cases: u32,
    /// The seed for everything random.
    pub seed: u64,
    /// Run only the checks whose name contains one of these (all if empty).
    pub only: Vec<String>,
    /// The MMUs the native checks run on (`--mmu`; every one by default).
    pub mmus: Vec<Mmu>,
}

impl Options {
    /// The full run: 1,000,000 operations per stress (each bounded by 120 s)
    /// and 10,000 conformance cases.
    pub fn full() -> Options {
        Options {
            quick: false,
            stress_ops: 1_000_000,
            stress_wall: Duration::from_secs(120),
            cases: 10_000,
            seed: 0x5eed,
            only: Vec::new(),
            mmus: Mmu::ALL.to_vec(),
        }
    }

    /// The quick run: 100,000 stress operations and 300 conformance cases.
    pub fn quick() -> Options {
        Options {
            quick: true,
            stress_ops: 100_000,
            stress_wall: Duration::from_secs(60),
            cases: 300,
            ..Options::full()
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The native checks.
    pub native: bool,
    /// The loom lane.
    pub loom: bool,
    /// The shuttle lane.
    pub shuttle: bool,
    /// The bug zoo.
    pub zoo: bool,
    /// Miri on the unsafe boundary (`.ci/miri`).
    pub miri: bool,
    /// Every knob that makes the run smaller than the full one
    /// ([`crate::evidence::knobs`]); empty for a full run.
    pub knobs: Vec<String>,
    /// Whether loom models cut short by a bound are allowed (listed, not
    /// failed).
    pub allow_bounded: bool,
    /// Only this scenario (`S4`), in the model lanes and the zoo.
    pub scenario: Option<String>,
    /// Only this mutant's zoo row.
    pub mutant: Option<String>,
    /// The native checks' options (quick or full).
    pub options: Options,
    /// The report directory.
    pub out: PathBuf,
}

//! What a stress run runs: the operation budget, the wall-clock bound, the
//! seed and the VM's configuration ([`StressConfig`]).

use std::time::Duration;

use fastzap::{Config, Mmu, ReclaimBackend};

/// What to run.
#[derive(Debug, Clone)]
pub struct StressConfig {
    /// The operation budget, over all threads.
    pub ops: u64,
    /// Stop early when this much wall-clock time has passed.
    pub wall: Duration,
    /// The random seed.
    pub seed: u64,
    /// The VM's configuration: one thread per vCPU, plus the churn thread.
    pub vm: Config,
    /// The gfns the slots and the vCPUs use, from 0 (at most the table's
    /// size): a kernel-sized table is used sparsely, as a guest uses it.
    pub span: u64,
    /// Whether the churn thread runs `invalidate_range` (otherwise it runs
    /// `change_pte` in its place).
    pub invalidate_range: bool,
}

impl StressConfig {
    /// `ops` operations within `wall` on a mid-sized table: 16 sptes per page,
    /// 3 levels (4096 gfns), 2 address spaces, a 3-bit generation so that it
    /// wraps, audit points as the build has them (on in debug).
    pub fn new(ops: u64, wall: Duration, seed: u64) -> StressConfig {
        let mut vm = Config::native();
        vm.vcpus = 2;
        vm.spte_count = 16;
        vm.levels = 3;
        vm.gen_bits = 3;
        vm.mmio_gen_bits = 3;
        vm.batch = 8;
        StressConfig {
            ops,
            wall,
            seed,
            vm,
            span: 4096,
            invalidate_range: true,
        }
    }

    /// This configuration with `change_pte` in place of `invalidate_range`:
    /// the only notifier left that takes host pages away from a fault.
    pub fn without_invalidate_range(mut self) -> StressConfig {
        self.invalidate_range = false;
        self
    }

    /// Kernel-sized tables (`Config::native()`: 512 sptes per page, 3 levels,
    /// a 63-bit generation, batch 10), used over the first 16384 gfns.
    pub fn kernel_sized(ops: u64, wall: Duration, seed: u64) -> StressConfig {
        let mut vm = Config::native();
        vm.vcpus = 2;
        StressConfig {
            vm,
            span: 16384,
            ..StressConfig::new(ops, wall, seed)
        }
    }

    /// This configuration on `mmu` (`Config::mmu`; the shadow MMU unless
    /// set). The churn thread draws its deletions from those `mmu` has.
    pub fn on(mut self, mmu: Mmu) -> StressConfig {
        self.vm.mmu = mmu;
        self
    }

    /// This configuration with the audit points on, release builds included:
    /// the locked audit runs at every commit, fault and memslot update, while
    /// the other threads run. About 30 times slower.
    pub fn audited(mut self) -> StressConfig {
        self.vm.audit_points = true;
        self
    }

    /// The long run: [`StressConfig::new`] with 4 vCPU threads (5 threads in
    /// all) on a larger table (16,384 gfns), for 10^7 operations.
    pub fn long(ops: u64, wall: Duration, seed: u64) -> StressConfig {
        let mut config = StressConfig::new(ops, wall, seed);
        config.vm.vcpus = 4;
        config.vm.levels = 4;
        config.span = 16384;
        config
    }

    /// [`StressConfig::new`] with the facade's small epoch-based reclamation
    /// (16 participant slots) in place of crossbeam-epoch.
    pub fn small_ebr(ops: u64, wall: Duration, seed: u64) -> StressConfig {
        let mut config = StressConfig::new(ops, wall, seed);
        config.vm.reclaim = ReclaimBackend::small(16);
        config
    }
}

//! # `mmu_lock` held, with `rcu_read_lock` inside it, and the yield
//!
//! A TDP walk that changes entries holds `mmu_lock` (read or write) and,
//! inside it, an epoch pin (the kernel's `rcu_read_lock`). A long walk gives
//! both up now and then ([`Held::resched`], the body of
//! `tdp_mmu_iter_cond_resched`): a TLB flush it owes is made first, while
//! still pinned (bb95dfb9e2df: "the caller's RCU is a proxy for all vCPUs"),
//! then the pin and the lock are dropped, the thread yields, and both are
//! taken again in the same mode.
//!
//! When to yield: the kernel yields when the scheduler or a waiter on the
//! lock asks (`need_resched() || rwlock_needbreak()`). fastzap asks after
//! every [`Config::batch`](crate::Config::batch) entries examined since the
//! last yield, which is deterministic and so reproducible in tests.

use crate::config::Config;
use crate::sync::{Guard, Reclaimer, RwLock, RwLockReadGuard, RwLockWriteGuard, yield_now};
use crate::vcpu::{Requests, Vcpu, make_all_cpus_request};

enum Mode<'a> {
    Read { _guard: RwLockReadGuard<'a, ()> },
    Write { _guard: RwLockWriteGuard<'a, ()> },
    Dropped { write: bool },
}

/// `mmu_lock` held in one mode, with an epoch pin inside.
pub(crate) struct Held<'a> {
    lock: &'a RwLock<()>,
    reclaimer: &'a Reclaimer,
    mode: Mode<'a>,
    pin: Option<Guard<'a>>,
    budget: usize,
    steps: usize,
    /// Lock holds taken, the first included.
    pub(crate) holds: u64,
}

impl<'a> Held<'a> {
    /// `read_lock(&kvm->mmu_lock); rcu_read_lock();`
    pub(crate) fn read(lock: &'a RwLock<()>, reclaimer: &'a Reclaimer, config: &Config) -> Self {
        let guard = lock.read();
        Held::with(lock, reclaimer, Mode::Read { _guard: guard }, config)
    }

    /// `write_lock(&kvm->mmu_lock); rcu_read_lock();`
    pub(crate) fn write(lock: &'a RwLock<()>, reclaimer: &'a Reclaimer, config: &Config) -> Self {
        let guard = lock.write();
        Held::with(lock, reclaimer, Mode::Write { _guard: guard }, config)
    }

    fn with(
        lock: &'a RwLock<()>,
        reclaimer: &'a Reclaimer,
        mode: Mode<'a>,
        config: &Config,
    ) -> Self {
        Held {
            lock,
            reclaimer,
            mode,
            pin: Some(reclaimer.pin()),
            budget: config.batch.max(1),
            steps: 0,
            holds: 1,
        }
    }

    /// Whether the lock is held shared (`shared` in the kernel's signatures).
    pub(crate) fn shared(&self) -> bool {
        matches!(
            self.mode,
            Mode::Read { .. } | Mode::Dropped { write: false }
        )
    }

    /// The epoch pin taken inside the lock.
    pub(crate) fn guard(&self) -> &Guard<'a> {
        self.pin.as_ref().expect("pinned while held")
    }

    /// One more entry examined; whether the walk should yield now
    /// (`need_resched() || rwlock_needbreak()`).
    pub(crate) fn need_resched(&mut self) -> bool {
        self.steps += 1;
        self.steps >= self.budget
    }

    /// Drops the pin and the lock, yields, and takes both again. A flush
    /// owed for what the walk zapped (`flush`) is made before the pin is
    /// dropped.
    pub(crate) fn resched(&mut self, flush: bool, vcpus: &[Vcpu], config: &Config) {
        if flush {
            make_all_cpus_request(vcpus, Requests::TLB_FLUSH, config);
        }
        self.pin = None;
        let write = !self.shared();
        self.mode = Mode::Dropped { write };
        yield_now();
        self.mode = if write {
            Mode::Write {
                _guard: self.lock.write(),
            }
        } else {
            Mode::Read {
                _guard: self.lock.read(),
            }
        };
        self.pin = Some(self.reclaimer.pin());
        self.steps = 0;
        self.holds += 1;
    }
}

//! # The protocol event log
//!
//! With [`Config::events`](crate::Config::events) on, every operation records what
//! it did, by actor, so that a failing model execution can be told as a story:
//! `vcpu0: fault gfn 3 -> get_page sp#2 (gen 0)` beside
//! `zapper: gen 0 -> 1, request reload`. The log is ghost state.

use crate::ids::PageId;

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// A vCPU thread.
    Vcpu(usize),
    /// A caller of invalidate-all or zap-all.
    Zapper,
    /// An mmu-notifier callback.
    Notifier,
    /// A memslot update (KVM_SET_USER_MEMORY_REGION).
    Memslot,
    /// The shrinker.
    Shrinker,
    /// A run-time check of the ghost state (the violation it saw is a
    /// [`What::Violated`] event at the step it saw it).
    #[cfg_attr(not(feature = "ghost"), allow(dead_code))]
    Check,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Vcpu(id) => write!(f, "vcpu{id}"),
            Actor::Zapper => f.write_str("zapper"),
            Actor::Notifier => f.write_str("notifier"),
            Actor::Memslot => f.write_str("memslot"),
            Actor::Shrinker => f.write_str("shrinker"),
            Actor::Check => f.write_str("check"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// `mmu_lock` taken.
    Lock,
    /// `mmu_lock` released.
    Unlock,
    /// A page fault began.
    Fault {
        /// The gfn.
        gfn: u64,
    },
    /// `kvm_mmu_get_page` returned a page.
    GetPage {
        /// Its gfn.
        gfn: u64,
        /// Its level.
        level: u8,
        /// The page.
        sp: PageId,
        /// Its generation.
        generation: u64,
        /// Whether it was created.
        created: bool,
    },
    /// A leaf spte was installed.
    InstallLeaf {
        /// The gfn.
        gfn: u64,
        /// The page holding the spte.
        sp: PageId,
        /// The pfn.
        pfn: u64,
    },
    /// An MMIO spte was installed.
    InstallMmio {
        /// The gfn.
        gfn: u64,
        /// The memslots generation stamped in it.
        generation: u64,
    },
    /// A fault gave up and must be retried.
    Retry {
        /// The gfn.
        gfn: u64,
        /// Why.
        reason: &'static str,
    },
    /// A fault found a trusted MMIO spte by its lockless walk and emulated the
    /// access without `mmu_lock` (`handle_mmio_page_fault`).
    FastMmio {
        /// The gfn.
        gfn: u64,
    },
    /// A translation finished.
    Translate {
        /// The gfn.
        gfn: u64,
        /// What it returned.
        result: String,
    },
    /// `mmu_valid_gen` was bumped.
    GenBump {
        /// The old generation.
        from: u64,
        /// The new generation.
        to: u64,
    },
    /// A request was made of every vCPU.
    Request {
        /// Which request.
        what: &'static str,
    },
    /// A vCPU handled its requests.
    Handled {
        /// The requests.
        requests: u64,
    },
    /// A vCPU dropped its root.
    FreeRoot {
        /// The root.
        sp: PageId,
    },
    /// A vCPU loaded a root.
    LoadRoot {
        /// The root.
        sp: PageId,
        /// Its generation.
        generation: u64,
    },
    /// `kvm_mmu_prepare_zap_page`.
    PrepareZap {
        /// The page.
        sp: PageId,
        /// Whether it stayed because it is an in-use root.
        kept_root: bool,
    },
    /// `kvm_mmu_commit_zap_page`: pages retired through the epoch.
    CommitZap {
        /// The pages.
        sps: Vec<PageId>,
    },
    /// `zap_obsolete_pages` broke the lock between batches.
    LockBreak {
        /// Pages zapped in the batch.
        zapped: usize,
    },
    /// New memslots were published.
    Publish {
        /// Their generation.
        generation: u64,
    },
    /// A grace period began or ended.
    Synchronize {
        /// Whether it is the end.
        done: bool,
    },
    /// A spte was unmapped.
    Unmap {
        /// The gfn.
        gfn: u64,
        /// The page holding it.
        sp: PageId,
    },
    /// A spte changed (other than a leaf install, which is
    /// [`What::InstallLeaf`]): which page and index, the gfn when known, what
    /// it holds now.
    SpteSet {
        /// The page holding the spte.
        sp: PageId,
        /// Its index in the page.
        index: usize,
        /// The gfn it translates, when the site knows it.
        gfn: Option<u64>,
        /// The pfn it maps now, for a leaf.
        pfn: Option<u64>,
        /// What it holds now: `leaf`, `non-leaf`, `mmio` or `clear`.
        now: &'static str,
        /// Who changed it and why (`change_pte`, `drop_spte`...).
        how: &'static str,
    },
    /// A run-time check saw an invariant broken, here.
    #[cfg_attr(not(feature = "ghost"), allow(dead_code))]
    Violated {
        /// The invariant.
        invariant: crate::invariant::Invariant,
        /// What it saw.
        detail: String,
    },
    /// Free-form note.
    Note(String),
}

impl What {
    /// A [`What::SpteSet`] for the spte at `index` of `sp`, which now holds
    /// `raw`; `how` says who changed it.
    pub(crate) fn spte(
        sp: PageId,
        index: usize,
        gfn: Option<u64>,
        raw: impl Into<crate::spte::RawSpte>,
        how: &'static str,
    ) -> What {
        let (now, pfn) = match crate::spte::Spte::decode(raw.into()) {
            crate::spte::Spte::Leaf { pfn, .. } => ("leaf", Some(pfn)),
            crate::spte::Spte::NonLeaf(_) => ("non-leaf", None),
            crate::spte::Spte::Mmio { .. } => ("mmio", None),
            crate::spte::Spte::None => ("clear", None),
        };
        What::SpteSet {
            sp,
            index,
            gfn,
            pfn,
            now,
            how,
        }
    }
}

/// One event.
#[cfg(feature = "ghost")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Global order.
    pub seq: u64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub what: What,
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Lock => f.write_str("lock mmu_lock"),
            What::Unlock => f.write_str("unlock mmu_lock"),
            What::Fault { gfn } => write!(f, "fault gfn {gfn}"),
            What::GetPage {
                gfn,
                level,
                sp,
                generation,
                created,
            } => write!(
                f,
                "get_page gfn {gfn} L{level} -> {sp} (gen {generation}{})",
                if *created { ", new" } else { "" }
            ),
            What::InstallLeaf { gfn, sp, pfn } => {
                write!(f, "map gfn {gfn} -> pfn {pfn:#x} in {sp}")
            }
            What::InstallMmio { gfn, generation } => {
                write!(f, "mmio spte gfn {gfn} (slots gen {generation})")
            }
            What::Retry { gfn, reason } => write!(f, "fault gfn {gfn} retry: {reason}"),
            What::FastMmio { gfn } => write!(f, "fault gfn {gfn}: mmio spte trusted, no lock"),
            What::Translate { gfn, result } => write!(f, "translate gfn {gfn} -> {result}"),
            What::GenBump { from, to } => write!(f, "mmu_valid_gen {from} -> {to}"),
            What::Request { what } => write!(f, "request {what} on all vcpus"),
            What::Handled { requests } => write!(f, "handle requests {requests:#x}"),
            What::FreeRoot { sp } => write!(f, "mmu_free_roots {sp}"),
            What::LoadRoot { sp, generation } => write!(f, "load root {sp} (gen {generation})"),
            What::PrepareZap { sp, kept_root } => {
                write!(
                    f,
                    "prepare_zap {sp}{}",
                    if *kept_root {
                        " (root in use, kept)"
                    } else {
                        ""
                    }
                )
            }
            What::CommitZap { sps } => {
                let names: Vec<String> = sps.iter().map(|s| s.to_string()).collect();
                write!(f, "commit_zap [{}]", names.join(" "))
            }
            What::LockBreak { zapped } => write!(f, "lock break after {zapped} zapped"),
            What::Publish { generation } => write!(f, "publish memslots gen {generation}"),
            What::Synchronize { done } => f.write_str(if *done {
                "grace period over"
            } else {
                "wait for readers"
            }),
            What::Unmap { gfn, sp } => write!(f, "unmap gfn {gfn} in {sp}"),
            What::SpteSet {
                sp,
                index,
                gfn,
                pfn,
                now,
                how,
            } => {
                write!(f, "{how}: spte {sp}[{index}]")?;
                if let Some(gfn) = gfn {
                    write!(f, " gfn {gfn}")?;
                }
                match pfn {
                    Some(pfn) => write!(f, " -> pfn {pfn:#x}"),
                    None => write!(f, " -> {now}"),
                }
            }
            What::Violated { invariant, detail } => {
                write!(f, "VIOLATION {}: {detail}", invariant.name())
            }
            What::Note(note) => f.write_str(note),
        }
    }
}

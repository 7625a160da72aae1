//! # Names: shadow pages, memslots, vCPUs
//!
//! A leaf, so that errors, events and the ghost state can name things without
//! depending on the structures that hold them.

/// A shadow page's identity, for logs and the audit (`sp#N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId(pub u64);

impl std::fmt::Display for PageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sp#{}", self.0)
    }
}

/// A memslot id (`slot->id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u16);

/// A vCPU index (`vcpu->vcpu_idx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VcpuId(pub usize);

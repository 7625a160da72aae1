//! # Names: shadow pages, memslots, vCPUs
//!
//! A leaf, so that errors, events and the ghost state can name things without
//! depending on the structures that hold them. Each id converts from and to
//! its number (`From`), and displays as that number, so that `"vCPU {id}"`
//! reads as it does with a plain integer.

/// A shadow page's identity, for logs and the audit (`sp#N`).
///
/// ```
/// use fastzap::{Config, PageId, VcpuId, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// vm.handle_requests(VcpuId(0))?; // loads a root
/// let root: PageId = vm.root(VcpuId(0))?.expect("a root").page;
/// assert!(root.to_string().starts_with("sp#"));
/// assert_eq!(PageId(7).to_string(), "sp#7");
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId(pub u64);

impl std::fmt::Display for PageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sp#{}", self.0)
    }
}

/// A memslot id (`slot->id`).
///
/// ```
/// use fastzap::{Config, Gfn, Hva, MmuError, SlotId, SlotSpec, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let spec = SlotSpec { id: SlotId(3), base_gfn: Gfn(0), npages: 4, userspace_addr: Hva(0x10_0000) };
/// vm.create_memslot(spec)?;
/// assert_eq!(vm.memslots().by_id(SlotId(3)).map(|s| s.npages()), Some(4));
/// assert_eq!(vm.delete_memslot(SlotId(4)), Err(MmuError::UnknownSlot(SlotId(4))));
/// assert_eq!(format!("slot {}", SlotId(3)), "slot 3");
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u16);

/// A vCPU index (`vcpu->vcpu_idx`).
///
/// ```
/// use fastzap::{Config, MmuError, VcpuId, Vm};
///
/// let vm = Vm::new(Config::native())?;
/// let vcpus: Vec<VcpuId> = (0..vm.config().vcpus).map(VcpuId).collect();
/// for &vcpu in &vcpus {
///     vm.handle_requests(vcpu)?;
/// }
/// let beyond = VcpuId(vcpus.len());
/// assert_eq!(vm.handle_requests(beyond), Err(MmuError::UnknownVcpu(beyond)));
/// assert_eq!(usize::from(VcpuId(1)), 1);
/// # Ok::<(), fastzap::MmuError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VcpuId(pub usize);

/// `From` both ways between an id and its number, and `Display` as the
/// number.
macro_rules! id_conversions {
    ($id:ident, $raw:ty, $n:literal) => {
        impl From<$raw> for $id {
            #[doc = concat!("The id numbered `n`.\n\n```\nuse fastzap::", stringify!($id), ";\n\nassert_eq!(", stringify!($id), "::from(", $n, "), ", stringify!($id), "(", $n, "));\n```")]
            fn from(n: $raw) -> $id {
                $id(n)
            }
        }

        impl From<$id> for $raw {
            #[doc = concat!("The id's number.\n\n```\nuse fastzap::", stringify!($id), ";\n\nassert_eq!(", stringify!($raw), "::from(", stringify!($id), "(", $n, ")), ", $n, ");\n```")]
            fn from(id: $id) -> $raw {
                id.0
            }
        }

        impl std::fmt::Display for $id {
            #[doc = concat!("The number, in decimal.\n\n```\nuse fastzap::", stringify!($id), ";\n\nassert_eq!(", stringify!($id), "(", $n, ").to_string(), \"", $n, "\");\n```")]
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_conversions!(SlotId, u16, 3);
id_conversions!(VcpuId, usize, 1);

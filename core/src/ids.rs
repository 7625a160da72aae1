//! # Names: shadow pages, memslots, vCPUs
//!
//! A leaf, so that errors, events and the ghost state can name things without
//! depending on the structures that hold them. Each id converts from and to
//! its number (`From`), and displays as that number, so that `"vCPU {id}"`
//! reads as it does with a plain integer.

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

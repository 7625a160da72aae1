//! # fastzap-verification
//!
//! The checks that stand beside the implementation:
//!
//! - [`reference`](mod@reference): the sequential reference model, the specification of what
//!   one caller of a [`fastzap::Vm`] may observe;
//! - [`conformance`]: random operation sequences run against the VM and the
//!   reference, step by step, with the audit after every step;
//! - [`stress`]: the native multi-thread stress;
//! - [`report`] and [`checks`]: the `fastzap verify` runner, a list of checks
//!   that each produce one row of the report.

#![warn(missing_docs)]

pub mod checks;
pub mod conformance;
pub mod linearizability;
pub mod reference;
pub mod report;
pub mod stress;

//! # fastzap-verification
//!
//! The checks that stand beside the implementation:
//!
//! - [`conformance`]: random operation sequences run against the VM and the
//!   sequential reference model of `fastzap-reference`
//!   ([`fastzap_reference::reference`]), step by step, with the audit after
//!   every step;
//! - [`stress`]: the native multi-thread stress;
//! - [`report`] and [`checks`]: the `fastzap verify` runner, a list of checks
//!   that each produce one row of the report.

#![warn(missing_docs)]

pub mod checks;
pub mod conformance;
pub mod report;
pub mod stress;

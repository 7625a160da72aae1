//! # fastzap-verification
//!
//! The checks that stand beside the implementation:
//!
//! - [`conformance`]: random operation sequences run against the VM and the
//!   sequential reference model of `fastzap-reference`
//!   ([`fastzap_reference::reference`]), step by step, with the audit after
//!   every step;
//! - [`stress`]: the native multi-thread stress;
//! - [`mmu`]: every workload above runs on each MMU (`fastzap::Mmu::ALL`),
//!   the shadow MMU's own checks on the shadow MMU only;
//! - [`checks`]: the native checks, each one row of the report; the
//!   scripted cases they run ([`scripted`], [`tlb_cases`]), and a mutant's run in a child
//!   process ([`child`]);
//! - [`run`]: the whole verdict of `fastzap verify`: the native checks, the
//!   loom and shuttle lanes driven through cargo ([`lanes`]), the bug zoo
//!   ([`zoo`]); [`report`] holds the plan and the verdict and writes the
//!   report directory, with counterexamples drawn as SVG ([`svg`]);
//!   [`evidence`] says what a PASS rests on; [`replay`] re-runs a shuttle
//!   schedule; [`progress`] shows it running;
//! - [`publish`]: `fastzap publish`, the generated blocks of the documents
//!   and the committed results files they are written from.

#![warn(missing_docs)]

pub mod checks;
pub mod child;
pub mod conformance;
pub mod evidence;
pub mod lanes;
pub mod memory;
pub mod mmu;
pub mod progress;
pub mod publish;
pub mod replay;
pub mod report;
pub mod run;
pub mod scripted;
pub mod stress;
pub mod svg;
pub mod tlb_cases;
pub mod zoo;

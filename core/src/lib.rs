//! fastzap
pub mod sync;

//! Helpers shared by fastzap's benchmarks.

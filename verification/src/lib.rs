//! fastzap verification.

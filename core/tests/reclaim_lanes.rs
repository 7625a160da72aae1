#![cfg(not(loom))]
//! `ReclaimBackend::Crossbeam` means crossbeam-epoch in every lane that has
//! it, and is refused, not replaced, in the one that has not (shuttle); the
//! default is the small EBR only where crossbeam-epoch cannot be checked
//! (core/src/sync/reclaim.rs). Runs natively and in the shuttle lane, where
//! it makes no shuttle primitive (nothing here runs inside `shuttle::check`).

use fastzap::reclaim::{BackendError, ReclaimBackend, Reclaimer};

#[test]
fn crossbeam_is_crossbeam_or_refused() {
    let made = Reclaimer::new(ReclaimBackend::Crossbeam);
    if cfg!(shuttle) {
        assert_eq!(made.err(), Some(BackendError::Unavailable));
    } else {
        let debug = format!("{:?}", made.expect("crossbeam-epoch natively"));
        assert_eq!(debug, "Reclaimer(crossbeam-epoch)");
    }
}

#[test]
fn the_default_is_the_small_ebr_only_under_shuttle_and_miri() {
    let expected = if cfg!(any(shuttle, miri)) {
        ReclaimBackend::small(8)
    } else {
        ReclaimBackend::Crossbeam
    };
    assert_eq!(ReclaimBackend::default(), expected);
}

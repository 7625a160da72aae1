//! The scenarios on std threads: no exploration, only a smoke test that every
//! scenario runs, passes its audit natively, and that its mutant twins are wired.
#![cfg(not(any(loom, shuttle)))]

use fastzap::ReclaimBackend;
use fastzap_models::harness::{Params, small};
use fastzap_models::scenarios::ALL;
use fastzap_models::tally::Tally;

#[test]
fn every_scenario_passes_natively() {
    for scenario in ALL {
        for params in [
            Params::narrow(ReclaimBackend::Crossbeam),
            Params::wide(ReclaimBackend::Crossbeam),
            Params::wide(small(4)),
        ] {
            let tally = Tally::new();
            for _ in 0..20 {
                (scenario.run)(&params, &tally);
            }
            assert_eq!(tally.executions(), 20, "{}", scenario.name);
        }
    }
}

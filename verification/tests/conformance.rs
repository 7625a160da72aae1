//! The conformance proptest at `cargo test` size. `FASTZAP_CASES` overrides
//! the number of cases (`fastzap verify` runs more).

use fastzap_verification::conformance::{case_strategy, run_case};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FASTZAP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(192)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Every step agrees with the reference and passes the audit; failed calls
    /// change nothing; the counters settle at the end.
    #[test]
    fn vm_conforms_to_reference(case in case_strategy()) {
        if let Err(why) = run_case(&case) {
            prop_assert!(false, "{}", why);
        }
    }
}

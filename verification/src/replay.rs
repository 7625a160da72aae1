//! # `verify --replay FILE`: re-running a shuttle schedule
//!
//! A failing shuttle execution leaves a replay file
//! (`fastzap_models::results::ReplayFile`: test target, model, schedule).
//! [`replay`] builds the shuttle lane's test target with the lane's cfg,
//! profile and target directory (those of `cargo shuttle`), runs its ignored
//! `replay` test with the schedule, and prints the execution's timeline.

use std::path::Path;
use std::process::Command;

use fastzap_models::results::{Counterexample, RESULTS_DIR_VAR, ReplayFile};

use crate::lanes::{cargo, workspace_root};

/// Replays `file`; the results go to `out/replay`. Returns the exit code: 1
/// when the replayed execution failed (the counterexample reproduced), 0 when
/// it passed, 2 when the file is not a replay file or cargo could not run.
pub fn replay(file: &Path, out: &Path) -> u8 {
    let parsed = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: {e}", file.display()))
        .and_then(|t| ReplayFile::parse(&t));
    let r = match parsed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let results = out.join("replay");
    let _ = std::fs::remove_dir_all(&results);
    if let Err(e) = std::fs::create_dir_all(&results) {
        eprintln!("{}: {e}", results.display());
        return 2;
    }
    eprintln!("replaying {} in {} ...", r.model, r.target);
    let status = Command::new(cargo())
        .current_dir(workspace_root())
        .args([
            "test",
            "--profile",
            "checked",
            "--target-dir",
            "target/shuttle",
            "--config",
            "build.rustflags=['--cfg','shuttle']",
            "-p",
            "fastzap-models",
            "--test",
            &r.target,
            "--",
            "replay",
            "--exact",
            "--include-ignored",
        ])
        .env("FASTZAP_REPLAY", &r.model)
        .env("FASTZAP_SCHEDULE", &r.schedule)
        .env(RESULTS_DIR_VAR, &results)
        .env("CARGO_TERM_COLOR", "never")
        .output();
    let output = match status {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cargo: {e}");
            return 2;
        }
    };
    let cxs: Vec<_> = std::fs::read_dir(results.join("counterexamples"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    if output.status.success() {
        println!("{}: the schedule replayed without a failure", r.model);
        return 0;
    }
    match cxs.first().map(|p| Counterexample::read(p)) {
        Some(Ok(cx)) => {
            println!("replayed {} ({}):\n{}", r.model, r.target, cx.timeline);
            1
        }
        _ => {
            println!(
                "the replay failed without a counterexample:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
            1
        }
    }
}

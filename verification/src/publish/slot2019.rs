//! SPEC.md's verdicts on the 2019 slot-only zap, from
//! `verification/results/slot2019/`.
//!
//! The files are the model results (`fastzap_models::results::ModelResult`,
//! one JSON line each) that the loom and shuttle lanes write for the
//! scenarios of `models/src/scenarios/slot2019.rs` and `slot2019_tlb.rs` when
//! `FASTZAP_RESULTS_DIR` names a directory; [`COMMANDS`] are the runs. A
//! loom run at another preemption bound than the lane's is copied under a
//! name with its bound (`loom-p3-...`), so that both are kept. The table
//! says, per model, what ran, how much, and the verdict: a pass is "no
//! counterexample within these bounds", never more.

use std::fmt::Write as _;
use std::path::Path;

use fastzap_models::results::ModelResult;

use super::Block;

/// The document.
pub const DOC: &str = "SPEC.md";
/// The block's name.
pub const BLOCK: &str = "slot2019";
/// The results directory, relative to the workspace root.
pub const RESULTS: &str = "verification/results/slot2019";

/// The runs whose results the directory holds (each with
/// `FASTZAP_RESULTS_DIR` set; the second's files renamed `loom-p3-*`).
pub const COMMANDS: &[&str] = &[
    "cargo loom --test loom_scenarios s2019",
    "LOOM_MAX_PREEMPTIONS=3 cargo loom --test loom_scenarios s2019",
    "cargo shuttle --test shuttle_scenarios s2019",
];

/// The deletion strategy a scenario of `slot2019.rs` runs.
fn strategy(scenario: &str) -> &'static str {
    match scenario {
        "s2019" | "s2019v" | "s2019l" => "`SlotOnly2019`",
        "s2019f" | "s2019fv" | "s2019fl" => "`SlotOnlyFlushing2020`",
        "s2019q" | "s2019qv" | "s2019ql" => "`SlotOnlyQuirkOff`",
        _ => "?",
    }
}

/// The block rendered from the results under `dir`.
///
/// # Errors
///
/// None found (the directory is missing or empty), or a result of another
/// scenario than `slot2019.rs`'s.
pub fn block(dir: &Path) -> Result<Block, String> {
    let mut results = ModelResult::read_all(dir);
    if results.is_empty() {
        return Err(format!("{}: no model results", dir.display()));
    }
    if let Some(other) = results.iter().find(|r| strategy(&r.scenario) == "?") {
        return Err(format!(
            "{}: {} is not a slot2019 model",
            dir.display(),
            other.model
        ));
    }
    results.sort_by(|a, b| {
        (&a.scenario, &a.lane, &a.settings).cmp(&(&b.scenario, &b.lane, &b.settings))
    });
    let mut text = String::new();
    text.push_str("| Model | Strategy | Lane | Settings | Executions | Seconds | Verdict |\n");
    text.push_str("|---|---|---|---|---:|---:|---|\n");
    for r in &results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {:.2} | {:?} |",
            r.model,
            strategy(&r.scenario),
            r.lane,
            r.settings,
            r.executions,
            r.seconds,
            r.verdict
        );
    }
    Ok(Block {
        doc: DOC,
        name: BLOCK,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_is_refused() {
        let dir = std::env::temp_dir().join("fastzap-slot2019-empty");
        let _ = std::fs::create_dir_all(&dir);
        assert!(block(&dir).is_err());
    }

    #[test]
    fn the_committed_results_render_one_row_each() {
        let root = crate::lanes::workspace_root();
        let b = block(&root.join(RESULTS)).expect("render");
        let rows = b.text.lines().count() - 2;
        assert_eq!(rows, ModelResult::read_all(&root.join(RESULTS)).len());
        assert!(b.text.contains("`SlotOnly2019`"));
    }
}

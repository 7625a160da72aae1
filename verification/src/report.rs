//! # The report
//!
//! What one `fastzap verify` run found, and the report directory it is
//! written to (`target/fastzap-report/` by default, never the repository
//! root).
//!
//! The model: the [`Plan`] of a run (with the native checks' [`Options`])
//! and its [`Verdict`]: the native checks' [`Report`], one [`Row`] per
//! [`Check`] with a typed [`CheckOutcome`] ([`run_checks`] runs them and
//! catches a panic as a failure), the model lanes' runs, Miri, and one
//! [`ZooOutcome`] per zoo row. New lanes (loom, shuttle, the bug zoo) add
//! rows by adding `Check`s, not by changing this module.
//!
//! The writers: [`write_report`] writes the directory:
//!
//! - `report.md` ([`markdown()`]), `report.html` ([`html()`]: one
//!   self-contained file: tables, the environment, per invariant the checks
//!   that covered it, every counterexample's SVG inline) and `report.json`
//!   ([`json()`]);
//! - `counterexamples/<name>.{txt,mmd,svg,json}` for every failing execution
//!   (every zoo row caught by a model has one), and `<name>.schedule`, the
//!   shuttle replay file, for the shuttle ones ([`counterexamples()`]);
//! - `results/<lane>/` (the models' own results) and `<lane>.log`.
//!
//! The terminal gets the same tables as text ([`Report::table`],
//! [`zoo_table`]).

use std::path::Path;

mod counterexamples;
mod html;
mod json;
mod markdown;
mod native;
mod plan;
mod summary;
mod text;
mod verdict;

pub use counterexamples::{Written, counterexamples};
pub use html::html;
pub use json::json;
pub use markdown::{markdown, zoo_markdown};
pub use native::{Check, CheckOutcome, Lane, Report, Row, RunFn, mmu_name, run_checks};
pub use plan::{Options, Plan};
pub use summary::{coverage, environment};
pub use text::zoo_table;
pub use verdict::{Verdict, ZooOutcome};

/// Writes the whole report directory; returns the counterexamples written.
pub fn write_report(v: &Verdict, dir: &Path) -> std::io::Result<Vec<Written>> {
    std::fs::create_dir_all(dir)?;
    let stale = dir.join("counterexamples");
    if stale.exists() {
        std::fs::remove_dir_all(&stale)?;
    }
    let (cxs, errors) = counterexamples(v, dir);
    for e in errors {
        eprintln!("counterexample: {e}");
    }
    std::fs::write(dir.join("report.md"), markdown(v, &cxs))?;
    std::fs::write(dir.join("report.html"), html(v, &cxs))?;
    let text = serde_json::to_string_pretty(&json(v, &cxs)).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), text)?;
    Ok(cxs)
}

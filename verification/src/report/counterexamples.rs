//! The counterexamples of a run, copied into the report directory:
//! `counterexamples/<name>.{txt,mmd,svg,json}` for every failing execution,
//! and `<name>.schedule`, the shuttle replay file, for the shuttle ones.

use std::path::{Path, PathBuf};

use fastzap_models::results::Counterexample;

use super::Verdict;
use crate::svg;

/// One counterexample as written to the report.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its name.
    pub name: String,
    /// The zoo row or model it belongs to.
    pub of: String,
    /// The violated invariants.
    pub invariants: Vec<String>,
    /// The files, relative to the report directory.
    pub txt: String,
    /// Mermaid source.
    pub mmd: String,
    /// SVG.
    pub svg: String,
    /// The shuttle replay file, if any.
    pub schedule: Option<String>,
    /// The SVG's text, for the HTML.
    pub svg_text: String,
}

fn copy_counterexample(dir: &Path, of: &str, source: &Path) -> Result<Written, String> {
    let cx = Counterexample::read(source)?;
    let out = dir.join("counterexamples");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let stem = fastzap_models::results::file_name(&cx.name);
    let rel = |ext: &str| format!("counterexamples/{stem}.{ext}");
    let write = |ext: &str, text: &str| {
        std::fs::write(dir.join(rel(ext)), text).map_err(|e| format!("{}: {e}", rel(ext)))
    };
    let svg_text = svg::sequence_diagram(&cx);
    write("txt", &cx.timeline)?;
    write("mmd", &cx.mermaid)?;
    write("svg", &svg_text)?;
    write(
        "json",
        &serde_json::to_string_pretty(&cx).map_err(|e| e.to_string())?,
    )?;
    let schedule_source = source.with_extension("schedule");
    let schedule = if schedule_source.exists() {
        std::fs::copy(&schedule_source, dir.join(rel("schedule"))).map_err(|e| e.to_string())?;
        Some(rel("schedule"))
    } else {
        None
    };
    Ok(Written {
        name: cx.name.clone(),
        of: of.to_string(),
        invariants: cx.violations.iter().map(|v| v.invariant.clone()).collect(),
        txt: rel("txt"),
        mmd: rel("mmd"),
        svg: rel("svg"),
        schedule,
        svg_text,
    })
}

/// Writes every counterexample of `v` into `dir/counterexamples`.
pub fn counterexamples(v: &Verdict, dir: &Path) -> (Vec<Written>, Vec<String>) {
    let mut written = Vec::new();
    let mut errors = Vec::new();
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    for z in &v.zoo {
        if let Some(p) = &z.counterexample {
            sources.push((z.row.subject.name(), p.clone()));
        }
    }
    for r in v.model_results() {
        if let Some(p) = &r.counterexample
            && !sources.iter().any(|(_, q)| q == p)
        {
            sources.push((format!("{} {}", r.lane, r.model), p.clone()));
        }
    }
    for (of, source) in sources {
        match copy_counterexample(dir, &of, &source) {
            Ok(w) => written.push(w),
            Err(e) => errors.push(e),
        }
    }
    (written, errors)
}

//! # The report directory
//!
//! [`write_report`] writes a [`Verdict`] to its directory
//! (`target/fastzap-report/` by default, never the repository root):
//!
//! - `report.md`, `report.html` (one self-contained file: tables, the
//!   environment, per invariant the checks that covered it, every
//!   counterexample's SVG inline) and `report.json`;
//! - `counterexamples/<name>.{txt,mmd,svg,json}` for every failing execution
//!   (every zoo row caught by a model has one), and `<name>.schedule`, the
//!   shuttle replay file, for the shuttle ones;
//! - `results/<lane>/` (the models' own results) and `<lane>.log`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fastzap::check::Invariant;
use fastzap_models::results::Counterexample;

use crate::run::{Verdict, ZooOutcome};
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

fn fmt_secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s < 0.1 => format!("{:.1} ms", s * 1000.0),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) => format!("{s:.1} s"),
        None => "-".to_string(),
    }
}

fn amount(z: &ZooOutcome) -> String {
    match z.amount {
        Some(n) => format!("{n} {}", z.unit),
        None => "-".to_string(),
    }
}

/// The zoo table as markdown.
pub fn zoo_markdown(zoo: &[ZooOutcome]) -> String {
    let mut out = String::from(
        "| mutant | kernel commit | invariant expected | invariant reported | checker | executions until detection | time to detect | verdict |\n|---|---|---|---|---|---:|---:|---|\n",
    );
    for z in zoo {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            z.row.subject.name(),
            z.row.commit,
            z.row.expected.name(),
            z.reported.as_deref().unwrap_or("-"),
            z.row.checker.describe(),
            amount(z),
            fmt_secs(z.seconds),
            z.verdict
        );
    }
    out
}

/// The zoo table for the terminal.
pub fn zoo_table(zoo: &[ZooOutcome]) -> String {
    let mut out = format!(
        "{:<30} {:<28} {:<28} {:<28} {:>18} {:>9}  verdict\n",
        "mutant", "invariant expected", "invariant reported", "checker", "until detection", "time"
    );
    for z in zoo {
        let checker = z.row.checker.describe();
        let _ = writeln!(
            out,
            "{:<30} {:<28} {:<28} {:<28} {:>18} {:>9}  {}",
            z.row.subject.name(),
            z.row.expected.name(),
            z.reported.as_deref().unwrap_or("-"),
            checker.chars().take(28).collect::<String>(),
            amount(z),
            fmt_secs(z.seconds),
            z.verdict
        );
    }
    out
}

/// Versions of the tools, read from the lock file and the toolchain.
pub fn environment(v: &Verdict) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let tool = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    env.push(("rustc".to_string(), tool("rustc")));
    env.push(("cargo".to_string(), tool(&crate::lanes::cargo())));
    let lock = std::fs::read_to_string(crate::lanes::workspace_root().join("Cargo.lock"))
        .unwrap_or_default();
    for krate in ["loom", "shuttle", "crossbeam-epoch", "proptest", "arc-swap"] {
        let needle = format!("name = \"{krate}\"\nversion = \"");
        let version = lock
            .split(&needle)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        env.push((krate.to_string(), version.to_string()));
    }
    let o = &v.plan.options;
    env.push(("mode".to_string(), v.mode_text()));
    env.push(("seed".to_string(), format!("{:#x}", o.seed)));
    env.push((
        "native".to_string(),
        format!(
            "stress {} ops (bound {} s), conformance {} cases",
            o.stress_ops,
            o.stress_wall.as_secs(),
            o.cases
        ),
    ));
    for lane in &v.lanes {
        let mut settings: Vec<String> = lane.results.iter().map(|r| r.settings.clone()).collect();
        settings.sort();
        settings.dedup();
        env.push((
            format!("{} settings", lane.lane.name()),
            settings.join("; "),
        ));
        let executions: u64 = lane.results.iter().map(|r| r.executions).sum();
        env.push((
            format!("{} executions", lane.lane.name()),
            format!(
                "{executions} over {} model runs, {} tests",
                lane.results.len(),
                lane.tests.len()
            ),
        ));
    }
    env.push((
        "machine".to_string(),
        format!(
            "{} CPUs available",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    ));
    env
}

/// Per invariant: the checks that covered it.
pub fn coverage(v: &Verdict) -> Vec<(Invariant, Vec<String>)> {
    Invariant::ALL
        .iter()
        .map(|i| {
            let mut checks = Vec::new();
            if let Some(report) = &v.native {
                for row in &report.rows {
                    if row.what.contains("audit") {
                        checks.push(format!("native {}", row.name));
                    }
                }
            }
            // A correct model that passed covers what it asserts; a mutant's
            // run covers only the invariant its zoo row expects (below).
            for r in v.lanes.iter().flat_map(|l| &l.results) {
                if r.verdict == fastzap_models::results::Verdict::Pass
                    && r.invariants.iter().any(|n| n == i.name())
                {
                    checks.push(format!(
                        "{} {} ({} executions)",
                        r.lane, r.model, r.executions
                    ));
                }
            }
            for z in &v.zoo {
                if z.row.expected == *i {
                    checks.push(format!("zoo {} ({})", z.row.subject.name(), z.verdict));
                }
            }
            (*i, checks)
        })
        .collect()
}

fn lanes_markdown(v: &Verdict) -> String {
    let mut out = String::new();
    for lane in &v.lanes {
        let _ = writeln!(
            out,
            "\n## {} lane\n\n{} tests ({} failed), cargo {}, {:.1} s with the build; log `{}`.\n",
            lane.lane.name(),
            lane.tests.len(),
            lane.failed().len(),
            lane.status,
            lane.time.as_secs_f64(),
            lane.log.display()
        );
        let _ = writeln!(
            out,
            "| model | test | executions | floor | time | verdict | reported |\n|---|---|---:|---:|---:|---|---|"
        );
        for r in &lane.results {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} s | {} | {} |",
                r.model,
                r.test,
                r.executions,
                r.floor,
                r.seconds,
                r.verdict.name(),
                r.reported.as_deref().unwrap_or("-")
            );
        }
        for t in lane.failed() {
            let _ = writeln!(out, "\nFAILED test: `{}`", t.name);
        }
    }
    out
}

/// The report's title, whether the outcome is the wanted one, and the
/// outcome: PASS or FAIL, or for `--mutant` whether it was caught.
fn headline(v: &Verdict) -> (String, bool, &'static str) {
    match &v.plan.mutant {
        Some(m) => {
            let caught = v.zoo.first().is_some_and(|z| z.caught());
            (
                format!("fastzap verify --mutant {m}:"),
                caught,
                if caught { "CAUGHT" } else { "NOT CAUGHT" },
            )
        }
        None => ("fastzap verify:".to_string(), v.passed(), ""),
    }
}

/// The headline's verdict: `CAUGHT`/`NOT CAUGHT` for `--mutant`, else
/// [`Verdict::status_words`] (`FAIL: NOTHING RUN [reduced: --lane zoo]`).
fn verdict_words(v: &Verdict) -> String {
    match headline(v) {
        (_, _, "") => v.status_words(),
        (_, _, words) => words.to_string(),
    }
}

mod json;
pub use json::json;

/// `report.md`.
pub fn markdown(v: &Verdict, cxs: &[Written]) -> String {
    let (title, _, _) = headline(v);
    let verdict = verdict_words(v);
    let mut out = format!("# {title} {verdict}\n\n");
    let _ = writeln!(
        out,
        "{} mode, {:.1} s in all.\n",
        v.mode_text(),
        v.total.as_secs_f64()
    );
    for line in v.gap_lines() {
        let _ = writeln!(out, "- {line}");
    }
    if let Some(m) = v.miri_text() {
        let _ = writeln!(out, "\nMiri lane: {m}.\n");
    }
    out.push_str("## Environment\n\n| | |\n|---|---|\n");
    for (k, val) in environment(v) {
        let _ = writeln!(out, "| {k} | {val} |");
    }
    if let Some(native) = &v.native {
        out.push_str("\n## Native checks\n\n");
        let md = native.markdown(&v.plan.options);
        out.push_str(md.split_once('\n').map_or(md.as_str(), |(_, rest)| rest));
    }
    out.push_str(&lanes_markdown(v));
    if !v.zoo.is_empty() {
        out.push_str("\n## Bug zoo\n\n");
        out.push_str(&zoo_markdown(&v.zoo));
        if let Some((median, max)) = v.detection_times() {
            let _ = writeln!(
                out,
                "\nMedian time to detect {median:.2} s, largest {max:.2} s (goals: 10 s, 60 s)."
            );
        }
    }
    out.push_str("\n## Coverage by invariant\n\n");
    for (i, checks) in coverage(v) {
        let _ = writeln!(out, "- **{}**: {}", i.name(), checks.join("; "));
    }
    if !cxs.is_empty() {
        out.push_str("\n## Counterexamples\n\n");
        for c in cxs {
            let _ = writeln!(
                out,
                "- {} ({}): [timeline]({}), [Mermaid]({}), [SVG]({}){}",
                c.name,
                c.invariants.join(", "),
                c.txt,
                c.mmd,
                c.svg,
                c.schedule
                    .as_ref()
                    .map(|s| format!(", [shuttle replay]({s})"))
                    .unwrap_or_default()
            );
        }
    }
    for e in &v.lane_errors {
        let _ = writeln!(out, "\nERROR: {e}");
    }
    out
}

fn h(text: &str) -> String {
    svg::xml(text)
}

/// `report.html`: one file, no script, no network.
pub fn html(v: &Verdict, cxs: &[Written]) -> String {
    let mut out = String::from(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fastzap verify</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef3fb} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#17702a;font-weight:bold}.fail{color:#c00000;font-weight:bold}
details{margin:10px 0;border:1px solid #ddd;border-radius:4px;padding:6px 10px}
summary{cursor:pointer;font-weight:bold}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
.svgbox{overflow-x:auto;border:1px solid #eee;margin:6px 0}
</style></head><body>
"##,
    );
    let (title, good, _) = headline(v);
    let _ = writeln!(
        out,
        r#"<h1>{} <span class="{}">{}</span></h1><p>{} mode, {:.1} s in all.</p>"#,
        h(&title),
        if good { "pass" } else { "fail" },
        h(&verdict_words(v)),
        h(&v.mode_text()),
        v.total.as_secs_f64()
    );
    for line in v.gap_lines() {
        let _ = writeln!(out, r#"<p class="fail">{}</p>"#, h(&line));
    }
    if let Some(m) = v.miri_text() {
        let _ = writeln!(out, "<h2>Miri lane</h2><p>{}</p>", h(&m));
    }
    out.push_str("<h2>Environment</h2><table>");
    for (k, val) in environment(v) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", h(&k), h(&val));
    }
    out.push_str("</table>\n");
    if !v.zoo.is_empty() {
        out.push_str("<h2>Bug zoo</h2><table><tr><th>mutant</th><th>kernel commit</th><th>invariant expected</th><th>invariant reported</th><th>checker</th><th>executions until detection</th><th>time to detect</th><th>verdict</th><th>counterexample</th></tr>\n");
        for z in &v.zoo {
            let cx = cxs
                .iter()
                .find(|c| c.of == z.row.subject.name())
                .map(|c| format!(r##"<a href="#{0}">{0}</a>"##, h(&c.name)))
                .unwrap_or_else(|| h(&z.detail.chars().take(80).collect::<String>()));
            let _ = writeln!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="{}">{}</td><td>{cx}</td></tr>"#,
                h(&z.row.subject.name()),
                h(z.row.commit),
                h(z.row.expected.name()),
                h(z.reported.as_deref().unwrap_or("-")),
                h(&z.row.checker.describe()),
                h(&amount(z)),
                fmt_secs(z.seconds),
                if z.caught() { "pass" } else { "fail" },
                z.verdict
            );
        }
        out.push_str("</table>\n");
        if let Some((median, max)) = v.detection_times() {
            let _ = writeln!(
                out,
                "<p>Median time to detect {median:.2} s, largest {max:.2} s (goals: 10 s and 60 s).</p>"
            );
        }
    }
    if let Some(native) = &v.native {
        out.push_str("<h2>Native checks</h2><table><tr><th>check</th><th>lane</th><th>what</th><th>amount</th><th>time</th><th>result</th></tr>\n");
        for r in &native.rows {
            let _ = writeln!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{} {}</td><td class="num">{:.2} s</td><td class="{}">{}</td></tr>"#,
                h(r.name),
                r.lane.name(),
                h(r.what),
                r.outcome.amount,
                r.outcome.unit,
                r.time.as_secs_f64(),
                if r.outcome.passed { "pass" } else { "fail" },
                if r.outcome.passed { "PASS" } else { "FAIL" }
            );
        }
        out.push_str("</table>\n");
    }
    for lane in &v.lanes {
        let _ = writeln!(
            out,
            "<h2>{} lane</h2><p>{} tests, {} failed; {:.1} s with the build.</p><table><tr><th>model</th><th>test</th><th>settings</th><th>executions</th><th>floor</th><th>time</th><th>verdict</th><th>reported</th></tr>",
            lane.lane.name(),
            lane.tests.len(),
            lane.failed().len(),
            lane.time.as_secs_f64()
        );
        for r in &lane.results {
            let _ = writeln!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.2} s</td><td class="{}">{}</td><td>{}</td></tr>"#,
                h(&r.model),
                h(&r.test),
                h(&r.settings),
                r.executions,
                r.floor,
                r.seconds,
                if r.verdict.is_good() { "pass" } else { "fail" },
                r.verdict.name(),
                h(r.reported.as_deref().unwrap_or("-"))
            );
        }
        out.push_str("</table>\n");
        for t in lane.failed() {
            let _ = writeln!(out, r#"<p class="fail">FAILED test: {}</p>"#, h(&t.name));
        }
    }
    out.push_str("<h2>Coverage by invariant</h2><table><tr><th>invariant</th><th>checks that covered it</th></tr>\n");
    for (i, checks) in coverage(v) {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            h(i.name()),
            checks.iter().map(|c| h(c)).collect::<Vec<_>>().join("<br>")
        );
    }
    out.push_str("</table>\n");
    if !cxs.is_empty() {
        out.push_str("<h2>Counterexamples</h2>\n");
        for c in cxs {
            let _ = writeln!(
                out,
                r#"<details id="{0}"{8}><summary>{0}: {1} ({2})</summary><p>Files: <a href="{3}">{3}</a> (sequence diagram), <a href="{4}">{4}</a> (timeline), <a href="{5}">{5}</a> (Mermaid){6}</p><div class="svgbox">{7}</div></details>"#,
                h(&c.name),
                h(&c.invariants.join(", ")),
                h(&c.of),
                h(&c.svg),
                h(&c.txt),
                h(&c.mmd),
                c.schedule
                    .as_ref()
                    .map(|s| format!(
                        r#", <a href="{0}">{0}</a> (shuttle replay: <code>fastzap verify --replay {0}</code>)"#,
                        h(s)
                    ))
                    .unwrap_or_default(),
                c.svg_text,
                if cxs.len() <= 3 { " open" } else { "" }
            );
        }
    }
    for e in &v.lane_errors {
        let _ = writeln!(out, r#"<p class="fail">ERROR: {}</p>"#, h(e));
    }
    out.push_str("</body></html>\n");
    out
}

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

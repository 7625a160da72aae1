//! `report.md`, and the native checks' and the zoo's tables as markdown.

use std::fmt::Write as _;

use super::summary::{amount, coverage, environment, fmt_secs, headline, verdict_words};
use super::{Options, Report, Verdict, Written, ZooOutcome, mmu_name};

impl Report {
    /// The report as a markdown table.
    pub fn markdown(&self, options: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# fastzap verify\n");
        let _ = writeln!(
            out,
            "Mode: {}; seed {:#x}; stress {} ops (bound {} s); conformance {} cases; {} build.\n",
            if options.quick { "quick" } else { "full" },
            options.seed,
            options.stress_ops,
            options.stress_wall.as_secs(),
            options.cases,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        let _ = writeln!(
            out,
            "| check | mmu | lane | what | amount | time | result |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|---:|---|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} {} | {:.2} s | {} |",
                r.name,
                mmu_name(r.mmu),
                r.lane.name(),
                r.what,
                r.outcome.amount,
                r.outcome.unit,
                r.time.as_secs_f64(),
                if r.outcome.passed { "PASS" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "\nTotal {:.2} s: {}.\n",
            self.total.as_secs_f64(),
            if self.passed() {
                "all checks passed"
            } else {
                "SOME CHECKS FAILED"
            }
        );
        let _ = writeln!(out, "## Details\n");
        for r in &self.rows {
            let detail = r.outcome.detail.replace('\n', "\n    ");
            let _ = writeln!(out, "- **{}**: {}", r.label(), detail);
        }
        out
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

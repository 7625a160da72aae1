//! `report.html`: one self-contained file (tables, the environment, per
//! invariant the checks that covered it, every counterexample's SVG inline),
//! with no script and no network.

use std::fmt::Write as _;

use super::summary::{amount, coverage, environment, fmt_secs, headline, verdict_words};
use super::{Verdict, Written};
use crate::svg;

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
        out.push_str("<h2>Native checks</h2><table><tr><th>check</th><th>mmu</th><th>lane</th><th>what</th><th>amount</th><th>time</th><th>result</th></tr>\n");
        for r in &native.rows {
            let _ = writeln!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{} {}</td><td class="num">{:.2} s</td><td class="{}">{}</td></tr>"#,
                h(r.name),
                super::mmu_name(r.mmu),
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

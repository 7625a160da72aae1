//! The bug zoo's block of README.md, from `verification/results/zoo.json`.
//!
//! [`ZooResults::import`] copies the zoo rows of a `verify` report
//! (`report.json`, written by [`crate::report::json`]) with the run's mode,
//! command, date and machine; [`ZooResults::blocks`] renders README's table
//! and its summary line (row count, median and largest time to detect) from
//! those rows; [`check_summary`] re-derives the summary from the rendered
//! table, so a table and a summary from two different runs cannot stand
//! together.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Block;

/// The block's name in README.md.
pub const BLOCK: &str = "zoo";

/// One zoo row as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The mutant (`ReloadOutsideLock`, `ebr::NoFenceInPin`...).
    pub mutant: String,
    /// The kernel commit or origin.
    pub commit: String,
    /// The invariant the checker must report.
    pub expected: String,
    /// What the failing run reported.
    pub reported: Option<String>,
    /// The checker.
    pub checker: String,
    /// Executions, operations or steps until detection.
    pub amount: Option<u64>,
    /// What `amount` counts.
    pub unit: String,
    /// Time to detect, in seconds.
    pub seconds: Option<f64>,
    /// `caught`, `ESCAPED`, `WRONG INVARIANT`, `NOT RUN`.
    pub verdict: String,
}

/// `verification/results/zoo.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZooResults {
    /// The command that measured the rows.
    pub command: String,
    /// `full` or `quick`.
    pub mode: String,
    /// When the report was written (UTC).
    pub date: String,
    /// `N CPUs, <model>` of the machine that published it.
    pub machine: String,
    /// The rows, in the zoo's order.
    pub rows: Vec<Row>,
}

fn str_field(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("zoo row without a string `{key}`: {v}"))
}

/// The `verify` command a report came from, as far as the report says: a
/// report without native checks is taken for `--lane zoo` (the zoo drives
/// the loom and shuttle lanes for its own rows, so their presence says
/// nothing); `fastzap publish --command` names any other.
fn inferred_command(report: &Value) -> String {
    let mut command = String::from("cargo run --release -- verify");
    if report.get("mode").and_then(Value::as_str) == Some("quick") {
        command.push_str(" --quick");
    }
    if report.get("native").is_none_or(Value::is_null) {
        command.push_str(" --lane zoo");
    }
    command
}

impl ZooResults {
    /// The zoo rows of the verify report at `report`.
    pub fn import(report: &Path, command: Option<&str>) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(report).map_err(|e| format!("{}: {e}", report.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", report.display()))?;
        let zoo = v
            .get("zoo")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{}: no `zoo` array", report.display()))?;
        if zoo.is_empty() {
            return Err(format!("{}: the report has no zoo rows", report.display()));
        }
        let rows = zoo
            .iter()
            .map(|z| {
                Ok(Row {
                    mutant: str_field(z, "mutant")?,
                    commit: str_field(z, "commit")?,
                    expected: str_field(z, "expected")?,
                    reported: z.get("reported").and_then(Value::as_str).map(Into::into),
                    checker: str_field(z, "checker")?,
                    amount: z.get("amount").and_then(Value::as_u64),
                    unit: str_field(z, "unit")?,
                    seconds: z.get("seconds").and_then(Value::as_f64),
                    verdict: str_field(z, "verdict")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ZooResults {
            command: command.map_or_else(|| inferred_command(&v), str::to_string),
            mode: str_field(&v, "mode")?,
            date: super::file_date(report)?,
            machine: super::this_machine(),
            rows,
        })
    }

    /// Reads the committed results.
    pub fn read(path: &Path) -> Result<Self, String> {
        super::read_json(path)
    }

    /// Writes the results file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        super::write_json(self, path)
    }

    /// README's block.
    pub fn blocks(&self) -> Vec<Block> {
        vec![Block {
            doc: "README.md",
            name: BLOCK,
            text: self.render(),
        }]
    }

    fn composition(&self) -> String {
        fn is(prefix: &'static str) -> impl Fn(&&Row) -> bool {
            move |r| r.commit.starts_with(prefix) || r.mutant.starts_with(prefix)
        }
        let kernel: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.commit.contains("(bug "))
            .collect();
        let mut bugs: Vec<&str> = kernel
            .iter()
            .filter_map(|r| r.commit.split("(bug ").nth(1))
            .filter_map(|b| b.split([',', ')']).next())
            .collect();
        bugs.sort();
        bugs.dedup();
        let litmus = self.rows.iter().filter(is("litmus ")).count();
        let ebr = self.rows.iter().filter(is("ebr::")).count();
        let forced = self.rows.iter().filter(is("forced::")).count();
        let other: Vec<String> = self
            .rows
            .iter()
            .filter(|r| {
                !r.commit.contains("(bug ")
                    && !r.commit.starts_with("litmus ")
                    && !r.mutant.starts_with("ebr::")
                    && !r.mutant.starts_with("forced::")
            })
            .map(|r| format!("`{}`: {}", r.mutant, r.commit))
            .collect();
        let mut text = format!(
            "{} rows: {} for the {} kernel bugs that SPEC.md numbers, {litmus} \
             weak-memory twins of the litmus models, {ebr} mutants of the small \
             EBR, {forced} forced failures on the reclamation facade",
            self.rows.len(),
            kernel.len(),
            bugs.len(),
        );
        if !other.is_empty() {
            let _ = write!(text, "; and {} more: {}", other.len(), other.join("; "));
        }
        text.push('.');
        text
    }

    /// The block's text: where it was measured, the table, the summary.
    pub fn render(&self) -> String {
        let mut out = super::bench::wrap(&format!(
            "Measured by `{}` ({} mode) on {}, {}. {}",
            self.command,
            self.mode,
            self.date,
            self.machine,
            self.composition()
        ));
        out.push('\n');
        out.push_str(
            "| mutant | kernel commit | invariant expected | invariant reported | checker | executions until detection | time to detect | verdict |\n|---|---|---|---|---|---:|---:|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.mutant,
                r.commit,
                r.expected,
                r.reported.as_deref().unwrap_or("-"),
                r.checker,
                r.amount
                    .map_or_else(|| "-".to_string(), |n| format!("{n} {}", r.unit)),
                fmt_secs(r.seconds),
                r.verdict
            );
        }
        out.push('\n');
        out.push_str(&summary(&self.rows));
        out.push('\n');
        out
    }
}

/// The time column's format, as `verify` prints it.
pub fn fmt_secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s < 0.1 => format!("{:.1} ms", s * 1000.0),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) => format!("{s:.1} s"),
        None => "-".to_string(),
    }
}

/// The inverse of [`fmt_secs`] (`None` for `-`).
pub fn parse_secs(s: &str) -> Result<Option<f64>, String> {
    let s = s.trim();
    if s == "-" {
        return Ok(None);
    }
    let bad = || format!("not a time: `{s}`");
    if let Some(ms) = s.strip_suffix(" ms") {
        return ms
            .parse::<f64>()
            .map(|v| Some(v / 1000.0))
            .map_err(|_| bad());
    }
    s.strip_suffix(" s")
        .ok_or_else(bad)?
        .parse::<f64>()
        .map(Some)
        .map_err(|_| bad())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The summary line, computed from the rows.
pub fn summary(rows: &[Row]) -> String {
    let caught = rows.iter().filter(|r| r.verdict == "caught").count();
    let mut times: Vec<f64> = rows.iter().filter_map(|r| r.seconds).collect();
    times.sort_by(f64::total_cmp);
    let times = if times.is_empty() {
        "no time to detect".to_string()
    } else {
        format!(
            "median time to detect {}, largest {}",
            fmt_secs(Some(median(&times))),
            fmt_secs(times.last().copied())
        )
    };
    format!(
        "{} rows, {caught} caught; {times} (goals: 10 s, 60 s).",
        rows.len()
    )
}

/// Re-derives the summary line from the block's table: the row count, the
/// caught count, the largest time (the same string as its row) and the
/// median (a row's string, or between the two middle rows).
pub fn check_summary(block: &str) -> Result<(), String> {
    let rows: Vec<Vec<&str>> = block
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| mutant |"))
        .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    if let Some(bad) = rows.iter().find(|r| r.len() != 8) {
        return Err(format!("a table row with {} cells: {bad:?}", bad.len()));
    }
    let line = block
        .lines()
        .find(|l| l.contains(" caught; "))
        .ok_or("no summary line (`N rows, C caught; ...`)")?;
    let want_head = format!(
        "{} rows, {} caught; ",
        rows.len(),
        rows.iter().filter(|r| r[7] == "caught").count()
    );
    if !line.starts_with(&want_head) {
        return Err(format!(
            "the summary `{line}` does not count the table's rows (want `{want_head}...`)"
        ));
    }
    let mut times: Vec<(f64, &str)> = Vec::new();
    for r in &rows {
        if let Some(t) = parse_secs(r[6])? {
            times.push((t, r[6]));
        }
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let field = |key: &str| -> Option<&str> {
        line.split(key)
            .nth(1)
            .map(|rest| rest.split([',', '(']).next().unwrap_or("").trim())
    };
    let Some((max, max_text)) = times.last().copied() else {
        return if line.contains("no time to detect") {
            Ok(())
        } else {
            Err(format!("`{line}` gives times the table does not have"))
        };
    };
    let (Some(med_text), Some(largest)) = (field("median time to detect "), field("largest "))
    else {
        return Err(format!("`{line}` gives no median or largest time"));
    };
    if largest != max_text {
        return Err(format!(
            "largest time to detect `{largest}`, but the table's largest is `{max_text}` ({max} s)"
        ));
    }
    let med = parse_secs(med_text)?.ok_or("a median of `-`")?;
    let n = times.len();
    let (lo, hi) = if n % 2 == 1 {
        (times[n / 2], times[n / 2])
    } else {
        (times[n / 2 - 1], times[n / 2])
    };
    let ok = if n % 2 == 1 {
        med_text == lo.1
    } else {
        // The mean of two rounded values: allow their rounding.
        let mean = (lo.0 + hi.0) / 2.0;
        (med - mean).abs() <= mean * 0.05 + 5e-5
    };
    if !ok {
        return Err(format!(
            "median time to detect `{med_text}`, but the table's middle is `{}`..`{}`",
            lo.1, hi.1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, commit: &str, seconds: Option<f64>, verdict: &str) -> Row {
        Row {
            mutant: name.into(),
            commit: commit.into(),
            expected: "I5 obsolete never reused".into(),
            reported: Some("I5 obsolete never reused".into()),
            checker: format!("shuttle {name}"),
            amount: Some(3),
            unit: "executions".into(),
            seconds,
            verdict: verdict.into(),
        }
    }

    fn results() -> ZooResults {
        ZooResults {
            command: "cargo run --release -- verify --lane zoo".into(),
            mode: "full".into(),
            date: "2026-12-07 19:05 UTC".into(),
            machine: "2 CPUs, test".into(),
            rows: vec![
                row("A", "5304b8d37c2a (bug 2)", Some(0.0012), "caught"),
                row(
                    "B",
                    "c142786c6291 (bug 3, grace half)",
                    Some(0.81),
                    "caught",
                ),
                row("C", "f34d251d66ba (bug 3)", Some(0.27), "caught"),
                row("ebr::D", "EBR: d", Some(0.0021), "caught"),
                row("E", "design rule (x)", None, "NOT RUN"),
            ],
        }
    }

    #[test]
    fn the_summary_is_computed_from_the_rows() {
        let z = results();
        let s = summary(&z.rows);
        assert_eq!(
            s,
            "5 rows, 4 caught; median time to detect 0.14 s, largest 0.81 s (goals: 10 s, 60 s)."
        );
        let text = z.render();
        assert!(text.contains("3 for the 2 kernel bugs"), "{text}");
        assert!(
            text.contains("; and 1 more: `E`: design rule (x)."),
            "{text}"
        );
        check_summary(&text).expect("a rendered block is consistent");
        // An odd count: the median is a row's own string.
        let mut odd = z.clone();
        odd.rows.pop();
        odd.rows.pop();
        check_summary(&odd.render()).expect("odd");
        assert!(odd.render().contains("median time to detect 0.27 s"));
    }

    #[test]
    fn a_summary_from_another_run_is_rejected() {
        let text = results().render();
        // The largest time typed from another run.
        let stale = text.replace("largest 0.81 s", "largest 0.30 s");
        let e = check_summary(&stale).unwrap_err();
        assert!(e.contains("largest"), "{e}");
        // A row added by hand.
        let extra = text.replace(
            "| E |",
            "| F | x | y | y | z | 1 executions | 1.0 ms | caught |\n| E |",
        );
        let e = check_summary(&extra).unwrap_err();
        assert!(e.contains("does not count"), "{e}");
        // A row's time changed by hand: the median moves.
        let edited = text.replace("| 0.27 s |", "| 0.50 s |");
        let e = check_summary(&edited).unwrap_err();
        assert!(e.contains("median"), "{e}");
    }

    #[test]
    fn times_round_trip() {
        for s in [0.0004, 0.0012, 0.0701, 0.27, 9.5, 12.34] {
            let text = fmt_secs(Some(s));
            let back = parse_secs(&text).unwrap().unwrap();
            assert!(
                (back - s).abs() <= s * 0.05 + 5e-5,
                "{s} -> {text} -> {back}"
            );
        }
        assert_eq!(parse_secs("-").unwrap(), None);
        assert!(parse_secs("3 minutes").is_err());
    }

    #[test]
    fn the_command_is_inferred_from_the_report() {
        let zoo_only = serde_json::json!({"mode": "full", "native": null, "lanes": []});
        assert_eq!(
            inferred_command(&zoo_only),
            "cargo run --release -- verify --lane zoo"
        );
        let all = serde_json::json!({"mode": "quick", "native": [], "lanes": []});
        assert_eq!(
            inferred_command(&all),
            "cargo run --release -- verify --quick"
        );
    }
}

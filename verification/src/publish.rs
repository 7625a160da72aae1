//! # `fastzap publish`: the published numbers, written from committed results
//!
//! Every number that README.md, BENCHMARKS.md, core/tests/LITMUS.md and SPEC.md
//! publish sits between two markers,
//!
//! ```text
//! <!-- BEGIN GENERATED: zoo (fastzap publish) -->
//! ...
//! <!-- END GENERATED: zoo -->
//! ```
//!
//! and is written by this module from a results file committed beside the
//! code:
//!
//! - the bug zoo ([`zoo`]): `verification/results/zoo.json`, the zoo rows of
//!   a `verify` report (`fastzap publish --zoo target/fastzap-report/report.json`
//!   copies them there);
//! - the benchmarks ([`bench`](mod@bench)): `benches/results/*.md`, written by the
//!   benchmarks themselves; the summary of their goals ([`goals`]), with
//!   verdicts computed from the same files;
//! - the litmus tests ([`litmus`]): `verification/results/litmus.json`, the
//!   lines `core/tests/loom_litmus.rs` writes when `FASTZAP_LITMUS_RESULTS`
//!   names a file (`fastzap publish --litmus FILE` copies them there);
//! - SPEC.md's verdicts on the 2019 slot-only zap ([`slot2019`](mod@slot2019)):
//!   `verification/results/slot2019/`, the loom and shuttle results of its
//!   models.
//!
//! `fastzap publish` rewrites every block from those files; `--check` only
//! compares, and `verification/tests/published.rs` runs that comparison in
//! `cargo test`, so a hand edit inside a block, or a results file committed
//! without its documents, fails the test suite.

pub mod bench;
pub mod goal_list;
pub mod goals;
pub mod litmus;
pub mod slot2019;
pub mod table;
pub mod zoo;

use std::path::{Path, PathBuf};

/// One generated block: the document, the block's name, its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The document, relative to the workspace root.
    pub doc: &'static str,
    /// The block's name in its markers.
    pub name: &'static str,
    /// The text between the markers (ends with a newline).
    pub text: String,
}

/// The line that opens block `name`.
pub fn begin_marker(name: &str) -> String {
    format!("<!-- BEGIN GENERATED: {name} (fastzap publish) -->")
}

/// The line that closes block `name`.
pub fn end_marker(name: &str) -> String {
    format!("<!-- END GENERATED: {name} -->")
}

/// The byte range of block `name`'s text in `doc` (between the marker lines).
fn block_range(doc: &str, name: &str) -> Result<std::ops::Range<usize>, String> {
    let begin = format!("{}\n", begin_marker(name));
    let end = end_marker(name);
    let count = doc.matches(&begin).count();
    if count != 1 {
        return Err(format!("block {name}: {count} begin markers (want 1)"));
    }
    let start = doc.find(&begin).map(|i| i + begin.len()).unwrap_or(0);
    let stop = doc[start..]
        .find(&end)
        .map(|i| start + i)
        .ok_or_else(|| format!("block {name}: no end marker"))?;
    if stop > start && !doc[..stop].ends_with('\n') {
        return Err(format!(
            "block {name}: the end marker does not start a line"
        ));
    }
    Ok(start..stop)
}

/// The text of block `name` in `doc`.
pub fn extract<'a>(doc: &'a str, name: &str) -> Result<&'a str, String> {
    block_range(doc, name).map(|r| &doc[r])
}

/// `doc` with block `name`'s text replaced by `text`.
pub fn splice(doc: &str, name: &str, text: &str) -> Result<String, String> {
    let r = block_range(doc, name)?;
    Ok(format!("{}{}{}", &doc[..r.start], text, &doc[r.end..]))
}

/// The names of every generated block in `doc`, in order.
pub fn block_names(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("<!-- BEGIN GENERATED: "))
        .filter_map(|l| l.strip_suffix(" (fastzap publish) -->"))
        .map(str::to_string)
        .collect()
}

/// The documents that carry generated blocks.
pub const DOCS: &[&str] = &[
    "README.md",
    "BENCHMARKS.md",
    "core/tests/LITMUS.md",
    "SPEC.md",
];

/// Where the committed results files are.
pub const ZOO_RESULTS: &str = "verification/results/zoo.json";
/// The litmus results.
pub const LITMUS_RESULTS: &str = "verification/results/litmus.json";

/// Every block, rendered from the results files under `root`.
pub fn render_all(root: &Path) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let zoo = zoo::ZooResults::read(&root.join(ZOO_RESULTS))?;
    blocks.extend(zoo.blocks());
    blocks.extend(bench::blocks(&root.join("benches/results"))?);
    blocks.push(goals::block(&root.join("benches/results"))?);
    let litmus = litmus::LitmusResults::read(&root.join(LITMUS_RESULTS))?;
    blocks.extend(litmus.blocks());
    blocks.push(slot2019::block(&root.join(slot2019::RESULTS))?);
    Ok(blocks)
}

/// Compares the documents `docs` (path, text) with `blocks`: one message per
/// block that differs, is missing, or is in a document without being
/// rendered, and per failed consistency check ([`zoo::check_summary`]).
pub fn compare(docs: &[(&str, String)], blocks: &[Block]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in docs {
        for name in block_names(text) {
            if !blocks.iter().any(|b| b.doc == *path && b.name == name) {
                problems.push(format!("{path}: block {name} is not generated by anything"));
            }
        }
    }
    for b in blocks {
        let Some((_, text)) = docs.iter().find(|(p, _)| *p == b.doc) else {
            problems.push(format!("{}: not read", b.doc));
            continue;
        };
        match extract(text, b.name) {
            Ok(found) if found == b.text => {}
            Ok(found) => problems.push(format!(
                "{}: block {} differs from what `fastzap publish` writes{}",
                b.doc,
                b.name,
                first_difference(found, &b.text)
            )),
            Err(e) => problems.push(format!("{}: {e}", b.doc)),
        }
        if b.name == zoo::BLOCK
            && let Ok(found) = extract(text, b.name)
            && let Err(e) = zoo::check_summary(found)
        {
            problems.push(format!("{}: block {}: {e}", b.doc, b.name));
        }
    }
    problems
}

fn first_difference(found: &str, want: &str) -> String {
    let mut f = found.lines();
    let mut w = want.lines();
    for line in 1.. {
        match (f.next(), w.next()) {
            (None, None) => return String::new(),
            (a, b) if a == b => {}
            (a, b) => {
                return format!(
                    " (line {line} of the block:\n  found: {}\n  wants: {})",
                    a.unwrap_or("<end>"),
                    b.unwrap_or("<end>")
                );
            }
        }
    }
    String::new()
}

/// Reads every document under `root`.
pub fn read_docs(root: &Path) -> Result<Vec<(&'static str, String)>, String> {
    DOCS.iter()
        .map(|d| {
            std::fs::read_to_string(root.join(d))
                .map(|t| (*d, t))
                .map_err(|e| format!("{d}: {e}"))
        })
        .collect()
}

/// What is out of step under `root`: empty when every block is what
/// `fastzap publish` would write.
pub fn check(root: &Path) -> Result<Vec<String>, String> {
    let blocks = render_all(root)?;
    Ok(compare(&read_docs(root)?, &blocks))
}

/// Rewrites every block under `root`; returns the documents changed. Every
/// document is rendered before any is written, so a missing marker changes
/// nothing.
pub fn write(root: &Path) -> Result<Vec<&'static str>, String> {
    let blocks = render_all(root)?;
    let mut new_docs = Vec::new();
    for (path, text) in read_docs(root)? {
        let mut new = text.clone();
        for b in blocks.iter().filter(|b| b.doc == path) {
            new = splice(&new, b.name, &b.text).map_err(|e| format!("{path}: {e}"))?;
        }
        if new != text {
            new_docs.push((path, new));
        }
    }
    for (path, new) in &new_docs {
        std::fs::write(root.join(path), new).map_err(|e| format!("{path}: {e}"))?;
    }
    let problems = compare(&read_docs(root)?, &blocks);
    if problems.is_empty() {
        Ok(new_docs.into_iter().map(|(p, _)| p).collect())
    } else {
        Err(problems.join("\n"))
    }
}

/// What `fastzap publish` was asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A verify report whose zoo rows become the zoo results.
    pub zoo: Option<PathBuf>,
    /// The command that made that report (inferred from it when absent).
    pub zoo_command: Option<String>,
    /// Litmus result lines that become the litmus results.
    pub litmus: Option<PathBuf>,
    /// Compare only.
    pub check: bool,
}

/// Runs `fastzap publish` under `root`; the exit status: 0 done (or in
/// step), 1 out of step (with `check`), 2 an error.
pub fn main(root: &Path, request: &Request) -> u8 {
    if request.check && (request.zoo.is_some() || request.litmus.is_some()) {
        eprintln!("publish: --check compares only; it takes no --zoo or --litmus");
        return 2;
    }
    // Read and check every input before writing anything.
    let imported = (|| -> Result<(), String> {
        let zoo = match &request.zoo {
            Some(report) => Some(zoo::ZooResults::import(
                report,
                request.zoo_command.as_deref(),
            )?),
            None => None,
        };
        let litmus = match &request.litmus {
            Some(lines) => Some(litmus::LitmusResults::import(lines)?),
            None => None,
        };
        if let Some(z) = zoo {
            z.write(&root.join(ZOO_RESULTS))?;
            println!("{ZOO_RESULTS}: {} rows", z.rows.len());
        }
        if let Some(l) = litmus {
            l.write(&root.join(LITMUS_RESULTS))?;
            println!("{LITMUS_RESULTS}: {} records", l.records.len());
        }
        Ok(())
    })();
    if let Err(e) = imported {
        eprintln!("publish: {e} (nothing written)");
        return 2;
    }
    if request.check {
        return match check(root) {
            Ok(p) if p.is_empty() => {
                println!("publish: every generated block is in step");
                0
            }
            Ok(p) => {
                for e in p {
                    eprintln!("{e}");
                }
                eprintln!("publish: out of step; run `cargo run --release -- publish`");
                1
            }
            Err(e) => {
                eprintln!("publish: {e}");
                2
            }
        };
    }
    match write(root) {
        Ok(changed) if changed.is_empty() => {
            println!("publish: every generated block was already in step");
            0
        }
        Ok(changed) => {
            println!("publish: rewrote {}", changed.join(", "));
            0
        }
        Err(e) => {
            eprintln!("publish: {e}");
            2
        }
    }
}

/// Reads a committed results file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a results file (pretty JSON, a final newline), creating its directory.
pub(crate) fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// `N CPUs, <model name>` of this machine, from `/proc/cpuinfo`.
pub fn this_machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

/// A file's modification time as `YYYY-MM-DD HH:MM UTC`.
pub fn file_date(path: &Path) -> Result<String, String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    Ok(utc(secs))
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM UTC` (the proleptic
/// Gregorian calendar; Howard Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, text: &str) -> String {
        format!(
            "intro\n{}\n{text}{}\noutro\n",
            begin_marker(name),
            end_marker(name)
        )
    }

    #[test]
    fn splice_replaces_only_the_block() {
        let d = doc("x", "old\n");
        assert_eq!(extract(&d, "x").unwrap(), "old\n");
        let new = splice(&d, "x", "new 1\nnew 2\n").unwrap();
        assert_eq!(new, doc("x", "new 1\nnew 2\n"));
        assert_eq!(block_names(&new), ["x"]);
        assert!(extract(&d, "y").is_err());
        let twice = format!("{d}{d}");
        assert!(splice(&twice, "x", "").is_err(), "two blocks of one name");
        let empty = doc("x", "");
        assert_eq!(extract(&empty, "x").unwrap(), "");
        assert_eq!(splice(&empty, "x", "a\n").unwrap(), doc("x", "a\n"));
    }

    #[test]
    fn compare_sees_an_edited_block() {
        let blocks = vec![Block {
            doc: "D.md",
            name: "x",
            text: "| a | 1 |\n".into(),
        }];
        assert!(compare(&[("D.md", doc("x", "| a | 1 |\n"))], &blocks).is_empty());
        let edited = compare(&[("D.md", doc("x", "| a | 2 |\n"))], &blocks);
        assert_eq!(edited.len(), 1, "{edited:?}");
        assert!(edited[0].contains("differs"), "{edited:?}");
        let missing = compare(&[("D.md", "no block\n".into())], &blocks);
        assert_eq!(missing.len(), 1, "{missing:?}");
        let stray = compare(
            &[(
                "D.md",
                format!("{}{}", doc("x", "| a | 1 |\n"), doc("y", "")),
            )],
            &blocks,
        );
        assert_eq!(stray.len(), 1, "{stray:?}");
        assert!(stray[0].contains("not generated"), "{stray:?}");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(
            utc(1_796_601_600 + 3_600 * 19 + 60 * 5),
            "2026-12-07 19:05 UTC"
        );
    }
}

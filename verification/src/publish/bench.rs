//! BENCHMARKS.md's tables and machine paragraph, from `benches/results/*.md`.
//!
//! Each results file is written by its benchmark (`benches/src/lib.rs`,
//! `write_report_of`): a header (`Command:`, `Build:`, `Machine: N CPUs,
//! <model>; load average at the end of the run: a b c`), then the tables. A
//! block of BENCHMARKS.md shows one benchmark's two builds, ghost off then
//! ghost on: under a heading per build, the file's `Machine:` line and
//! everything after it, less its `### ` section headings (BENCHMARKS.md has
//! its own); for a file with several sections (B3 writes B3's and B5's), the
//! one section the block names.

use std::path::Path;

use super::Block;

/// One block: its name, the results file stem, the section it takes (the
/// `### <section>:` heading), if the file has several.
const BLOCKS: &[(&str, &str, Option<&str>)] = &[
    ("b1", "b1_lock_hold", None),
    ("b2", "b2_memslot", None),
    ("b3", "b3_throughput", Some("B3")),
    ("p5", "p5_fault_latency", None),
    ("b4", "b4_translate", None),
    ("b5", "b3_throughput", Some("B5")),
    ("b6", "b6_delete", None),
    ("b4_pin", "b4_pin", None),
    ("b7", "b7_memslots", None),
];

const BUILDS: &[(&str, &str)] = &[
    (
        "ghost-off",
        "#### The protocol alone (`ghost` off: what a VMM runs)",
    ),
    (
        "ghost-on",
        "#### With the checking code (`ghost` on: what the tests and models run)",
    ),
];

/// The document.
pub const DOC: &str = "BENCHMARKS.md";

/// The `Machine:` line of a results file: (`N CPUs, <model>`, its three load
/// averages).
pub fn machine_line(text: &str) -> Result<(String, Vec<f64>), String> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Machine: "))
        .ok_or("no `Machine:` line")?;
    let (machine, load) = line
        .split_once("; load average at the end of the run: ")
        .ok_or_else(|| format!("`Machine: {line}` has no load average"))?;
    let load = load
        .split_whitespace()
        .map(|v| v.parse::<f64>().map_err(|_| format!("load `{v}`")))
        .collect::<Result<Vec<_>, _>>()?;
    if load.is_empty() {
        return Err(format!("`Machine: {line}` has no load average"));
    }
    Ok((machine.to_string(), load))
}

/// The part of a results file a block shows.
pub fn body(text: &str, section: Option<&str>) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("Machine: "))
        .ok_or("no `Machine:` line")?;
    let mut out = vec![lines[at], ""];
    let mut taking = section.is_none();
    let mut found = section.is_none();
    for l in &lines[at + 1..] {
        if let Some(heading) = l.strip_prefix("### ") {
            if let Some(s) = section {
                taking = heading.starts_with(&format!("{s}:"));
                found |= taking;
            }
            continue;
        }
        if taking {
            out.push(l);
        }
    }
    if !found {
        return Err(format!("no `### {}:` section", section.unwrap_or("")));
    }
    // One blank line between paragraphs, none at the ends; prose wrapped.
    let mut text = String::new();
    let mut blank = false;
    for l in out {
        if l.trim().is_empty() {
            blank = true;
            continue;
        }
        if blank && !text.is_empty() {
            text.push('\n');
        }
        blank = false;
        if l.starts_with('|') {
            text.push_str(l);
            text.push('\n');
        } else {
            text.push_str(&wrap(l));
        }
    }
    Ok(text)
}

/// Whether a line starting with `word` would be read as a list item, a
/// heading or a quote.
fn starts_a_block(word: &str) -> bool {
    matches!(word, "-" | "+" | "*" | ">")
        || word.starts_with('#')
        || word
            .strip_suffix(['.', ')'])
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Width of the prose lines `fastzap publish` writes.
pub const WIDTH: usize = 80;

/// A prose line wrapped at word boundaries to [`WIDTH`] columns (a word
/// longer than that stands on its own line), each line ending in `\n`.
pub fn wrap(line: &str) -> String {
    let mut out = String::new();
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty()
            && current.chars().count() + 1 + word.chars().count() > WIDTH
            && !starts_a_block(word)
        {
            out.push_str(&current);
            out.push('\n');
            current.clear();
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push_str(&current);
    out.push('\n');
    out
}

fn read(dir: &Path, stem: &str, build: &str) -> Result<String, String> {
    let path = dir.join(format!("{stem}-{build}.md"));
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The machine paragraph: the CPU model(s) and the range of load averages
/// over every results file in `dir`.
pub fn machine_paragraph(files: &[(String, String)]) -> Result<String, String> {
    let mut machines: Vec<String> = Vec::new();
    let mut low: Option<(f64, &str)> = None;
    let mut high: Option<(f64, &str)> = None;
    for (name, text) in files {
        let (machine, load) = machine_line(text).map_err(|e| format!("{name}: {e}"))?;
        if !machines.contains(&machine) {
            machines.push(machine);
        }
        for &l in &load {
            if low.is_none_or(|(v, _)| l < v) {
                low = Some((l, name));
            }
            if high.is_none_or(|(v, _)| l > v) {
                high = Some((l, name));
            }
        }
    }
    let (Some(low), Some(high)) = (low, high) else {
        return Err("no results files".into());
    };
    machines.sort();
    Ok(wrap(&format!(
        "The {} results files of `benches/results/` were measured on {}: {}, \
         as `/proc/cpuinfo` names the model (a virtual machine). Their load \
         averages at the end of the run (over 1, 5 and 15 minutes) range from \
         {:.2} (`{}`) to {:.2} (`{}`); each table below gives its own.\n",
        files.len(),
        if machines.len() == 1 {
            "one kind of machine".to_string()
        } else {
            format!("{} kinds of machine", machines.len())
        },
        machines.join("; "),
        low.0,
        low.1,
        high.0,
        high.1
    )))
}

/// Every block of BENCHMARKS.md, from the results files in `dir`.
pub fn blocks(dir: &Path) -> Result<Vec<Block>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    let files = names
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.join(n))
                .map(|t| (n.clone(), t))
                .map_err(|e| format!("{n}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = vec![Block {
        doc: DOC,
        name: "machine",
        text: machine_paragraph(&files)?,
    }];
    for (name, stem, section) in BLOCKS {
        let mut text = String::new();
        for (build, heading) in BUILDS {
            let file = read(dir, stem, build)?;
            let b = body(&file, *section).map_err(|e| format!("{stem}-{build}.md: {e}"))?;
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(heading);
            text.push_str("\n\n");
            text.push_str(&b);
        }
        out.push(Block {
            doc: DOC,
            name,
            text,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "<!-- written by the b3_throughput benchmark (ghost-on); do not edit -->\nCommand: `x`\n\nBuild: ghost-on (y)\n\nMachine: 2 CPUs, AMD EPYC; load average at the end of the run: 1.13 1.20 1.44\n\n### B3: accesses\n\n| a |\n|---|\n| 1 |\n\n### B5: memory\n\n| b |\n|---|\n| 2 |\n\nA note.\n";

    #[test]
    fn a_block_takes_its_section() {
        let b3 = body(FILE, Some("B3")).unwrap();
        assert_eq!(
            b3,
            "Machine: 2 CPUs, AMD EPYC; load average at the end of the run: 1.13 1.20 1.44\n\n| a |\n|---|\n| 1 |\n"
        );
        let b5 = body(FILE, Some("B5")).unwrap();
        assert!(b5.ends_with("| 2 |\n\nA note.\n"), "{b5}");
        let long = format!("{} {}", "word ".repeat(30), "x".repeat(90));
        let marker = format!("{} 2. - # x", "y".repeat(78));
        assert_eq!(wrap(&marker), format!("{} 2. - #\nx\n", "y".repeat(78)));
        let wrapped = wrap(&long);
        assert!(
            wrapped
                .lines()
                .all(|l| l.len() <= WIDTH || !l.contains(' '))
        );
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>(),
            long.split_whitespace().collect::<Vec<_>>()
        );
        assert!(body(FILE, Some("B9")).is_err());
        let all = body(FILE, None).unwrap();
        assert!(!all.contains("###") && all.contains("| 1 |") && all.contains("| 2 |"));
    }

    #[test]
    fn the_machine_paragraph_reads_every_file() {
        let other = FILE.replace(
            "AMD EPYC; load average at the end of the run: 1.13 1.20 1.44",
            "Intel Xeon; load average at the end of the run: 0.50 2.47 1.00",
        );
        let p = machine_paragraph(&[("a.md".into(), FILE.into()), ("b.md".into(), other)]).unwrap();
        assert!(p.lines().all(|l| l.len() <= WIDTH), "{p}");
        let p = p.replace('\n', " ");
        assert!(p.contains("The 2 results files"), "{p}");
        assert!(
            p.contains("2 kinds of machine: 2 CPUs, AMD EPYC; 2 CPUs, Intel Xeon"),
            "{p}"
        );
        assert!(p.contains("from 0.50 (`b.md`) to 2.47 (`b.md`)"), "{p}");
        let bad = FILE.replace("Machine:", "Box:");
        assert!(machine_paragraph(&[("a.md".into(), bad)]).is_err());
    }
}

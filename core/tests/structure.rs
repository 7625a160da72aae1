#![cfg(not(any(loom, shuttle)))]
//! The shape of `core/src`, checked, so that it stays readable as a spec:
//!
//! - the module graph has no cycle: a module's `crate::` references (in
//!   `use` lines and paths, not in comments) name only modules below it;
//! - no protocol module names the audit: the protocol reaches it only through
//!   the hook in `checkpoint.rs`;
//! - no protocol file is much over 600 lines: one kernel event or structure
//!   per file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The checking code's modules; every other module is protocol.
const CHECKING: &[&str] = &[
    "audit",
    "check",
    "checkpoint",
    "ghost",
    "observe",
    "checking",
];

/// The most lines a protocol file may have.
const MAX_PROTOCOL_LINES: usize = 650;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("core/src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `vm.rs` -> `vm`, `audit/invariants.rs` -> `audit`, `sync/ebr.rs` -> `sync`.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).expect("under core/src");
    let first = relative.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The top-level modules a file names as `crate::<module>`, outside comments.
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

/// Module -> the modules it references, for every module but the crate root
/// (which declares and re-exports them all).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source is readable");
        let entry = graph.entry(module.clone()).or_default();
        for name in references(&text) {
            if name != module && modules.contains(&name) {
                entry.insert(name);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    assert!(graph.len() > 20, "too few modules found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        references("use crate::vm::Vm; // crate::audit\nlet x = crate::spte::Spte::None;"),
        ["spte".to_string(), "vm".to_string()].into()
    );
}

#[test]
fn no_protocol_module_names_the_audit() {
    for (module, deps) in graph() {
        if CHECKING.contains(&module.as_str()) {
            continue;
        }
        assert!(
            !deps.contains("audit"),
            "protocol module `{module}` names the audit: go through checkpoint.rs"
        );
        for checking in ["check", "observe", "checking"] {
            assert!(
                !deps.contains(checking),
                "protocol module `{module}` names `{checking}`"
            );
        }
    }
    assert!(
        graph()["checkpoint"].contains("audit"),
        "the hook is where the protocol reaches the audit"
    );
}

#[test]
fn protocol_files_hold_one_event_or_structure() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let module = module_of(&file);
        if CHECKING.contains(&module.as_str()) || module == "sync" {
            continue;
        }
        let lines = std::fs::read_to_string(&file)
            .expect("readable")
            .lines()
            .count();
        assert!(
            lines <= MAX_PROTOCOL_LINES,
            "{} has {lines} lines (at most {MAX_PROTOCOL_LINES}): split it by kernel event",
            file.display()
        );
    }
}

/// Calls that record a violation, directly or through a ghost check.
const RECORDERS: &[&str] = &["violate(", ".record(", "saw_freed(", "check_outlived("];

/// `text` with every `//` comment blanked out (same length, so offsets
/// agree): a word in a comment is not a use of a flag.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => format!("{}{}", &line[..at], " ".repeat(line.len() - at)),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// From `at`, to the end of the first balanced `{ ... }` block after it (or
/// to the end of `text` if there is none).
fn through_next_block(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    let Some(open) = rest.find('{') else {
        return rest;
    };
    let mut depth = 0usize;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &rest[..open + i + 1];
                }
            }
            _ => {}
        }
    }
    rest
}

/// If the statement holding `at` is `let <name> = <expression without a
/// block>;`, the flag's name and where the statement ends.
fn bound_flag(text: &str, at: usize) -> Option<(String, usize)> {
    let start = text[..at].rfind([';', '{', '}']).map_or(0, |i| i + 1);
    let statement = text[start..at].trim_start();
    let binding = statement.strip_prefix("let ")?;
    let binding = binding.strip_prefix("mut ").unwrap_or(binding);
    let name: String = binding
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after_name = binding[name.len()..].trim_start();
    if name.is_empty() || !(after_name.starts_with('=') || after_name.starts_with(':')) {
        return None;
    }
    let end = at + text[at..].find(';')?;
    // `let x = if mutant_is(..) { .. }`: the block itself is the branch.
    (!text[at..end].contains('{')).then_some((name, end + 1))
}

/// The uses of the flag `name` from `from` to the end of the enclosing block,
/// as whole words.
fn uses_of(text: &str, name: &str, from: usize) -> Vec<usize> {
    let mut end = text.len();
    let mut depth = 0i64;
    for (i, c) in text[from..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    end = from + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text[from..end]
        .match_indices(name)
        .map(|(i, _)| from + i)
        .filter(|&i| !text[..i].ends_with(word) && !text[i + name.len()..].starts_with(word))
        .collect()
}

/// The text of every mutant branch in `text`: from each `mutant_is(` to the
/// end of the first balanced `{ ... }` block after it (the branch the mutant
/// takes). When the test is bound to a flag (`let x = ..mutant_is(..);`),
/// the branches are those of every use of `x` in the rest of its block,
/// followed the same way through flags bound from it (`let y = x || ..;`).
fn mutant_branches(text: &str) -> Vec<String> {
    let text = without_comments(text);
    let mut out = Vec::new();
    let mut starts: Vec<usize> = text.match_indices("mutant_is(").map(|(at, _)| at).collect();
    let mut followed = std::collections::BTreeSet::new();
    while let Some(at) = starts.pop() {
        if !followed.insert(at) {
            continue;
        }
        match bound_flag(&text, at) {
            Some((name, end)) => {
                // The statement itself (`let _r = ..mutant_is(..).then(|| ..);`)
                // and every branch of the flag.
                out.push(text[at..end].to_string());
                starts.extend(uses_of(&text, &name, end));
            }
            None => out.push(through_next_block(&text, at).to_string()),
        }
    }
    out
}

/// A mutant that writes its own violation proves nothing: every "caught" is
/// the mutant confessing (`MmioCacheIgnoresGen` once did). The
/// checkers must see the mutant's effect, so no mutant branch records one.
#[test]
fn no_mutant_branch_records_a_violation() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut branches = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for branch in mutant_branches(&text) {
            branches += 1;
            for recorder in RECORDERS {
                assert!(
                    !branch.contains(recorder),
                    "{}: a mutant branch calls {recorder}, so the mutant reports itself:\n{branch}",
                    file.display()
                );
            }
        }
    }
    assert!(
        branches >= 20,
        "only {branches} mutant branches found: is the scan blind?"
    );
}

#[test]
fn the_branch_scan_sees_a_self_reporting_mutant() {
    let confessing = "if self.config.mutant_is(Mutant::X) {\n    self.ghost.violate(I7, || d);\n    return Some(1);\n}";
    let branches = mutant_branches(confessing);
    assert_eq!(branches.len(), 1);
    assert!(branches[0].contains("violate("));
    // A flag bound with `let`, whose branch reports: caught through the flag.
    let bound = "fn f(&self) {\n    let x = self.config.mutant_is(Mutant::X);\n    work();\n    \
                 if x {\n        self.ghost.violate(I7, || d);\n    }\n}";
    assert!(
        mutant_branches(bound)
            .iter()
            .any(|b| b.contains("violate(")),
        "{:?}",
        mutant_branches(bound)
    );
    // Through a second flag, and through a `match` guard.
    let chained = "fn f(&self) {\n    let x = self.config.mutant_is(Mutant::X);\n    \
                   let y = x || other;\n    match k {\n        K::A if y => { self.ghost.record(v); }\n        \
                   _ => {}\n    }\n}";
    assert!(
        mutant_branches(chained)
            .iter()
            .any(|b| b.contains(".record(")),
        "{:?}",
        mutant_branches(chained)
    );
    // A flag whose own statement reports.
    let inline = "fn f(&self) {\n    let _r = self.config.mutant_is(Mutant::X).then(|| self.ghost.violate(I7, || d));\n}";
    assert!(
        mutant_branches(inline)
            .iter()
            .any(|b| b.contains("violate("))
    );
    // The honest form: the flag's branch changes the protocol, and the
    // violation is recorded elsewhere, by a checker. A comment naming the
    // flag is not a use.
    let honest = "fn f(&self) {\n    let x = self.config.mutant_is(Mutant::X);\n    if x { return; }\n    \
                  // x is gone\n    self.ghost.violate(I7, || d);\n}";
    let branches = mutant_branches(honest);
    assert_eq!(branches.len(), 2, "the statement and `if x`: {branches:?}");
    assert!(
        branches.iter().all(|b| !b.contains("violate(")),
        "{branches:?}"
    );
    // A flag's uses end with its block.
    let scoped = "fn f(&self) {\n    {\n        let x = self.config.mutant_is(Mutant::X);\n        \
                  if x { work(); }\n    }\n    let x = 1;\n    if x == 1 { self.ghost.violate(I7, || d); }\n}";
    assert!(
        mutant_branches(scoped)
            .iter()
            .all(|b| !b.contains("violate(")),
        "{:?}",
        mutant_branches(scoped)
    );
}

/// The variants of `pub enum Mutant` in `core/src/mutant.rs`, by name.
fn mutant_variants(source: &str) -> Vec<String> {
    let start = source.find("pub enum Mutant {").expect("the enum is there");
    let body = &source[start..];
    let end = body.find("\n}").expect("the enum ends");
    body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| !l.starts_with(' ') && !l.starts_with('/') && !l.starts_with('#'))
        .filter_map(|l| l.strip_suffix(','))
        .map(str::to_string)
        .collect()
}

/// `Mutant::ALL` names every variant, in declaration order: with
/// `Mutant::position` (an exhaustive `match`, checked against `ALL` at
/// compile time) a variant left out of `ALL` cannot hide behind a position
/// another mutant has.
#[test]
fn mutant_all_names_every_variant() {
    let source = std::fs::read_to_string(src().join("mutant.rs")).expect("readable");
    let declared = mutant_variants(&source);
    let listed: Vec<String> = fastzap::checking::Mutant::ALL
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    assert_eq!(
        declared, listed,
        "Mutant::ALL must list every variant, in order"
    );
    for (i, m) in fastzap::checking::Mutant::ALL.iter().enumerate() {
        assert_eq!(m.position(), i, "{m:?}");
    }
    let planted = "pub enum Mutant {\n    /// doc\n    A,\n    #[doc(hidden)]\n    B,\n}\n";
    assert_eq!(mutant_variants(planted), ["A", "B"]);
}

#![cfg(not(any(loom, shuttle)))]
//! The shape of the workspace's sources, checked, so that they stay readable
//! as a spec. For each of `core/src`, `models/src`, `reference/src` and
//! `verification/src` (the crates beside this one are read through
//! `CARGO_MANIFEST_DIR/..`):
//!
//! - the module graph has no cycle: a module's `crate::` references (in
//!   `use` lines, `crate::{..}` groups included, and paths; not in comments)
//!   name only modules below it. A module is a top-level one with everything
//!   under it (`audit/invariants.rs` is `audit`), so a child's `super::`
//!   reference to its parent stays inside its module;
//! - no source file is over 650 lines: one idea per file (in `core/src`, one
//!   kernel event or structure).
//!
//! And for `core/src` alone: no protocol module names the audit (the
//! protocol reaches it only through the hook in `checkpoint.rs`). The
//! mutants' own shape is checked in `mutants.rs`.

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

/// The most lines a source file may have.
const MAX_LINES: usize = 650;

/// The files that are crate roots: they declare (and re-export) every
/// module, so they are no module of the graph.
const ROOTS: &[&str] = &["lib", "main"];

/// The workspace's root: `core/..`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

/// `core/src`.
fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// Under `src`: `vm.rs` -> `vm`, `audit/invariants.rs` -> `audit`,
/// `sync/ebr.rs` -> `sync`.
fn module_of(src: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// `text` without its `//` comments (doc comments included), line by line.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first identifier of `text`, after any whitespace.
fn first_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|&c| is_ident(c))
        .collect()
}

/// The top-level modules a file names as `crate::<module>` or inside a
/// `crate::{..}` group (which may span lines), outside comments, each with
/// the line (from 1) of its first mention.
fn references_at(text: &str) -> BTreeMap<String, usize> {
    let code: Vec<&str> = code_lines(text).collect();
    let joined = code.join("\n");
    let line_of = |at: usize| joined[..at].matches('\n').count() + 1;
    let mut out = BTreeMap::new();
    for (at, _) in joined.match_indices("crate::") {
        if joined[..at].ends_with(is_ident) {
            continue; // `my_crate::`, not `crate::`.
        }
        let after = joined[at + "crate::".len()..].trim_start();
        let names = match after.strip_prefix('{') {
            // `crate::{a::B, c}`: the first name of each element.
            Some(group) => {
                let mut names = Vec::new();
                let mut depth = 0usize;
                let mut element = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.push(first_ident(&element));
                            element.clear();
                            continue;
                        }
                        _ => {}
                    }
                    element.push(c);
                }
                names.push(first_ident(&element));
                names
            }
            None => vec![first_ident(after)],
        };
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            out.entry(name).or_insert_with(|| line_of(at));
        }
    }
    out
}

/// The top-level modules a file names (see [`references_at`]).
fn references(text: &str) -> BTreeSet<String> {
    references_at(text).into_keys().collect()
}

/// Module -> the modules it references.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// For one edge of a [`Graph`], where it is: every file that names it, with
/// the line of its first mention there.
type Sites = BTreeMap<(String, String), Vec<(PathBuf, usize)>>;

/// The module graph of the crate whose sources are in `src`, every module
/// but the crate roots, and the first place each edge is named.
fn graph_of(src: &Path) -> (Graph, Sites) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = Graph::new();
    let mut sites = Sites::new();
    for file in &files {
        let module = module_of(src, file);
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("source is readable");
        let entry = graph.entry(module.clone()).or_default();
        for (name, line) in references_at(&text) {
            if name != module && modules.contains(&name) && !ROOTS.contains(&name.as_str()) {
                entry.insert(name.clone());
                sites
                    .entry((module.clone(), name))
                    .or_default()
                    .push((file.clone(), line));
            }
        }
    }
    (graph, sites)
}

/// The module graph of `core/src`.
fn graph() -> Graph {
    graph_of(&src()).0
}

/// A cycle in `graph`, if there is one, as the path that closes it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
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

/// The modules `from` reaches in `graph`, through one edge or more.
fn reachable(graph: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(node) = todo.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

/// Every cycle of `graph`, one per group of modules that reach each other:
/// one cycle through the group, then every edge inside it with the file and
/// line that names it (the edges to cut).
fn cycles(label: &str, graph: &Graph, sites: &Sites) -> Vec<String> {
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|n| (n, reachable(graph, n))).collect();
    let mut placed = BTreeSet::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if placed.contains(node) || !reach[node].contains(node) {
            continue;
        }
        let group: BTreeSet<String> = reach[node]
            .iter()
            .filter(|m| reach.get(m).is_some_and(|r| r.contains(node)))
            .cloned()
            .collect();
        placed.extend(group.iter().cloned());
        let inside: Graph = group
            .iter()
            .map(|m| (m.clone(), graph[m].intersection(&group).cloned().collect()))
            .collect();
        let cycle = find_cycle(&inside).expect("a group that reaches itself has a cycle");
        let mut text = format!("{label}: module cycle {}", cycle.join(" -> "));
        if group.len() + 1 > cycle.len() {
            let names: Vec<&str> = group.iter().map(String::as_str).collect();
            text.push_str(&format!(
                " (modules that reach each other: {})",
                names.join(", ")
            ));
        }
        for (from, tos) in &inside {
            for to in tos {
                let places: Vec<String> = sites[&(from.clone(), to.clone())]
                    .iter()
                    .map(|(file, line)| {
                        let file = file.strip_prefix(workspace()).unwrap_or(file);
                        format!("{}:{line}", file.display())
                    })
                    .collect();
                text.push_str(&format!(
                    "\n    {from} -> {to}: {} names crate::{to}",
                    places.join(", ")
                ));
            }
        }
        out.push(text);
    }
    out
}

/// Every file under `src` over [`MAX_LINES`] lines, as a message.
fn long_files(label: &str, src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file)
                .expect("readable")
                .lines()
                .count();
            let name = file.strip_prefix(src).unwrap_or(file).display();
            (lines > MAX_LINES).then(|| {
                format!("{label}/{name} has {lines} lines (at most {MAX_LINES}): split it by idea")
            })
        })
        .collect()
}

/// The modules `root` (a crate root's text) declares with `mod name;`.
fn declared_modules(root: &str) -> BTreeSet<String> {
    code_lines(root)
        .map(str::trim)
        .filter_map(|l| {
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// What is wrong with the shape of `<dir>/src`: its cycles and its long
/// files, each one message.
fn problems(dir: &Path, label: &str) -> Vec<String> {
    let src = dir.join("src");
    let (graph, sites) = graph_of(&src);
    let mut out = cycles(label, &graph, &sites);
    out.extend(long_files(label, &src));
    out
}

/// The shape of one sibling crate, `<workspace>/<name>/src`: not blind (the
/// scan found every module its `lib.rs` declares, and some edges), then no
/// problem.
fn check_crate(name: &str) {
    let dir = workspace().join(name);
    let label = format!("{name}/src");
    let (graph, _) = graph_of(&dir.join("src"));
    let root = std::fs::read_to_string(dir.join("src/lib.rs")).expect("the crate has a lib.rs");
    let declared = declared_modules(&root);
    assert!(
        declared.len() >= 2,
        "{label}: too few modules declared: {declared:?}"
    );
    for module in &declared {
        assert!(
            graph.contains_key(module),
            "{label}: module {module} not scanned: {graph:?}"
        );
    }
    assert!(
        graph.values().any(|deps| !deps.is_empty()),
        "{label}: no module names another: is the scan blind? {graph:?}"
    );
    let problems = problems(&dir, &label);
    assert!(
        problems.is_empty(),
        "{} problem(s) in the shape of {label}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn core_has_no_module_cycle_and_no_long_file() {
    assert!(graph().len() > 20, "too few modules found: {:?}", graph());
    check_crate("core");
}

#[test]
fn models_has_no_module_cycle_and_no_long_file() {
    check_crate("models");
}

#[test]
fn reference_has_no_module_cycle_and_no_long_file() {
    check_crate("reference");
}

#[test]
fn verification_has_no_module_cycle_and_no_long_file() {
    check_crate("verification");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph = Graph::new();
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
    // Groups, over lines and nested; `my_crate::` and items are names too,
    // which the graph keeps only when they are modules.
    assert_eq!(
        references("use crate::{\n    harness::{a, b},\n    results,\n};\nuse my_crate::zoo;"),
        ["harness".to_string(), "results".to_string()].into()
    );
    assert_eq!(references_at("//! crate::a\n\nuse crate::b;")["b"], 3);
    assert_eq!(
        declared_modules(
            "//! mod doc;\npub mod a;\nmod b;\n#[cfg(loom)]\npub(crate) mod c;\nmod d {}"
        ),
        ["a".to_string(), "b".to_string(), "c".to_string()].into()
    );
}

/// A crate on disk with a cycle and a long file: the check names both, with
/// the files and lines of the cycle's edges; without them it is clean.
#[test]
fn the_shape_check_reports_a_planted_cycle_and_long_file() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("structure-planted");
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(src.join(path), text).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write(
        "a.rs",
        "//! Uses crate::c in a comment only.\nuse crate::b::B;\n",
    );
    write(
        "b.rs",
        "mod inner;\npub struct B;\nconst _: () = crate::c::K;\n",
    );
    write(
        "b/inner.rs",
        "use super::B;\nfn f() {\n    let _ = crate::c::C;\n}\n",
    );
    write("c.rs", "pub struct C;\npub const K: () = ();\n");
    assert!(
        problems(&dir, "planted/src").is_empty(),
        "{:?}",
        problems(&dir, "planted/src")
    );
    write(
        "c.rs",
        &format!(
            "use crate::{{\n    a,\n}};\npub struct C;\n{}",
            "\n".repeat(MAX_LINES)
        ),
    );
    let found = problems(&dir, "planted/src");
    assert_eq!(found.len(), 2, "{found:#?}");
    let cycle = &found[0];
    assert!(
        cycle.starts_with("planted/src: module cycle a -> b -> c -> a"),
        "{cycle}"
    );
    for edge in ["a -> b: ", "b -> c: ", "c -> a: "] {
        assert!(cycle.contains(edge), "{cycle}");
    }
    // Every file of `b` that names `c`, each at its first mention.
    assert!(
        cycle.contains("structure-planted/src/b/inner.rs:3, "),
        "{cycle}"
    );
    assert!(
        cycle.contains("structure-planted/src/b.rs:3 names crate::c"),
        "{cycle}"
    );
    assert!(
        cycle.contains("structure-planted/src/c.rs:1 names crate::a"),
        "{cycle}"
    );
    assert_eq!(
        found[1],
        format!(
            "planted/src/c.rs has {} lines (at most {MAX_LINES}): split it by idea",
            MAX_LINES + 4
        )
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

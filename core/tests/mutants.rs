#![cfg(not(any(loom, shuttle)))]
//! The mutants of `core/src`, checked for their shape:
//!
//! - no mutant branch records a violation: a mutant that reports itself
//!   proves nothing about the checkers;
//! - `Mutant::ALL` names every variant, in declaration order.

use std::path::{Path, PathBuf};

/// `core/src`.
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

#![cfg(not(any(loom, shuttle)))]
//! `SPEC.md` and `README.md` point at the code; these tests keep the pointers
//! true. Every relative link must name a file that exists, and a link whose
//! text is a code name (`` [`Vm::page_fault`](core/src/fault.rs) ``) must name
//! an item defined in that file: a function, type, constant, module, enum
//! variant or field whose name is the last `::` segment. A link to a heading
//! (`#kernel-name-map`, or `SPEC.md#...`) must name a heading of that document.
//! So a rename or a move that forgets the spec fails here, in `cargo test`.
//! A link's text may be wrapped over lines; every `](` outside code blocks
//! must belong to a link this checker reads, so none is skipped unseen.
//!
//! `SPEC.md` is read in a terminal and reviewed in diffs: no line outside its
//! code blocks is longer than [`MAX_LINE`] characters.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The longest line `SPEC.md` may have outside code blocks, in characters.
const MAX_LINE: usize = 200;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

/// The lines of `markdown` outside fenced code blocks (fences included in the
/// block, indented fences too), with their line numbers.
fn prose_lines(markdown: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (number, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            out.push((number + 1, line));
        }
    }
    out
}

/// The lines outside code blocks longer than `max` characters: (line, length).
fn long_lines(markdown: &str, max: usize) -> Vec<(usize, usize)> {
    prose_lines(markdown)
        .into_iter()
        .map(|(number, line)| (number, line.chars().count()))
        .filter(|&(_, length)| length > max)
        .collect()
}

/// A link as written: the line of its `](`, its text (wrapped lines joined by
/// a space) and its target.
type Link = (usize, String, String);

/// Every `[text](target)` outside code blocks in `markdown`, and every `](`
/// that is not part of one (`Err`: its line). The text is what follows the
/// last `[` before the `](`, and may span lines within a paragraph.
fn links(markdown: &str) -> Vec<Result<Link, usize>> {
    let mut prose = String::new();
    let mut numbers = Vec::new();
    for (number, line) in prose_lines(markdown) {
        prose.push_str(line);
        prose.push('\n');
        numbers.push(number);
    }
    let line_of = |at: usize| numbers[prose[..at].matches('\n').count()];
    let mut out = Vec::new();
    for (at, _) in prose.match_indices("](") {
        let before = &prose[..at];
        let text = before.rfind('[').map(|open| &before[open + 1..]);
        let target = prose[at + 2..]
            .find(')')
            .map(|end| &prose[at + 2..at + 2 + end]);
        match (text, target) {
            (Some(text), Some(target))
                if !text.contains(']')
                    && !text.contains("\n\n")
                    && !target.is_empty()
                    && !target.contains(char::is_whitespace) =>
            {
                out.push(Ok((
                    line_of(at),
                    text.replace('\n', " "),
                    target.to_string(),
                )));
            }
            _ => out.push(Err(line_of(at))),
        }
    }
    out
}

/// The item a link's text names, if it is a code name: `` `Vm::page_fault` ``
/// gives `page_fault`, `` `I1` `` gives `I1`; prose gives `None`.
fn item_name(text: &str) -> Option<String> {
    let code = text.strip_prefix('`')?.strip_suffix('`')?;
    let last = code.rsplit("::").next()?;
    let name: String = last
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && !code.contains(' ')).then_some(name)
}

/// Whether `source` defines an item called `name`.
fn defines(source: &str, name: &str) -> bool {
    let keyword = [
        "fn ", "struct ", "enum ", "trait ", "type ", "const ", "static ", "mod ", "union ",
    ]
    .iter()
    .any(|k| {
        source.match_indices(&format!("{k}{name}")).any(|(at, _)| {
            let end = at + k.len() + name.len();
            !source[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    });
    let variant_or_field = source.lines().any(|line| {
        let line = line.trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        line.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([',', ' ', '(', '{', ':', '=']))
    });
    keyword || variant_or_field
}

/// The anchors of `markdown`'s headings, as GitHub makes them: the heading's
/// text (a link's text, not its target), lower case, spaces to `-`, every other
/// character but letters, digits, `-` and `_` dropped.
fn anchors(markdown: &str) -> HashSet<String> {
    prose_lines(markdown)
        .into_iter()
        .filter_map(|(_, line)| {
            let title = line.trim_start_matches('#');
            (title.len() < line.len() && title.starts_with(' ')).then_some(title)
        })
        .map(|title| {
            let mut text = String::new();
            let mut rest = title;
            while let Some(at) = rest.find("](") {
                text.push_str(&rest[..at]);
                rest = rest[at..].find(')').map_or("", |end| &rest[at + end + 1..]);
            }
            text.push_str(rest);
            text.trim()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => {
                        Some(c.to_lowercase().next().unwrap_or(c))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// What is wrong with the links of `text` (the document `name`), and how many
/// links to files and headings it checked.
fn broken_links(name: &str, text: &str) -> (Vec<String>, usize) {
    let root = root();
    let mut checked = 0;
    let mut broken = Vec::new();
    for link in links(text) {
        let (line, text_, target) = match link {
            Ok(link) => link,
            Err(line) => {
                broken.push(format!("{name}:{line}: a `](` that is not a link"));
                continue;
            }
        };
        if target.starts_with("http") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let document = if path.is_empty() {
            Some(text.to_string())
        } else {
            let file = root.join(path);
            if !file.exists() {
                broken.push(format!("{name}:{line}: [{text_}]({target}): no such file"));
                continue;
            }
            if file.extension().is_some_and(|e| e == "rs")
                && let Some(item) = item_name(&text_)
            {
                let source = std::fs::read_to_string(&file).expect("source is readable");
                if !defines(&source, &item) {
                    broken.push(format!(
                        "{name}:{line}: [{text_}]({target}): `{item}` is not defined there"
                    ));
                }
            }
            file.extension()
                .is_some_and(|e| e == "md")
                .then(|| std::fs::read_to_string(&file).expect("document is readable"))
        };
        checked += 1;
        if let Some(anchor) = anchor {
            let known = document.as_deref().map(anchors).unwrap_or_default();
            if !known.contains(anchor) {
                broken.push(format!(
                    "{name}:{line}: [{text_}]({target}): no heading `#{anchor}` there \
                     (line anchors are not kept true: name the item in the link's text)"
                ));
            }
        }
    }
    (broken, checked)
}

fn check_document(name: &str) -> usize {
    let text = std::fs::read_to_string(root().join(name)).expect("document is readable");
    let (broken, checked) = broken_links(name, &text);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    println!("{name}: {checked} links checked");
    checked
}

#[test]
fn spec_links_name_existing_items() {
    let checked = check_document("SPEC.md");
    assert!(checked > 500, "only {checked} links checked in SPEC.md");
}

#[test]
fn readme_links_name_existing_items() {
    let checked = check_document("README.md");
    assert!(checked >= 4, "only {checked} links checked in README.md");
}

#[test]
fn spec_has_no_line_over_the_limit() {
    let text = std::fs::read_to_string(root().join("SPEC.md")).expect("SPEC.md is readable");
    let long = long_lines(&text, MAX_LINE);
    assert!(
        long.is_empty(),
        "SPEC.md lines over {MAX_LINE} characters outside code blocks (line, length): {long:?}"
    );
}

#[test]
fn the_line_check_can_fail() {
    let long = "x".repeat(MAX_LINE + 1);
    let exact = "y".repeat(MAX_LINE);
    let text = format!("# title\n{long}\n{exact}\n  ```text\n{long}\n  ```\n{long}\n");
    assert_eq!(
        long_lines(&text, MAX_LINE),
        vec![(2, MAX_LINE + 1), (7, MAX_LINE + 1)]
    );
    // Characters, not bytes: 200 two-byte characters fit.
    assert!(long_lines(&"é".repeat(MAX_LINE), MAX_LINE).is_empty());
}

#[test]
fn the_link_checker_can_fail() {
    let source = "pub fn page_fault() {}\npub enum Mutant {\n    ZapFromHead,\n}\n";
    assert!(defines(source, "page_fault"));
    assert!(defines(source, "ZapFromHead"));
    assert!(!defines(source, "page"));
    assert!(!defines(source, "translate"));
    assert_eq!(item_name("`Vm::page_fault`").as_deref(), Some("page_fault"));
    assert_eq!(item_name("reference model"), None);
    let link = |line: usize, text: &str, target: &str| -> Result<Link, usize> {
        Ok((line, text.into(), target.into()))
    };
    assert_eq!(
        links("see [`Vm`](core/src/vm.rs) and [x](y.md)"),
        vec![link(1, "`Vm`", "core/src/vm.rs"), link(1, "x", "y.md")]
    );
    // A text wrapped over two lines, a bracket before a link, a link in a code
    // block (not one), and a `](` that is not a link.
    assert_eq!(
        links("the [kernel-name\nmap](#map), [a] [`b`](c.rs)\n```\n[d](e)\n```\nx ](\n"),
        vec![
            link(2, "kernel-name map", "#map"),
            link(2, "`b`", "c.rs"),
            Err(6)
        ]
    );
    let spec = "# fastzap\n## Kernel-name map\n### `zap_all` ([`Vm::zap_all`](core/src/zap.rs))\n";
    let found = anchors(spec);
    assert!(found.contains("kernel-name-map"));
    assert!(found.contains("zap_all-vmzap_all"), "{found:?}");
    let (broken, checked) = broken_links(
        "test.md",
        &format!(
            "{spec}[a](#kernel-name-map) [b](#no-such) [`zap_obsolete_pages`](core/src/zap.rs)\n\
             [`no_such_fn`](core/src/zap.rs) [c](no/such.rs) [d](core/src/zap.rs#L1) x ](\n"
        ),
    );
    assert_eq!(checked, 6, "{broken:#?}");
    assert_eq!(broken.len(), 5, "{broken:#?}");
    for (fault, what) in broken.iter().zip([
        "#no-such",
        "`no_such_fn` is not defined",
        "no such file",
        "#L1",
        "not a link",
    ]) {
        assert!(fault.contains(what), "{fault} should say {what}");
    }
}

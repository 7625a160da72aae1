#![cfg(not(any(loom, shuttle)))]
//! `SPEC.md` and `README.md` point at the code; these tests keep the pointers
//! true. Every relative link must name a file that exists, and a link whose
//! text is a code name (`` [`Vm::page_fault`](core/src/fault.rs) ``) must name
//! an item defined in that file: a function, type, constant, module, enum
//! variant or field whose name is the last `::` segment. So a rename or a move
//! that forgets the spec fails here, in `cargo test`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

/// Every `[text](target)` in `markdown`, with its line number.
fn links(markdown: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (number, line) in markdown.lines().enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find("](") else { break };
            let text = &after[..close];
            let target_start = &after[close + 2..];
            let Some(end) = target_start.find(')') else {
                break;
            };
            out.push((
                number + 1,
                text.to_string(),
                target_start[..end].to_string(),
            ));
            rest = &target_start[end..];
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

fn check_document(name: &str) -> usize {
    let root = root();
    let text = std::fs::read_to_string(root.join(name)).expect("document is readable");
    let mut checked = 0;
    let mut broken = Vec::new();
    for (line, text, target) in links(&text) {
        if target.starts_with("http") || target.starts_with('#') || target.starts_with("mailto:") {
            continue;
        }
        let path = target.split('#').next().unwrap_or(&target);
        let file = root.join(path);
        if !file.exists() {
            broken.push(format!("{name}:{line}: [{text}]({target}): no such file"));
            continue;
        }
        checked += 1;
        if file.extension().is_some_and(|e| e == "rs")
            && let Some(item) = item_name(&text)
        {
            let source = std::fs::read_to_string(&file).expect("source is readable");
            if !defines(&source, &item) {
                broken.push(format!(
                    "{name}:{line}: [{text}]({target}): `{item}` is not defined there"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    checked
}

#[test]
fn spec_links_name_existing_items() {
    let checked = check_document("SPEC.md");
    assert!(checked > 100, "only {checked} links checked in SPEC.md");
}

#[test]
fn readme_links_name_existing_items() {
    let checked = check_document("README.md");
    assert!(checked >= 4, "only {checked} links checked in README.md");
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
    assert_eq!(
        links("see [`Vm`](core/src/vm.rs) and [x](y.md)"),
        vec![
            (1, "`Vm`".to_string(), "core/src/vm.rs".to_string()),
            (1, "x".to_string(), "y.md".to_string())
        ]
    );
}

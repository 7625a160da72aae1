//! The scan: the default build's files, its public names, the inherent
//! methods of its public types, and whether each has an example (the rules
//! are at the top of `doc_examples.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::syntax::{
    Item, Tok, close_of, has_runnable_example, impl_self_type, is_ident, is_punct, parse_items,
    tokenize,
};

/// A source tree: paths relative to `src/`, and their text.
pub struct Tree(pub BTreeMap<String, String>);

impl Tree {
    pub fn load(src: &Path) -> Tree {
        fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, String>) {
            for entry in std::fs::read_dir(dir).expect("read src") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, src, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(src).expect("under src");
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    out.insert(rel, std::fs::read_to_string(&path).expect("read file"));
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(src, src, &mut files);
        Tree(files)
    }
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The default build's files (rule 1) with their items, and the files each
/// module name is declared with.
struct Crate {
    /// `file -> items`.
    files: BTreeMap<String, Vec<Item>>,
    /// Module name (`addr`, `checking`, `sync`...) -> the files it is in.
    module_files: BTreeMap<String, BTreeSet<String>>,
}

fn load_crate(tree: &Tree) -> Crate {
    let mut krate = Crate {
        files: BTreeMap::new(),
        module_files: BTreeMap::new(),
    };
    // (file, directory its child modules live in)
    let mut queue = vec![("lib.rs".to_string(), String::new())];
    while let Some((file, child_dir)) = queue.pop() {
        let Some(text) = tree.0.get(&file) else {
            continue;
        };
        let items = parse_items(&tokenize(text));
        let file_dir = file
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| d.to_string());
        for item in &items {
            if item.kind != "mod" || item.body.is_some() || !item.attrs.cfg_holds {
                continue;
            }
            let path = match &item.attrs.path {
                Some(p) => normalize(&format!("{file_dir}/{p}")),
                None => {
                    let flat = normalize(&format!("{child_dir}/{}.rs", item.name));
                    if tree.0.contains_key(&flat) {
                        flat
                    } else {
                        normalize(&format!("{child_dir}/{}/mod.rs", item.name))
                    }
                }
            };
            let dir = path.strip_suffix("mod.rs").map_or_else(
                || path.strip_suffix(".rs").unwrap_or(&path).to_string(),
                |d| d.trim_end_matches('/').to_string(),
            );
            krate
                .module_files
                .entry(item.name.clone())
                .or_default()
                .insert(path.clone());
            queue.push((path, dir));
        }
        krate.files.insert(file, items);
    }
    krate
}

/// One item the check covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checked {
    /// `Vm` or `Vm::create_memslot`.
    pub name: String,
    pub file: String,
    pub line: usize,
    pub documented: bool,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core/src/{}:{}: {}", self.file, self.line, self.name)
    }
}

pub struct Scan {
    pub checked: Vec<Checked>,
    /// Public names no definition was found for.
    pub unresolved: Vec<String>,
}

pub fn scan(tree: &Tree) -> Scan {
    let krate = load_crate(tree);
    // Every item of the default build, with its file; inline modules
    // flattened.
    let mut flat: Vec<(String, Item)> = Vec::new();
    for (file, items) in &krate.files {
        let mut stack: Vec<Item> = items.clone();
        while let Some(item) = stack.pop() {
            if !item.attrs.cfg_holds {
                continue;
            }
            if item.kind == "mod"
                && let Some(body) = &item.body
            {
                stack.extend(parse_items(body));
            }
            flat.push((file.clone(), item));
        }
    }

    // Rule 2: the public names, with the module their `use` path names.
    let mut unresolved = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut public_modules: Vec<String> = Vec::new();
    for item in krate.files["lib.rs"].iter().filter(|i| i.attrs.cfg_holds) {
        if item.kind == "use" && item.public && hdr_has_glob(&item.header) {
            unresolved.push(format!("a glob re-export at lib.rs:{}", item.line));
        } else if item.kind == "use" && item.public {
            let hdr = &item.header;
            let module = hdr.get(1).and_then(|t| match &t.tok {
                Tok::Ident(w) if w != "crate" && w != "self" => Some(w.clone()),
                _ => hdr.get(4).and_then(|t| match &t.tok {
                    Tok::Ident(w) => Some(w.clone()),
                    _ => None,
                }),
            });
            let module = module.unwrap_or_default();
            // The leaves: an ident followed by `,` `}` or the end, not by `::`;
            // `x as y` gives `y`.
            for (n, t) in hdr.iter().enumerate().skip(1) {
                let Tok::Ident(w) = &t.tok else { continue };
                let next = hdr.get(n + 1);
                let leaf = next.is_none_or(|t| is_punct(t, ',') || is_punct(t, '}'));
                let renamed_from = n >= 2 && is_ident(&hdr[n - 1], "as");
                if leaf
                    && w != "self"
                    && (!hdr.get(n + 1).is_some_and(|t| is_ident(t, "as")) || renamed_from)
                {
                    if krate.module_files.contains_key(w) {
                        // `pub use sync::reclaim`: a module made public by
                        // re-export; its items count as a public module's.
                        public_modules.push(w.clone());
                    } else {
                        names.push((w.clone(), module.clone()));
                    }
                }
            }
        }
        if item.kind == "mod" && item.public && !item.attrs.doc_hidden {
            public_modules.push(item.name.clone());
        }
    }
    for module in &public_modules {
        for file in krate.module_files.get(module).into_iter().flatten() {
            for sub in krate.files.get(file).into_iter().flatten() {
                if sub.public
                    && sub.attrs.cfg_holds
                    && !sub.attrs.doc_hidden
                    && DEFS.contains(&sub.kind.as_str())
                {
                    names.push((sub.name.clone(), module.clone()));
                }
            }
        }
    }

    let mut checked = Vec::new();
    let mut types = BTreeSet::new();
    for (name, module) in &names {
        let defs: Vec<&(String, Item)> = flat
            .iter()
            .filter(|(_, i)| i.public && i.name == *name && DEFS.contains(&i.kind.as_str()))
            .collect();
        // The module's file, or a file below its directory.
        let in_module = |f: &str| {
            krate.module_files.get(module).is_some_and(|fs| {
                fs.iter().any(|m| {
                    let dir = m
                        .strip_suffix("mod.rs")
                        .unwrap_or(m.trim_end_matches(".rs"));
                    f == m || f.starts_with(&format!("{}/", dir.trim_end_matches('/')))
                })
            })
        };
        let def = match defs.as_slice() {
            [] => None,
            [one] => Some(*one),
            many => many.iter().copied().find(|(f, _)| in_module(f)),
        };
        let Some((file, item)) = def else {
            unresolved.push(name.clone());
            continue;
        };
        if matches!(
            item.kind.as_str(),
            "struct" | "enum" | "union" | "trait" | "type"
        ) {
            types.insert(name.clone());
        }
        checked.push(Checked {
            name: name.clone(),
            file: file.clone(),
            line: item.line,
            documented: has_runnable_example(&item.attrs.doc),
        });
    }

    // Rule 3: the methods of inherent impls, macro-made ones included.
    let mut macros: BTreeMap<String, (String, Vec<Item>)> = BTreeMap::new();
    for (file, item) in &flat {
        if item.kind == "macro_rules" {
            let Some(body) = &item.body else { continue };
            // Arms: `( matcher ) => { expansion }`; the first `$x` of the first
            // matcher is the type parameter.
            let Some(open) = body.iter().position(|t| is_punct(t, '(')) else {
                continue;
            };
            let matcher_end = close_of(body, open);
            let param = body[open..matcher_end]
                .windows(2)
                .find(|w| is_punct(&w[0], '$') && matches!(w[1].tok, Tok::Ident(_)))
                .map(|w| match &w[1].tok {
                    Tok::Ident(x) => format!("${x}"),
                    _ => unreachable!(),
                });
            let Some(exp) = body[matcher_end..].iter().position(|t| is_punct(t, '{')) else {
                continue;
            };
            let exp = matcher_end + exp;
            let inner = parse_items(&body[exp + 1..close_of(body, exp) - 1]);
            let impls: Vec<Item> = inner
                .into_iter()
                .filter(|i| i.kind == "impl" && impl_self_type(&i.header) == param)
                .collect();
            macros.insert(item.name.clone(), (file.clone(), impls));
        }
    }
    let mut impls: Vec<(String, String, Item)> = Vec::new();
    for (file, item) in &flat {
        if item.kind == "impl"
            && !item.attrs.doc_hidden
            && let Some(ty) = impl_self_type(&item.header)
        {
            impls.push((file.clone(), ty, item.clone()));
        }
        if item.kind == "macro" {
            let Some((mfile, mimpls)) = macros.get(&item.name) else {
                continue;
            };
            // `name!(Type, ..)`: the first argument.
            let Some(Tok::Ident(ty)) = item.header.get(3).map(|t| &t.tok) else {
                continue;
            };
            for i in mimpls
                .iter()
                .filter(|i| i.attrs.cfg_holds && !i.attrs.doc_hidden)
            {
                impls.push((mfile.clone(), ty.clone(), i.clone()));
            }
        }
    }
    for (file, ty, imp) in impls {
        if !types.contains(&ty) {
            continue;
        }
        for m in parse_items(imp.body.as_deref().unwrap_or_default()) {
            if m.kind != "fn" || !m.public || !m.attrs.cfg_holds || m.attrs.doc_hidden {
                continue;
            }
            checked.push(Checked {
                name: format!("{ty}::{}", m.name),
                file: file.clone(),
                line: m.line,
                documented: has_runnable_example(&m.attrs.doc),
            });
        }
    }
    checked.sort_by(|a, b| (&a.file, a.line, &a.name).cmp(&(&b.file, b.line, &b.name)));
    checked.dedup();
    Scan {
        checked,
        unresolved,
    }
}

/// The kinds of item a public name can be defined as.
const DEFS: &[&str] = &[
    "struct", "enum", "union", "trait", "type", "const", "static", "fn",
];

pub fn report(scan: &Scan) -> String {
    let missing: Vec<&Checked> = scan.checked.iter().filter(|c| !c.documented).collect();
    let mut out = format!(
        "{} of the {} public items of the default build have no runnable doc example \
         (a ``` block that is not ignore/no_run/text/compile_fail/should_panic):\n",
        missing.len(),
        scan.checked.len()
    );
    for c in &missing {
        out.push_str(&format!("  {c}\n"));
    }
    if !scan.unresolved.is_empty() {
        out.push_str(&format!(
            "public names with no definition found: {:?}\n",
            scan.unresolved
        ));
    }
    out.push_str("\nthe set checked (rules at the top of core/tests/doc_examples.rs):\n");
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &scan.checked {
        let (ty, method) = c.name.split_once("::").unwrap_or((&c.name, ""));
        let entry = by_type.entry(ty.to_string()).or_default();
        if !method.is_empty() {
            entry.push(method.to_string());
        }
    }
    for (ty, methods) in by_type {
        if methods.is_empty() {
            out.push_str(&format!("  {ty}\n"));
        } else {
            out.push_str(&format!("  {ty}: {}\n", methods.join(", ")));
        }
    }
    out
}

/// Whether a `use` header ends in a glob (`pub use x::*`), which the scan
/// cannot list.
fn hdr_has_glob(header: &[crate::syntax::Token]) -> bool {
    header.iter().any(|t| is_punct(t, '*'))
}

#![cfg(not(any(loom, shuttle)))]
//! Every public type and operation of the default build carries a doc
//! example that runs, found by a scan of `core/src` (no rustdoc JSON).
//!
//! The rules, in the order the scan applies them:
//!
//! 1. **The default build's files.** From `lib.rs`, follow every `mod x;`
//!    (with its `#[path]`) whose `#[cfg]` holds in the default build: no
//!    feature enabled, and none of `test`, `doctest`, `loom`, `shuttle`,
//!    `crossbeam_loom` set. `#[cfg(feature = "ghost")]` and
//!    `#[cfg(feature = "hold-timing")]` thus leave a module out, and
//!    `#[cfg(not(feature = "ghost"))]` keeps it.
//! 2. **The public surface.** The names of `lib.rs`'s `pub use` lines whose
//!    `#[cfg]` holds (rule 1), and the `pub` items at the top of each
//!    `pub mod` of `lib.rs` that holds and is not `#[doc(hidden)]`. Each name
//!    is found by its definition (`pub struct`, `enum`, `union`, `trait`,
//!    `type`, `const`, `static` or `fn`) in the default build's files; a
//!    name defined more than once is taken from the file of the `use` path's
//!    module.
//! 3. **The operations.** For each public type: every `pub fn` (`const`,
//!    `unsafe`, `async` included; `pub(crate)` and narrower excluded) of an
//!    inherent `impl` of that type name, in any of the default build's files,
//!    including `impl $t { .. }` blocks inside a `macro_rules!` whose first
//!    parameter is `$t`, once per invocation of the macro (named by its first
//!    argument). Trait impls (`impl X for T`) are not checked. An impl or a
//!    method with a `#[cfg]` that does not hold (rule 1), or with
//!    `#[doc(hidden)]`, is left out.
//! 4. **The example.** The item's doc (`///` lines and `#[doc = ..]`
//!    attributes, string literals and `concat!` of them) holds a fence whose
//!    info string is empty or made only of `rust` and `editionNNNN`: what
//!    rustdoc compiles and runs. `ignore`, `no_run`, `text`, `compile_fail`,
//!    `should_panic` and any other language do not count.
//!
//! Associated constants, fields, variants and trait methods are not checked.
//!
//! The scan lives in `doc_examples/`: `syntax.rs` (tokens, `#[cfg]`, items)
//! and `scan.rs` (the rules above, and the report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "doc_examples/scan.rs"]
mod scan;
#[path = "doc_examples/syntax.rs"]
mod syntax;

use scan::{Tree, report, scan};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_public_item_has_a_runnable_example() {
    let scan = scan(&Tree::load(&src()));
    let ok = scan.unresolved.is_empty() && scan.checked.iter().all(|c| c.documented);
    assert!(ok, "{}", report(&scan));
}

/// The scan on a small crate: it reports exactly the undocumented public
/// operations, and skips what rules 1 to 3 leave out.
#[test]
fn the_scan_reports_an_undocumented_pub_fn() {
    let lib = r#"
mod thing;
#[cfg(feature = "ghost")]
mod ghost_only;
#[cfg(feature = "ghost")]
pub use ghost_only::Spooky;
pub use thing::{Thing, make};
"#;
    let thing = r##"
/// A thing.
///
/// ```
/// assert!(true);
/// ```
pub struct Thing;

/// Makes one, with no example.
pub fn make() -> Thing { Thing }

impl Thing {
    /// Documented: braces in strings and chars do not confuse the scan.
    ///
    /// ```rust,edition2021
    /// let _ = "{";
    /// ```
    pub fn good(&self) -> char { let _ = ("{", '\'', r#"}"#); '}' }

    /// No example.
    pub fn bare(&self) {}

    /// Not run, so it does not count.
    ///
    /// ```no_run
    /// loop {}
    /// ```
    pub const fn not_run(&self) {}

    /// Not public API.
    pub(crate) fn internal(&self) {}

    #[doc(hidden)]
    pub fn hidden(&self) {}

    #[cfg(feature = "ghost")]
    pub fn ghost_only(&self) {}

    #[cfg(not(feature = "ghost"))]
    pub fn without_ghost(&self) {}
}

impl Default for Thing {
    fn default() -> Thing { Thing }
}

macro_rules! ops {
    ($t:ident) => {
        impl $t {
            #[doc = concat!("Via a macro.\n\n```\nassert!(", "true", ");\n```")]
            pub fn from_macro(&self) {}
            #[doc = "No example either."]
            pub fn macro_bare(&self) {}
        }
    };
}
ops!(Thing);

#[cfg(test)]
mod tests {
    impl super::Thing { pub fn test_only(&self) {} }
}
"##;
    let ghost = "pub struct Spooky;\nimpl Spooky { pub fn boo(&self) {} }\n";
    let tree = Tree(BTreeMap::from([
        ("lib.rs".to_string(), lib.to_string()),
        ("thing.rs".to_string(), thing.to_string()),
        ("ghost_only.rs".to_string(), ghost.to_string()),
    ]));
    let scan = scan(&tree);
    let all: Vec<String> = scan.checked.iter().map(|c| c.name.clone()).collect();
    let missing: Vec<String> = scan
        .checked
        .iter()
        .filter(|c| !c.documented)
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        all,
        [
            "Thing",
            "make",
            "Thing::good",
            "Thing::bare",
            "Thing::not_run",
            "Thing::without_ghost",
            "Thing::from_macro",
            "Thing::macro_bare",
        ],
        "the set checked"
    );
    // The line of each `pub fn`, counted in the source above.
    let at = |needle: &str| {
        let line = 1 + thing
            .lines()
            .position(|l| l.contains(needle))
            .expect(needle);
        format!("core/src/thing.rs:{line}: ")
    };
    assert_eq!(
        missing,
        [
            at("pub fn make") + "make",
            at("pub fn bare") + "Thing::bare",
            at("pub const fn not_run") + "Thing::not_run",
            at("pub fn without_ghost") + "Thing::without_ghost",
            at("pub fn macro_bare") + "Thing::macro_bare",
        ]
    );
    assert!(scan.unresolved.is_empty());
    let text = report(&scan);
    assert!(text.contains("5 of the 8 public items"), "{text}");
    assert!(
        text.contains(&format!("  {}Thing::bare\n", at("pub fn bare"))),
        "{text}"
    );

    // A glob re-export cannot be listed: it fails the check.
    let glob = Tree(BTreeMap::from([
        (
            "lib.rs".to_string(),
            "mod thing;\npub use thing::*;\n".to_string(),
        ),
        ("thing.rs".to_string(), thing.to_string()),
    ]));
    let scan = scan::scan(&glob);
    assert_eq!(scan.unresolved, ["a glob re-export at lib.rs:2"]);
}

/// The scan on the real crate finds items known to be documented, and
/// leaves out the ones rules 1 to 3 exclude.
#[test]
fn the_scan_finds_known_items() {
    let scan = scan(&Tree::load(&src()));
    let find = |name: &str| scan.checked.iter().find(|c| c.name == name);
    for known in [
        "Vm",
        "Gfn",
        "GfnRange",
        "Gfn::checked_add",
        "Config::validate",
        "Vm::hva_to_pfn",
        "HoldHistogram::merge",
        "ReclaimBackend::small",
        // Public through `pub use sync::reclaim`, a re-exported module.
        "Reclaimer::synchronize",
        "Guard::defer",
    ] {
        let c = find(known)
            .unwrap_or_else(|| panic!("{known} not in the set checked:\n{}", report(&scan)));
        assert!(c.documented, "{c} has an example but the scan missed it");
    }
    // Ghost-only (observe.rs), doc(hidden), trait methods, pub(crate)
    // methods and crate-private types.
    for absent in [
        "Vm::counts",
        "Vm::events",
        "Vm::translate_unsynchronized",
        "Vm::drop",
        "Gfn::add",
        "Memslots::search",
        "LpageInfo",
        "Vcpu",
    ] {
        assert!(
            find(absent).is_none(),
            "{absent} is not public API in the default build"
        );
    }
    let vm_ops = scan
        .checked
        .iter()
        .filter(|c| c.name.starts_with("Vm::"))
        .count();
    assert!(
        vm_ops >= 15,
        "only {vm_ops} Vm operations found:\n{}",
        report(&scan)
    );
}

//! The protocol alone (fastzap's default features) pays nothing for the bug
//! zoo: the zap loop of [core/src/zap.rs](../src/zap.rs) walks the active list
//! with a plain iterator, with no allocation and no dynamic dispatch; bug 7's
//! walk from the head (`Mutant::ZapFromHead`) exists only in code compiled
//! under `cfg(feature = "ghost")`. A source scan keeps it so: outside the
//! checking build's code, zap.rs names no `dyn` and no `Box`.

/// `source` with every item or statement under `#[cfg(feature = "ghost")]`
/// removed: from the attribute to the end of the first brace-balanced block
/// after it, or to the first `;` if that comes before any block.
fn without_ghost_code(source: &str) -> String {
    const ATTR: &str = "#[cfg(feature = \"ghost\")]";
    let mut out = String::new();
    let mut rest = source;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let after = &rest[at + ATTR.len()..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The lines of `source`, outside the checking build's code and outside
/// comments, that allocate a box or dispatch dynamically.
fn boxed_or_dynamic(source: &str) -> Vec<String> {
    without_ghost_code(source)
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//"))
        .filter(|line| line.contains("dyn ") || line.contains("Box<") || line.contains("Box::"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_zap_loop_has_no_box_or_dyn_outside_the_checking_build() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/zap.rs");
    let source = std::fs::read_to_string(path).expect("core/src/zap.rs");
    assert!(
        source.contains("fn zap_obsolete_pages"),
        "{path} no longer holds zap_obsolete_pages: the scan would check nothing"
    );
    assert!(
        source.contains("Mutant::ZapFromHead"),
        "{path} no longer reads the ZapFromHead mutant: the scan would check nothing"
    );
    let found = boxed_or_dynamic(&source);
    assert!(
        found.is_empty(),
        "zap.rs allocates or dispatches dynamically outside cfg(feature = \"ghost\"), so the \
         protocol build pays for the bug zoo: {found:#?}"
    );
}

/// The scan can fail: the loop as it was (a boxed iterator chosen per outer
/// iteration, in every build) is found; the same code inside a
/// `cfg(feature = "ghost")` helper is not.
#[test]
fn the_scan_finds_a_boxed_iterator_in_the_protocol_build() {
    let old = r#"
        loop {
            let order: Box<dyn Iterator<Item = (&u64, &PageId)>> = if from_head {
                Box::new(lk.active.iter().rev())
            } else {
                Box::new(lk.active.iter())
            };
        }
    "#;
    assert_eq!(
        boxed_or_dynamic(old).len(),
        3,
        "{:#?}",
        boxed_or_dynamic(old)
    );
    let confined = r#"
        let next = next_from_tail(lk, rezap_roots, steps);
        #[cfg(feature = "ghost")]
        fn from_head(lk: &MmuLock<'_>) -> Option<PageId> {
            let order: Box<dyn Iterator<Item = (&u64, &PageId)>> = Box::new(lk.active.iter().rev());
            if true { order.count(); }
            None
        }
        #[cfg(feature = "ghost")]
        let boxed: Box<dyn Fn()> = Box::new(|| {});
        fn plain() {}
    "#;
    assert_eq!(boxed_or_dynamic(confined), Vec::<String>::new());
    assert!(without_ghost_code(confined).contains("fn plain()"));
    assert!(without_ghost_code(confined).contains("next_from_tail"));
}

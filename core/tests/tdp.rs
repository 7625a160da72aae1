#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
//! The TDP MMU (`Config::mmu = Mmu::Tdp`, core/src/tdp/) behind the `Vm` API:
//! each operation's sequential behaviour (`ops`), the upstream rules that a
//! plain test can show (`rules`), and a multi-threaded stress checked
//! against the host after each operation (`stress`).

mod common;
#[path = "tdp/ops.rs"]
mod ops;
#[path = "tdp/rules.rs"]
mod rules;
#[path = "tdp/stress.rs"]
mod stress;

use fastzap::*;

/// `cfg` on the TDP MMU.
pub fn tdp(mut cfg: Config) -> Config {
    cfg.mmu = Mmu::Tdp;
    cfg
}

/// A TDP VM with `cfg`'s other settings.
pub fn tdp_vm(cfg: Config) -> Vm {
    Vm::new(tdp(cfg)).expect("a valid TDP config")
}

/// The module sources of core/src/tdp import nothing of the shadow MMU and
/// nothing of `vm`: the TDP MMU takes the shared parts as arguments.
#[test]
fn tdp_imports_no_shadow_module() {
    let forbidden = [
        "vm",
        "mmu",
        "page",
        "shadow",
        "rmap",
        "spte",
        "zap",
        "fault",
        "walk",
        "request",
        "notifier",
        "memslot_zap",
        "memslot_update",
        "claimed",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tdp");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("core/src/tdp") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        files += 1;
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for name in forbidden {
                for pat in [
                    format!("crate::{name}::"),
                    format!("crate::{name};"),
                    format!("crate::{name}}}"),
                ] {
                    assert!(
                        !code.contains(&pat),
                        "{} imports crate::{name}: {line}",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(files >= 10, "read {files} files of core/src/tdp");
}

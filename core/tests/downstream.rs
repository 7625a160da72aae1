#![cfg(not(any(loom, shuttle, miri)))]
//! fastzap as a VMM gets it: a crate outside the workspace that writes
//! `fastzap = { path = ".../core" }` and nothing else. Its build is the
//! protocol alone:
//!
//! - it builds (`cargo build --offline`) and runs an operation of each kind;
//! - a file that names the checking vocabulary (`fastzap::audit`,
//!   `fastzap::Invariant`, `fastzap::check`) does not compile;
//! - no checking code is linked: the binary holds none of the strings and
//!   symbols of the ghost modules (an invariant's name, an audit function, the
//!   quarantine, a file of `core/src/audit/`), while the same crate built with
//!   `features = ["ghost"]` holds every one of them (so the search can fail).
//!
//! The crates are generated under cargo's temporary directory for tests
//! (`target/tmp/downstream`), with the workspace's `Cargo.lock` copied in so
//! that they build against the versions it pins, and share one target
//! directory there, so a second run only relinks. The first run builds
//! fastzap twice (without and with `ghost`), so the test is ignored by
//! default: `cargo test -p fastzap --test downstream -- --include-ignored`
//! (which `.ci/run` runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the parent of `core/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent")
        .to_path_buf()
}

/// Where the generated crates and their shared target directory live.
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("downstream")
}

/// Strings and symbol fragments that only the checking code puts into a
/// binary: an invariant's name (`Invariant::name`), an audit function's
/// symbol, the ghost quarantine's module, and a source file of the audit (its
/// panic locations).
const GHOST_MARKERS: &[&str] = &[
    "I3 page lifetime",
    "check_i3_page_lifetime",
    "quarantine",
    "src/audit/",
];

/// A VMM's main: one VM, a fault, an invalidation, a notifier, a delete.
const VMM_MAIN: &str = r#"
use fastzap::{Config, Fault, Gfn, Hva, PAGE_SIZE, SlotId, SlotSpec, Translation, VcpuId, Vm};

fn main() -> Result<(), fastzap::MmuError> {
    let vm = Vm::new(Config::native())?;
    let base = Hva(0x7f00_0000_0000);
    vm.create_memslot(SlotSpec { id: SlotId(0), base_gfn: Gfn(0), npages: 64, userspace_addr: base })?;
    let vcpu = VcpuId(0);
    vm.handle_requests(vcpu)?;
    let Fault::Mapped { pfn } = vm.page_fault(vcpu, Gfn(5), true)? else { panic!("no mapping") };
    assert_eq!(pfn, vm.hva_to_pfn(base + 5 * PAGE_SIZE)?);
    vm.invalidate_zap_all_pages()?;
    assert_eq!(vm.translate(vcpu, Gfn(5))?, Translation::RequestPending);
    vm.handle_requests(vcpu)?;
    vm.page_fault(vcpu, Gfn(6), false)?;
    let unmapped = vm.invalidate_range(base + 6 * PAGE_SIZE, base + 7 * PAGE_SIZE)?;
    vm.delete_memslot(SlotId(0))?;
    vm.handle_requests(vcpu)?;
    assert_eq!(vm.page_fault(vcpu, Gfn(5), true)?, Fault::Mmio);
    println!("vmm: unmapped {unmapped}, slots {}", vm.slot_count());
    CHECKS
    Ok(())
}
"#;

/// What the checking build's main adds: the audit, and every invariant's name.
const GHOST_CHECKS: &str = r#"
    fastzap::check::audit(&vm).expect("every invariant holds");
    for invariant in fastzap::check::Invariant::ALL {
        println!("checked {}", invariant.name());
    }
"#;

/// Names a production build does not have.
const NAMES_CHECKING: &str = r#"
use fastzap::Invariant;
use fastzap::audit;
use fastzap::check::Violation;

fn main() {
    let vm = fastzap::Vm::new(fastzap::Config::native()).unwrap();
    let found: Result<(), Vec<Violation>> = audit(&vm);
    println!("{found:?} {:?}", Invariant::I3);
}
"#;

/// Writes the crate `name` with `main` and the fastzap dependency line `dep`.
fn generate(name: &str, dep: &str, main: &str) -> PathBuf {
    let dir = scratch().join(name);
    std::fs::create_dir_all(dir.join("src")).expect("create the crate's directory");
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\n{dep}\n\n\
         # Its own workspace, not the enclosing checkout's.\n[workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), main).expect("write main.rs");
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock"))
        .expect("copy the workspace's Cargo.lock");
    dir
}

/// `cargo build --offline` of the crate in `dir`, into the shared target directory.
fn build(dir: &Path) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--offline",
            "--message-format=short",
            "--target-dir",
        ])
        .arg(scratch().join("target"))
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds `name` and returns its binary.
fn build_ok(name: &str, dep: &str, main: &str) -> PathBuf {
    let dir = generate(name, dep, main);
    let out = build(&dir);
    assert!(
        out.status.success(),
        "{name} does not build:\n{}",
        text(&out.stderr)
    );
    scratch().join("target/debug").join(name)
}

/// The markers of `GHOST_MARKERS` found in the file at `binary`.
fn markers_in(binary: &Path) -> Vec<&'static str> {
    let bytes = std::fs::read(binary).expect("read the binary");
    GHOST_MARKERS
        .iter()
        .copied()
        .filter(|m| bytes.windows(m.len()).any(|w| w == m.as_bytes()))
        .collect()
}

fn fastzap_dep(features: &str) -> String {
    let core = workspace().join("core");
    format!(
        "fastzap = {{ path = {:?}{features} }}",
        core.to_str().expect("a UTF-8 path")
    )
}

#[test]
#[ignore = "builds fastzap twice outside the workspace"]
fn a_default_dependency_is_the_protocol_alone() {
    // (a) It builds and runs.
    let plain = build_ok("vmm", &fastzap_dep(""), &VMM_MAIN.replace("CHECKS", ""));
    let run = Command::new(&plain).output().expect("run the VMM");
    assert!(
        run.status.success(),
        "the VMM failed:\n{}",
        text(&run.stderr)
    );
    assert_eq!(text(&run.stdout), "vmm: unmapped 1, slots 0\n");

    // (b) The checking vocabulary is not there to name.
    let dir = generate("vmm-names-checks", &fastzap_dep(""), NAMES_CHECKING);
    let out = build(&dir);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "naming the checks compiled:\n{stderr}"
    );
    for unresolved in [
        "unresolved import `fastzap::Invariant`",
        "unresolved import `fastzap::audit`",
        "unresolved import `fastzap::check`",
    ] {
        assert!(
            stderr.contains(unresolved),
            "no `{unresolved}` in:\n{stderr}"
        );
    }

    // (c) No checking code is linked; the same crate with `ghost` links all
    // of it, which is what shows the search can find it.
    let checking = build_ok(
        "vmm-ghost",
        &fastzap_dep(", features = [\"ghost\"]"),
        &VMM_MAIN.replace("CHECKS", GHOST_CHECKS),
    );
    let run = Command::new(&checking)
        .output()
        .expect("run the checking VMM");
    assert!(
        run.status.success(),
        "the checking VMM failed:\n{}",
        text(&run.stderr)
    );
    assert!(text(&run.stdout).contains("checked I3 page lifetime\n"));
    assert_eq!(markers_in(&checking), GHOST_MARKERS, "the checking build");
    assert_eq!(markers_in(&plain), Vec::<&str>::new(), "the default build");
}

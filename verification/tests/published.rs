//! The published numbers are in step with the committed results: every block
//! that `fastzap publish` writes into README.md, BENCHMARKS.md and
//! core/tests/LITMUS.md is what it would write now from
//! `verification/results/` and `benches/results/`, and the zoo's summary
//! line agrees with its own rows. (`fastzap_verification::publish`'s unit
//! tests show that an edited block, a stray block and a summary from another
//! run are each seen.)

use fastzap_verification::lanes::workspace_root;
use fastzap_verification::publish;

#[test]
fn every_generated_block_is_in_step_with_its_results() {
    let root = workspace_root();
    let problems = publish::check(&root).expect("the results files and documents read");
    assert!(
        problems.is_empty(),
        "out of step (run `cargo run --release -- publish`):\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_document_has_its_blocks() {
    let root = workspace_root();
    let blocks = publish::render_all(&root).expect("render");
    for (doc, text) in publish::read_docs(&root).expect("read") {
        let mut names = publish::block_names(&text);
        names.sort();
        let mut want: Vec<&str> = blocks
            .iter()
            .filter(|b| b.doc == doc)
            .map(|b| b.name)
            .collect();
        want.sort();
        assert_eq!(names, want, "{doc}: its generated blocks, once each");
    }
}

#[test]
fn an_edited_block_fails_the_check() {
    let root = workspace_root();
    let blocks = publish::render_all(&root).expect("render");
    let mut docs = publish::read_docs(&root).expect("read");
    assert!(publish::compare(&docs, &blocks).is_empty());
    // A number typed over the zoo's summary, as a hand edit would.
    let readme = &mut docs.iter_mut().find(|(d, _)| *d == "README.md").unwrap().1;
    let zoo = publish::extract(readme, "zoo").unwrap().to_string();
    let summary = zoo.lines().find(|l| l.contains(" caught; ")).unwrap();
    let edited = zoo.replace(summary, &summary.replace("largest ", "largest 0"));
    *readme = publish::splice(readme, "zoo", &edited).unwrap();
    let problems = publish::compare(&docs, &blocks);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("differs"), "{problems:?}");
    assert!(problems[1].contains("largest"), "{problems:?}");
}

/// `fastzap publish` as a person runs it: `--check` exits 0 on this tree;
/// a missing report is a usage error (exit 2) that writes nothing.
#[test]
fn the_command_checks_and_refuses_bad_input() {
    let fastzap = env!("CARGO_BIN_EXE_fastzap");
    let run = |args: &[&str]| {
        std::process::Command::new(fastzap)
            .args(args)
            .output()
            .expect("run fastzap")
    };
    let check = run(&["publish", "--check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let root = workspace_root();
    let before = std::fs::read(root.join(publish::ZOO_RESULTS)).expect("zoo results");
    let missing = run(&["publish", "--zoo", "/nonexistent/report.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing written"));
    let both = run(&["publish", "--check", "--litmus", "/nonexistent"]);
    assert_eq!(both.status.code(), Some(2));
    let after = std::fs::read(root.join(publish::ZOO_RESULTS)).expect("zoo results");
    assert_eq!(before, after, "a failed publish changed the results");
}

/// The committed zoo results are a run of the zoo as it is now: the same rows,
/// in order, with the same commit, expected invariant and checker as
/// `zoo::ZOO`. A row added, removed or moved to another checker makes the
/// published table stale: measure it again (README.md, "The bug zoo,
/// measured").
#[test]
fn the_zoo_results_are_of_the_current_zoo() {
    use fastzap_verification::zoo::ZOO;
    let root = workspace_root();
    let results = publish::zoo::ZooResults::read(&root.join(publish::ZOO_RESULTS))
        .expect("the zoo results read");
    let measured: Vec<(String, String, String, String)> = results
        .rows
        .iter()
        .map(|r| {
            (
                r.mutant.clone(),
                r.commit.clone(),
                r.expected.clone(),
                r.checker.clone(),
            )
        })
        .collect();
    let current: Vec<(String, String, String, String)> = ZOO
        .iter()
        .map(|r| {
            (
                r.subject.name(),
                r.commit.to_string(),
                r.expected.name().to_string(),
                r.checker.describe(),
            )
        })
        .collect();
    assert_eq!(
        measured, current,
        "verification/results/zoo.json is not a run of the current zoo: run \
         `cargo run --release -- verify --lane zoo --out /tmp/zoo-report` and \
         `cargo run --release -- publish --zoo /tmp/zoo-report/report.json`"
    );
}

/// The committed litmus results cover exactly the tests of
/// core/tests/loom_litmus.rs that a lane runs (its `#[test]`s less the
/// `#[ignore]`d ones): a test added or removed makes LITMUS.md's counts
/// stale (see LITMUS.md for the command that measures them again).
#[test]
fn the_litmus_results_cover_the_tests_that_run() {
    let root = workspace_root();
    let source =
        std::fs::read_to_string(root.join("core/tests/loom_litmus.rs")).expect("loom_litmus.rs");
    let mut running = Vec::new();
    let mut lines = source.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "#[test]" {
            continue;
        }
        let mut ignored = false;
        for next in lines.by_ref() {
            if next.starts_with("#[ignore") {
                ignored = true;
            } else if let Some(rest) = next.strip_prefix("fn ") {
                if !ignored {
                    running.push(rest.split('(').next().unwrap_or("").to_string());
                }
                break;
            }
        }
    }
    running.sort();
    let results =
        publish::litmus::LitmusResults::read(&root.join(publish::LITMUS_RESULTS)).expect("read");
    let mut recorded: Vec<String> = results.records.iter().map(|r| r.test.clone()).collect();
    recorded.sort();
    recorded.dedup();
    assert!(!running.is_empty(), "no tests found in loom_litmus.rs");
    assert_eq!(
        recorded, running,
        "verification/results/litmus.json does not cover the tests loom_litmus.rs runs"
    );
}

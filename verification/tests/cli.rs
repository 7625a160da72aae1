//! `fastzap verify` as a person runs it: a subprocess, its exit code, and the
//! files it leaves in its report directory.
//!
//! `verify --quick` drives `cargo loom` and `cargo shuttle` (their first build
//! takes minutes), so the two full runs here are `#[ignore]`d in the plain
//! `cargo test`; CI runs them (`cargo test -p fastzap-verification --test cli
//! -- --include-ignored`), and the command-line tests run always.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fastzap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fastzap"))
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(args: &[&str]) -> Output {
    fastzap().args(args).output().expect("run fastzap")
}

#[test]
fn help_exits_zero_and_bad_usage_two() {
    let help = run(&["verify", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--quick",
        "--lane",
        "--scenario",
        "--mutant",
        "--replay",
        "--out",
    ] {
        assert!(text.contains(option), "--help does not mention {option}");
    }
    assert_eq!(run(&["verify", "--no-such-option"]).status.code(), Some(2));
    assert_eq!(run(&["verify", "--lane", "nowhere"]).status.code(), Some(2));
    // `--out` takes a value: `--out --quick` is not "quick into a folder".
    assert_eq!(run(&["verify", "--out", "--quick"]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_replay_file_that_is_not_one_is_bad_input() {
    let dir = out_dir("bad-replay");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("x.schedule");
    std::fs::write(&file, "nothing here\n").expect("write");
    let out = run(&[
        "verify",
        "--replay",
        file.to_str().expect("utf-8"),
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every `.svg` under `dir/counterexamples`, parsed.
fn check_svgs(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir.join("counterexamples")).expect("counterexamples/");
    for entry in entries.map(|e| e.expect("entry").path()) {
        if entry.extension().is_none_or(|x| x != "svg") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).expect("read svg");
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not XML: {e}", entry.display()));
        let lifelines: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("lifeline"))
            .filter_map(|n| n.attribute("data-actor"))
            .collect();
        // The counterexample's JSON names its actors.
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(entry.with_extension("json")).expect("counterexample json"),
        )
        .expect("counterexample json parses");
        let actors: Vec<&str> = json["actors"]
            .as_array()
            .expect("actors")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(!actors.is_empty(), "{}: no actors", entry.display());
        assert_eq!(
            lifelines,
            actors,
            "{}: one lifeline per actor",
            entry.display()
        );
        assert!(
            entry.with_extension("txt").exists() && entry.with_extension("mmd").exists(),
            "{}: timeline and Mermaid beside it",
            entry.display()
        );
        names.push(
            entry
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string(),
        );
    }
    names
}

#[test]
#[ignore = "drives cargo loom and cargo shuttle: minutes; CI runs it"]
fn verify_quick_passes_and_writes_the_report() {
    let dir = out_dir("quick");
    // The test binary is a debug build: the native stresses shrink to a
    // tenth of --quick's size, the rest is --quick as CI runs it.
    let out = run(&[
        "verify",
        "--quick",
        "--stress-ops",
        "10000",
        "--cases",
        "100",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["report.md", "report.html", "report.json"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("json"))
            .expect("report.json parses");
    assert_eq!(json["passed"], serde_json::Value::Bool(true));
    // --quick (and its smaller stresses, and Miri left out) is reduced.
    assert_eq!(json["mode"], "reduced");
    assert!(
        stdout.contains("verify: PASS [reduced: --quick"),
        "{stdout}"
    );
    // Every MMU's native checks ran, each row naming its MMU.
    let native = json["native"].as_array().expect("native rows");
    for mmu in fastzap::Mmu::ALL {
        for check in ["audit-scenario", "native-stress", "conformance"] {
            assert!(
                native
                    .iter()
                    .any(|r| r["check"] == check && r["mmu"] == mmu.name()),
                "no {check} row on the {} MMU",
                mmu.name()
            );
        }
    }
    let zoo = json["zoo"].as_array().expect("zoo rows");
    assert!(zoo.len() >= 23, "{} zoo rows", zoo.len());
    assert!(zoo.iter().all(|r| r["verdict"] == "caught"));
    let svgs = check_svgs(&dir);
    assert!(svgs.len() >= 16, "only {} counterexample SVGs", svgs.len());
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    for svg in &svgs {
        assert!(
            html.contains(&format!("counterexamples/{svg}")),
            "report.html does not reference {svg}"
        );
    }
    assert!(!html.contains("<script"), "report.html runs no script");
    assert!(!html.contains("src=\"http"), "report.html loads nothing");
}

#[test]
#[ignore = "drives cargo shuttle: CI runs it"]
fn verify_one_mutant_fails_and_shows_its_counterexample() {
    let dir = out_dir("mutant");
    let out = run(&[
        "verify",
        "--mutant",
        "ReloadOutsideLock",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("I5 obsolete never reused"), "{stdout}");
    let svgs = check_svgs(&dir);
    assert_eq!(svgs.len(), 1, "{svgs:?}");
    let stem = svgs[0].trim_end_matches(".svg");
    let cx = dir.join("counterexamples");
    for ext in ["txt", "mmd", "json", "schedule"] {
        assert!(cx.join(format!("{stem}.{ext}")).exists(), "{stem}.{ext}");
    }
    let timeline = std::fs::read_to_string(cx.join(format!("{stem}.txt"))).expect("txt");
    assert!(timeline.contains("VIOLATED I5 obsolete never reused"));
}

/// The report's `report.json`, parsed.
fn report_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report.json"))
        .expect("report.json parses")
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_scenario_or_mutant_that_matches_nothing_is_bad_usage_listing_the_valid_names() {
    let dir = out_dir("no-such-scenario");
    let d = dir.to_str().expect("utf-8");
    let out = run(&["verify", "--lane", "zoo", "--scenario", "S99", "--out", d]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("valid scenarios") && stderr.contains("s1") && stderr.contains("s11"),
        "{stderr}"
    );
    assert!(!stdout.contains("PASS"), "{stdout}");
    let out = run(&["verify", "--mutant", "NoSuchMutant", "--out", d]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("ReloadOutsideLock"), "{stderr}");
}

#[test]
fn a_scenario_never_silently_drops_the_native_lane() {
    let dir = out_dir("native-scenario");
    let out = run(&[
        "verify",
        "--lane",
        "native",
        "--scenario",
        "S4",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("--scenario"), "{stderr}");
    assert!(!stdout.contains("PASS"), "{stdout}");
}

#[test]
fn an_empty_selection_is_nothing_run() {
    let dir = out_dir("nothing-run");
    let out = run(&[
        "verify",
        "--lane",
        "native",
        "--only",
        "no-such-check",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("verify: FAIL: NOTHING RUN"), "{stdout}");
    let json = report_json(&dir);
    assert_eq!(json["passed"], false);
    assert!(
        json["headline"]
            .as_str()
            .is_some_and(|h| h.contains("NOTHING RUN")),
        "{}",
        json["headline"]
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(html.contains("NOTHING RUN"));
    // A scenario with no zoo row: the zoo selection is empty.
    let empty = fastzap_verification::evidence::scenario_names()
        .into_iter()
        .find(|s| fastzap_verification::zoo::select(Some(s), None).is_empty());
    if let Some(s) = empty {
        let out = run(&[
            "verify",
            "--lane",
            "zoo",
            "--scenario",
            &s,
            "--out",
            dir.to_str().expect("utf-8"),
        ]);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{s}: {stdout}{stderr}");
        assert!(stdout.contains("zoo: the selection is empty"), "{stdout}");
    }
}

#[test]
fn a_smaller_stress_is_a_reduced_run_and_too_few_memory_samples_are_not_judged() {
    let dir = out_dir("reduced");
    let out = run(&[
        "verify",
        "--lane",
        "native",
        "--only",
        "native-stress-long",
        "--stress-ops",
        "1",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    let (stdout, stderr) = texts(&out);
    // Reduced runs may pass, and say what they left out.
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("reduced") && last.contains("--stress-ops 1"),
        "{last}"
    );
    assert!(last.contains("NOT JUDGED allowed"), "{last}");
    let json = report_json(&dir);
    assert_eq!(json["mode"], "reduced");
    let knobs: Vec<&str> = json["knobs"]
        .as_array()
        .expect("knobs")
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    assert!(knobs.contains(&"--stress-ops 1"), "{knobs:?}");
    assert!(
        json["allowed"][0]["what"]
            .as_str()
            .is_some_and(|w| w.contains("native-stress-long") && w.contains("not judged")),
        "{}",
        json["allowed"]
    );
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(html.contains("reduced (") && html.contains("--stress-ops 1"));
}

#[test]
#[ignore = "drives cargo loom: minutes on a cold build; CI runs it"]
fn a_loom_model_cut_short_by_a_bound_is_bounded_not_a_pass() {
    let dir = out_dir("bounded");
    let d = dir.to_str().expect("utf-8");
    let bounded = |extra: &[&str]| {
        let mut args = vec!["verify", "--lane", "loom", "--scenario", "s2", "--out", d];
        args.extend(extra);
        fastzap()
            .args(&args)
            .env("LOOM_MAX_DURATION", "1")
            .output()
            .expect("run fastzap")
    };
    let out = bounded(&[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("BOUNDED: loom s2"), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("FAIL: BOUNDED") && last.contains("LOOM_MAX_DURATION=1"),
        "{last}"
    );
    let json = report_json(&dir);
    let results = json["lanes"][0]["results"].as_array().expect("results");
    assert!(
        results.iter().any(|r| r["verdict"] == "bounded"),
        "{results:?}"
    );
    let out = bounded(&["--allow-bounded"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("PASS") && last.contains("BOUNDED allowed"),
        "{last}"
    );
}

#[test]
fn a_miri_that_cannot_run_fails_the_run() {
    let dir = out_dir("no-miri");
    // No rustup on the path: `.ci/miri` cannot install Miri.
    let out = fastzap()
        .args([
            "verify",
            "--lane",
            "miri",
            "--out",
            dir.to_str().expect("utf-8"),
        ])
        .env("PATH", "/usr/bin:/bin")
        .env_remove("FASTZAP_SKIP_MIRI")
        .output()
        .expect("run fastzap");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("MIRI NOT RUN"), "{stdout}");
    let json = report_json(&dir);
    assert_eq!(json["miri"]["ok"], false);
    assert_eq!(json["passed"], false);
}

/// The native checks' rows name their MMU: by default every check that
/// builds a VM runs on each MMU; `--mmu tdp` runs the TDP MMU's rows alone
/// and is a reduced run; an MMU that does not exist is bad usage.
#[test]
fn the_native_rows_name_their_mmu_and_mmu_selects_one() {
    let mmus_of = |json: &serde_json::Value| -> Vec<(String, String)> {
        json["native"]
            .as_array()
            .expect("native rows")
            .iter()
            .map(|r| {
                (
                    r["check"].as_str().unwrap_or("?").to_string(),
                    r["mmu"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    let dir = out_dir("mmu-both");
    let args = |dir: &Path, mmu: Option<&str>| {
        let mut a = vec![
            "verify".to_string(),
            "--lane".into(),
            "native".into(),
            "--only".into(),
            "audit-scenario".into(),
            "--out".into(),
            dir.to_str().expect("utf-8").into(),
        ];
        if let Some(m) = mmu {
            a.extend(["--mmu".into(), m.into()]);
        }
        a
    };
    let out = fastzap().args(args(&dir, None)).output().expect("run");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let json = report_json(&dir);
    assert_eq!(
        mmus_of(&json),
        [("audit-scenario", "shadow"), ("audit-scenario", "tdp")]
            .map(|(c, m)| (c.to_string(), m.to_string()))
    );
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("| check | mmu | lane |"), "{md}");
    assert!(md.contains("| audit-scenario | tdp | native |"), "{md}");
    assert!(
        !json["knobs"]
            .as_array()
            .expect("knobs")
            .iter()
            .any(|k| k.as_str().is_some_and(|k| k.starts_with("--mmu"))),
        "{}",
        json["knobs"]
    );

    let dir = out_dir("mmu-tdp");
    let out = fastzap()
        .args(args(&dir, Some("tdp")))
        .output()
        .expect("run");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let json = report_json(&dir);
    assert_eq!(
        mmus_of(&json),
        [("audit-scenario".to_string(), "tdp".to_string())]
    );
    assert!(
        json["knobs"]
            .as_array()
            .expect("knobs")
            .iter()
            .any(|k| k == "--mmu tdp"),
        "{}",
        json["knobs"]
    );

    let out = fastzap()
        .args(args(&out_dir("mmu-bad"), Some("ept")))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

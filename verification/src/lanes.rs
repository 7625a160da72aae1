//! # Driving the loom and shuttle lanes
//!
//! The loom and shuttle models are test targets built with their own cfg,
//! profile and target directory. [`run_lane`] runs them the way the lane
//! aliases of `.cargo/config.toml` do (`cargo loom`, `cargo shuttle`: the same
//! command), with `FASTZAP_RESULTS_DIR` set to a directory of the report, and
//! then reads the model results (`fastzap_models::results`) the tests wrote
//! there. The test's own pass/fail lines are parsed too, so that a test that
//! failed without a result still fails the lane.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fastzap_models::results::{ModelResult, RESULTS_DIR_VAR};

/// A model-checking lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelLane {
    /// `cargo loom`.
    Loom,
    /// `cargo shuttle`.
    Shuttle,
}

impl ModelLane {
    /// The lane's name (and its cargo alias).
    pub fn name(self) -> &'static str {
        match self {
            ModelLane::Loom => "loom",
            ModelLane::Shuttle => "shuttle",
        }
    }
}

/// The workspace root (where `.cargo/config.toml` and its aliases live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo to run: the one that runs us, else `cargo`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// One libtest line: a test and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLine {
    /// The test's name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
}

/// What one lane run produced.
#[derive(Debug, Clone)]
pub struct LaneRun {
    /// The lane.
    pub lane: ModelLane,
    /// The model results the tests wrote.
    pub results: Vec<ModelResult>,
    /// Every test libtest reported.
    pub tests: Vec<TestLine>,
    /// Whether cargo exited with success.
    pub success: bool,
    /// cargo's exit status, as text.
    pub status: String,
    /// The whole output of cargo and the tests.
    pub log: PathBuf,
    /// Wall time, build included.
    pub time: Duration,
}

impl LaneRun {
    /// The tests that failed.
    pub fn failed(&self) -> Vec<&TestLine> {
        self.tests.iter().filter(|t| !t.ok).collect()
    }

    /// The result of the model run by `test`, if it wrote one.
    pub fn result_of(&self, test: &str) -> Option<&ModelResult> {
        self.results.iter().find(|r| r.test == test)
    }
}

/// Reads a child's stream to its end on a thread of its own (so that the
/// other stream never blocks on a full pipe), returning the whole text.
fn collect_lines(stream: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    })
}

/// Parses one libtest line (`test name ... ok`).
pub fn parse_test_line(line: &str) -> Option<TestLine> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.rsplit_once(" ... ")?;
    let ok = match verdict.trim() {
        "ok" => true,
        "FAILED" => false,
        _ => return None,
    };
    Some(TestLine {
        name: name.trim().to_string(),
        ok,
    })
}

/// Runs `lane` (`cargo loom` / `cargo shuttle`), only the tests `filters`
/// select if any (by exact name when `exact`, else as substrings), with `env`
/// added; results go to
/// `dir/results/<lane>`, the log to `dir/<lane>.log`. `on_line` sees each
/// test line as it comes (for the progress display).
pub fn run_lane(
    lane: ModelLane,
    filters: &[String],
    exact: bool,
    env: &[(String, String)],
    dir: &Path,
    on_line: &mut dyn FnMut(&str),
) -> std::io::Result<LaneRun> {
    let started = Instant::now();
    let results = dir.join("results").join(lane.name());
    if results.exists() {
        std::fs::remove_dir_all(&results)?;
    }
    std::fs::create_dir_all(&results)?;
    let log_path = dir.join(format!("{}.log", lane.name()));
    let mut command = Command::new(cargo());
    command
        .current_dir(workspace_root())
        .arg(lane.name())
        // Every test binary runs, even after one failed.
        .arg("--no-fail-fast")
        .arg("--")
        .env(RESULTS_DIR_VAR, &results)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if exact {
        command.arg("--exact");
    }
    command.args(filters);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn()?;
    // stderr (cargo's build output, failing tests' messages) on a thread,
    // stdout (libtest's lines) here.
    let stderr = child.stderr.take().map(collect_lines);
    let mut log = String::new();
    let mut tests = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(t) = parse_test_line(&line) {
                tests.push(t);
            }
            on_line(&line);
            log.push_str(&line);
            log.push('\n');
        }
    }
    let status = child.wait()?;
    if let Some(err) = stderr.and_then(|h| h.join().ok()) {
        log.push_str("\n--- stderr ---\n");
        log.push_str(&err);
    }
    std::fs::write(&log_path, &log)?;
    Ok(LaneRun {
        lane,
        results: ModelResult::read_all(&results),
        tests,
        success: status.success(),
        status: status.to_string(),
        log: log_path,
        time: started.elapsed(),
    })
}

/// The variable that lets a developer without nightly skip Miri (`.ci/miri`
/// honours it too); a run that skips it is reduced.
pub const SKIP_MIRI_VAR: &str = "FASTZAP_SKIP_MIRI";

/// How the Miri lane ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiriStatus {
    /// Every test passed, no undefined behaviour.
    Passed,
    /// Undefined behaviour reported.
    Ub,
    /// A test failed, the job timed out, or Miri could not run.
    Failed,
}

/// What `.ci/miri` reported.
#[derive(Debug, Clone)]
pub struct MiriRun {
    /// How it ended.
    pub status: MiriStatus,
    /// Tests that passed under Miri.
    pub passed: u64,
    /// The script's last line (`miri: ...`, `MIRI FAILED: ...`).
    pub summary: String,
    /// The whole output.
    pub log: PathBuf,
    /// Wall time, build included.
    pub time: Duration,
}

impl MiriRun {
    /// Reads `.ci/miri`'s output: its summary line is
    /// `miri: N tests passed, no UB, ...` on success, `MIRI FAILED: ...` or
    /// `MIRI NOT RUN: ...` otherwise; anything else (or exit code non-zero
    /// with a success line) is a failure.
    pub fn parse(output: &str, success: bool) -> (MiriStatus, u64, String) {
        let summary = output
            .lines()
            .rev()
            .find(|l| l.starts_with("miri: ") || l.starts_with("MIRI "))
            .unwrap_or("no summary line from .ci/miri")
            .to_string();
        let passed = summary
            .strip_prefix("miri: ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let status = match passed {
            Some(_) if success && summary.contains("no UB") => MiriStatus::Passed,
            _ if summary.contains("undefined behaviour") => MiriStatus::Ub,
            _ => MiriStatus::Failed,
        };
        (status, passed.unwrap_or(0), summary)
    }
}

/// Runs `.ci/miri` (the one list of what Miri runs), its output to
/// `dir/miri.log`; `on_line` sees each line.
pub fn run_miri(dir: &Path, on_line: &mut dyn FnMut(&str)) -> std::io::Result<MiriRun> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)?;
    let log_path = dir.join("miri.log");
    let mut child = Command::new("bash")
        .arg(workspace_root().join(".ci").join("miri"))
        .current_dir(workspace_root())
        // verify decides about skipping: the script must run or fail.
        .env_remove(SKIP_MIRI_VAR)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().map(collect_lines);
    let mut log = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            on_line(&line);
            log.push_str(&line);
            log.push('\n');
        }
    }
    let status = child.wait()?;
    let (passed_status, passed, summary) = MiriRun::parse(&log, status.success());
    if let Some(err) = stderr.and_then(|h| h.join().ok()) {
        log.push_str("\n--- stderr ---\n");
        log.push_str(&err);
    }
    std::fs::write(&log_path, &log)?;
    Ok(MiriRun {
        status: passed_status,
        passed,
        summary,
        log: log_path,
        time: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_parsed() {
        assert_eq!(
            parse_test_line("test s1_fault_vs_invalidate_all ... ok"),
            Some(TestLine {
                name: "s1_fault_vs_invalidate_all".into(),
                ok: true
            })
        );
        assert_eq!(
            parse_test_line("test a::b ... FAILED").map(|t| t.ok),
            Some(false)
        );
        assert_eq!(parse_test_line("test result: ok. 1 passed"), None);
        assert_eq!(parse_test_line("test replay ... ignored"), None);
    }

    #[test]
    fn the_miri_summary_is_read_and_a_missing_miri_is_a_failure() {
        let ok =
            "test result: ok. 12 passed\nmiri: 31 tests passed, no UB, MIRIFLAGS=\"x\", 200s\n";
        assert_eq!(MiriRun::parse(ok, true).0, MiriStatus::Passed);
        assert_eq!(MiriRun::parse(ok, true).1, 31);
        // The same line with a failing exit status is not a pass.
        assert_eq!(MiriRun::parse(ok, false).0, MiriStatus::Failed);
        let ub = "MIRI FAILED: undefined behaviour reported (20s):\nerror: Undefined Behavior\n";
        assert_eq!(MiriRun::parse(ub, false).0, MiriStatus::Ub);
        let absent = "MIRI NOT RUN: rustup component add failed\n";
        assert_eq!(MiriRun::parse(absent, false).0, MiriStatus::Failed);
        assert_eq!(MiriRun::parse("", true).0, MiriStatus::Failed);
    }
}

//! What every writer shows besides the rows: the headline and its verdict,
//! the environment, coverage by invariant, and the zoo's amount and time
//! cells.

use fastzap::check::Invariant;

use super::{Verdict, ZooOutcome};

pub(super) fn fmt_secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s < 0.1 => format!("{:.1} ms", s * 1000.0),
        Some(s) if s < 10.0 => format!("{s:.2} s"),
        Some(s) => format!("{s:.1} s"),
        None => "-".to_string(),
    }
}

pub(super) fn amount(z: &ZooOutcome) -> String {
    match z.amount {
        Some(n) => format!("{n} {}", z.unit),
        None => "-".to_string(),
    }
}

/// Versions of the tools, read from the lock file and the toolchain.
pub fn environment(v: &Verdict) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let tool = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    env.push(("rustc".to_string(), tool("rustc")));
    env.push(("cargo".to_string(), tool(&crate::lanes::cargo())));
    let lock = std::fs::read_to_string(crate::lanes::workspace_root().join("Cargo.lock"))
        .unwrap_or_default();
    for krate in ["loom", "shuttle", "crossbeam-epoch", "proptest", "arc-swap"] {
        let needle = format!("name = \"{krate}\"\nversion = \"");
        let version = lock
            .split(&needle)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        env.push((krate.to_string(), version.to_string()));
    }
    let o = &v.plan.options;
    env.push(("mode".to_string(), v.mode_text()));
    env.push(("seed".to_string(), format!("{:#x}", o.seed)));
    env.push((
        "native".to_string(),
        format!(
            "stress {} ops (bound {} s), conformance {} cases",
            o.stress_ops,
            o.stress_wall.as_secs(),
            o.cases
        ),
    ));
    for lane in &v.lanes {
        let mut settings: Vec<String> = lane.results.iter().map(|r| r.settings.clone()).collect();
        settings.sort();
        settings.dedup();
        env.push((
            format!("{} settings", lane.lane.name()),
            settings.join("; "),
        ));
        let executions: u64 = lane.results.iter().map(|r| r.executions).sum();
        env.push((
            format!("{} executions", lane.lane.name()),
            format!(
                "{executions} over {} model runs, {} tests",
                lane.results.len(),
                lane.tests.len()
            ),
        ));
    }
    env.push((
        "machine".to_string(),
        format!(
            "{} CPUs available",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    ));
    env
}

/// Per invariant: the checks that covered it.
pub fn coverage(v: &Verdict) -> Vec<(Invariant, Vec<String>)> {
    Invariant::ALL
        .iter()
        .map(|i| {
            let mut checks = Vec::new();
            if let Some(report) = &v.native {
                for row in &report.rows {
                    if row.what.contains("audit") {
                        checks.push(format!("native {}", row.label()));
                    }
                }
            }
            // A correct model that passed covers what it asserts; a mutant's
            // run covers only the invariant its zoo row expects (below).
            for r in v.lanes.iter().flat_map(|l| &l.results) {
                if r.verdict == fastzap_models::results::Verdict::Pass
                    && r.invariants.iter().any(|n| n == i.name())
                {
                    checks.push(format!(
                        "{} {} ({} executions)",
                        r.lane, r.model, r.executions
                    ));
                }
            }
            for z in &v.zoo {
                if z.row.expected == *i {
                    checks.push(format!("zoo {} ({})", z.row.subject.name(), z.verdict));
                }
            }
            (*i, checks)
        })
        .collect()
}

/// The report's title, whether the outcome is the wanted one, and the
/// outcome: PASS or FAIL, or for `--mutant` whether it was caught.
pub(super) fn headline(v: &Verdict) -> (String, bool, &'static str) {
    match &v.plan.mutant {
        Some(m) => {
            let caught = v.zoo.first().is_some_and(|z| z.caught());
            (
                format!("fastzap verify --mutant {m}:"),
                caught,
                if caught { "CAUGHT" } else { "NOT CAUGHT" },
            )
        }
        None => ("fastzap verify:".to_string(), v.passed(), ""),
    }
}

/// The headline's verdict: `CAUGHT`/`NOT CAUGHT` for `--mutant`, else
/// [`Verdict::status_words`] (`FAIL: NOTHING RUN [reduced: --lane zoo]`).
pub(super) fn verdict_words(v: &Verdict) -> String {
    match headline(v) {
        (_, _, "") => v.status_words(),
        (_, _, words) => words.to_string(),
    }
}

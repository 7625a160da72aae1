//! # A mutant in a child process
//!
//! A mutant may free memory that is still in use, and its corruption must
//! not crash the runner or leak into the next check, so `verify` runs each
//! native mutant run in a child process of its own executable: the hidden
//! command [`CHILD_COMMAND`], handled by [`child_main`]. The child prints one
//! line per finding as soon as it has it (`CAUGHT <what>`, newlines folded
//! into ` | `) and `DONE <amount>` when it ends; [`run_child`] starts it and
//! reads that stream into a [`ChildResult`] (the first `CAUGHT`, at most 300
//! characters, and the `DONE` amount). A child that dies has no `DONE`: its
//! exit status says how it ended.

use fastzap::checking::Mutant;

use crate::conformance;
use crate::scripted::{move_case, scenario_reporting};
use crate::stress::{self, StressConfig};

/// The hidden command that runs one mutant in a child process: a mutant may
/// free memory that is still in use, and its corruption must not crash the
/// runner or leak into the next check.
pub const CHILD_COMMAND: &str = "__mutant";

/// Which mutant run a child process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutantRun {
    /// [`scenario`](crate::scripted::scenario) with the audit after every step.
    Scenario,
    /// [`move_case`]: a MOVE then a fault into the moved range, audited.
    Move,
    /// [`conformance::run_many_with`], 500 cases.
    Conformance,
    /// The audited native stress, 200,000 operations within 20 s.
    Stress,
    /// [`tlb_cases`](crate::tlb_cases::tlb_cases): the flush-site twins'
    /// sequential cases, audit after every step.
    Tlb,
}

impl MutantRun {
    /// The run's name.
    pub fn name(self) -> &'static str {
        match self {
            MutantRun::Scenario => "scenario",
            MutantRun::Move => "move",
            MutantRun::Conformance => "conformance",
            MutantRun::Stress => "stress",
            MutantRun::Tlb => "tlb",
        }
    }
}

/// The body of the child process: runs `kind` with the mutant named `mutant`
/// and prints `CAUGHT <what>` lines as soon as it finds something, then
/// `DONE <amount>`. Returns the exit code.
pub fn child_main(args: &[String]) -> u8 {
    let (Some(kind), Some(name), Some(seed)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: fastzap {CHILD_COMMAND} scenario|conformance|stress MUTANT SEED");
        return 2;
    };
    let Some(mutant) = Mutant::ALL.into_iter().find(|m| format!("{m:?}") == *name) else {
        eprintln!("unknown mutant {name}");
        return 2;
    };
    let seed = seed.parse().unwrap_or(0);
    let say = |line: &str| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.replace('\n', " | "));
        let _ = out.flush();
    };
    match kind.as_str() {
        "scenario" => {
            let r = scenario_reporting(Some(mutant), &mut |p| say(&format!("CAUGHT {p}")));
            say(&format!("DONE {}", r.steps));
        }
        "tlb" => {
            let r = crate::tlb_cases::tlb_cases(Some(mutant), &mut |p| say(&format!("CAUGHT {p}")));
            say(&format!("DONE {}", r.steps));
        }
        "move" => {
            let r = move_case(Some(mutant));
            for p in &r.problems {
                say(&format!("CAUGHT {p}"));
            }
            say(&format!("DONE {}", r.steps));
        }
        "conformance" => {
            let r = conformance::run_many_with(500, seed, Some(mutant));
            if let Some(why) = r.failure {
                // The lengths first: the runner keeps 300 characters.
                let shrunk = r.shrunk.unwrap_or_default();
                say(&format!(
                    "CAUGHT shrunk to {} transitions from {}: {why}",
                    shrunk.to, shrunk.from
                ));
            }
            say(&format!("DONE {}", r.cases));
        }
        "stress" => {
            let mut config =
                StressConfig::new(200_000, std::time::Duration::from_secs(20), seed).audited();
            config.vm.mutant = Some(mutant);
            let r = stress::run(&config);
            if let Some(first) = r.violations.first() {
                say(&format!("CAUGHT {first}"));
            }
            say(&format!("DONE {}", r.total_ops));
        }
        other => {
            eprintln!("unknown run {other}");
            return 2;
        }
    }
    0
}

/// What a child process found: the first problem, the amount it reported,
/// and how it ended.
#[derive(Debug, Clone)]
pub struct ChildResult {
    /// The first `CAUGHT` line.
    pub caught: Option<String>,
    /// The `DONE` amount, if it got that far.
    pub amount: Option<u64>,
    /// The exit status, as text.
    pub status: String,
}

/// Runs one mutant in a child process of the current executable.
pub fn run_child(kind: MutantRun, mutant: Mutant, seed: u64) -> Result<ChildResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let output = std::process::Command::new(exe)
        .args([
            CHILD_COMMAND,
            kind.name(),
            &format!("{mutant:?}"),
            &seed.to_string(),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let caught = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CAUGHT "))
        .map(|s| s.chars().take(300).collect());
    let amount = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DONE "))
        .and_then(|n| n.trim().parse().ok());
    Ok(ChildResult {
        caught,
        amount,
        status: output.status.to_string(),
    })
}

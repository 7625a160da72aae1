//! `fastzap`: the verification runner. `fastzap verify --help` says it all;
//! the flow is in `fastzap_verification::run`, the report in
//! `fastzap_verification::output`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fastzap_verification::checks;
use fastzap_verification::output;
use fastzap_verification::progress::Progress;
use fastzap_verification::publish;
use fastzap_verification::replay;
use fastzap_verification::report::Options;
use fastzap_verification::run::{Plan, verify};

#[derive(Debug, Parser)]
#[command(name = "fastzap", version, about = "fastzap's verification runner")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every lane (native checks, loom, shuttle) and the bug zoo, prints
    /// the zoo table and writes the report directory. Exit status: 0 when
    /// everything passes, 1 when a check fails or a mutant escapes or names
    /// the wrong invariant, 2 for bad usage. With --mutant: 1 when the
    /// mutant is caught (its counterexample is shown), 3 when it escapes.
    Verify(VerifyArgs),
    /// Rewrites the generated blocks of README.md, BENCHMARKS.md and
    /// core/tests/LITMUS.md from the committed results files (`--check`:
    /// compare only; exit 1 when out of step). `--zoo` and `--litmus` first
    /// copy a new run into verification/results/.
    Publish(PublishArgs),
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// A verify report (`target/fastzap-report/report.json`) whose zoo rows
    /// become verification/results/zoo.json.
    #[arg(long, value_name = "REPORT")]
    zoo: Option<PathBuf>,
    /// The command that wrote that report (default: inferred from it).
    #[arg(long, value_name = "TEXT", requires = "zoo")]
    command: Option<String>,
    /// The lines `FASTZAP_LITMUS_RESULTS=FILE cargo loom --test loom_litmus`
    /// wrote; they become verification/results/litmus.json.
    #[arg(long, value_name = "FILE")]
    litmus: Option<PathBuf>,
    /// Compare only: exit 1 when a block differs from what would be written.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LaneArg {
    /// The audit, the stresses, conformance, the native mutant runs.
    Native,
    /// `cargo shuttle`: the scenarios under random and PCT schedules.
    Shuttle,
    /// `cargo loom`: the scenarios under every interleaving (bounded).
    Loom,
    /// The bug zoo: every mutant against its cheapest checker.
    Zoo,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// A short run, for CI: native checks at a tenth of their size, the cheap
    /// loom models, shuttle at 250 executions per scheduler, the whole zoo.
    #[arg(long)]
    quick: bool,
    /// Only these lanes (repeat or comma-separate; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    lane: Vec<LaneArg>,
    /// Only this scenario's models and zoo rows (`S4`, `s3s`...).
    #[arg(long, value_name = "S")]
    scenario: Option<String>,
    /// Runs one zoo row (a `Mutant` name, `ebr::NoFenceInPin`,
    /// `forced::no_grace_period`...) and shows its counterexample.
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Re-runs a shuttle schedule file (`counterexamples/<name>.schedule` of
    /// a report) and prints its timeline.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// The report directory.
    #[arg(long, value_name = "DIR", default_value_os_t = default_out())]
    out: PathBuf,
    /// Operations per native stress.
    #[arg(long, value_name = "N")]
    stress_ops: Option<u64>,
    /// Wall-clock bound of each native stress, in seconds.
    #[arg(long, value_name = "SECS")]
    stress_secs: Option<u64>,
    /// Conformance cases (default: `PROPTEST_CASES` if set, else 10,000, or
    /// 300 with --quick).
    #[arg(long, value_name = "N")]
    cases: Option<u32>,
    /// The seed for everything random in the native checks.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Only the native checks whose name contains this (repeatable).
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
}

/// `target/fastzap-report` of this workspace.
fn default_out() -> PathBuf {
    fastzap_verification::lanes::workspace_root()
        .join("target")
        .join("fastzap-report")
}

fn options(args: &VerifyArgs) -> Options {
    let mut o = if args.quick {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(n) = args.stress_ops {
        o.stress_ops = n;
    }
    if let Some(s) = args.stress_secs {
        o.stress_wall = Duration::from_secs(s);
    }
    let env_cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok());
    if let Some(c) = args.cases.or(env_cases) {
        o.cases = c;
    }
    if let Some(s) = args.seed {
        o.seed = s;
    }
    o.only = args.only.clone();
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(checks::CHILD_COMMAND) {
        return ExitCode::from(checks::child_main(&args[1..]));
    }
    let args = match Cli::parse().command {
        Command::Verify(args) => args,
        Command::Publish(p) => {
            let request = publish::Request {
                zoo: p.zoo,
                zoo_command: p.command,
                litmus: p.litmus,
                check: p.check,
            };
            let root = fastzap_verification::lanes::workspace_root();
            return ExitCode::from(publish::main(&root, &request));
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; `cargo run --release -- verify` is much faster");
    }
    if let Some(file) = &args.replay {
        let out = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
        return ExitCode::from(replay::replay(file, &out));
    }
    // The tests that write results run in their package's directory: they
    // need an absolute path.
    let args = VerifyArgs {
        out: std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone()),
        ..args
    };
    let all = args.lane.is_empty();
    let has = |l: LaneArg| all || args.lane.contains(&l);
    let plan = Plan {
        native: has(LaneArg::Native) && args.scenario.is_none(),
        loom: has(LaneArg::Loom),
        shuttle: has(LaneArg::Shuttle),
        zoo: has(LaneArg::Zoo),
        scenario: args.scenario.clone(),
        mutant: args.mutant.clone(),
        options: options(&args),
        out: args.out.clone(),
    };
    let plan = if plan.mutant.is_some() {
        // One mutant: its zoo row only.
        Plan {
            native: false,
            loom: false,
            shuttle: false,
            zoo: true,
            ..plan
        }
    } else {
        plan
    };
    let verdict = verify(&plan, &Progress::detect());
    if let Some(native) = &verdict.native {
        println!("{}", native.table());
    }
    for lane in &verdict.lanes {
        println!(
            "{} lane: {} tests ({} failed), {} model results ({} not as expected), {:.1} s",
            lane.lane.name(),
            lane.tests.len(),
            lane.failed().len(),
            lane.results.len(),
            lane.results.iter().filter(|r| !r.verdict.is_good()).count(),
            lane.time.as_secs_f64()
        );
        for t in lane.failed() {
            println!("  FAILED {} (log: {})", t.name, lane.log.display());
        }
    }
    if !verdict.zoo.is_empty() {
        println!("\n{}", output::zoo_table(&verdict.zoo));
        if let Some((median, max)) = verdict.detection_times() {
            println!("median time to detect {median:.2} s, largest {max:.2} s");
        }
    }
    for e in &verdict.lane_errors {
        println!("ERROR: {e}");
    }
    let written = match output::write_report(&verdict, &plan.out) {
        Ok(w) => {
            eprintln!("report: {}", plan.out.join("report.html").display());
            w
        }
        Err(e) => {
            eprintln!("could not write the report to {}: {e}", plan.out.display());
            return ExitCode::FAILURE;
        }
    };
    if plan.mutant.is_some() {
        for c in &written {
            let text = std::fs::read_to_string(plan.out.join(&c.txt)).unwrap_or_default();
            println!(
                "\ncounterexample {} ({}):\n{text}",
                c.name,
                c.invariants.join(", ")
            );
            println!("sequence diagram: {}", plan.out.join(&c.svg).display());
            if let Some(s) = &c.schedule {
                println!(
                    "replay: fastzap verify --replay {}",
                    plan.out.join(s).display()
                );
            }
        }
        return match verdict.zoo.first() {
            Some(z) if z.caught() => {
                println!(
                    "{} caught: {} reported by {}",
                    z.row.subject.name(),
                    z.reported.as_deref().unwrap_or("?"),
                    z.row.checker.describe()
                );
                ExitCode::from(1)
            }
            Some(z) => {
                println!("{}: {} ({})", z.row.subject.name(), z.verdict, z.detail);
                ExitCode::from(3)
            }
            None => ExitCode::from(2),
        };
    }
    println!(
        "\nverify: {} in {:.1} s",
        if verdict.passed() { "PASS" } else { "FAIL" },
        verdict.total.as_secs_f64()
    );
    if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

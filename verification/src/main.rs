//! `fastzap`: the verification runner. `fastzap verify --help` says it all;
//! the flow is in `fastzap_verification::run`, the report in
//! `fastzap_verification::report`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fastzap::Mmu;
use fastzap_verification::child;
use fastzap_verification::evidence::{self, Selection};
use fastzap_verification::lanes::SKIP_MIRI_VAR;
use fastzap_verification::progress::Progress;
use fastzap_verification::publish;
use fastzap_verification::replay;
use fastzap_verification::report::{self, Options, Plan};
use fastzap_verification::run::verify;

#[derive(Debug, Parser)]
#[command(name = "fastzap", version, about = "fastzap's verification runner")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every lane (native checks, loom, shuttle, Miri) and the bug zoo,
    /// prints the zoo table and writes the report directory. The mode is
    /// `full`, or `reduced` with every knob that shrank the run listed.
    /// Exit status: 0 when everything passes, 1 when a check fails, a mutant
    /// escapes or names the wrong invariant, or the evidence falls short
    /// (NOTHING RUN, UNDER-CHECKED, BOUNDED, NOT JUDGED in a full run), 2 for
    /// bad usage (a scenario or mutant that matches nothing, with the valid
    /// names). With --mutant: 1 when the mutant is caught (its
    /// counterexample is shown), 3 when it escapes.
    Verify(VerifyArgs),
    /// Rewrites the generated blocks of README.md, BENCHMARKS.md,
    /// core/tests/LITMUS.md and SPEC.md from the committed results files (`--check`:
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
    /// `.ci/miri`: Miri on the unsafe boundary (skipped by --quick unless
    /// named; FASTZAP_SKIP_MIRI=1 skips it from the default lanes).
    Miri,
}

impl LaneArg {
    fn name(self) -> &'static str {
        match self {
            LaneArg::Native => "native",
            LaneArg::Shuttle => "shuttle",
            LaneArg::Loom => "loom",
            LaneArg::Zoo => "zoo",
            LaneArg::Miri => "miri",
        }
    }
}

/// An MMU of `fastzap::Mmu::ALL`, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MmuArg {
    /// The shadow MMU (`mmu.c`).
    Shadow,
    /// The TDP MMU (`tdp_mmu.c`).
    Tdp,
}

impl MmuArg {
    fn mmu(self) -> Mmu {
        match self {
            MmuArg::Shadow => Mmu::Shadow,
            MmuArg::Tdp => Mmu::Tdp,
        }
    }
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
    /// Only this scenario's models and zoo rows (`S4`, `s3s`...); not with
    /// `--lane native` (the native checks have no scenarios).
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
    /// Only the native checks on this MMU (default: each of them); the loom,
    /// shuttle and zoo lanes are not affected. A reduced run.
    #[arg(long, value_enum, value_name = "MMU")]
    mmu: Option<MmuArg>,
    /// Lets loom models cut short by `LOOM_MAX_PERMUTATIONS` or
    /// `LOOM_MAX_DURATION` (BOUNDED) pass; the headline says so.
    #[arg(long)]
    allow_bounded: bool,
}

/// `target/fastzap-report` of this workspace.
fn default_out() -> PathBuf {
    fastzap_verification::lanes::workspace_root()
        .join("target")
        .join("fastzap-report")
}

/// `PROPTEST_CASES`, if set to a number.
fn env_cases() -> Option<u32> {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
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
    if let Some(c) = args.cases.or(env_cases()) {
        o.cases = c;
    }
    if let Some(s) = args.seed {
        o.seed = s;
    }
    o.only = args.only.clone();
    if let Some(m) = args.mmu {
        o.mmus = vec![m.mmu()];
    }
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(child::CHILD_COMMAND) {
        return ExitCode::from(child::child_main(&args[1..]));
    }
    match Cli::parse().command {
        Command::Verify(args) => verify_main(args),
        Command::Publish(p) => publish_main(p),
    }
}

/// `fastzap publish`: the generated blocks from the committed results files.
fn publish_main(p: PublishArgs) -> ExitCode {
    let request = publish::Request {
        zoo: p.zoo,
        zoo_command: p.command,
        litmus: p.litmus,
        check: p.check,
    };
    let root = fastzap_verification::lanes::workspace_root();
    ExitCode::from(publish::main(&root, &request))
}

/// Bad usage: the message on stderr, exit 2.
fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn verify_main(args: VerifyArgs) -> ExitCode {
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; `cargo run --release -- verify` is much faster");
    }
    if let Some(file) = &args.replay {
        let out = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
        return ExitCode::from(replay::replay(file, &out));
    }
    if let Err(e) = evidence::check_names(args.scenario.as_deref(), args.mutant.as_deref()) {
        return usage(&e);
    }
    if args.scenario.is_some() && args.lane.contains(&LaneArg::Native) {
        return usage(
            "--scenario selects models and zoo rows; the native checks have no scenarios \
             (use --only for them, or --lane loom,shuttle,zoo with --scenario)",
        );
    }
    // The tests that write results run in their package's directory: they
    // need an absolute path.
    let args = VerifyArgs {
        out: std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone()),
        ..args
    };
    let all = args.lane.is_empty();
    let has = |l: LaneArg| all || args.lane.contains(&l);
    // Miri runs in the default lanes unless skipped on purpose, and with
    // --quick only when named.
    let skip_var = std::env::var(SKIP_MIRI_VAR)
        .ok()
        .filter(|v| !v.is_empty() && v != "0");
    let miri_named = args.lane.contains(&LaneArg::Miri);
    let miri_skipped = if args.mutant.is_some() || miri_named {
        None
    } else if !has(LaneArg::Miri) {
        Some("not selected".to_string())
    } else if let Some(v) = &skip_var {
        Some(format!("{SKIP_MIRI_VAR}={v}"))
    } else if args.quick {
        Some("--quick".to_string())
    } else if args.scenario.is_some() {
        Some("--scenario".to_string())
    } else {
        None
    };
    let options = options(&args);
    let selection = Selection {
        quick: args.quick,
        // Naming every lane is the full run.
        lanes: if LaneArg::value_variants()
            .iter()
            .all(|l| args.lane.contains(l))
        {
            Vec::new()
        } else {
            args.lane.iter().map(|l| l.name().to_string()).collect()
        },
        scenario: args.scenario.clone(),
        mutant: args.mutant.clone(),
        cases: match (args.cases, env_cases()) {
            (Some(c), _) => Some(("--cases", c)),
            (None, Some(c)) => Some(("PROPTEST_CASES", c)),
            (None, None) => None,
        },
        stress_ops: args.stress_ops,
        stress_secs: args.stress_secs,
        miri_skipped: miri_skipped.clone(),
    };
    let knobs = evidence::knobs(&selection, &options, &|v| std::env::var(v).ok());
    let plan = Plan {
        native: has(LaneArg::Native) && args.scenario.is_none(),
        loom: has(LaneArg::Loom),
        shuttle: has(LaneArg::Shuttle),
        zoo: has(LaneArg::Zoo),
        miri: has(LaneArg::Miri) && miri_skipped.is_none(),
        knobs,
        allow_bounded: args.allow_bounded,
        scenario: args.scenario.clone(),
        mutant: args.mutant.clone(),
        options,
        out: args.out.clone(),
    };
    let plan = if plan.mutant.is_some() {
        // One mutant: its zoo row only.
        Plan {
            native: false,
            loom: false,
            shuttle: false,
            zoo: true,
            miri: false,
            ..plan
        }
    } else {
        plan
    };
    if let Some(s) = &args.scenario
        && all
    {
        eprintln!("note: --scenario {s} selects models and zoo rows: the native checks do not run");
    }
    if let Some(why) = &miri_skipped {
        eprintln!("note: Miri skipped ({why}): the run is reduced");
    }
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
        println!("\n{}", report::zoo_table(&verdict.zoo));
        if let Some((median, max)) = verdict.detection_times() {
            println!("median time to detect {median:.2} s, largest {max:.2} s");
        }
    }
    if let Some(m) = &verdict.miri {
        println!(
            "miri lane: {} ({:.1} s, log {})",
            m.summary,
            m.time.as_secs_f64(),
            m.log.display()
        );
    }
    for e in &verdict.lane_errors {
        println!("ERROR: {e}");
    }
    let written = match report::write_report(&verdict, &plan.out) {
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
    for (gap, what) in verdict.gaps() {
        println!("{}: {what}", gap.name());
    }
    for (gap, what) in verdict.allowed() {
        println!("{} (allowed in this run): {what}", gap.name());
    }
    println!(
        "\nverify: {} in {:.1} s",
        verdict.status_words(),
        verdict.total.as_secs_f64()
    );
    if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmu_names_every_mmu_by_its_own_name() {
        let names: Vec<String> = MmuArg::value_variants()
            .iter()
            .map(|m| m.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, Mmu::ALL.map(Mmu::name));
        for m in MmuArg::value_variants() {
            assert_eq!(m.to_possible_value().unwrap().get_name(), m.mmu().name());
        }
    }
}

//! `fastzap`: the verification runner.
//!
//! ```text
//! fastzap verify [--quick] [--stress-ops N] [--stress-secs N] [--cases N] [--seed N] [--only NAME]... [--out DIR]
//! ```
//!
//! Runs every check of `fastzap_verification::checks::all`, prints progress
//! on stderr and a table on stdout, writes the table as markdown to
//! `DIR/report.md` (default `verify-report`), and exits 0 only if every check
//! passed.

use std::process::ExitCode;
use std::time::Duration;

use fastzap_verification::checks;
use fastzap_verification::report::{Options, run_checks};

const USAGE: &str = "usage: fastzap verify [--quick] [--stress-ops N] [--stress-secs N] [--cases N] [--seed N] [--only NAME]... [--out DIR]";

fn parse(args: &[String]) -> Result<(Options, String), String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.to_string());
    };
    if command != "verify" {
        return Err(format!("unknown command {command:?}\n{USAGE}"));
    }
    let quick = rest.iter().any(|a| a == "--quick");
    let mut options = if quick {
        Options::quick()
    } else {
        Options::full()
    };
    let mut out = "verify-report".to_string();
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        if arg == "--quick" {
            continue;
        }
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
                .cloned()
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{arg}: {v:?} is not a number"))
        };
        match arg.as_str() {
            "--stress-ops" => options.stress_ops = number(value()?)?,
            "--stress-secs" => options.stress_wall = Duration::from_secs(number(value()?)?),
            "--cases" => {
                options.cases =
                    u32::try_from(number(value()?)?).map_err(|_| "--cases: too many".to_string())?
            }
            "--seed" => options.seed = number(value()?)?,
            "--out" => out = value()?,
            "--only" => options.only.push(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok((options, out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(checks::CHILD_COMMAND) {
        return ExitCode::from(checks::child_main(&args[1..]));
    }
    let (options, out) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; `cargo run --release -- verify` is much faster");
    }
    let report = run_checks(&checks::all(), &options);
    println!("{}", report.table());
    let markdown = report.markdown(&options);
    let path = std::path::Path::new(&out).join("report.md");
    match std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, markdown)) {
        Ok(()) => eprintln!("report written to {}", path.display()),
        Err(e) => {
            eprintln!("could not write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! The tables for the terminal: the native checks' and the zoo's.

use std::fmt::Write as _;

use super::summary::{amount, fmt_secs};
use super::{Report, ZooOutcome, mmu_name};

impl Report {
    /// The report as a plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<7} {:<10} {:>22} {:>9}  result",
            "check", "mmu", "lane", "amount", "time"
        );
        for r in &self.rows {
            let amount = format!("{} {}", r.outcome.amount, r.outcome.unit);
            let _ = writeln!(
                out,
                "{:<24} {:<7} {:<10} {:>22} {:>8.2}s  {}",
                r.name,
                mmu_name(r.mmu),
                r.lane.name(),
                amount,
                r.time.as_secs_f64(),
                if r.outcome.passed { "PASS" } else { "FAIL" }
            );
        }
        let _ = writeln!(
            out,
            "total {:.2}s: {}",
            self.total.as_secs_f64(),
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }
}

/// The zoo table for the terminal.
pub fn zoo_table(zoo: &[ZooOutcome]) -> String {
    let mut out = format!(
        "{:<30} {:<28} {:<28} {:<28} {:>18} {:>9}  verdict\n",
        "mutant", "invariant expected", "invariant reported", "checker", "until detection", "time"
    );
    for z in zoo {
        let checker = z.row.checker.describe();
        let _ = writeln!(
            out,
            "{:<30} {:<28} {:<28} {:<28} {:>18} {:>9}  {}",
            z.row.subject.name(),
            z.row.expected.name(),
            z.reported.as_deref().unwrap_or("-"),
            checker.chars().take(28).collect::<String>(),
            amount(z),
            fmt_secs(z.seconds),
            z.verdict
        );
    }
    out
}

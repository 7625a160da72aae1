//! core/tests/LITMUS.md's counts, from `verification/results/litmus.json`.
//!
//! `core/tests/loom_litmus.rs` appends one JSON line per model it runs to the
//! file that `FASTZAP_LITMUS_RESULTS` names: the test, the model, its
//! preemption bound, executions, time, whether loom failed it, and how often
//! each named outcome was witnessed. [`LitmusResults::import`] keeps the last
//! line of each model and test; [`LitmusResults::blocks`] renders LITMUS.md's
//! three tables from them. Only tests that run write lines: the `#[ignore]`d
//! ones, which no lane runs, have no numbers to publish.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Block;

/// The command that writes the lines (with `FASTZAP_LITMUS_RESULTS` set):
/// the loom lane's settings for core's `loom_litmus` alone (`cargo loom
/// --test loom_litmus` would run every test of the lane, because the alias
/// says `--tests`).
pub const COMMAND: &str = "cargo test --profile checked --target-dir target/loom --config \"build.rustflags=['--cfg','loom','--cfg','crossbeam_loom']\" -p fastzap --test loom_litmus";

/// The document.
pub const DOC: &str = "core/tests/LITMUS.md";

/// One outcome and how often it was witnessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The outcome, as the test names it.
    pub outcome: String,
    /// Executions that reached it.
    pub count: u64,
}

/// One model run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The test function.
    pub test: String,
    /// The model (the litmus shape and backend).
    pub model: String,
    /// `explored` (run to completion), `caught` (a mutant loom must fail),
    /// `matrix` (a shape run with an EBR mutant, either way).
    pub kind: String,
    /// The EBR mutant, for `matrix`.
    pub mutant: Option<String>,
    /// loom's preemption bound.
    pub bound: u64,
    /// Executions explored (until the failure, when loom failed it).
    pub executions: u64,
    /// Wall time of the model.
    pub seconds: f64,
    /// Whether loom failed the model.
    pub caught: bool,
    /// The named outcomes and their counts.
    pub outcomes: Vec<Outcome>,
}

/// `verification/results/litmus.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LitmusResults {
    /// The command that measured them.
    pub command: String,
    /// When the lines were written (UTC).
    pub date: String,
    /// `N CPUs, <model>` of the machine that published them.
    pub machine: String,
    /// The records, in the order the tests wrote them.
    pub records: Vec<Record>,
}

fn key(r: &Record) -> (&str, &str, Option<&str>) {
    (&r.test, &r.model, r.mutant.as_deref())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl LitmusResults {
    /// The records of the lines file at `path` (the last line of each model
    /// and test wins, in the place of its first).
    pub fn import(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut records: Vec<Record> = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let r: Record = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            match records.iter_mut().find(|o| key(o) == key(&r)) {
                Some(old) => *old = r,
                None => records.push(r),
            }
        }
        if records.is_empty() {
            return Err(format!("{}: no litmus records", path.display()));
        }
        Ok(LitmusResults {
            command: COMMAND.to_string(),
            date: super::file_date(path)?,
            machine: super::this_machine(),
            records,
        })
    }

    /// Reads the committed results.
    pub fn read(path: &Path) -> Result<Self, String> {
        super::read_json(path)
    }

    /// Writes the results file.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        super::write_json(self, path)
    }

    fn of_kind(&self, kind: &str) -> Vec<&Record> {
        let mut v: Vec<&Record> = self.records.iter().filter(|r| r.kind == kind).collect();
        v.sort_by(|a, b| key(a).cmp(&key(b)));
        v
    }

    fn run(&self) -> String {
        let mut tests: Vec<&str> = self.records.iter().map(|r| r.test.as_str()).collect();
        tests.sort();
        tests.dedup();
        let executions: u64 = self.records.iter().map(|r| r.executions).sum();
        let seconds: f64 = self.records.iter().map(|r| r.seconds).sum();
        super::bench::wrap(&format!(
            "Measured by `FASTZAP_LITMUS_RESULTS=<file> {}` on {}, {}: {} tests ran {} \
             models, {} executions in {:.1} s of model time.",
            self.command,
            self.date,
            self.machine,
            tests.len(),
            self.records.len(),
            thousands(executions),
            seconds
        ))
    }

    fn explored(&self) -> String {
        let mut out = String::from(
            "| test | model | preemption bound | executions | outcomes witnessed (executions) |\n|---|---|---:|---:|---|\n",
        );
        for r in self.of_kind("explored") {
            let outcomes = if r.outcomes.is_empty() {
                "-".to_string()
            } else {
                r.outcomes
                    .iter()
                    .map(|o| format!("{}: {}", o.outcome, thousands(o.count)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                r.test,
                r.model,
                r.bound,
                thousands(r.executions),
                outcomes
            );
        }
        out
    }

    fn caught(&self) -> String {
        let mut out = String::from(
            "| test | model | preemption bound | loom failed it after (executions) |\n|---|---|---:|---|\n",
        );
        for r in self.of_kind("caught") {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                r.test,
                r.model,
                r.bound,
                if r.caught {
                    thousands(r.executions)
                } else {
                    format!("**not caught** ({} executions)", thousands(r.executions))
                }
            );
        }
        out
    }

    fn matrix(&self) -> String {
        let cells: Vec<&Record> = self.records.iter().filter(|r| r.kind == "matrix").collect();
        let mut mutants: Vec<&str> = cells.iter().filter_map(|r| r.mutant.as_deref()).collect();
        mutants.sort();
        mutants.dedup();
        let mut shapes: Vec<&str> = Vec::new();
        for r in &cells {
            if !shapes.contains(&r.model.as_str()) {
                shapes.push(&r.model);
            }
        }
        let mut out = String::from("| shape |");
        for m in &mutants {
            let _ = write!(out, " `{m}` |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(mutants.len()));
        out.push('\n');
        for s in shapes {
            let _ = write!(out, "| {s} |");
            for m in &mutants {
                let cell = cells
                    .iter()
                    .find(|r| r.model == s && r.mutant.as_deref() == Some(*m))
                    .map_or_else(
                        || "-".to_string(),
                        |r| {
                            if r.caught {
                                format!("caught after {}", thousands(r.executions))
                            } else {
                                format!("**not caught** ({} executions)", thousands(r.executions))
                            }
                        },
                    );
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out
    }

    /// LITMUS.md's blocks.
    pub fn blocks(&self) -> Vec<Block> {
        vec![
            Block {
                doc: DOC,
                name: "litmus-run",
                text: self.run(),
            },
            Block {
                doc: DOC,
                name: "litmus-explored",
                text: self.explored(),
            },
            Block {
                doc: DOC,
                name: "litmus-caught",
                text: self.caught(),
            },
            Block {
                doc: DOC,
                name: "litmus-matrix",
                text: self.matrix(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        test: &str,
        model: &str,
        kind: &str,
        mutant: Option<&str>,
        n: u64,
        caught: bool,
    ) -> String {
        serde_json::to_string(&Record {
            test: test.into(),
            model: model.into(),
            kind: kind.into(),
            mutant: mutant.map(Into::into),
            bound: 2,
            executions: n,
            seconds: 0.5,
            caught,
            outcomes: vec![Outcome {
                outcome: "Sometimes: r=1".into(),
                count: n / 2,
            }],
        })
        .unwrap()
    }

    #[test]
    fn lines_become_tables() {
        let dir = std::env::temp_dir().join(format!("fastzap-litmus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.jsonl");
        let lines = [
            line("t_a", "A, cb", "explored", None, 100, false),
            line("m_x", "A", "matrix", Some("X"), 2, true),
            line("m_x", "B", "matrix", Some("X"), 1087, false),
            line("t_a", "A, cb", "explored", None, 36_456, false),
            line("t_c", "C", "caught", None, 47, true),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let r = LitmusResults::import(&path).unwrap();
        assert_eq!(
            r.records.len(),
            4,
            "the rerun of t_a replaces its first line"
        );
        let blocks = r.blocks();
        let text = |name: &str| &blocks.iter().find(|b| b.name == name).unwrap().text;
        assert!(
            text("litmus-explored")
                .contains("| `t_a` | A, cb | 2 | 36,456 | Sometimes: r=1: 18,228 |")
        );
        assert!(text("litmus-caught").contains("| `t_c` | C | 2 | 47 |"));
        assert!(text("litmus-matrix").contains("| B | **not caught** (1,087 executions) |"));
        let run = text("litmus-run");
        assert!(
            run.lines().all(|l| l.len() <= super::super::bench::WIDTH),
            "{run}"
        );
        assert!(
            run.replace('\n', " ")
                .contains("3 tests ran 4 models, 37,592 executions")
        );
        std::fs::write(&path, "not json\n").unwrap();
        assert!(LitmusResults::import(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! BENCHMARKS.md's summary: every benchmark goal, its figures in both builds
//! read from `benches/results/*.md`, and a verdict computed from them.
//!
//! The goals are defined once, in [`GOALS`](super::goal_list::GOALS): an id,
//! the claim, the bound that decides it (where the goal is numeric), a
//! function that reads its figure from one build's results files, and, for a
//! goal that can be missed by design or is only reported, the reason, as
//! prose with no measured number in it. The verdict is never typed: it is
//! `met` or `missed (x)` from the figures and the bound.

use std::collections::BTreeMap;
use std::path::Path;

use super::Block;
use super::bench;
use super::table::{self, Table};

/// What decides a goal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// Met when the figure is at most this.
    AtMost(f64),
    /// Met when the figure is at least this.
    AtLeast(f64),
    /// Met when the figure is 1 (a property the benchmark checked).
    Holds,
    /// No bound: the figures are reported.
    Reported,
}

/// One build's figure for a goal: the text shown, and the value the bound
/// judges (`None` when the build cannot measure it).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The cell's text.
    pub text: String,
    /// The judged value.
    pub value: Option<f64>,
}

impl Figure {
    /// A figure the build does not measure.
    pub fn na(why: &str) -> Self {
        Figure {
            text: format!("n/a ({why})"),
            value: None,
        }
    }
}

/// The two builds, as the results files name them.
pub const BUILDS: [&str; 2] = ["ghost-off", "ghost-on"];

/// One goal of the summary.
pub struct Goal {
    /// The goal ids (`B1, P1`).
    pub id: &'static str,
    /// The claim, with its bound in words.
    pub claim: &'static str,
    /// What decides it.
    pub bound: Bound,
    /// Its figure in one build.
    pub figure: fn(&Results, &str) -> Result<Figure, String>,
    /// Why it is missed or only reported (prose, no measured numbers).
    pub reason: Option<&'static str>,
}

/// The results files of `benches/results/`, by file name.
pub struct Results {
    files: BTreeMap<String, String>,
}

impl Results {
    /// Reads every `*.md` file of `dir`.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let mut files = BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") {
                let text = std::fs::read_to_string(e.path()).map_err(|e| format!("{name}: {e}"))?;
                files.insert(name, text);
            }
        }
        Ok(Results { files })
    }

    /// Results from (file name, text) pairs.
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> Self {
        Results {
            files: files.into_iter().collect(),
        }
    }

    /// The tables of `<stem>-<build>.md` (of its section `section`, if
    /// given).
    pub fn tables(
        &self,
        stem: &str,
        build: &str,
        section: Option<&str>,
    ) -> Result<Vec<Table>, String> {
        let name = format!("{stem}-{build}.md");
        let text = self.files.get(&name).ok_or_else(|| format!("no {name}"))?;
        let body = bench::body(text, section).map_err(|e| format!("{name}: {e}"))?;
        Ok(table::tables(&body))
    }
}

/// The verdict of one build: `None` when not judged (n/a, or reported),
/// else met, or missed by a factor.
pub fn judge(bound: Bound, value: Option<f64>) -> Option<Result<(), f64>> {
    let v = value?;
    match bound {
        Bound::AtMost(b) if v <= b => Some(Ok(())),
        Bound::AtMost(b) => Some(Err(v / b)),
        Bound::AtLeast(b) if v >= b => Some(Ok(())),
        Bound::AtLeast(b) => Some(Err(if v > 0.0 { b / v } else { f64::INFINITY })),
        Bound::Holds if v == 1.0 => Some(Ok(())),
        Bound::Holds => Some(Err(f64::NAN)),
        Bound::Reported => None,
    }
}

/// A factor as the summary prints it.
pub fn factor(f: f64) -> String {
    if !f.is_finite() {
        String::new()
    } else if f < 10.0 {
        format!(" ({f:.2}x)")
    } else {
        format!(" ({f:.0}x)")
    }
}

/// The verdict cell from both builds' figures.
pub fn verdict(goal: &Goal, off: &Figure, on: &Figure) -> String {
    let (a, b) = (judge(goal.bound, off.value), judge(goal.bound, on.value));
    let text = match (a, b) {
        _ if goal.bound == Bound::Reported => "reported".to_string(),
        (None, None) => "not measured".to_string(),
        (Some(Ok(())), Some(Ok(()))) | (Some(Ok(())), None) | (None, Some(Ok(()))) => {
            "met".to_string()
        }
        (Some(Err(x)), Some(Err(y))) => {
            if factor(x) == factor(y) {
                format!("**missed**{}", factor(x))
            } else {
                let (x, y) = (factor(x), factor(y));
                format!(
                    "**missed** ({} off, {} on)",
                    x.trim().trim_matches(['(', ')']),
                    y.trim().trim_matches(['(', ')'])
                )
            }
        }
        (Some(Err(x)), None) | (None, Some(Err(x))) => format!("**missed**{}", factor(x)),
        (Some(Err(x)), Some(Ok(()))) => format!("**missed** off{}, met on", factor(x)),
        (Some(Ok(())), Some(Err(y))) => format!("met off, **missed** on{}", factor(y)),
    };
    let missed = text.contains("missed") || goal.bound == Bound::Reported;
    match goal.reason {
        Some(r) if missed => format!("{text}: {r}"),
        _ => text,
    }
}

/// The summary block's name.
pub const BLOCK: &str = "summary";

/// The summary table.
pub fn render(results: &Results, goals: &[Goal]) -> Result<String, String> {
    let mut out = String::from(
        "| | claim or goal | protocol alone (`ghost` off) | with the checking code (`ghost` on) | verdict |\n\
         |---|---|---|---|---|\n",
    );
    for g in goals {
        let [off, on] = BUILDS.map(|b| {
            (g.figure)(results, b).map_err(|e| format!("{} `{}` ({b}): {e}", g.id, g.claim))
        });
        let (off, on) = (off?, on?);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            g.id,
            g.claim,
            off.text,
            on.text,
            verdict(g, &off, &on)
        ));
    }
    Ok(out)
}

/// The summary block, from the results files in `dir`.
pub fn block(dir: &Path) -> Result<Block, String> {
    let results = Results::read(dir)?;
    Ok(Block {
        doc: bench::DOC,
        name: BLOCK,
        text: render(&results, super::goal_list::GOALS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::goal_list::GOALS;

    fn fig(v: Option<f64>) -> Figure {
        Figure {
            text: "t".into(),
            value: v,
        }
    }

    const GOAL: Goal = Goal {
        id: "X",
        claim: "at most 0.3",
        bound: Bound::AtMost(0.3),
        figure: |_, _| Ok(Figure::na("none")),
        reason: Some("why"),
    };

    #[test]
    fn a_figure_over_its_bound_is_missed() {
        assert_eq!(judge(Bound::AtMost(0.3), Some(0.22)), Some(Ok(())));
        assert_eq!(judge(Bound::AtMost(0.3), Some(0.99)), Some(Err(0.99 / 0.3)));
        assert_eq!(judge(Bound::AtLeast(0.5), Some(0.25)), Some(Err(2.0)));
        assert_eq!(judge(Bound::AtLeast(1e4), Some(15_274.0)), Some(Ok(())));
        assert_eq!(judge(Bound::Holds, Some(1.0)), Some(Ok(())));
        assert!(judge(Bound::Holds, Some(0.0)).unwrap().is_err());
        assert_eq!(judge(Bound::AtMost(1.0), None), None);
        assert_eq!(verdict(&GOAL, &fig(Some(0.2)), &fig(Some(0.25))), "met");
        assert_eq!(
            verdict(&GOAL, &fig(Some(0.99)), &fig(Some(0.99))),
            "**missed** (3.30x): why"
        );
        assert_eq!(
            verdict(&GOAL, &fig(Some(0.99)), &fig(Some(1.2))),
            "**missed** (3.30x off, 4.00x on): why"
        );
        assert_eq!(
            verdict(&GOAL, &fig(Some(0.2)), &fig(Some(6.0))),
            "met off, **missed** on (20x): why"
        );
        assert_eq!(verdict(&GOAL, &fig(None), &fig(Some(0.1))), "met");
    }

    fn committed() -> Results {
        let dir = crate::lanes::workspace_root().join("benches/results");
        Results::read(&dir).expect("benches/results")
    }

    fn row<'a>(summary: &'a str, claim: &str) -> &'a str {
        summary
            .lines()
            .find(|l| l.contains(claim))
            .unwrap_or_else(|| panic!("no row `{claim}` in\n{summary}"))
    }

    /// The committed results give every goal both figures; a create time
    /// over 1 s, written into a copy of B7's results, turns its verdict to
    /// missed, and a file without the figure is an error.
    #[test]
    fn the_verdicts_follow_the_results_files() {
        let results = committed();
        let summary = render(&results, GOALS).unwrap();
        assert_eq!(summary.lines().count(), GOALS.len() + 2);
        let create = "creating 32,764 slots";
        assert!(row(&summary, create).ends_with("| met |"), "{summary}");
        let mut files = results.files.clone();
        let b7 = files.get_mut("b7_memslots-ghost-off.md").unwrap();
        let t = table::tables(b7);
        let main = table::with_column(&t, "create, total").unwrap();
        let last = main.rows.last().unwrap()[main.col("create, total").unwrap()].clone();
        *b7 = b7.replace(&format!("| {last} |"), "| 1.50 s |");
        let slow = render(&Results::from_files(files.clone()), GOALS).unwrap();
        assert!(
            row(&slow, create).ends_with("| **missed** off (1.50x), met on |"),
            "{}",
            row(&slow, create)
        );
        files.get_mut("b7_memslots-ghost-off.md").unwrap().clear();
        assert!(render(&Results::from_files(files), GOALS).is_err());
    }
}

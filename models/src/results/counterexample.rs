//! # Counterexample and replay files
//!
//! A failing execution is written as a [`Counterexample`] (events,
//! violations, timeline, Mermaid source and, under shuttle, the schedule):
//! what `verify` draws. A [`ReplayFile`] names a shuttle schedule to replay.

use std::path::{Path, PathBuf};

use fastzap::check::{Event, Violation};
use serde::{Deserialize, Serialize};

use super::file_name;
use crate::timeline;

/// One event of a counterexample, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Global order.
    pub seq: u64,
    /// The actor (`vcpu0`, `zapper`...).
    pub actor: String,
    /// The event's kind: the variant of [`fastzap::check::What`] (`Lock`,
    /// `GenBump`, `Request`...), or `EmptySection` for a collapsed
    /// lock/unlock pair.
    pub kind: String,
    /// What happened.
    pub text: String,
}

/// One violation of a counterexample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceViolation {
    /// The invariant's name (`I3 page lifetime`).
    pub invariant: String,
    /// What was seen.
    pub detail: String,
    /// The event at which the check first saw it, if it was seen during the
    /// execution (otherwise the final audit found it, after the last event).
    pub at: Option<u64>,
}

/// A failing execution, for the report: what `verify` draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counterexample {
    /// `<scenario>-<lane>-<mutant>`.
    pub name: String,
    /// The lane.
    pub lane: String,
    /// The scenario.
    pub scenario: String,
    /// The mutant, if any.
    pub mutant: Option<String>,
    /// The actors, in column order.
    pub actors: Vec<String>,
    /// The events, empty critical sections collapsed.
    pub events: Vec<TraceEvent>,
    /// What broke.
    pub violations: Vec<TraceViolation>,
    /// The per-actor text timeline.
    pub timeline: String,
    /// The Mermaid source.
    pub mermaid: String,
    /// The shuttle schedule that replays it (filled in by the shuttle
    /// runner once shuttle has written it).
    pub schedule: Option<String>,
}

impl Counterexample {
    /// The counterexample of a failed execution.
    pub fn new(
        name: &str,
        scenario: &str,
        mutant: Option<String>,
        events: &[Event],
        violations: &[Violation],
    ) -> Counterexample {
        let collapsed = timeline::collapse_empty_sections(events);
        let at = timeline::first_seen(events, violations);
        Counterexample {
            name: name.to_string(),
            lane: fastzap::checking::sync::LANE.to_string(),
            scenario: scenario.to_string(),
            mutant,
            actors: timeline::actors(events)
                .iter()
                .map(|a| a.to_string())
                .collect(),
            events: collapsed
                .iter()
                .map(|e| TraceEvent {
                    seq: e.seq,
                    actor: e.actor.to_string(),
                    kind: timeline::kind(e),
                    text: e.what.to_string(),
                })
                .collect(),
            violations: violations
                .iter()
                .zip(at)
                .map(|(v, at)| TraceViolation {
                    invariant: v.invariant.name().to_string(),
                    detail: v.detail.clone(),
                    at,
                })
                .collect(),
            timeline: timeline::render_columns(events, violations),
            mermaid: timeline::render_mermaid(name, events, violations),
            schedule: None,
        }
    }

    /// Writes it to `<dir>/<name>.json` and returns the path.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", file_name(&self.name)));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Reads one from `path`.
    pub fn read(path: &Path) -> Result<Counterexample, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds the shuttle schedule to the file at `path`.
    pub fn attach_schedule(path: &Path, schedule: &str) {
        if let Ok(mut cx) = Counterexample::read(path) {
            cx.schedule = Some(schedule.to_string());
            if let Some(dir) = path.parent() {
                let _ = cx.write(dir);
            }
        }
    }
}

/// A shuttle replay file: the test target, the model's key and the schedule,
/// one `name: value` line each. `fastzap verify --replay FILE` runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFile {
    /// The test target (`shuttle_scenarios`).
    pub target: String,
    /// The model's key in the target's table.
    pub model: String,
    /// shuttle's schedule string.
    pub schedule: String,
}

impl ReplayFile {
    /// The file's text.
    pub fn render(&self) -> String {
        format!(
            "# fastzap shuttle replay: fastzap verify --replay <this file>\ntarget: {}\nmodel: {}\nschedule: {}\n",
            self.target, self.model, self.schedule
        )
    }

    /// Parses a replay file's text.
    pub fn parse(text: &str) -> Result<ReplayFile, String> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("not a fastzap replay file: no `{name}:` line"))
        };
        Ok(ReplayFile {
            target: field("target")?,
            model: field("model")?,
            schedule: field("schedule")?,
        })
    }
}

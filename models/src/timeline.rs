//! # Counterexample timelines
//!
//! With [`Config::events`](fastzap::Config::events) on, a VM logs every protocol
//! step with the actor that took it. A failing model execution is told here as a
//! story, in the shape of the two-column race diagrams of the kernel's
//! `locking.txt`: one column per actor, one row per event, in global order, so
//! that "vcpu0 took `mmu_lock` after the zapper dropped it" can be read across.
//!
//! Two renderings of the same timeline:
//! - [`render_columns`]: plain text for the terminal and the panic message;
//! - [`render_mermaid`]: a Mermaid `sequenceDiagram`, one participant per actor,
//!   written next to the build output by [`write_mermaid`].
//!
//! Both take the violations too, so that the story ends with what broke, and
//! mark each violation at the event where a check first saw it, when one did
//! during the execution (a `Violated` event in the log); the final audit's
//! findings come after the last event. A lock immediately followed by its
//! unlock (an empty critical section: nothing of that actor in between) is
//! one row ([`collapse_empty_sections`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fastzap::check::{Actor, Event, Violation};

/// The widest a column gets; longer event texts are cut with `~`.
pub const MAX_COLUMN: usize = 40;

/// The actors of `events`, in a fixed order: vCPUs by index, then the zapper,
/// the notifier, the memslot updater and the shrinker.
pub fn actors(events: &[Event]) -> Vec<Actor> {
    let mut actors: Vec<Actor> = Vec::new();
    for event in events {
        if !actors.contains(&event.actor) {
            actors.push(event.actor);
        }
    }
    actors.sort();
    actors
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('~');
    out
}

/// The event's kind: the name of its [`fastzap::check::What`] variant (`Lock`,
/// `GenBump`...), `EmptySection` for a collapsed lock/unlock pair.
pub fn kind(event: &Event) -> String {
    if let fastzap::check::What::Note(note) = &event.what
        && note == EMPTY_SECTION
    {
        return "EmptySection".to_string();
    }
    format!("{:?}", event.what)
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The text of a collapsed empty critical section.
pub const EMPTY_SECTION: &str = "lock+unlock mmu_lock (empty)";

/// `events` with every empty critical section (an actor's `Lock` whose next
/// event of that actor is its `Unlock`) collapsed into one row at the lock's
/// place.
pub fn collapse_empty_sections(events: &[Event]) -> Vec<Event> {
    let mut out = Vec::with_capacity(events.len());
    let mut skip = vec![false; events.len()];
    for (i, event) in events.iter().enumerate() {
        if skip[i] {
            continue;
        }
        if event.what == fastzap::check::What::Lock
            && let Some(j) = events[i + 1..]
                .iter()
                .position(|e| e.actor == event.actor)
                .map(|p| p + i + 1)
            && events[j].what == fastzap::check::What::Unlock
        {
            skip[j] = true;
            out.push(Event {
                seq: event.seq,
                actor: event.actor,
                what: fastzap::check::What::Note(EMPTY_SECTION.to_string()),
            });
            continue;
        }
        out.push(event.clone());
    }
    out
}

/// For each violation, the `seq` of the first event at which a check saw it
/// during the execution: a `Violated` event naming its invariant. `None` when
/// only the final audit found it.
pub fn first_seen(events: &[Event], violations: &[Violation]) -> Vec<Option<u64>> {
    violations
        .iter()
        .map(|v| {
            events
                .iter()
                .find(|e| kind(e) == "Violated" && e.what.to_string().contains(v.invariant.name()))
                .map(|e| e.seq)
        })
        .collect()
}

/// Renders the timeline as text: a header naming each actor, then one row per
/// event with the event in its actor's column (empty critical sections
/// collapsed), a `>>>` line under the event where a violation was first seen,
/// then the violations.
pub fn render_columns(events: &[Event], violations: &[Violation]) -> String {
    let seen = first_seen(events, violations);
    let events = &collapse_empty_sections(events)[..];
    let actors = actors(events);
    let widths: Vec<usize> = actors
        .iter()
        .map(|actor| {
            events
                .iter()
                .filter(|e| e.actor == *actor)
                .map(|e| e.what.to_string().chars().count())
                .chain(std::iter::once(actor.to_string().len()))
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN)
        })
        .collect();
    let mut out = String::new();
    let row = |out: &mut String, seq: &str, cells: &[String]| {
        let mut line = format!("{seq:>5} ");
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(line, "| {cell:<width$} ", width = *width);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    let header: Vec<String> = actors.iter().map(|a| a.to_string()).collect();
    row(&mut out, "seq", &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    row(&mut out, "-----", &rule);
    for event in events {
        let cells: Vec<String> = actors
            .iter()
            .zip(&widths)
            .map(|(actor, width)| {
                if *actor == event.actor {
                    cut(&event.what.to_string(), *width)
                } else {
                    String::new()
                }
            })
            .collect();
        row(&mut out, &event.seq.to_string(), &cells);
        for (violation, at) in violations.iter().zip(&seen) {
            if *at == Some(event.seq) {
                let _ = writeln!(
                    out,
                    "  >>> {} first seen here, by {}",
                    violation.invariant.name(),
                    event.actor
                );
            }
        }
    }
    if events.is_empty() {
        out.push_str("  (no events recorded: was Config.events on?)\n");
    }
    for violation in violations {
        let _ = writeln!(out, "  VIOLATED {violation}");
    }
    out
}

/// Escapes text for a Mermaid note: `#` and `;` start entity codes and
/// statements, and a newline would end the note.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Renders the timeline as a Mermaid `sequenceDiagram`: each event is a note
/// over its actor; taking `mmu_lock` activates the actor's bar and dropping it
/// deactivates it; the violations end the diagram as a note over every actor.
pub fn render_mermaid(title: &str, events: &[Event], violations: &[Violation]) -> String {
    let seen = first_seen(events, violations);
    let actors = actors(events);
    let events = &collapse_empty_sections(events)[..];
    let mut out = String::from("sequenceDiagram\n");
    let _ = writeln!(out, "    title {}", mermaid_text(title));
    for actor in &actors {
        let _ = writeln!(out, "    participant {actor}");
    }
    let mut holding: Option<Actor> = None;
    for event in events {
        let text = mermaid_text(&format!("{} {}", event.seq, event.what));
        let _ = writeln!(out, "    Note over {}: {text}", event.actor);
        match event.what {
            fastzap::check::What::Lock => {
                let _ = writeln!(out, "    activate {}", event.actor);
                holding = Some(event.actor);
            }
            fastzap::check::What::Unlock if holding == Some(event.actor) => {
                let _ = writeln!(out, "    deactivate {}", event.actor);
                holding = None;
            }
            _ => {}
        }
        for (violation, at) in violations.iter().zip(&seen) {
            if *at == Some(event.seq) {
                let text = mermaid_text(&format!("{} first seen here", violation.invariant.name()));
                let _ = writeln!(out, "    Note right of {}: {text}", event.actor);
            }
        }
    }
    if let Some(actor) = holding {
        let _ = writeln!(out, "    deactivate {actor}");
    }
    if !violations.is_empty() {
        let span = match (actors.first(), actors.last()) {
            (Some(first), Some(last)) if first != last => format!("{first},{last}"),
            (Some(first), _) => first.to_string(),
            _ => String::new(),
        };
        for violation in violations {
            let text = mermaid_text(&format!("VIOLATED {violation}"));
            if span.is_empty() {
                let _ = writeln!(out, "    %% {text}");
            } else {
                let _ = writeln!(out, "    Note over {span}: {text}");
            }
        }
    }
    out
}

/// Where counterexamples go: `target/counterexamples` of this workspace.
pub fn counterexample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("counterexamples")
}

/// Writes the Mermaid rendering to `dir/<name>.mmd` and returns the path.
pub fn write_mermaid(
    dir: &Path,
    name: &str,
    events: &[Event],
    violations: &[Violation],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file}.mmd"));
    std::fs::write(&path, render_mermaid(name, events, violations))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastzap::PageId;
    use fastzap::check::{Invariant, What};

    fn story() -> Vec<Event> {
        let e = |seq, actor, what| Event { seq, actor, what };
        vec![
            e(0, Actor::Zapper, What::Lock),
            e(1, Actor::Zapper, What::GenBump { from: 0, to: 1 }),
            e(2, Actor::Zapper, What::Unlock),
            e(3, Actor::Vcpu(0), What::Fault { gfn: 1 }),
            e(4, Actor::Vcpu(0), What::Lock),
            e(
                5,
                Actor::Vcpu(0),
                What::Retry {
                    gfn: 1,
                    reason: "root obsolete",
                },
            ),
            e(6, Actor::Vcpu(0), What::Unlock),
            e(
                7,
                Actor::Zapper,
                What::PrepareZap {
                    sp: PageId(3),
                    kept_root: true,
                },
            ),
        ]
    }

    fn violation() -> Violation {
        Violation::new(Invariant::I5, "vcpu0 kept an obsolete root; x#y".into())
    }

    #[test]
    fn actors_are_ordered_vcpus_first() {
        assert_eq!(actors(&story()), vec![Actor::Vcpu(0), Actor::Zapper]);
    }

    #[test]
    fn columns_put_each_event_under_its_actor() {
        let text = render_columns(&story(), &[violation()]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("vcpu0") && lines[0].contains("zapper"));
        let header_zapper = lines[0].find("zapper").expect("zapper column");
        let bump = lines
            .iter()
            .find(|l| l.contains("mmu_valid_gen 0 -> 1"))
            .expect("bump row");
        assert_eq!(bump.find("mmu_valid_gen"), Some(header_zapper));
        let fault = lines
            .iter()
            .find(|l| l.contains("fault gfn 1"))
            .expect("fault row");
        assert!(fault.find("fault gfn 1").expect("fault") < header_zapper);
        assert_eq!(lines.len(), 2 + story().len() + 1);
        assert!(
            text.ends_with("VIOLATED I5 obsolete never reused: vcpu0 kept an obsolete root; x#y\n")
        );
    }

    #[test]
    fn long_cells_are_cut_to_the_column_limit() {
        let long = "x".repeat(3 * MAX_COLUMN);
        let events = vec![Event {
            seq: 0,
            actor: Actor::Notifier,
            what: What::Note(long),
        }];
        let text = render_columns(&events, &[]);
        let row = text.lines().nth(2).expect("row");
        assert!(row.ends_with('~'));
        assert_eq!(row.trim_start_matches(|c| c != '|').len(), MAX_COLUMN + 2);
    }

    #[test]
    fn an_empty_critical_section_is_one_row() {
        let e = |seq, actor, what| Event { seq, actor, what };
        let events = vec![
            e(0, Actor::Notifier, What::Lock),
            e(1, Actor::Vcpu(0), What::Fault { gfn: 1 }),
            e(2, Actor::Notifier, What::Unlock),
            e(3, Actor::Zapper, What::Lock),
            e(4, Actor::Zapper, What::GenBump { from: 0, to: 1 }),
            e(5, Actor::Zapper, What::Unlock),
        ];
        let collapsed = collapse_empty_sections(&events);
        assert_eq!(collapsed.len(), 5);
        assert_eq!(kind(&collapsed[0]), "EmptySection");
        assert_eq!(kind(&collapsed[2]), "Lock");
        assert_eq!(kind(&collapsed[3]), "GenBump");
        let text = render_columns(&events, &[]);
        assert_eq!(text.matches(EMPTY_SECTION).count(), 1);
        assert_eq!(text.lines().count(), 2 + 5);
    }

    #[test]
    fn empty_log_says_so() {
        assert!(render_columns(&[], &[]).contains("no events recorded"));
    }

    #[test]
    fn mermaid_has_participants_notes_bars_and_the_violation() {
        let text = render_mermaid("s1; demo", &story(), &[violation()]);
        assert!(text.starts_with("sequenceDiagram\n    title s1#59; demo\n"));
        assert!(text.contains("    participant vcpu0\n    participant zapper\n"));
        assert!(text.contains("    Note over zapper: 1 mmu_valid_gen 0 -> 1\n"));
        assert_eq!(text.matches("activate zapper").count(), 2);
        assert_eq!(text.matches("    activate vcpu0").count(), 1);
        assert_eq!(text.matches("    deactivate vcpu0").count(), 1);
        assert!(text.contains(
            "    Note over vcpu0,zapper: VIOLATED I5 obsolete never reused: vcpu0 kept an obsolete root#59; x#35;y\n"
        ));
        // Every line is a statement Mermaid knows.
        for line in text.lines().skip(1) {
            let line = line.trim_start();
            assert!(
                [
                    "title ",
                    "participant ",
                    "Note over ",
                    "Note right of ",
                    "activate ",
                    "deactivate "
                ]
                .iter()
                .any(|p| line.starts_with(p)),
                "unexpected line {line:?}"
            );
        }
    }

    #[test]
    fn mermaid_file_is_written() {
        let dir = std::env::temp_dir().join(format!("fastzap-timeline-{}", std::process::id()));
        let path = write_mermaid(&dir, "s1 demo/x", &story(), &[violation()]).expect("write");
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("s1_demo_x.mmd")
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("VIOLATED"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

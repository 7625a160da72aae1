//! # Counterexamples as SVG sequence diagrams, drawn by fastzap
//!
//! [`sequence_diagram`] draws a [`Counterexample`] as one standalone SVG: one
//! lifeline per actor (`class="lifeline"`), each event a row of text beside
//! its actor's lifeline, every `mmu_lock` hold an activation bar from its
//! lock to its unlock, generation bumps and requests as arrows from their
//! actor to every vCPU, and each violation marked in red at the step where its
//! check first saw it (after the last step when only the final audit found
//! it). No script, no external resource: it opens in any browser and embeds
//! in the HTML report.

use std::fmt::Write as _;

use fastzap_models::results::Counterexample;

const COLUMN: usize = 300;
const ROW: usize = 22;
const LEFT: usize = 60;
const TOP: usize = 78;
const TEXT_CHARS: usize = 44;

/// Escapes text for XML.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(chars - 1).collect();
        s.push('…');
        s
    }
}

/// The SVG of `cx`.
pub fn sequence_diagram(cx: &Counterexample) -> String {
    let actors = &cx.actors;
    let x_of = |actor: &str| {
        let i = actors.iter().position(|a| a == actor).unwrap_or(0);
        LEFT + i * COLUMN + COLUMN / 2 - 60
    };
    let rows = cx.events.len();
    // One extra row after the events for violations the final audit found.
    let unplaced = cx.violations.iter().filter(|v| v.at.is_none()).count();
    let bottom = TOP + (rows + 1) * ROW;
    let height = bottom + 30 + (unplaced + 1) * 18 + 20;
    // The last column's text runs past its lifeline: room for it.
    let width = LEFT + actors.len().max(1) * COLUMN + 140;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="11">"##
    );
    let _ = writeln!(out, "<title>{}</title>", xml(&cx.name));
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f5fa8"/></marker></defs>
"##,
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="12" y="20" font-size="14" font-weight="bold">{}</text>"##,
        xml(&format!(
            "{} ({} lane{})",
            cx.scenario,
            cx.lane,
            cx.mutant
                .as_ref()
                .map(|m| format!(", mutant {m}"))
                .unwrap_or_default()
        ))
    );
    // Lifelines and actor boxes.
    for actor in actors {
        let x = x_of(actor);
        let _ = writeln!(
            out,
            r##"<g class="actor"><rect x="{}" y="30" width="120" height="24" rx="4" fill="#eef3fb" stroke="#1f5fa8"/><text x="{x}" y="46" text-anchor="middle" font-weight="bold">{}</text></g>"##,
            x - 60,
            xml(actor)
        );
        let _ = writeln!(
            out,
            r##"<line class="lifeline" data-actor="{}" x1="{x}" y1="54" x2="{x}" y2="{bottom}" stroke="#888888" stroke-dasharray="4 3"/>"##,
            xml(actor)
        );
    }
    let y_of = |row: usize| TOP + row * ROW;
    // Activation bars: each actor's Lock to its next Unlock.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut bars: Vec<(String, usize, usize)> = Vec::new();
    for (i, e) in cx.events.iter().enumerate() {
        match e.kind.as_str() {
            "Lock" => open.push((e.actor.clone(), i)),
            "Unlock" => {
                if let Some(k) = open.iter().position(|(a, _)| *a == e.actor) {
                    let (a, start) = open.remove(k);
                    bars.push((a, start, i));
                }
            }
            _ => {}
        }
    }
    for (a, start) in open {
        bars.push((a, start, rows));
    }
    for (actor, start, end) in &bars {
        let x = x_of(actor);
        let y1 = y_of(*start) - 12;
        let y2 = y_of(*end).max(y1 + 6) - 4;
        let _ = writeln!(
            out,
            r##"<rect class="activation" x="{}" y="{y1}" width="10" height="{}" fill="#ffd9a0" stroke="#c07a00"><title>{} holds mmu_lock</title></rect>"##,
            x - 5,
            y2 - y1,
            xml(actor)
        );
    }
    // Events.
    let vcpus: Vec<&String> = actors.iter().filter(|a| a.starts_with("vcpu")).collect();
    for (i, e) in cx.events.iter().enumerate() {
        let y = y_of(i);
        let x = x_of(&e.actor);
        let _ = writeln!(
            out,
            r##"<text x="8" y="{y}" fill="#999999">{}</text>"##,
            e.seq
        );
        let arrow = matches!(e.kind.as_str(), "GenBump" | "Request");
        if arrow {
            // One arrow to the farthest vCPU, a dot on every vCPU it reaches.
            let targets: Vec<usize> = vcpus
                .iter()
                .filter(|v| ***v != e.actor)
                .map(|v| x_of(v))
                .collect();
            let far = targets.iter().copied().max_by_key(|tx| tx.abs_diff(x));
            if let Some(tx) = far {
                let dir: i64 = if tx > x { 1 } else { -1 };
                let _ = writeln!(
                    out,
                    r##"<line class="arrow" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#1f5fa8" stroke-width="1.5" marker-end="url(#arrow)"/>"##,
                    x as i64 + 6 * dir,
                    y + 4,
                    tx as i64 - 6 * dir,
                    y + 4
                );
                for t in targets.iter().filter(|t| **t != tx) {
                    let _ = writeln!(
                        out,
                        r##"<circle cx="{t}" cy="{}" r="3" fill="#1f5fa8"/>"##,
                        y + 4
                    );
                }
            }
        }
        let color = match e.kind.as_str() {
            "GenBump" | "Request" => "#1f5fa8",
            "Lock" | "Unlock" | "EmptySection" => "#8a5a00",
            "Violated" => "#c00000",
            _ => "#222222",
        };
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" fill="{color}"><title>{}</title>{}</text>"##,
            x + 9,
            if arrow { y - 2 } else { y },
            xml(&format!("{} {}: {}", e.seq, e.actor, e.text)),
            xml(&cut(&e.text, TEXT_CHARS))
        );
    }
    // Violations: at the step that broke it, or after the last event.
    let mut extra = 0;
    for v in &cx.violations {
        let (y, actor) = match v
            .at
            .and_then(|at| cx.events.iter().position(|e| e.seq >= at))
        {
            Some(i) => (y_of(i) + 5, Some(cx.events[i].actor.clone())),
            None => {
                extra += 1;
                (bottom - ROW / 2 + (extra - 1) * 4, None)
            }
        };
        let _ = writeln!(
            out,
            r##"<g class="violation"><line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#c00000" stroke-width="2"/>"##,
            width - 20
        );
        if let Some(actor) = &actor {
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{y}" r="6" fill="#c00000"/>"##,
                x_of(actor)
            );
        }
        let _ = writeln!(out, "</g>");
    }
    let mut y = bottom + 24;
    for v in &cx.violations {
        let where_ = match v.at {
            Some(at) => format!("first seen at step {at}"),
            None => "found by the final audit".to_string(),
        };
        let _ = writeln!(
            out,
            r##"<text x="12" y="{y}" fill="#c00000" font-weight="bold"><title>{}</title>{}</text>"##,
            xml(&v.detail),
            xml(&cut(
                &format!("VIOLATED {} ({where_}): {}", v.invariant, v.detail),
                (width - 24) / 7
            ))
        );
        y += 18;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastzap_models::results::{TraceEvent, TraceViolation};

    fn demo() -> Counterexample {
        let e = |seq, actor: &str, kind: &str, text: &str| TraceEvent {
            seq,
            actor: actor.into(),
            kind: kind.into(),
            text: text.into(),
        };
        Counterexample {
            name: "s1-demo".into(),
            lane: "shuttle".into(),
            scenario: "s1".into(),
            mutant: Some("ReloadOutsideLock".into()),
            actors: vec!["vcpu0".into(), "zapper".into()],
            events: vec![
                e(0, "zapper", "Lock", "lock mmu_lock"),
                e(1, "zapper", "GenBump", "mmu_valid_gen 0 -> 1"),
                e(2, "zapper", "Unlock", "unlock mmu_lock"),
                e(3, "zapper", "Request", "request reload <all>"),
            ],
            violations: vec![TraceViolation {
                invariant: "I5 obsolete never reused".into(),
                detail: "vcpu0 & co".into(),
                at: Some(3),
            }],
            timeline: String::new(),
            mermaid: String::new(),
            schedule: None,
        }
    }

    #[test]
    fn the_diagram_has_lifelines_bars_arrows_and_the_violation() {
        let svg = sequence_diagram(&demo());
        assert_eq!(svg.matches(r#"class="lifeline""#).count(), 2);
        assert_eq!(svg.matches(r#"class="activation""#).count(), 1);
        assert_eq!(svg.matches(r#"class="arrow""#).count(), 2);
        assert!(svg.contains("<title>s1-demo</title>"));
        assert!(svg.contains("VIOLATED I5 obsolete never reused (first seen at step 3)"));
        assert!(svg.contains("vcpu0 &amp; co"));
        assert!(svg.contains("request reload &lt;all&gt;"));
    }
}

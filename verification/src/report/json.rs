//! `report.json`: the verdict, its mode and knobs, its gaps, and every row.

use serde_json::{Value, json};

use super::summary::verdict_words;
use super::{Verdict, Written, coverage, environment};

/// `report.json`.
pub fn json(v: &Verdict, cxs: &[Written]) -> Value {
    json!({
        "passed": v.passed(),
        "mode": v.mode(),
        "knobs": v.plan.knobs,
        "headline": verdict_words(v),
        "gaps": v.gaps().into_iter().map(|(g, w)| json!({"gap": g.name(), "what": w})).collect::<Vec<_>>(),
        "allowed": v.allowed().into_iter().map(|(g, w)| json!({"gap": g.name(), "what": w})).collect::<Vec<_>>(),
        "miri": v.miri.as_ref().map(|m| json!({
            "passed_tests": m.passed, "ub": m.status == crate::lanes::MiriStatus::Ub,
            "ok": m.status == crate::lanes::MiriStatus::Passed,
            "seconds": m.time.as_secs_f64(), "summary": m.summary, "log": m.log,
        })),
        "seconds": v.total.as_secs_f64(),
        "environment": environment(v).into_iter().map(|(k, val)| (k, Value::String(val)))
            .collect::<serde_json::Map<String, Value>>(),
        "native": v.native.as_ref().map(|n| n.rows.iter().map(|r| json!({
            "check": r.name, "mmu": r.mmu.map(fastzap::Mmu::name), "lane": r.lane.name(), "what": r.what,
            "passed": r.outcome.passed, "amount": r.outcome.amount, "unit": r.outcome.unit,
            "seconds": r.time.as_secs_f64(), "detail": r.outcome.detail,
        })).collect::<Vec<_>>()),
        "lanes": v.lanes.iter().map(|l| json!({
            "lane": l.lane.name(), "success": l.success, "status": l.status,
            "seconds": l.time.as_secs_f64(),
            "tests": l.tests.iter().map(|t| json!({"name": t.name, "ok": t.ok})).collect::<Vec<_>>(),
            "results": l.results,
            "log": l.log,
        })).collect::<Vec<_>>(),
        "zoo": v.zoo.iter().map(|z| json!({
            "mutant": z.row.subject.name(), "commit": z.row.commit,
            "expected": z.row.expected.name(), "reported": z.reported,
            "checker": z.row.checker.describe(), "settings": z.settings,
            "amount": z.amount, "unit": z.unit, "seconds": z.seconds,
            "verdict": z.verdict, "detail": z.detail,
            "counterexample": cxs.iter().find(|c| c.of == z.row.subject.name()).map(|c| &c.svg),
        })).collect::<Vec<_>>(),
        "detection": v.detection_times().map(|(m, x)| json!({"median_seconds": m, "max_seconds": x})),
        "coverage": coverage(v).into_iter().map(|(i, c)| json!({"invariant": i.name(), "checks": c})).collect::<Vec<_>>(),
        "counterexamples": cxs.iter().map(|c| json!({
            "name": c.name, "of": c.of, "invariants": c.invariants,
            "timeline": c.txt, "mermaid": c.mmd, "svg": c.svg, "schedule": c.schedule,
        })).collect::<Vec<_>>(),
        "errors": v.lane_errors,
    })
}

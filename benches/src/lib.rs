//! Helpers shared by fastzap's benchmarks: configurations, populating a VM,
//! collecting the measured numbers of one run, medians, the machine
//! description, and the SVG summary figures.
//!
//! The benchmarks themselves are in `benches/benches/`; `BENCHMARKS.md` at the
//! repository root explains what each one measures and how to regenerate it.
//!
//! # Two builds
//!
//! By default `fastzap` is built without its checking code (the `ghost`
//! feature off), which is what a VMM would run; `--features ghost` builds it
//! with the checking code. Every benchmark runs in both builds, and [`BUILD`]
//! tells them apart: it ends every criterion group name, and every results
//! file and figure is named `<bench>-ghost-off` or `<bench>-ghost-on`, so
//! that running one build never overwrites the other's numbers. A figure
//! that only the checking code can measure (the allocation counters, the
//! zap history) is written as "n/a without the checking code" in the
//! ghost-off build.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use fastzap::{Config, Fault, Gfn, Hva, SlotId, SlotSpec, Translation, VcpuId, Vm};
use plotters::prelude::*;

/// Host address of the first page of every benchmark memslot.
pub const USERSPACE_BASE: u64 = 0x7f00_0000_0000;

/// Which build of `fastzap` this is: `"ghost-on"` with the checking code
/// (`--features ghost`), `"ghost-off"` without it (the default).
pub const BUILD: &str = if cfg!(feature = "ghost") {
    "ghost-on"
} else {
    "ghost-off"
};

/// What a figure that only the checking code can measure says in the
/// ghost-off build.
pub const NO_GHOST: &str = "n/a without the checking code";

/// `name` with this build's suffix: `<name>_ghost-off` or `<name>_ghost-on`,
/// for criterion group names.
pub fn group_name(name: &str) -> String {
    format!("{name}_{BUILD}")
}

/// The command that runs benchmark `bench` in this build.
pub fn bench_command(bench: &str) -> String {
    let features = if cfg!(feature = "ghost") {
        " --features ghost"
    } else {
        ""
    };
    format!("cargo bench -p fastzap-benches{features} --bench {bench}")
}

/// The file name of figure `name` in this build: `<name>-ghost-off.svg` or
/// `<name>-ghost-on.svg`.
pub fn figure_file(name: &str) -> String {
    format!("{name}-{BUILD}.svg")
}

/// A configuration for measuring: no event log, no audit points, no mutant
/// (in the ghost-off build none of them exists), no large pages.
pub fn bench_config(vcpus: usize, spte_count: usize, levels: u8, address_spaces: u8) -> Config {
    let mut config = Config::native();
    config.vcpus = vcpus;
    config.spte_count = spte_count;
    config.levels = levels;
    config.address_spaces = address_spaces;
    // The published numbers (benches/results) were measured with 4K mappings
    // only; large pages would change what every benchmark maps.
    config.large_pages = false;
    #[cfg(feature = "ghost")]
    {
        config.events = false;
        config.audit_points = false;
        config.mutant = None;
    }
    config
}

/// A VM with one memslot (slot 0) mapping gfns `0..npages`.
pub fn vm_with_slot(config: Config, npages: u64) -> Vm {
    let vm = Vm::new(config).expect("valid benchmark configuration");
    vm.create_memslot(slot0(npages)).expect("memslot fits");
    vm
}

/// The spec of slot 0: `npages` gfns from gfn 0.
pub fn slot0(npages: u64) -> SlotSpec {
    SlotSpec {
        id: SlotId(0),
        base_gfn: Gfn(0),
        npages,
        userspace_addr: Hva(USERSPACE_BASE),
    }
}

/// Faults `gfn` in on `vcpu` until it is mapped, handling requests between
/// attempts (a reload after an invalidation, a retry after a race).
pub fn fault_in(vm: &Vm, vcpu: VcpuId, gfn: u64, write: bool) {
    loop {
        match vm.page_fault(vcpu, Gfn(gfn), write).expect("fault") {
            Fault::Mapped { .. } | Fault::Mmio => return,
            Fault::Retry(_) => {
                vm.handle_requests(vcpu).expect("requests");
            }
        }
    }
}

/// One guest access to a mapped gfn, as B3 counts it: a fault (the vCPU touches
/// the page) and then a translation of it, handling requests and refaulting
/// until the translation sees the mapping.
pub fn access(vm: &Vm, vcpu: VcpuId, gfn: u64) {
    loop {
        fault_in(vm, vcpu, gfn, false);
        match vm.translate(vcpu, Gfn(gfn)).expect("translate") {
            Translation::Mapped { .. } | Translation::Mmio => return,
            Translation::RequestPending | Translation::Miss => {
                vm.handle_requests(vcpu).expect("requests");
            }
        }
    }
}

/// Populates a VM's table with at least `pages` shadow pages, sparsely: one
/// mapped gfn per last-level page (gfns `0, spte_count, 2 * spte_count, ...`),
/// so that every fault creates a page. Returns the number of gfns faulted.
pub fn populate_sparse(vm: &Vm, vcpu: VcpuId, pages: usize) -> u64 {
    vm.handle_requests(vcpu).expect("requests");
    let stride = vm.config().spte_count as u64;
    let mut faulted = 0;
    while vm.shadow_pages() < pages {
        fault_in(vm, vcpu, faulted * stride, false);
        faulted += 1;
    }
    faulted
}

/// Whether criterion runs in its quick test mode (`-- --test`): each benchmark
/// once, nothing measured. The benchmarks then write no report or figure.
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list")
}

/// The calling thread's context switches so far, (voluntary, involuntary),
/// from `/proc/thread-self/status`; `None` where that file is missing. An
/// involuntary switch is a preemption: the scheduler took the CPU away while
/// the thread could still run (a hold that spans one lasts a scheduler slice).
pub fn context_switches() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    Some((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nanoseconds as a `Duration`.
pub fn ns(value: u64) -> Duration {
    Duration::from_nanos(value)
}

/// Formats nanoseconds with a readable unit.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The machine: CPU count and model, from `/proc/cpuinfo`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cpus} CPUs, {model}; load average at the end of the run: {load}")
}

/// `benches/<dir>/`.
pub fn out_dir(dir: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::create_dir_all(&path).expect("create output directory");
    path
}

/// Writes `benches/results/<name>-<build>.md` (a header with the command,
/// the build and the machine, then `body`) and prints it.
pub fn write_report(name: &str, body: &str) {
    write_report_of(name, name, body);
}

/// [`write_report`] for a report `name` that the benchmark `bench` writes
/// (B3 writes P5's as `p5_fault_latency`).
pub fn write_report_of(bench: &str, name: &str, body: &str) {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "<!-- written by the {bench} benchmark ({BUILD}); do not edit -->"
    );
    let _ = writeln!(text, "Command: `{}`\n", bench_command(bench));
    let _ = writeln!(
        text,
        "Build: {BUILD} ({})\n",
        if cfg!(feature = "ghost") {
            "fastzap with its checking code: ghost state, run-time checks, allocation counters"
        } else {
            "fastzap without its checking code, as a VMM would run it"
        }
    );
    let _ = writeln!(text, "Machine: {}\n", machine());
    text.push_str(body);
    let path = out_dir("results").join(format!("{name}-{BUILD}.md"));
    std::fs::write(&path, &text).expect("write report");
    println!("\n{text}\n(written to {})", path.display());
}

/// One line of a figure.
pub struct Series {
    /// The legend.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Its colour.
    pub color: RGBColor,
}

/// Colours for the fast path, the eager path and extra series.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// The smallest and largest finite value, or (1, 10) when there is none, so
/// that a figure of a filtered run never gets an empty or infinite range.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else if lo == hi {
        (lo, lo + lo.abs().max(1.0))
    } else {
        (lo, hi)
    }
}

/// A line plot of `series` on log-log axes, written to `benches/figures/<file>`
/// (name it with [`figure_file`]); the title ends with the build.
pub fn loglog_figure(
    file: &str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let path = out_dir("figures").join(file);
    let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = span(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = span(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} ({BUILD})"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0 / 2.0..x1 * 2.0).log_scale(),
            (y0.max(1.0) / 3.0..y1 * 3.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| fmt_ns(*y))
        .draw()?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(PointSeries::of_element(
            s.points.clone(),
            4,
            color.filled(),
            &|c, size, style| Circle::new(c, size, style),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One bar of a bar figure.
pub struct Bar {
    /// Its label under the axis.
    pub label: String,
    /// Its height.
    pub value: f64,
    /// Its colour.
    pub color: RGBColor,
}

/// A bar chart, written to `benches/figures/<file>` (name it with
/// [`figure_file`]); the title ends with the build. With `log_y` the y axis is
/// logarithmic. `reference` draws a dashed horizontal line (a goal).
pub fn bar_figure(
    file: &str,
    title: &str,
    y_desc: &str,
    bars: &[Bar],
    log_y: bool,
    reference: Option<(f64, &str)>,
    format_y: &dyn Fn(f64) -> String,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = out_dir("figures").join(file);
    // A bar with no finite value (a filtered run) is drawn empty.
    let bars: Vec<Bar> = bars
        .iter()
        .map(|b| Bar {
            label: b.label.clone(),
            value: if b.value.is_finite() { b.value } else { 0.0 },
            color: b.color,
        })
        .collect();
    let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len() as f64;
    let (lo, hi) = span(
        bars.iter()
            .map(|b| b.value)
            .chain(reference.map(|r| r.0))
            .filter(|v| *v > 0.0),
    );
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let x_fmt = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut caption = ChartBuilder::on(&root);
    caption
        .caption(format!("{title} ({BUILD})"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80);
    if log_y {
        let mut chart =
            caption.build_cartesian_2d(-0.6..n - 0.4, (lo / 3.0..hi * 3.0).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 4 + 1)
            .x_label_formatter(&x_fmt)
            .y_desc(y_desc)
            .y_label_formatter(&|y| format_y(*y))
            .draw()?;
        let base = lo / 3.0;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, base), (x + 0.35, b.value.max(base))],
                b.color.filled(),
            )
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format_y(b.value),
                (i as f64 - 0.3, b.value.max(base) * 1.3),
                ("sans-serif", 14),
            )
        }))?;
        if let Some((value, name)) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(-0.6, value), (n - 0.4, value)],
                    BLACK.stroke_width(1),
                ))?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }
    } else {
        let mut chart = caption.build_cartesian_2d(-0.6..n - 0.4, 0.0..hi * 1.2)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len() * 4 + 1)
            .x_label_formatter(&x_fmt)
            .y_desc(y_desc)
            .y_label_formatter(&|y| format_y(*y))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new([(x - 0.35, 0.0), (x + 0.35, b.value)], b.color.filled())
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format_y(b.value),
                (i as f64 - 0.3, b.value + hi * 0.03),
                ("sans-serif", 14),
            )
        }))?;
        if let Some((value, name)) = reference {
            chart
                .draw_series(LineSeries::new(
                    vec![(-0.6, value), (n - 0.4, value)],
                    BLACK.stroke_width(1),
                ))?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// One panel of a line figure: its caption, y axis description and lines.
pub struct Panel {
    /// The panel's caption.
    pub caption: String,
    /// The y axis description.
    pub y_desc: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// Line plots with linear axes, one panel above the other, written to
/// `benches/figures/<file>` (name it with [`figure_file`]); the title ends
/// with the build.
pub fn line_figure(
    file: &str,
    title: &str,
    x_desc: &str,
    panels: &[Panel],
) -> Result<(), Box<dyn std::error::Error>> {
    let path = out_dir("figures").join(file);
    let height = 40 + 300 * panels.len() as u32;
    let root = SVGBackend::new(&path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("{title} ({BUILD})"), ("sans-serif", 20))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        let (_, x1) = span(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        let (_, y1) = span(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1)),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x1.max(1.0) * 1.02, 0.0..y1.max(1.0) * 1.3)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(panel.y_desc.as_str())
            .draw()?;
        for s in &panel.series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(1)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

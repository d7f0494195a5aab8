//! What a person reads from [`Results`]: a Markdown document (for
//! BENCHMARKS.md) and an HTML report with SVG plots drawn by plotters.
use crate::results::{Knee, Phase, Results, Summary};
use crate::summary::thousands;
use anyhow::Context;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// "echo" → "echoes", "reply" → "replies", "connection" → "connections".
pub fn plural(unit: &str) -> String {
    if unit.ends_with('o') || unit.ends_with('s') {
        format!("{unit}es")
    } else if let Some(stem) = unit.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{unit}s")
    }
}

fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map(f).unwrap_or_else(|| "-".into())
}

/// `1.23× (min–max 1.1–1.3)`-style cells.
fn per_s_cell(s: &Summary) -> String {
    opt(s.per_s, |p| {
        if p.n > 1 {
            format!("{} ({}–{})", thousands(p.median), thousands(p.min), thousands(p.max))
        } else {
            thousands(p.median)
        }
    })
}

fn cpu_cell(s: &Summary) -> String {
    match (s.cpu_us, s.cpu_split_us) {
        (Some(c), Some([u, sy, si])) => format!("{:.2} ({u:.2} / {sy:.2} / {si:.2})", c.median),
        (Some(c), None) => format!("{:.2}", c.median),
        _ => "-".into(),
    }
}

fn ratio_cells(s: &Summary, baselines: &[String]) -> Vec<String> {
    baselines
        .iter()
        .map(|b| match s.ratios.iter().find(|r| &r.baseline == b) {
            Some(r) => format!("{} / {}", opt(r.per_s, |x| format!("{x:.2}×")), opt(r.cpu, |x| format!("{x:.2}×"))),
            None => "-".into(),
        })
        .collect()
}

fn phase_title(r: &Results, phase: Phase, rate: Option<f64>) -> String {
    match phase {
        Phase::Closed => "Closed loop".into(),
        Phase::Open => {
            format!("Open loop at {} {}/s (latency from the intended send time)", opt(rate, thousands), plural(&r.unit))
        }
        Phase::Sweep => "Rate sweep".into(),
        Phase::Scale => "Idle connections held".into(),
    }
}

/// The (phase, rate) groups of the summary, in order.
fn groups(r: &Results) -> Vec<(Phase, Option<f64>)> {
    let mut g: Vec<(Phase, Option<f64>)> = Vec::new();
    for s in r.summary.iter().filter(|s| s.phase != Phase::Sweep && s.phase != Phase::Scale) {
        if !g.iter().any(|x| x.0 == s.phase && x.1 == s.rate) {
            g.push((s.phase, s.rate));
        }
    }
    g
}

fn header_lines(r: &Results) -> Vec<String> {
    let m = &r.machine;
    vec![
        format!(
            "Machine: {} CPUs{}{}, kernel {}{}",
            m.cpus,
            opt(m.cpu_model.as_deref(), |x| format!(" ({x})")),
            opt(m.memory_mib, |x| format!(", {x} MiB")),
            m.kernel,
            opt(m.background_cores_busy, |x| format!(", {x:.2} cores busy before the run"))
        ),
        format!(
            "Commit: {}; results schema {}; started at Unix time {}",
            r.commit.as_deref().unwrap_or("unknown"),
            r.schema,
            r.started_unix_s
        ),
        format!("Generator: {}", r.generator),
        format!("Command: `{}`", r.command_line.join(" ").replace('`', "'")),
    ]
}

/// The Markdown document of one run (a `##` section).
pub fn markdown(r: &Results) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## {}\n", title(r));
    for l in header_lines(r) {
        let _ = writeln!(o, "- {l}");
    }
    let _ = writeln!(
        o,
        "\nCPU is the busy time of all cores (/proc/stat: generator, server and softirqs), \
         in µs per {}, split user / system / softirq; \"server CPU\" is the server's own process \
         or threads alone. Ratios are throughput / CPU against each baseline (CPU below 1× is \
         cheaper). Medians over rounds, min–max in parentheses.",
        r.unit
    );
    for (phase, rate) in groups(r) {
        let _ = writeln!(o, "\n### {}\n", phase_title(r, phase, rate));
        let mut head =
            vec!["target".to_string(), "rounds".into(), format!("{}/s", plural(&r.unit)), format!("CPU µs/{}", r.unit)];
        head.push(format!("server CPU µs/{}", r.unit));
        head.extend(r.baselines.iter().map(|b| format!("÷ {b} (rate / CPU)")));
        head.extend(["p50 / p99 / p99.9 µs".into(), "RSS MiB".into(), "limited by".into()]);
        let _ = writeln!(o, "| {} |", head.join(" | "));
        let _ = writeln!(o, "|{}", "---|".repeat(head.len()));
        for s in r.summary.iter().filter(|s| s.phase == phase && s.rate == rate) {
            let mut row = vec![
                format!("`{}`", s.target),
                format!("{}/{}", s.rounds_ok, s.rounds_ok + s.rounds_failed),
                per_s_cell(s),
                cpu_cell(s),
                opt(s.server_cpu_us, |c| format!("{:.2}", c.median)),
            ];
            row.extend(ratio_cells(s, &r.baselines));
            row.push(opt(s.latency, |l| format!("{} / {} / {}", l.p50_us, l.p99_us, l.p999_us)));
            row.push(opt(s.server_rss_kib, |k| format!("{:.1}", k as f64 / 1024.0)));
            row.push(cell(&s.limit));
            let _ = writeln!(o, "| {} |", row.join(" | "));
        }
    }
    if r.summary.iter().any(|s| s.phase == Phase::Sweep) {
        let _ = writeln!(o, "\n### Rate sweep\n");
        let _ = writeln!(o, "| offered/s | target | served/s | CPU µs/{} | p50 / p99 µs | limited by |", r.unit);
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        let mut sweep: Vec<&Summary> = r.summary.iter().filter(|s| s.phase == Phase::Sweep).collect();
        sweep.sort_by(|a, b| a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)));
        for s in sweep {
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} | {} | {} |",
                opt(s.rate, thousands),
                s.target,
                per_s_cell(s),
                cpu_cell(s),
                opt(s.latency, |l| format!("{} / {}", l.p50_us, l.p99_us)),
                cell(&s.limit)
            );
        }
        let _ = writeln!(o);
        for k in &r.knees {
            let _ = writeln!(o, "- {}", knee_line(k, &r.unit));
        }
    }
    if r.summary.iter().any(|s| s.phase == Phase::Scale) {
        let _ = writeln!(o, "\n### Idle connections held\n");
        let _ = writeln!(o, "| connections | target | held | memory per connection | server RSS MiB | how |");
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for [n, target, held, mem, rss, how] in scale_rows(r) {
            let _ = writeln!(o, "| {n} | `{target}` | {held} | {mem} | {rss} | {} |", cell(&how));
        }
    }
    let failures = failure_lines(r);
    if !failures.is_empty() {
        let _ = writeln!(o, "\nFailed measurements:\n");
        for f in failures {
            let _ = writeln!(o, "- {}", cell(&f));
        }
    }
    o
}

/// The run's name in reports: its label, with the scenario when they differ.
pub fn title(r: &Results) -> String {
    if r.label.is_empty() || r.label == r.scenario {
        r.scenario.clone()
    } else {
        format!("{} ({})", r.label, r.scenario)
    }
}

/// A Markdown table cell: one line, no column breaks.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// Every failed measurement, a line each ("target phase: round N: why").
fn failure_lines(r: &Results) -> Vec<String> {
    r.summary
        .iter()
        .flat_map(|s| s.failures.iter().map(move |f| format!("{} {}: {f}", s.target, s.phase.as_str())))
        .collect()
}

/// The conn-scale table's rows: connections, target, held, memory per
/// connection, RSS MiB, how it was measured.
fn scale_rows(r: &Results) -> Vec<[String; 6]> {
    r.summary
        .iter()
        .filter(|s| s.phase == Phase::Scale)
        .map(|s| {
            [
                opt(s.connections, |n| thousands(n as f64)),
                s.target.clone(),
                format!("{}/{}", s.rounds_ok, s.rounds_ok + s.rounds_failed),
                opt(s.memory_per_conn_b, |b| format!("{b:.0} B")),
                opt(s.server_rss_kib, |k| format!("{:.1}", k as f64 / 1024.0)),
                s.limit.clone(),
            ]
        })
        .collect()
}

fn knee_line(k: &Knee, unit: &str) -> String {
    match (k.last_good_rate, k.first_bad_rate) {
        (Some(g), Some(b)) => {
            format!("`{}` kept up with {} {}/s, not with {}", k.target, thousands(g), plural(unit), thousands(b))
        }
        (Some(g), None) => {
            format!("`{}` kept up with every rate offered, up to {} {}/s", k.target, thousands(g), plural(unit))
        }
        (None, Some(b)) => format!("`{}` did not keep up even with {} {}/s", k.target, thousands(b), plural(unit)),
        (None, None) => format!("`{}`: no sweep data", k.target),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// The label of an x key point on a category axis (categories at 0, 1, …):
/// the category's name at a whole number, nothing between.
fn category_label(x: f64, names: &[impl AsRef<str>]) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].as_ref().to_string()
    } else {
        String::new()
    }
}

/// Bars of one figure per target (median), with each round as a dot.
fn bar_plot(title: &str, y_desc: &str, bars: &[(String, f64, Vec<f64>)]) -> Result<String, String> {
    let mut svg = String::new();
    let draw = |svg: &mut String| -> PlotResult {
        let root = SVGBackend::with_string(svg, (640, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let n = bars.len().max(1);
        let top = bars.iter().flat_map(|b| b.2.iter().copied().chain([b.1])).fold(0.0, f64::max).max(1e-9) * 1.15;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .disable_x_mesh()
            .x_labels(2 * n + 2)
            .x_label_formatter(&|x| category_label(*x, &names))
            .y_desc(y_desc)
            .y_label_formatter(&|y: &f64| thousands(*y))
            .draw()?;
        for (i, (_, median, rounds)) in bars.iter().enumerate() {
            let x = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, 0.0), (x + 0.3, *median)],
                color(i).filled(),
            )))?;
            chart.draw_series(rounds.iter().map(|&y| Circle::new((x, y), 3, BLACK.filled())))?;
        }
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("plot {title}: {e}"))?;
    Ok(svg)
}

/// CPU per transaction stacked by kind (user, system, softirq) per target.
fn stacked_cpu_plot(title: &str, unit: &str, bars: &[(String, [f64; 3])]) -> Result<String, String> {
    let mut svg = String::new();
    let draw = |svg: &mut String| -> PlotResult {
        let root = SVGBackend::with_string(svg, (640, 320)).into_drawing_area();
        root.fill(&WHITE)?;
        let n = bars.len().max(1);
        let top = bars.iter().map(|b| b.1.iter().sum::<f64>()).fold(0.0, f64::max).max(1e-9) * 1.15;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .disable_x_mesh()
            .x_labels(2 * n + 2)
            .x_label_formatter(&|x| category_label(*x, &names))
            .y_desc(format!("CPU µs per {unit}"))
            .y_label_formatter(&|y: &f64| format!("{y:.1}"))
            .draw()?;
        let kinds = ["user", "system", "softirq"];
        for (k, kind) in kinds.iter().enumerate() {
            let c = color(k);
            chart
                .draw_series(bars.iter().enumerate().map(|(i, (_, parts))| {
                    let below: f64 = parts[..k].iter().sum();
                    let x = i as f64;
                    Rectangle::new([(x - 0.3, below), (x + 0.3, below + parts[k])], c.filled())
                }))?
                .label(*kind)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("plot {title}: {e}"))?;
    Ok(svg)
}

/// Lines over a shared x axis (log-scale y when `log`); `x_names` label
/// category axes.
fn line_plot(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_names: Option<&[&str]>,
    log: bool,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<String, String> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in lines.iter().flat_map(|l| l.1.iter()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 1.0, 10.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = (x1 - x0) * 0.05;
    let xr = (x0 - pad)..(x1 + pad);
    let mut svg = String::new();
    let result = if log {
        let yr = ((y0 / 1.5).max(0.5))..((y1 * 1.5).max(y0 * 2.0).max(2.0));
        draw_lines(&mut svg, title, x_desc, y_desc, x_names, lines, xr, yr.log_scale())
    } else {
        draw_lines(&mut svg, title, x_desc, y_desc, x_names, lines, xr, 0.0..(y1 * 1.1).max(1.0))
    };
    result.map_err(|e| format!("plot {title}: {e}"))?;
    Ok(svg)
}

#[allow(clippy::too_many_arguments)]
fn draw_lines<Y>(
    svg: &mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_names: Option<&[&str]>,
    lines: &[(String, Vec<(f64, f64)>)],
    xr: std::ops::Range<f64>,
    yr: Y,
) -> PlotResult
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let root = SVGBackend::with_string(svg, (640, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(xr, yr)?;
    let mut mesh = chart.configure_mesh();
    mesh.max_light_lines(1);
    mesh.x_desc(x_desc).y_desc(y_desc).y_label_formatter(&|y: &f64| thousands(*y));
    let fmt_names = |x: &f64| match x_names {
        Some(n) => category_label(*x, n),
        None => thousands(*x),
    };
    if let Some(n) = x_names {
        mesh.x_labels(2 * n.len() + 2);
    }
    mesh.x_label_formatter(&fmt_names).draw()?;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

/// The plots of a run: per (phase, rate) throughput, CPU split and latency
/// percentiles; the sweep's latency and throughput against offered load.
pub fn plots(r: &Results) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (phase, rate) in groups(r) {
        let title = phase_title(r, phase, rate);
        let short = match phase {
            Phase::Closed => "closed loop".to_string(),
            _ => format!("open loop {}/s", opt(rate, thousands)),
        };
        let sums: Vec<&Summary> = r.summary.iter().filter(|s| s.phase == phase && s.rate == rate).collect();
        let rounds = |t: &str, f: &dyn Fn(&crate::results::Measurement) -> Option<f64>| -> Vec<f64> {
            r.measurements
                .iter()
                .filter(|m| m.phase == phase && m.rate == rate && m.target == t && m.ok)
                .filter_map(f)
                .collect()
        };
        let tput: Vec<(String, f64, Vec<f64>)> = sums
            .iter()
            .filter_map(|s| s.per_s.map(|p| (s.target.clone(), p.median, rounds(&s.target, &|m| m.per_s))))
            .collect();
        if !tput.is_empty() {
            out.push((
                format!("{title}: throughput"),
                bar_plot(
                    &format!("{}/s, {short}", plural(&r.unit)),
                    &format!("{} per second", plural(&r.unit)),
                    &tput,
                )?,
            ));
        }
        let cpu: Vec<(String, [f64; 3])> =
            sums.iter().filter_map(|s| s.cpu_split_us.map(|c| (s.target.clone(), c))).collect();
        if !cpu.is_empty() {
            out.push((
                format!("{title}: CPU per {}", r.unit),
                stacked_cpu_plot(&format!("CPU µs per {}, {short}", r.unit), &r.unit, &cpu)?,
            ));
        }
        let names = ["p50", "p90", "p99", "p99.9", "max"];
        let lat: Vec<(String, Vec<(f64, f64)>)> = sums
            .iter()
            .filter_map(|s| {
                s.latency.map(|l| {
                    let v = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us];
                    (s.target.clone(), v.iter().enumerate().map(|(i, &y)| (i as f64, (y as f64).max(1.0))).collect())
                })
            })
            .collect();
        if !lat.is_empty() {
            out.push((
                format!("{title}: latency"),
                line_plot(&format!("latency percentiles, {short}"), "percentile", "µs", Some(&names), true, &lat)?,
            ));
        }
    }
    let mut scale_targets: Vec<&str> = Vec::new();
    for s in r.summary.iter().filter(|s| s.phase == Phase::Scale) {
        if !scale_targets.contains(&s.target.as_str()) {
            scale_targets.push(&s.target);
        }
    }
    if !scale_targets.is_empty() {
        let lines: Vec<(String, Vec<(f64, f64)>)> = scale_targets
            .iter()
            .map(|t| {
                let mut pts: Vec<(f64, f64)> = r
                    .summary
                    .iter()
                    .filter(|s| s.phase == Phase::Scale && s.target == *t)
                    .filter_map(|s| Some((s.connections? as f64, s.memory_per_conn_b?)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (t.to_string(), pts)
            })
            .collect();
        out.push((
            "Memory per idle connection".into(),
            line_plot("memory per idle connection", "connections", "bytes per connection", None, false, &lines)?,
        ));
    }
    let mut sweep_targets: Vec<&str> = Vec::new();
    for s in r.summary.iter().filter(|s| s.phase == Phase::Sweep) {
        if !sweep_targets.contains(&s.target.as_str()) {
            sweep_targets.push(&s.target);
        }
    }
    if !sweep_targets.is_empty() {
        let series = |f: &dyn Fn(&Summary) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
            sweep_targets
                .iter()
                .map(|t| {
                    let mut pts: Vec<(f64, f64)> = r
                        .summary
                        .iter()
                        .filter(|s| s.phase == Phase::Sweep && s.target == *t)
                        .filter_map(|s| Some((s.rate?, f(s)?)))
                        .collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (t.to_string(), pts)
                })
                .collect()
        };
        let p99 = series(&|s| s.latency.map(|l| (l.p99_us as f64).max(1.0)));
        out.push((
            "Rate sweep: p99 latency against offered load".into(),
            line_plot(
                "p99 latency vs offered load",
                &format!("offered {}/s", plural(&r.unit)),
                "p99 µs",
                None,
                true,
                &p99,
            )?,
        ));
        let served = series(&|s| s.per_s.map(|p| p.median.max(1.0)));
        out.push((
            "Rate sweep: served against offered load".into(),
            line_plot(
                "served vs offered load",
                &format!("offered {}/s", plural(&r.unit)),
                &format!("served {}/s", plural(&r.unit)),
                None,
                false,
                &served,
            )?,
        ));
    }
    Ok(out)
}

/// The HTML report: header, the tables, the plots (inline SVG), and a
/// check that the browser laid every plot out (`data-plots-rendered`).
pub fn html(r: &Results) -> Result<String, String> {
    let plots = plots(r)?;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sluice-bench {}</title>\n\
         <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;margin:0.5em}}\
         code{{background:#f3f3f3}}</style></head>\n<body data-plots=\"{}\">\n<h1>sluice-bench: {}</h1>\n<ul>\n",
        esc(&title(r)),
        plots.len(),
        esc(&title(r))
    );
    for l in header_lines(r) {
        let _ = writeln!(o, "<li>{}</li>", esc(&l));
    }
    let _ = writeln!(o, "</ul>");
    for (phase, rate) in groups(r) {
        let _ = writeln!(o, "<h2>{}</h2>\n<table><tr><th>target</th><th>rounds</th><th>{}/s</th><th>CPU µs/{} (user / sys / softirq)</th><th>server CPU µs</th>", esc(&phase_title(r, phase, rate)), esc(&plural(&r.unit)), esc(&r.unit));
        for b in &r.baselines {
            let _ = write!(o, "<th>÷ {} (rate / CPU)</th>", esc(b));
        }
        let _ = writeln!(o, "<th>p50 / p99 / p99.9 µs</th><th>RSS MiB</th><th>limited by</th></tr>");
        for s in r.summary.iter().filter(|s| s.phase == phase && s.rate == rate) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td>",
                esc(&s.target),
                s.rounds_ok,
                s.rounds_ok + s.rounds_failed,
                esc(&per_s_cell(s)),
                esc(&cpu_cell(s))
            );
            let _ = write!(o, "<td>{}</td>", esc(&opt(s.server_cpu_us, |c| format!("{:.2}", c.median))));
            for c in ratio_cells(s, &r.baselines) {
                let _ = write!(o, "<td>{}</td>", esc(&c));
            }
            let _ = writeln!(
                o,
                "<td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&opt(s.latency, |l| format!("{} / {} / {}", l.p50_us, l.p99_us, l.p999_us))),
                esc(&opt(s.server_rss_kib, |k| format!("{:.1}", k as f64 / 1024.0))),
                esc(&s.limit)
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let mut sweep: Vec<&Summary> = r.summary.iter().filter(|s| s.phase == Phase::Sweep).collect();
    sweep.sort_by(|a, b| a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)));
    if !sweep.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Rate sweep</h2>\n<table><tr><th>offered/s</th><th>target</th><th>served/s</th><th>CPU µs/{}</th><th>p50 / p99 µs</th><th>limited by</th></tr>",
            esc(&r.unit)
        );
        for s in sweep {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&opt(s.rate, thousands)),
                esc(&s.target),
                esc(&per_s_cell(s)),
                esc(&cpu_cell(s)),
                esc(&opt(s.latency, |l| format!("{} / {}", l.p50_us, l.p99_us))),
                esc(&s.limit)
            );
        }
        let _ = writeln!(o, "</table>");
    }
    if !r.knees.is_empty() {
        let _ = writeln!(o, "<ul>");
        for k in &r.knees {
            let _ = writeln!(o, "<li>{}</li>", esc(&knee_line(k, &r.unit)));
        }
        let _ = writeln!(o, "</ul>");
    }
    if r.summary.iter().any(|s| s.phase == Phase::Scale) {
        let _ = writeln!(
            o,
            "<h2>Idle connections held</h2>\n<table><tr><th>connections</th><th>target</th><th>held</th><th>memory per connection</th><th>server RSS MiB</th><th>how</th></tr>"
        );
        for row in scale_rows(r) {
            let cells: Vec<String> = row.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
            let _ = writeln!(o, "<tr>{}</tr>", cells.concat());
        }
        let _ = writeln!(o, "</table>");
    }
    let failures = failure_lines(r);
    if !failures.is_empty() {
        let _ = writeln!(o, "<h2>Failed measurements</h2><ul>");
        for f in failures {
            let _ = writeln!(o, "<li>{}</li>", esc(&f));
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(o, "<h2>Plots</h2>");
    for (caption, svg) in &plots {
        let _ = writeln!(o, "<figure class=\"plot\">{svg}<figcaption>{}</figcaption></figure>", esc(caption));
    }
    // A plot counts as rendered when the browser gives its drawing a
    // non-empty box and it holds shapes in a series colour (the palette),
    // not only the frame and the grid.
    o.push_str(PLOT_CHECK);
    Ok(o)
}

/// The report's own check, run by the browser: how many plots laid out
/// with series drawn (`data-plots-rendered`).
const PLOT_CHECK: &str = r#"<script>
window.addEventListener('load', function () {
  var n = 0;
  document.querySelectorAll('figure.plot svg').forEach(function (s) {
    var b = s.getBBox();
    var series = 0;
    s.querySelectorAll('rect,circle,polyline,path').forEach(function (e) {
      var c = (e.getAttribute('fill') || '') + (e.getAttribute('stroke') || '');
      if (/#(1F77B4|FF7F0E|2CA02C|D62728|9467BD|8C564B)/i.test(c)) series++;
    });
    if (b.width > 0 && b.height > 0 && series > 0) n++;
  });
  document.body.setAttribute('data-plots-rendered', String(n));
});
</script>
</body></html>
"#;

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Writes results.json, report.md and report.html into `dir`.
pub fn write_report(dir: &Path, r: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(r)? + "\n";
    write_atomic(&dir.join("results.json"), json.as_bytes())?;
    write_atomic(&dir.join("report.md"), markdown(r).as_bytes())?;
    let page = html(r).map_err(|e| anyhow::anyhow!(e))?;
    write_atomic(&dir.join("report.html"), page.as_bytes())?;
    eprintln!("wrote {}/{{results.json,report.md,report.html}}", dir.display());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::Latency;
    use crate::results::{summarize, CpuFigures, MachineInfo, Measurement, SCHEMA};

    pub(crate) fn sample() -> Results {
        let mut ms = Vec::new();
        for round in 1..=2 {
            for (t, per_s, cpu) in [("sluice", 400_000.0, 4.0), ("kernel", 200_000.0, 9.0)] {
                for (phase, rate) in [
                    (Phase::Closed, None),
                    (Phase::Open, Some(100_000.0)),
                    (Phase::Sweep, Some(50_000.0)),
                    (Phase::Sweep, Some(150_000.0)),
                ] {
                    ms.push(Measurement {
                        phase,
                        rate,
                        round,
                        target: t.into(),
                        ok: true,
                        error: None,
                        transactions: per_s as u64,
                        per_s: Some(rate.map_or(per_s + round as f64, |r: f64| r.min(per_s))),
                        elapsed_s: 1.0,
                        cpu: Some(CpuFigures {
                            busy_s_per_m: cpu,
                            user_s_per_m: cpu * 0.5,
                            system_s_per_m: cpu * 0.3,
                            softirq_s_per_m: cpu * 0.2,
                            cores_busy: 1.5,
                            generator_cores: Some(0.5),
                            server_cores: Some(0.8),
                            steal_cores: 0.0,
                            server_us: Some(cpu * 0.4),
                            generator_us: Some(cpu * 0.3),
                        }),
                        latency: Some(Latency { p50_us: 50, p90_us: 80, p99_us: 200, p999_us: 900, max_us: 3000 }),
                        server_rss_kib: (t == "sluice").then_some(20480),
                        lost: 0,
                        mismatched: 0,
                        limit: "all 2 cores busy".into(),
                        connections: None,
                        memory_per_conn_b: None,
                    });
                }
            }
        }
        let baselines = vec!["kernel".to_string()];
        let summary = summarize(&ms, &baselines);
        Results {
            schema: SCHEMA.into(),
            scenario: "tcp-rr".into(),
            label: "tcp-rr".into(),
            unit: "echo".into(),
            generator: "test <generator>".into(),
            started_unix_s: 1,
            machine: MachineInfo::here(None),
            commit: Some("abc".into()),
            command_line: vec!["sluice-bench".into(), "run".into()],
            options: serde_json::json!({}),
            baselines,
            knees: crate::results::knees(&summary),
            summary,
            measurements: ms,
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn markdown_has_every_group_and_ratio() {
        let md = markdown(&sample());
        assert!(md.contains("### Closed loop"), "{md}");
        assert!(md.contains("### Open loop at 100,000 echoes/s"), "{md}");
        assert_eq!(
            (plural("reply"), plural("connection"), plural("echo")),
            ("replies".into(), "connections".into(), "echoes".into())
        );
        assert!(md.contains("### Rate sweep"), "{md}");
        // sluice 400,001.5 median vs kernel 200,001.5: about 2×; CPU 4 / 9.
        assert!(md.contains("2.00× / 0.44×"), "{md}");
        assert!(md.contains("| `sluice` | 2/2 |"), "{md}");
        assert!(md.contains("20.0"), "RSS in MiB: {md}");
        assert!(md.contains("kept up with"), "{md}");
    }

    #[test]
    fn html_holds_escaped_text_and_svg_plots() {
        let r = sample();
        let page = html(&r).unwrap();
        let plots = plots(&r).unwrap();
        // closed + open: throughput, CPU, latency each; sweep: two.
        assert_eq!(plots.len(), 8);
        assert_eq!(page.matches("<svg").count(), 8);
        assert!(page.contains("data-plots=\"8\""));
        assert!(page.contains("test &lt;generator&gt;"), "escaped");
        for (_, svg) in &plots {
            assert!(svg.contains("<rect") || svg.contains("<polyline") || svg.contains("<path"), "{svg}");
        }
    }

    #[test]
    fn empty_results_still_render() {
        let mut r = sample();
        r.measurements.clear();
        r.summary.clear();
        r.knees.clear();
        assert!(plots(&r).unwrap().is_empty());
        assert!(html(&r).unwrap().contains("data-plots=\"0\""));
        assert!(markdown(&r).contains("## tcp-rr"));
    }
}

//! `mmring bench --plot DIR`: the tables as pictures, in SVG (plotters'
//! SVG backend: text is written as `<text>` elements, so no font file is
//! read).
//!
//! * `<group>-throughput.svg`, for every comparison: one bar per row with a
//!   throughput (messages or operations per second, log scale), grouped by
//!   the table's sections, so that mmring stands next to its baselines of
//!   the same run;
//! * `spsc-latency.svg` and `spsc-wakeup.svg`: the distributions of the
//!   SPSC round trips (back to back; with the echo side asleep), one curve
//!   per mechanism: x the round trip (log scale), y the fraction of round
//!   trips at most that long, p50 and p99 marked with a dot and given in
//!   the legend.
//!
//! The comparisons hand their figures over in their [`Report`]'s
//! [`Plot`]; a latency curve keeps [`POINTS`] points of the sorted
//! samples, however many round trips were timed.

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::report::{Report, rate};

/// Points per latency curve (quantiles of the samples).
pub const POINTS: usize = 400;

/// What a comparison draws: its throughput bars and its latency charts.
#[derive(Clone, Debug, Default)]
pub struct Plot {
    /// One bar per row with a throughput, in table order.
    pub bars: Vec<Bar>,
    /// Latency distributions, one file each.
    pub charts: Vec<Chart>,
}

/// One throughput bar.
#[derive(Clone, Debug)]
pub struct Bar {
    /// The section of the table (with the message size where it matters).
    pub section: String,
    /// The mechanism.
    pub label: String,
    /// The median rate, per second.
    pub per_sec: f64,
}

/// One latency chart: a file name (without `.svg`), a title and its
/// curves.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The file name, without `.svg`.
    pub file: String,
    /// The title above the chart.
    pub title: String,
    /// One per mechanism.
    pub curves: Vec<Curve>,
}

/// The distribution of one mechanism's round trips.
#[derive(Clone, Debug)]
pub struct Curve {
    /// The mechanism.
    pub label: String,
    /// (nanoseconds, fraction of samples at most that long), rising.
    pub points: Vec<(f64, f64)>,
    /// The median, in nanoseconds.
    pub p50: f64,
    /// The 99th percentile, in nanoseconds.
    pub p99: f64,
}

impl Curve {
    /// The curve of `nanos` (any order; at least one), with `p50` and `p99`
    /// as the table computed them.
    pub fn new(label: &str, nanos: &[u64], p50: f64, p99: f64) -> Self {
        let mut sorted = nanos.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let points = if n == 0 {
            Vec::new()
        } else {
            (0..=POINTS)
                .map(|k| {
                    let i = k * (n - 1) / POINTS;
                    ((sorted[i].max(1)) as f64, (i + 1) as f64 / n as f64)
                })
                .collect()
        };
        Self {
            label: label.to_string(),
            points,
            p50,
            p99,
        }
    }
}

/// Writes every picture of `reports` into `dir` (made if missing); the
/// files written.
///
/// # Errors
///
/// Making the directory or drawing a file.
pub fn write(dir: &Path, reports: &[Report]) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for report in reports {
        if !report.plot.bars.is_empty() {
            let path = dir.join(format!("{}-throughput.svg", report.group));
            bars(&path, report.group, &report.plot.bars)?;
            written.push(path);
        }
        for chart in &report.plot.charts {
            if chart.curves.iter().all(|c| c.points.is_empty()) {
                continue;
            }
            let path = dir.join(format!("{}.svg", chart.file));
            latency(&path, chart)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// A round-trip time with a unit.
fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The cumulative distributions of `chart`'s curves.
fn latency(path: &Path, chart: &Chart) -> Result<(), Box<dyn Error>> {
    let all = || {
        chart
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.0))
    };
    let lo = all().fold(f64::INFINITY, f64::min).max(1.0) / 1.2;
    let hi = all().fold(0.0, f64::max).max(lo * 10.0) * 1.2;
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.02f64)?;
    c.configure_mesh()
        .x_desc("round trip (log scale)")
        .y_desc("fraction of round trips at most x")
        .x_label_formatter(&|&v| duration(v))
        .y_label_formatter(&|&v| format!("{v:.1}"))
        .draw()?;
    for (i, curve) in chart.curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(
            curve.points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(format!(
            "{}: p50 {}, p99 {}",
            curve.label,
            duration(curve.p50),
            duration(curve.p99)
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        c.draw_series(
            [(curve.p50, 0.5), (curve.p99, 0.99)]
                .into_iter()
                .filter(|&(x, _)| x > 0.0)
                .map(move |p| Circle::new(p, 4, color.filled())),
        )?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Horizontal bars, one per row, under a heading per section (sections in
/// the order they first come, bars in their order within it); log scale.
fn bars(path: &Path, group: &str, bars: &[Bar]) -> Result<(), Box<dyn Error>> {
    let mut sections: Vec<&str> = Vec::new();
    for bar in bars {
        if !sections.contains(&bar.section.as_str()) {
            sections.push(&bar.section);
        }
    }
    // Lines from the top: a heading before each section, then its bars.
    let mut lines: Vec<(Option<&Bar>, &str, usize)> = Vec::new();
    for (section, &title) in sections.iter().enumerate() {
        lines.push((None, title, section));
        for bar in bars.iter().filter(|b| b.section == title) {
            lines.push((Some(bar), bar.label.as_str(), section));
        }
    }
    let values = || bars.iter().map(|b| b.per_sec).filter(|&v| v > 0.0);
    let lo = values().fold(f64::INFINITY, f64::min).min(1e6) / 4.0;
    let hi = values().fold(1.0, f64::max) * 2.0;
    let n = lines.len();
    let height = 110 + 22 * n as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!("mmring bench {group}: throughput (median of the rounds)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(10)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)?;
    c.configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("per second (log scale)")
        .x_label_formatter(&|&v| rate(v))
        .draw()?;
    let text = ("sans-serif", 13).into_font();
    for (i, &(bar, label, section)) in lines.iter().enumerate() {
        let top = (n - i) as f64;
        let mid = top - 0.5;
        match bar {
            None => {
                c.draw_series(std::iter::once(Text::new(
                    label.to_string(),
                    (lo * 1.05, mid + 0.3),
                    text.clone().style(FontStyle::Bold),
                )))?;
            }
            Some(bar) => {
                let color = Palette99::pick(section).mix(0.45);
                c.draw_series(std::iter::once(Rectangle::new(
                    [(lo, top - 0.85), (bar.per_sec.max(lo), top - 0.15)],
                    color.filled(),
                )))?;
                c.draw_series(std::iter::once(Text::new(
                    format!("{}  {}/s", label, rate(bar.per_sec).trim_end()),
                    (lo * 1.05, mid + 0.3),
                    text.clone(),
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

//! The table of the comparisons measured in operations per second — the
//! counter, cell and map groups — and what each of them tells it: its
//! objects ([`Comparison`]), its sections ([`Section`]) and rows ([`Row`]).
//!
//! Each round measures every row once, in table order (so slow drift of
//! the machine hits every row alike); a short unmeasured warm-up round
//! comes first. Ratios are taken between medians of the same run. Both
//! `mmring bench counter|cell|map` and the criterion benches
//! (`cli/benches/{counter,cell,map}.rs`) measure through
//! [`Comparison::measure`], so they measure exactly the same thing.

use std::fmt::Debug;
use std::io;
use std::time::Instant;

use super::Fixture;
use crate::bench::BenchArgs;
use crate::bench::plot::{Bar, Plot};
use crate::bench::report::{Plan, Progress, Report, Stats, bench_dir, rate, stats_json};
use crate::bench::runner::control::{Budget, Sample};
use crate::bench::runner::cpu::{cpus, warn_if_busy};

/// One row of the table: a mechanism.
pub trait Row: Copy + PartialEq + Debug + 'static {
    /// The mechanism, as the table names it.
    fn label(self) -> &'static str;

    /// The row's name in criterion's reports and the JSON.
    fn id(self) -> &'static str;
}

/// A section of the table: rows compared against the first, the baseline.
pub trait Section: Copy + PartialEq + Debug + 'static {
    /// Its rows.
    type Row: Row;

    /// The heading of the section in the table.
    fn title(self) -> &'static str;

    /// The section's name in criterion's reports and the JSON.
    fn id(self) -> &'static str;

    /// The rows, baseline first.
    fn rows(self) -> &'static [Self::Row];

    /// The row the others are compared against.
    fn baseline(self) -> Self::Row {
        self.rows()[0]
    }

    /// The peer column of a row with figures `s` (empty where the row has
    /// no peer).
    fn peer(self, s: &Stats) -> String {
        let _ = s;
        String::new()
    }
}

/// The rows of comparison `C`.
pub type RowOf<C> = <<C as Comparison>::Section as Section>::Row;

/// A comparison measured in operations per second: every object its rows
/// measure ([`Fixture`]).
pub trait Comparison: Fixture {
    /// Its sections.
    type Section: Section;

    /// The comparison's name on the command line ("counter").
    const NAME: &'static str;

    /// The sections, in table order.
    const SECTIONS: &'static [Self::Section];

    /// Runs `row` once for `budget`: a fresh child process (or thread)
    /// where the row has two parties, timed by this one.
    ///
    /// Forks: call it from a thread that may fork (criterion's main
    /// thread, the command line's only thread).
    ///
    /// # Errors
    ///
    /// If the run fails.
    fn measure(&self, row: RowOf<Self>, budget: Budget) -> io::Result<Sample>;

    /// The design's target for a row that has one (`median` its median,
    /// `base` its baseline's, `stat` any row's figures), and whether it is
    /// met; empty for the others.
    fn target(
        row: RowOf<Self>,
        median: f64,
        base: f64,
        stat: &dyn Fn(RowOf<Self>) -> Stats,
    ) -> String {
        let _ = (row, median, base, stat);
        String::new()
    }

    /// Warnings on stderr about the run as a whole, once it is measured.
    fn check(stat: &dyn Fn(RowOf<Self>) -> Stats) {
        let _ = stat;
    }
}

/// The peer column of a row where both processes count: the child's share
/// of the operations.
pub fn child_share(s: &Stats) -> String {
    format!(
        "child did {:.0}% of ops",
        100.0 * s.peer / s.median.max(1e-9)
    )
}

/// Runs comparison `C` and makes its table (progress to stderr).
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
pub fn run<C: Comparison>(args: &BenchArgs) -> Result<Report, Box<dyn std::error::Error>> {
    let plan = Plan::of(args, 200);
    let rounds = plan.rounds;
    let fixture = C::new_in(bench_dir(args)?)?;
    warn_if_busy();
    let rows: Vec<RowOf<C>> = C::SECTIONS
        .iter()
        .flat_map(|g| g.rows().iter().copied())
        .collect();

    let progress = Progress::new(rows.len() * (rounds + 1));
    let started = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(rounds); rows.len()];
    for round in 0..=rounds {
        for (i, &row) in rows.iter().enumerate() {
            let what = if round == 0 {
                format!("warm-up: {}", row.label())
            } else {
                format!("round {round}/{rounds}: {}", row.label())
            };
            progress.step(&what);
            let sample = fixture
                .measure(row, plan.budget(round))
                .map_err(|e| format!("{}: {e}", row.label()))?;
            if round > 0 {
                samples[i].push(sample);
            }
        }
    }
    progress.finish(started.elapsed());

    let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
    let stat = |row: RowOf<C>| stats[rows.iter().position(|&r| r == row).unwrap_or(0)];
    let mut out = String::new();
    out.push_str(&format!(
        "mmring bench {}: median of {} per row, {} CPUs\n",
        C::NAME,
        plan.text(args, "ops"),
        cpus()
    ));
    out.push_str(&format!(
        "{:<54}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
        "mechanism", "ops/s", "range (min-max)", "vs base", "peer", "target"
    ));
    let mut json_rows = Vec::new();
    let mut bars = Vec::new();
    for &section in C::SECTIONS {
        out.push_str(&format!("-- {}\n", section.title()));
        let base = stat(section.baseline()).median;
        for &row in section.rows() {
            let s = stat(row);
            let ratio = if row == section.baseline() {
                "(base)".to_string()
            } else {
                format!("{:.2}x", s.median / base)
            };
            let peer = section.peer(&s);
            let target = C::target(row, s.median, base, &stat);
            out.push_str(&format!(
                "{:<54}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
                row.label(),
                rate(s.median),
                format!("{}-{}", rate(s.min), rate(s.max)),
                ratio,
                peer,
                target,
            ));
            bars.push(Bar {
                section: section.title().to_string(),
                label: row.label().to_string(),
                per_sec: s.median,
            });
            json_rows.push(serde_json::json!({
                "group": section.id(),
                "title": section.title(),
                "mechanism": row.label(),
                "id": row.id(),
                "ops_per_sec": stats_json(Some(s)),
                "peer_per_sec": s.peer,
                "vs_base": s.median / base,
                "base": row == section.baseline(),
                "target": (!target.is_empty()).then_some(target),
            }));
        }
    }
    C::check(&stat);
    Ok(Report {
        group: C::NAME,
        text: out,
        json: serde_json::json!({ "plan": plan.json(args), "cpus": cpus(), "rows": json_rows }),
        plot: Plot {
            bars,
            charts: Vec::new(),
        },
    })
}

/// Test helpers every ops comparison runs its rows with.
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Runs every row of `C` once for 1000 operations (each counted by
    /// `count`, if it can tell, before and after: both processes'
    /// operations, each once); then checks that no file was left in the
    /// directory and that dropping the fixture removes it. Returns every
    /// row's sample.
    pub(in crate::bench::group) fn every_row_runs<C: Comparison>(
        count: impl Fn(&C, RowOf<C>) -> Option<u64>,
    ) -> Vec<(RowOf<C>, Sample)> {
        let fixture = C::new().expect("fixture");
        let mut samples = Vec::new();
        for section in C::SECTIONS {
            for &row in section.rows() {
                let before = count(&fixture, row);
                let sample = fixture
                    .measure(row, Budget::ops(1000))
                    .unwrap_or_else(|e| panic!("{row:?}: {e}"));
                assert!(sample.ops >= 1000, "{row:?}: {sample:?}");
                if let (Some(before), Some(after)) = (before, count(&fixture, row)) {
                    assert_eq!(after - before, sample.ops, "{row:?}");
                }
                samples.push((row, sample));
            }
        }
        crate::bench::group::tests::no_file_left(&fixture, &C::NAME);
        crate::bench::group::tests::dropped_with_its_directory(fixture);
        samples
    }
}

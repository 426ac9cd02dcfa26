//! `mmring bench spsc`: the SPSC comparison ([`SpscFixture`]'s rows) in
//! rounds, then one table — mechanism, throughput for both message sizes,
//! round trip p50/p99, each against the mutex version — and the design's
//! targets with their ratios.

use std::time::{Duration, Instant};

use super::{CAPACITY, GAP, Mech, Row, Section, SpscFixture};
use crate::bench::BenchArgs;
use crate::bench::group::Fixture;
use crate::bench::plot::{Bar, Chart, Curve, Plot};
use crate::bench::report::{Plan, Progress, Report, Stats, bench_dir, met, rate, stats_json};
use crate::bench::runner::control::Sample;
use crate::bench::runner::cpu::{Others, cpus, warn_if_busy};
use crate::bench::runner::flow::{BATCH, Size};
use crate::bench::runner::roundtrip::RoundTrips;

/// Timed round trips per row and round [default; a quarter with --quick].
const ROUND_TRIPS: u64 = 20_000;

/// What one row measured over all rounds.
#[derive(Default)]
struct Measured {
    throughput: [Vec<Sample>; 2],
    trips: RoundTrips,
}

/// Runs the SPSC comparison and makes its table (progress to stderr).
///
/// As for the counter table, each round measures every row once, in table
/// order, after an unmeasured warm-up round; throughput is the median of
/// the rounds, round-trip percentiles are over the samples of all rounds.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
pub fn run(args: &BenchArgs) -> Result<Report, Box<dyn std::error::Error>> {
    let plan = Plan::of(args, 150);
    let rounds = plan.rounds;
    let trips = if args.quick {
        ROUND_TRIPS / 4
    } else {
        ROUND_TRIPS
    };
    let fixture = SpscFixture::new_in(bench_dir(args)?)?;
    let busy = warn_if_busy();
    let rows: Vec<Row> = Row::all().collect();
    let steps = steps();
    let progress = Progress::new(steps.len() * (rounds + 1));
    let others = Others::start();
    let started = Instant::now();
    let mut measured: Vec<Measured> = rows.iter().map(|_| Measured::default()).collect();
    for round in 0..=rounds {
        let when = if round == 0 {
            "warm-up".to_string()
        } else {
            format!("round {round}/{rounds}")
        };
        for &(row, what) in &steps {
            let i = rows.iter().position(|&r| r == row).unwrap_or(0);
            match what {
                Step::Throughput(k, size) => {
                    progress.step(&format!(
                        "{when}: {} ({} messages)",
                        row.label(),
                        size.name()
                    ));
                    let sample = fixture
                        .throughput(row, size, plan.budget(round))
                        .map_err(|e| format!("{} ({}): {e}", row.label(), size.name()))?;
                    if round > 0 {
                        measured[i].throughput[k].push(sample);
                    }
                }
                Step::RoundTrips => {
                    progress.step(&format!("{when}: {} (round trips)", row.label()));
                    // A round trip after a pause costs the pause too: fewer.
                    let n = if row.section == Section::Asleep {
                        trips / 10
                    } else {
                        trips
                    };
                    let n = if round == 0 { (n / 4).max(1) } else { n };
                    let rt = fixture
                        .round_trips(row, n)
                        .map_err(|e| format!("{} (round trips): {e}", row.label()))?;
                    if round > 0 {
                        measured[i].trips.extend(&rt);
                    }
                }
            }
        }
    }
    progress.finish(started.elapsed());
    let others = others.and_then(|o| o.cpus());

    let table = Table::new(&rows, &measured);
    let mut out = String::new();
    out.push_str(&format!(
        "mmring bench spsc: 2 processes unless stated; capacity {CAPACITY}, batches of {BATCH}; \
         throughput: median of {}; round trips: {rounds} x {trips} \
         u64 ({rounds} x {} wake-ups), p50 / p99; {} CPUs; other processes kept {} of them busy \
         just before the run, {} on average during it\n",
        plan.text(args, "messages"),
        trips / 10,
        cpus(),
        busy.map_or("?".to_string(), |b| format!("{b:.1}")),
        others.map_or("?".to_string(), |b| format!("{b:.1}")),
    ));
    out.push_str(
        "x mutex: times better than the mutex version used the same way (throughput: \
         higher; round trip: lower); sleeps: times the timing side slept per round trip\n",
    );
    out.push_str(&format!(
        "{:<46}  {:>10}  {:>7}  {:>10}  {:>7}  {:<5} {:>21}  {:>7}  {:>6}\n",
        "mechanism",
        format!("{}/s", Size::U64.name()),
        "x mutex",
        format!("{}/s", Size::Bytes64.name()),
        "x mutex",
        "wait",
        "round trip p50 / p99",
        "x mutex",
        "sleeps"
    ));
    for (title, section) in [
        ("-- one message per call".to_string(), Section::Single),
        (
            "-- batches (the mutex ring: one lock per batch; ArrayQueue has no batch call)"
                .to_string(),
            Section::Batched,
        ),
        (
            format!(
                "-- wake-up round trips: the echo side asleep (a pause of {} us before each)",
                GAP.as_micros()
            ),
            Section::Asleep,
        ),
    ] {
        out.push_str(&title);
        out.push('\n');
        for &row in Row::of(section) {
            out.push_str(&table.line(row));
        }
    }
    #[cfg(not(feature = "iceoryx2"))]
    out.push_str("(iceoryx2's rows: cargo run --release --features iceoryx2 -- bench spsc)\n");
    out.push_str(&table.targets());
    if let Some(others) = others.filter(|&o| o > 0.2) {
        eprintln!(
            "warning: other processes kept {others:.1} CPUs busy on average during the run: \
             the figures are those of a shared machine"
        );
    }
    if let Some((p50, _)) = table.trip(Row::new(Mech::Floor, Section::Single)) {
        if p50 > Duration::from_micros(1) {
            eprintln!(
                "warning: one cache line took {} per round trip: the two processes were mostly \
                 not running at the same time (a busy machine?), so the spinning rows read too slow",
                duration(p50)
            );
        }
    }
    let json = serde_json::json!({
        "plan": plan.json(args),
        "round_trips_per_round": trips,
        "cpus": cpus(),
        "capacity": CAPACITY,
        "batch": BATCH,
        "busy_before": busy,
        "busy_during": others,
        "rows": table.json(),
    });
    let plot = table.plot(&rows, &measured);
    Ok(Report {
        group: "spsc",
        text: out,
        json,
        plot,
    })
}

/// One measurement of a round.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Throughput with messages of a size (and its index in `Size::ALL`).
    Throughput(usize, Size),
    /// Round trips.
    RoundTrips,
}

/// The measurements of a round, in the order they are made: the pairs
/// the targets compare (mmring and rtrb, mmring and the floor, mmring and
/// the pipe) next to each other, so that a machine whose speed drifts
/// (virtual CPUs moved between cores, neighbours coming and going) moves
/// both figures of a pair alike.
fn steps() -> Vec<(Row, Step)> {
    use Mech::{Floor, Mmring, MmringBlocking, MutexRing, Pipe, Rtrb};
    use Section::{Asleep, Batched, Single};
    let first = [
        Row::new(Rtrb, Single),
        Row::new(Mmring, Single),
        #[cfg(feature = "iceoryx2")]
        Row::new(Mech::Iceoryx2, Single),
        Row::new(Mmring, Batched),
    ];
    let mut steps = Vec::new();
    for (k, size) in Size::ALL.into_iter().enumerate() {
        let rest = Row::all().filter(|r| r.has_throughput() && !first.contains(r));
        for row in first.into_iter().chain(rest) {
            steps.push((row, Step::Throughput(k, size)));
        }
    }
    let trips = [
        Row::new(Floor, Single),
        Row::new(Mmring, Single),
        #[cfg(feature = "iceoryx2")]
        Row::new(Mech::Iceoryx2, Single),
        #[cfg(feature = "iceoryx2")]
        Row::new(Mech::Iceoryx2Msg64, Single),
        Row::new(MmringBlocking, Single),
        #[cfg(feature = "iceoryx2")]
        Row::new(Mech::Iceoryx2Event, Single),
        Row::new(Pipe, Single),
        Row::new(MutexRing, Single),
        Row::new(MmringBlocking, Asleep),
        #[cfg(feature = "iceoryx2")]
        Row::new(Mech::Iceoryx2Event, Asleep),
        Row::new(Pipe, Asleep),
        Row::new(MutexRing, Asleep),
    ];
    debug_assert_eq!(
        trips.len(),
        Row::all().filter(|r| r.has_round_trips()).count()
    );
    steps.extend(trips.into_iter().map(|r| (r, Step::RoundTrips)));
    steps
}

/// One row's figures: throughput stats per message size, round-trip
/// p50 and p99.
struct Figures {
    row: Row,
    throughput: [Option<Stats>; 2],
    trip: Option<(Duration, Duration)>,
    sleeps: f64,
}

/// The medians and percentiles behind the printed table.
struct Table {
    rows: Vec<Figures>,
}

impl Table {
    fn new(rows: &[Row], measured: &[Measured]) -> Self {
        let rows = rows
            .iter()
            .zip(measured)
            .map(|(&row, m)| {
                let throughput = [0, 1]
                    .map(|k| (!m.throughput[k].is_empty()).then(|| Stats::of(&m.throughput[k])));
                let trip = (!m.trips.nanos.is_empty()).then(|| m.trips.p50_p99());
                Figures {
                    row,
                    throughput,
                    trip,
                    sleeps: m.trips.sleeps_per_trip(),
                }
            })
            .collect();
        Self { rows }
    }

    /// What `--plot` draws: a bar per row and message size with a
    /// throughput; the distribution of every row's round trips (`measured`,
    /// in the order of `rows`), back to back and with the echo side asleep.
    fn plot(&self, rows: &[Row], measured: &[Measured]) -> Plot {
        let mut bars = Vec::new();
        for (k, size) in Size::ALL.into_iter().enumerate() {
            for (section, title) in [
                (Section::Single, "one message per call"),
                (Section::Batched, "batches"),
            ] {
                for &row in Row::of(section) {
                    if let Some(v) = self.throughput(row, k) {
                        bars.push(Bar {
                            section: format!("{title}, {} messages", size.name()),
                            label: row.label().to_string(),
                            per_sec: v,
                        });
                    }
                }
            }
        }
        let curves = |section| {
            rows.iter()
                .zip(measured)
                .filter(|(r, m)| r.section == section && !m.trips.nanos.is_empty())
                .filter_map(|(&r, m)| {
                    let (p50, p99) = self.trip(r)?;
                    Some(Curve::new(
                        r.label(),
                        &m.trips.nanos,
                        p50.as_nanos() as f64,
                        p99.as_nanos() as f64,
                    ))
                })
                .collect()
        };
        Plot {
            bars,
            charts: vec![
                Chart {
                    file: "spsc-latency".into(),
                    title: "mmring bench spsc: round trips, back to back (2 processes)".into(),
                    curves: curves(Section::Single),
                },
                Chart {
                    file: "spsc-wakeup".into(),
                    title: format!(
                        "mmring bench spsc: wake-up round trips, echo side asleep ({} us pause)",
                        GAP.as_micros()
                    ),
                    curves: curves(Section::Asleep),
                },
            ],
        }
    }

    fn get(&self, row: Row) -> Option<&Figures> {
        self.rows.iter().find(|r| r.row == row)
    }

    /// Median throughput of `row` with messages `size` (0: u64, 1: 64 B).
    fn throughput(&self, row: Row, size: usize) -> Option<f64> {
        self.get(row)
            .and_then(|r| r.throughput[size])
            .map(|s| s.median)
    }

    fn trip(&self, row: Row) -> Option<(Duration, Duration)> {
        self.get(row).and_then(|r| r.trip)
    }

    fn line(&self, row: Row) -> String {
        let base = row.base();
        let is_base = row == base;
        let mut cols = Vec::new();
        for k in 0..2 {
            match self.throughput(row, k) {
                Some(v) => {
                    cols.push(rate(v));
                    cols.push(if is_base {
                        "(base)".to_string()
                    } else {
                        self.throughput(base, k)
                            .map_or("-".into(), |b| format!("{:.2}x", v / b.max(1e-9)))
                    });
                }
                None => {
                    cols.push("-".into());
                    cols.push(String::new());
                }
            }
        }
        let sleeps = self.get(row).map_or(0.0, |f| f.sleeps);
        let (wait, trip, trip_ratio, sleeps) = match self.trip(row) {
            Some((p50, p99)) => (
                row.waits().to_string(),
                format!("{} / {}", duration(p50), duration(p99)),
                if is_base {
                    "(base)".to_string()
                } else {
                    self.trip(base).map_or("-".into(), |(b, _)| {
                        format!("{:.2}x", b.as_secs_f64() / p50.as_secs_f64().max(1e-12))
                    })
                },
                format!("{sleeps:.2}"),
            ),
            None => Default::default(),
        };
        format!(
            "{:<46}  {:>10}  {:>7}  {:>10}  {:>7}  {:<5} {:>21}  {:>7}  {:>6}\n",
            row.label(),
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            wait,
            trip,
            trip_ratio,
            sleeps
        )
        .trim_end()
        .to_string()
            + "\n"
    }

    /// Every row's figures as JSON: throughput stats per message size and
    /// the ratio to the mutex version, round-trip p50/p99 in nanoseconds.
    fn json(&self) -> Vec<serde_json::Value> {
        self.rows
            .iter()
            .map(|f| {
                let base = f.row.base();
                let sizes: serde_json::Map<String, serde_json::Value> = Size::ALL
                    .into_iter()
                    .enumerate()
                    .map(|(k, size)| {
                        let vs = self
                            .throughput(f.row, k)
                            .zip(self.throughput(base, k))
                            .map(|(v, b)| v / b.max(1e-9));
                        (
                            size.id().to_string(),
                            serde_json::json!({
                                "msgs_per_sec": stats_json(f.throughput[k]),
                                "vs_mutex": vs,
                            }),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "mechanism": f.row.label(),
                    "id": f.row.id(),
                    "section": format!("{:?}", f.row.section),
                    "base": f.row == base,
                    "throughput": sizes,
                    "round_trip": f.trip.map(|(p50, p99)| serde_json::json!({
                        "wait": f.row.waits(),
                        "p50_ns": p50.as_nanos() as u64,
                        "p99_ns": p99.as_nanos() as u64,
                        "sleeps_per_trip": f.sleeps,
                    })),
                })
            })
            .collect()
    }

    /// The design's SPSC targets, each as a ratio of this run's figures.
    fn targets(&self) -> String {
        use Section::{Asleep, Batched, Single};
        let tp = |mech, section, k| self.throughput(Row::new(mech, section), k);
        let trip = |mech, section| self.trip(Row::new(mech, section));
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b.max(1e-9));
        let p50 = |a: Option<(Duration, Duration)>, b: Option<(Duration, Duration)>| {
            a.zip(b)
                .map(|(a, b)| a.0.as_secs_f64() / b.0.as_secs_f64().max(1e-12))
        };
        let p99 = |a: Option<(Duration, Duration)>, b: Option<(Duration, Duration)>| {
            a.zip(b).map_or(String::new(), |(a, b)| {
                format!(
                    "p99: {:.2}x",
                    a.1.as_secs_f64() / b.1.as_secs_f64().max(1e-12)
                )
            })
        };
        let b64 = |r: Option<f64>| r.map_or(String::new(), |r| format!("64 B: {r:.2}x"));
        let mut out =
            String::from("targets (DESIGN.md \"Performance targets\"; ratios within this run):\n");
        let mut line =
            |what: &str, ratio: Option<f64>, goal: f64, at_least: bool, extra: String| {
                let Some(r) = ratio else {
                    return;
                };
                let ok = if at_least { r >= goal } else { r <= goal };
                out.push_str(&format!(
                    "  {what:<58} {r:>6.2}x  ({} {goal:.2}x)  {:<6}  {extra}\n",
                    if at_least { ">=" } else { "<=" },
                    met(ok),
                ));
            };
        let (rtrb, spin, floor) = (Mech::Rtrb, Mech::Mmring, Mech::Floor);
        let (blocking, pipe) = (Mech::MmringBlocking, Mech::Pipe);
        line(
            "mmring try_push/try_pop vs rtrb push/pop (in-process), u64",
            ratio(tp(spin, Single, 0), tp(rtrb, Single, 0)),
            1.0,
            true,
            b64(ratio(tp(spin, Single, 1), tp(rtrb, Single, 1))),
        );
        line(
            "mmring push_slice/pop_slice vs rtrb push/pop, u64",
            ratio(tp(spin, Batched, 0), tp(rtrb, Single, 0)),
            2.0,
            true,
            b64(ratio(tp(spin, Batched, 1), tp(rtrb, Single, 1))),
        );
        line(
            "spinning round trip vs one cache line, p50",
            p50(trip(spin, Single), trip(floor, Single)),
            1.2,
            false,
            p99(trip(spin, Single), trip(floor, Single)),
        );
        line(
            "blocking round trip vs Unix pipe, echo side asleep, p50",
            p50(trip(blocking, Asleep), trip(pipe, Asleep)),
            0.8,
            false,
            p99(trip(blocking, Asleep), trip(pipe, Asleep)),
        );
        line(
            "blocking round trip vs Unix pipe, back to back, p50",
            p50(trip(blocking, Single), trip(pipe, Single)),
            1.0,
            false,
            p99(trip(blocking, Single), trip(pipe, Single)),
        );
        let ice = Mech::Iceoryx2;
        line(
            "spinning round trip vs iceoryx2 publish/subscribe, p50",
            p50(trip(spin, Single), trip(ice, Single)),
            1.0 / 3.0,
            false,
            p99(trip(spin, Single), trip(ice, Single)),
        );
        line(
            "blocking round trip vs iceoryx2 event, echo asleep, p50",
            p50(trip(blocking, Asleep), trip(Mech::Iceoryx2Event, Asleep)),
            1.0,
            false,
            p99(trip(blocking, Asleep), trip(Mech::Iceoryx2Event, Asleep)),
        );
        line(
            "mmring try_push/try_pop vs iceoryx2 publish/subscribe, u64",
            ratio(tp(spin, Single, 0), tp(ice, Single, 0)),
            3.0,
            true,
            b64(ratio(tp(spin, Single, 1), tp(ice, Single, 1))),
        );
        out
    }
}

/// A round-trip time with a unit that keeps three significant digits.
fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

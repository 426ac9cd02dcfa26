//! `mmring bench mpmc`: the MPMC comparison ([`MpmcFixture`]'s rows) in
//! rounds, then one table — mechanism, throughput for both message sizes,
//! each against the mutex version and against crossbeam's `ArrayQueue`
//! with the same shape — and the design's MPMC targets with their ratios.

use std::time::Instant;

use super::{CAPACITY, Mech, MpmcFixture, Row};
use crate::bench::BenchArgs;
use crate::bench::group::Fixture;
use crate::bench::plot::{Bar, Plot};
use crate::bench::report::{Plan, Progress, Report, Stats, bench_dir, met, rate, stats_json};
use crate::bench::runner::control::Sample;
use crate::bench::runner::cpu::{cpus, warn_if_busy};
use crate::bench::runner::crowd::Shape;
use crate::bench::runner::flow::{BATCH, Size};

/// Runs the MPMC comparison and makes its table (progress to stderr).
///
/// As for the other tables, each round measures every row once (u64
/// messages, then 64-byte ones), after an unmeasured warm-up round; the
/// table shows the median of the rounds.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
pub fn run(args: &BenchArgs) -> Result<Report, Box<dyn std::error::Error>> {
    let plan = Plan::of(args, 150);
    let rounds = plan.rounds;
    let fixture = MpmcFixture::new_in(bench_dir(args)?)?;
    let busy = warn_if_busy();
    let rows = Row::all();
    let progress = Progress::new(2 * rows.len() * (rounds + 1));
    let started = Instant::now();
    let mut samples: Vec<[Vec<Sample>; 2]> = rows.iter().map(|_| Default::default()).collect();
    for round in 0..=rounds {
        let when = if round == 0 {
            "warm-up".to_string()
        } else {
            format!("round {round}/{rounds}")
        };
        for (k, size) in Size::ALL.into_iter().enumerate() {
            for (i, &row) in rows.iter().enumerate() {
                let what = format!("{} {}", row.shape.name(), row.label());
                progress.step(&format!("{when}: {what} ({} messages)", size.name()));
                let sample = fixture
                    .throughput(row, size, plan.budget(round))
                    .map_err(|e| format!("{what} ({}): {e}", size.name()))?;
                if round > 0 {
                    samples[i][k].push(sample);
                }
            }
        }
    }
    progress.finish(started.elapsed());

    let stats: Vec<[Stats; 2]> = samples
        .iter()
        .map(|s| [Stats::of(&s[0]), Stats::of(&s[1])])
        .collect();
    let get = |row: Row, k: usize| {
        rows.iter()
            .position(|&r| r == row)
            .map(|i| stats[i][k].median)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b.max(1e-9));

    let mut out = String::new();
    out.push_str(&format!(
        "mmring bench mpmc: one process per producer and per consumer unless stated; capacity \
         {CAPACITY}, batches of {BATCH}; messages taken per second by all consumers together, \
         every one checked (per-producer order, exact count); median of {}; {} CPUs; other \
         processes kept {} of them busy just before the run\n",
        plan.text(args, "messages"),
        cpus(),
        busy.map_or("?".to_string(), |b| format!("{b:.1}")),
    ));
    out.push_str(
        "x mutex: times the mutex version with the same shape, used the same way; x AQ: times \
         crossbeam ArrayQueue (threads, one message per call) with the same shape\n",
    );
    out.push_str(&format!(
        "{:<46}  {:>10}  {:>7}  {:>6}  {:>10}  {:>7}  {:>6}\n",
        "mechanism",
        format!("{}/s", Size::U64.name()),
        "x mutex",
        "x AQ",
        format!("{}/s", Size::Bytes64.name()),
        "x mutex",
        "x AQ",
    ));
    let mut json_rows = Vec::new();
    let mut bars = Vec::new();
    for shape in Row::SHAPES {
        for batched in [false, true] {
            let how = if batched {
                "batches (the mutex versions: one lock per batch; ArrayQueue has no batch call)"
            } else {
                "one message per call"
            };
            let parties = shape.producers + shape.consumers;
            out.push_str(&format!(
                "-- {}: {} parties on {} CPUs, {how}\n",
                shape.name(),
                parties,
                cpus()
            ));
            for row in Row::of(shape, batched) {
                let mut cols = Vec::new();
                let mut sizes = serde_json::Map::new();
                for (k, size) in Size::ALL.into_iter().enumerate() {
                    let v = get(row, k);
                    let vs_mutex = ratio(v, get(row.base(), k));
                    let vs_aq = ratio(v, get(row.array_queue(), k));
                    cols.push(v.map_or("-".into(), rate));
                    if let Some(v) = v {
                        bars.push(Bar {
                            section: format!("{}, {how}, {}", shape.name(), size.name()),
                            label: row.label().to_string(),
                            per_sec: v,
                        });
                    }
                    cols.push(if row == row.base() {
                        "(base)".to_string()
                    } else {
                        vs_mutex.map_or("-".into(), |r| format!("{r:.2}x"))
                    });
                    cols.push(vs_aq.map_or("-".into(), |r| format!("{r:.2}x")));
                    let i = rows.iter().position(|&r| r == row);
                    sizes.insert(
                        size.id().to_string(),
                        serde_json::json!({
                            "msgs_per_sec": stats_json(i.map(|i| stats[i][k])),
                            "vs_mutex": vs_mutex,
                            "vs_array_queue": vs_aq,
                        }),
                    );
                }
                out.push_str(&format!(
                    "{:<46}  {:>10}  {:>7}  {:>6}  {:>10}  {:>7}  {:>6}\n",
                    row.label(),
                    cols[0],
                    cols[1],
                    cols[2],
                    cols[3],
                    cols[4],
                    cols[5]
                ));
                json_rows.push(serde_json::json!({
                    "mechanism": row.label(),
                    "id": row.id(),
                    "shape": shape.name(),
                    "batched": batched,
                    "processes": row.processes(),
                    "base": row == row.base(),
                    "throughput": sizes,
                }));
            }
        }
    }
    let (targets, json_targets) = targets(&get);
    out.push_str(&targets);
    Ok(Report {
        group: "mpmc",
        text: out,
        json: serde_json::json!({
            "plan": plan.json(args),
            "cpus": cpus(),
            "capacity": CAPACITY,
            "batch": BATCH,
            "busy_before": busy,
            "rows": json_rows,
            "targets": json_targets,
        }),
        plot: Plot {
            bars,
            charts: Vec::new(),
        },
    })
}

/// The design's MPMC targets (1P1C), each as a ratio of this run's
/// medians, with the same ratios for 2P2C beside them; as text and JSON.
fn targets(get: &dyn Fn(Row, usize) -> Option<f64>) -> (String, Vec<serde_json::Value>) {
    let row = |mech, shape, batched| Row {
        mech,
        shape,
        batched,
    };
    let ratio = |a: Row, b: Row, k: usize| get(a, k).zip(get(b, k)).map(|(a, b)| a / b.max(1e-9));
    let mut out = String::from(
        "targets (DESIGN.md \"Performance targets\", 1P1C; ratios within this run):\n",
    );
    let mut json = Vec::new();
    let checks = [
        (
            "mmring try_push/try_pop vs ArrayQueue (threads)",
            Mech::Mmring,
            false,
            Mech::ArrayQueue,
            false,
            1.0,
        ),
        (
            "mmring try_push/try_pop vs mutex ring",
            Mech::Mmring,
            false,
            Mech::MutexRing,
            false,
            3.0,
        ),
        (
            "mmring push_slice/pop_slice vs ArrayQueue (threads)",
            Mech::Mmring,
            true,
            Mech::ArrayQueue,
            false,
            3.0,
        ),
        (
            "mmring push_slice/pop_slice vs mutex ring, 1 lock/batch",
            Mech::Mmring,
            true,
            Mech::MutexRing,
            true,
            1.5,
        ),
    ];
    for (what, mech, batched, against, against_batched, goal) in checks {
        let at = |shape: Shape, k| {
            ratio(
                row(mech, shape, batched),
                row(against, shape, against_batched),
                k,
            )
        };
        let Some(r) = at(Shape::ONE, 0) else {
            continue;
        };
        let show = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
        out.push_str(&format!(
            "  {what:<52} u64 {r:>6.2}x  (>= {goal:.1}x)  {:<6}  64 B: {}; 2P2C: u64 {}, 64 B {}\n",
            met(r >= goal),
            show(at(Shape::ONE, 1)),
            show(at(Shape::TWO, 0)),
            show(at(Shape::TWO, 1)),
        ));
        json.push(serde_json::json!({
            "what": what,
            "goal_at_least": goal,
            "1P1C_u64": r,
            "met": r >= goal,
            "1P1C_64b": at(Shape::ONE, 1),
            "2P2C_u64": at(Shape::TWO, 0),
            "2P2C_64b": at(Shape::TWO, 1),
        }));
    }
    (out, json)
}

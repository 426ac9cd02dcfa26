//! The benchmark harness behind `mmring bench` and `benches/`: mmring's
//! objects against real lock-based baselines in the same kind of mapping.
//!
//! `mmring bench [counter|cell|spsc|mpmc|map|all]` (no argument: all, about
//! a minute on a 2-core machine) prints one table per comparison, or the
//! same figures as JSON with `--json`; progress goes to stderr.
//!
//! The counter, cell and map comparisons (`mmring bench counter|cell|map`):
//!
//! * [`fixture`]: the objects and the rows ([`Case`]); both `mmring bench`
//!   and the criterion benches (`benches/{counter,cell,map}.rs`) measure
//!   through [`Fixture::measure`];
//! * [`control`]: the start/stop protocol of a run (both sides busy for
//!   the whole measured window), [`Budget`] and [`Sample`];
//! * [`procs`]: the fork-based two-process runner; [`threads`]: the
//!   in-process one (for `std::sync::RwLock`);
//! * [`pthread`]: the process-shared `pthread_mutex_t` baseline (and the
//!   mutex helpers the other lock-based baselines share); [`raw`]: the bare
//!   `AtomicU64` on a mapping; [`pthread_map`]: the map rows' baseline, a
//!   fixed-capacity hash table behind a process-shared mutex (std's
//!   `HashMap` cannot live in a mapping);
//! * [`dir`]: the private directory the files live in.
//!
//! The SPSC comparison (`mmring bench spsc`):
//!
//! * [`spsc_fixture`]: its objects and rows; [`spsc_table`]: its table;
//! * [`flow`]: the workload (numbered messages, checked on arrival), written
//!   once for every queue; [`spin`]: the one waiting policy of the spinning
//!   rows; [`roundtrip`]: the round-trip runner (p50/p99);
//! * [`spsc`]: mmring's ring; [`pthread_ring`]: the mutex version (a ring
//!   behind a process-shared mutex and condition variables); [`pipe`]: a
//!   Unix pipe; [`peers`]: rtrb, `ArrayQueue`, `Mutex<VecDeque>` between
//!   threads; [`floor`]: one cache line bounced, the floor of a round trip.
//!
//! The MPMC comparison (`mmring bench mpmc`: 1P1C and 2P2C, u64 and 64-byte
//! messages, one per call and batched):
//!
//! * [`mpmc_fixture`]: its objects and rows; [`mpmc_table`]: its table;
//! * [`crowd`]: the several-party runner (every producer and consumer a
//!   process or a thread, the caller coordinating and timing) over
//!   [`flow`]'s loops, with messages tagged by producer and checked on
//!   arrival (per-producer order, exact count);
//! * [`mpmc`]: mmring's queue; [`pthread_ring`] again as the mutex version
//!   (shared by all the processes); [`peers`]: `ArrayQueue` and
//!   `Mutex<VecDeque>` between threads.
//!
//! This module: the `mmring bench` command (plans, rounds, medians, the
//! counter/cell/map table, text or JSON).

pub mod control;
pub mod crowd;
pub mod dir;
pub mod fixture;
pub mod floor;
pub mod flow;
pub mod mpmc;
pub mod mpmc_fixture;
pub mod mpmc_table;
pub mod peers;
pub mod pipe;
pub mod procs;
pub mod pthread;
pub mod pthread_map;
pub mod pthread_ring;
pub mod raw;
pub mod roundtrip;
pub mod spin;
pub mod spsc;
pub mod spsc_fixture;
pub mod spsc_table;
pub mod threads;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use control::{Budget, Sample};
pub use dir::BenchDir;
pub use fixture::{Case, Fixture, Group};

/// Which comparison `mmring bench` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Counter `fetch_add` against a process-shared mutex and a raw atomic.
    Counter,
    /// `SeqCell` reads against `RwLock`.
    Cell,
    /// The SPSC ring against the mutex version, a pipe, rtrb, `ArrayQueue`
    /// and `Mutex<VecDeque>`; round trips against one cache line and a pipe.
    Spsc,
    /// The MPMC queue (1P1C, 2P2C) against the mutex version, `ArrayQueue`
    /// and `Mutex<VecDeque>`.
    Mpmc,
    /// `Map::update` (one hot key, 1024 keys) against a hash table behind a
    /// process-shared mutex.
    Map,
    /// Every comparison (about a minute), one table each.
    #[default]
    All,
}

impl Which {
    /// The single comparisons `All` runs, in order.
    const EACH: [Which; 5] = [
        Which::Counter,
        Which::Cell,
        Which::Spsc,
        Which::Mpmc,
        Which::Map,
    ];

    /// The name on the command line and in the JSON.
    fn name(self) -> &'static str {
        match self {
            Which::Counter => "counter",
            Which::Cell => "cell",
            Which::Spsc => "spsc",
            Which::Mpmc => "mpmc",
            Which::Map => "map",
            Which::All => "all",
        }
    }
}

/// Arguments of `mmring bench`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Which comparison to run.
    #[arg(value_enum, default_value_t = Which::All)]
    pub which: Which,
    /// Shorter windows and fewer rounds: a quick look, noisier figures.
    #[arg(long)]
    pub quick: bool,
    /// Measured rounds per row (the table shows the median) [default: 5, 3
    /// with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// Length of one measured window in milliseconds [default: 200 (spsc,
    /// mpmc: 150), 50 with --quick; 100 for all].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub window_ms: Option<u64>,
    /// Run exactly N counted operations per window instead of a fixed time
    /// (beware: a reader starved by a writer can take long).
    #[arg(long, value_name = "N", conflicts_with = "window_ms")]
    pub ops: Option<u64>,
    /// Where to make the private directory for the benchmark's files
    /// [default: /dev/shm].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the results as JSON on stdout (one object: the machine, then
    /// one entry per table with the same figures) instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// One table's results: the text `mmring bench` prints and the same
/// figures as JSON.
#[derive(Debug)]
pub struct Report {
    /// The comparison: "counter", "cell", "spsc", "mpmc", "map".
    pub group: &'static str,
    /// The table, as printed.
    pub text: String,
    /// The figures behind it.
    pub json: serde_json::Value,
}

/// How one comparison measures: rounds, the budget of a measured window
/// and of the warm-up one.
#[derive(Clone, Copy, Debug)]
struct Plan {
    rounds: usize,
    window: Duration,
    budget: Budget,
    warm_up: Budget,
}

impl Plan {
    /// The plan `args` asks for, with a window of `default_ms` unless told
    /// (or `--quick`).
    fn of(args: &BenchArgs, default_ms: u64) -> Self {
        let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 5 }) as usize;
        let window = Duration::from_millis(args.window_ms.unwrap_or(if args.quick {
            50
        } else {
            default_ms
        }));
        let (budget, warm_up) = match args.ops {
            Some(n) => (Budget::ops(n), Budget::ops((n / 4).max(1))),
            None => (Budget::time(window), Budget::time(window / 4)),
        };
        Self {
            rounds,
            window,
            budget,
            warm_up,
        }
    }

    /// The budget of round `round` (0: the warm-up).
    fn budget(&self, round: usize) -> Budget {
        if round == 0 {
            self.warm_up
        } else {
            self.budget
        }
    }

    /// "3 windows of 100 ms", "3 windows of 5000 ops".
    fn text(&self, args: &BenchArgs, unit: &str) -> String {
        match args.ops {
            Some(n) => format!("{} windows of {n} {unit}", self.rounds),
            None => format!("{} windows of {} ms", self.rounds, self.window.as_millis()),
        }
    }

    /// The plan as JSON.
    fn json(&self, args: &BenchArgs) -> serde_json::Value {
        serde_json::json!({
            "rounds": self.rounds,
            "window_ms": args.ops.is_none().then_some(self.window.as_millis() as u64),
            "window_ops": args.ops,
        })
    }
}

/// The private directory for one comparison's files, where `args` says.
fn bench_dir(args: &BenchArgs) -> std::io::Result<BenchDir> {
    match &args.dir {
        Some(parent) => BenchDir::new_in(parent),
        None => BenchDir::new(),
    }
}

/// Warns on stderr if other processes kept the machine busy just before a
/// run; how many CPUs they kept busy (if that can be told).
fn warn_if_busy() -> Option<f64> {
    let busy = cpu_busy(Duration::from_millis(100))?;
    if busy > 0.2 {
        eprintln!(
            "warning: other processes kept {busy:.1} CPUs busy just before the run: rows \
             with two parties may run time-sliced instead of in parallel"
        );
    }
    Some(busy)
}

/// The number of CPUs this process may run on.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Median, min and max of a row as JSON (`null` if unmeasured).
fn stats_json(s: Option<Stats>) -> serde_json::Value {
    s.map_or(
        serde_json::Value::Null,
        |s| serde_json::json!({ "median": s.median, "min": s.min, "max": s.max }),
    )
}

/// The median, lowest and highest throughput of one row, and the median
/// rate of its peer (the child's share of a counter row, the writer's
/// stores of a read row).
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    peer: f64,
}

impl Stats {
    fn of(samples: &[Sample]) -> Self {
        let mut rates: Vec<f64> = samples.iter().map(Sample::per_sec).collect();
        let mut peers: Vec<f64> = samples.iter().map(Sample::peer_per_sec).collect();
        rates.sort_by(f64::total_cmp);
        peers.sort_by(f64::total_cmp);
        Self {
            median: median(&rates),
            min: rates[0],
            max: rates[rates.len() - 1],
            peer: median(&peers),
        }
    }
}

/// The median of sorted, non-empty `v`.
fn median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the comparison `args.which` names and prints its table (or
/// tables; JSON with `--json`): progress to stderr, the results to stdout.
///
/// `all` runs every comparison with shorter windows (100 ms unless told
/// otherwise): about a minute on a 2-core machine.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (which, args): (&[Which], BenchArgs) = match args.which {
        Which::All => {
            let mut all = args.clone();
            if !all.quick && all.ops.is_none() {
                all.window_ms.get_or_insert(100);
            }
            (&Which::EACH, all)
        }
        ref one => (std::slice::from_ref(one), args.clone()),
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    for (i, &w) in which.iter().enumerate() {
        if which.len() > 1 {
            eprintln!("== {} ({}/{})", w.name(), i + 1, which.len());
        }
        reports.push(run_one(&args, w)?);
    }
    if which.len() > 1 {
        eprintln!(
            "all comparisons took {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "cpus": cpus(),
            "quick": args.quick,
            "tables": reports
                .iter()
                .map(|r| serde_json::json!({ "group": r.group, "results": r.json }))
                .collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        let texts: Vec<&str> = reports.iter().map(|r| r.text.as_str()).collect();
        write!(out, "{}", texts.join("\n"))?;
    }
    out.flush()?;
    Ok(())
}

/// Runs one comparison (not `All`).
fn run_one(args: &BenchArgs, which: Which) -> Result<Report, Box<dyn std::error::Error>> {
    match which {
        Which::Counter => run_groups(
            args,
            "counter",
            &[Group::CounterTwoProcs, Group::CounterOneProc],
        ),
        Which::Cell => run_groups(args, "cell", &[Group::ReadWithWriter, Group::ReadAlone]),
        Which::Spsc => spsc_table::run(args),
        Which::Mpmc => mpmc_table::run(args),
        Which::Map => run_groups(args, "map", &Group::MAP),
        Which::All => Err("`all` is not one comparison".into()),
    }
}

/// Runs the counter, cell or map `groups` and makes their table.
///
/// Each round measures every row once, in table order (so slow drift of
/// the machine hits every row alike); a short unmeasured warm-up round
/// comes first. Ratios are taken between medians of the same run.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
fn run_groups(
    args: &BenchArgs,
    name: &'static str,
    groups: &[Group],
) -> Result<Report, Box<dyn std::error::Error>> {
    let plan = Plan::of(args, 200);
    let rounds = plan.rounds;
    let fixture = Fixture::new_in(bench_dir(args)?)?;
    warn_if_busy();
    let cases: Vec<Case> = groups
        .iter()
        .flat_map(|g| g.cases().iter().copied())
        .collect();

    let progress = Progress::new(cases.len() * (rounds + 1));
    let started = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..=rounds {
        for (i, &case) in cases.iter().enumerate() {
            let what = if round == 0 {
                format!("warm-up: {}", case.label())
            } else {
                format!("round {round}/{rounds}: {}", case.label())
            };
            progress.step(&what);
            let sample = fixture
                .measure(case, plan.budget(round))
                .map_err(|e| format!("{}: {e}", case.label()))?;
            if round > 0 {
                samples[i].push(sample);
            }
        }
    }
    progress.finish(started.elapsed());

    let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
    let stat = |case: Case| stats[cases.iter().position(|&c| c == case).unwrap_or(0)];
    let mut out = String::new();
    out.push_str(&format!(
        "mmring bench {name}: median of {} per row, {} CPUs\n",
        plan.text(args, "ops"),
        cpus()
    ));
    out.push_str(&format!(
        "{:<54}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
        "mechanism", "ops/s", "range (min-max)", "vs base", "peer", "target"
    ));
    let mut rows = Vec::new();
    for &group in groups {
        out.push_str(&format!("-- {}\n", group.title()));
        let base = stat(group.baseline()).median;
        for &case in group.cases() {
            let s = stat(case);
            let ratio = if case == group.baseline() {
                "(base)".to_string()
            } else {
                format!("{:.2}x", s.median / base)
            };
            let peer = match group {
                Group::CounterTwoProcs | Group::MapHotKey | Group::MapSpread => {
                    format!(
                        "child did {:.0}% of ops",
                        100.0 * s.peer / s.median.max(1e-9)
                    )
                }
                Group::ReadWithWriter => format!("writer stores {}/s", rate(s.peer)),
                Group::CounterOneProc | Group::ReadAlone => String::new(),
            };
            let target = target(case, s.median, base, &stat);
            out.push_str(&format!(
                "{:<54}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
                case.label(),
                rate(s.median),
                format!("{}-{}", rate(s.min), rate(s.max)),
                ratio,
                peer,
                target,
            ));
            rows.push(serde_json::json!({
                "group": group.id(),
                "title": group.title(),
                "mechanism": case.label(),
                "id": case.id(),
                "ops_per_sec": stats_json(Some(s)),
                "peer_per_sec": s.peer,
                "vs_base": s.median / base,
                "base": case == group.baseline(),
                "target": (!target.is_empty()).then_some(target),
            }));
        }
    }
    let counters =
        groups.contains(&Group::CounterTwoProcs) && groups.contains(&Group::CounterOneProc);
    if counters {
        let (two, one) = (
            stat(Case::RawTwoProcs).median,
            stat(Case::RawOneProc).median,
        );
        if two > 0.8 * one {
            eprintln!(
                "warning: two processes on one counter ran at {:.0}% of the speed of one alone: \
                 they were mostly not running at the same time (a busy machine?), so the \
                 contended rows read too high",
                100.0 * two / one
            );
        }
    }
    Ok(Report {
        group: name,
        text: out,
        json: serde_json::json!({ "plan": plan.json(args), "cpus": cpus(), "rows": rows }),
    })
}

/// The design's target for the rows that have one, and whether it is met.
fn target(case: Case, median: f64, base: f64, stat: &dyn Fn(Case) -> Stats) -> String {
    let check = |ok: bool| if ok { "ok" } else { "MISSED" };
    match case {
        Case::CounterTwoProcs => {
            let raw = median / stat(Case::RawTwoProcs).median;
            format!(
                ">= 2x mutex: {}; {raw:.2}x raw, >= 0.9x: {}",
                check(median >= 2.0 * base),
                check(raw >= 0.9)
            )
        }
        Case::CounterOneProc => {
            let raw = median / stat(Case::RawOneProc).median;
            format!("{raw:.2}x raw")
        }
        Case::SeqCellWithWriter => format!(">= 5x RwLock: {}", check(median >= 5.0 * base)),
        _ => String::new(),
    }
}

/// How many CPUs' worth of time the whole machine spent busy over `over`
/// (from `/proc/stat`); `None` where that cannot be read.
fn cpu_busy(over: Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().take(8).sum();
        // idle + iowait
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((total, idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(over);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0)?.max(1) as f64;
    let idle = i1.saturating_sub(i0) as f64;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some((1.0 - idle / total) * cpus)
}

/// A throughput with a unit that keeps three or four significant digits.
fn rate(per_sec: f64) -> String {
    if per_sec >= 1e9 {
        format!("{:.2} G", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} ")
    }
}

/// `[k/n] what` on stderr: rewritten in place on a terminal, one line each
/// otherwise.
struct Progress {
    total: usize,
    done: std::cell::Cell<usize>,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: std::cell::Cell::new(0),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn step(&self, what: &str) {
        let k = self.done.get() + 1;
        self.done.set(k);
        let line = format!("[{k:>2}/{}] {what}", self.total);
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish(&self, took: Duration) {
        let mut err = std::io::stderr().lock();
        let clear = if self.tty { "\r\x1b[2K" } else { "" };
        let _ = writeln!(
            err,
            "{clear}measured {} runs in {:.1} s",
            self.total,
            took.as_secs_f64()
        );
    }
}

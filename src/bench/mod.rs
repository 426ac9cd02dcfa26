//! The benchmark harness behind `mmring bench` and `benches/`: mmring's
//! objects against real lock-based baselines in the same kind of mapping.
//!
//! * [`fixture`]: the objects and the rows ([`Case`]); both `mmring bench`
//!   and the criterion benches measure through [`Fixture::measure`];
//! * [`control`]: the start/stop protocol of a run (both sides busy for
//!   the whole measured window), [`Budget`] and [`Sample`];
//! * [`procs`]: the fork-based two-process runner; [`threads`]: the
//!   in-process one (for `std::sync::RwLock`);
//! * [`pthread`]: the process-shared `pthread_mutex_t` baseline;
//!   [`raw`]: the bare `AtomicU64` on a mapping;
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
//! This module: the `mmring bench` command (rounds, medians, the table).

pub mod control;
pub mod dir;
pub mod fixture;
pub mod floor;
pub mod flow;
pub mod peers;
pub mod pipe;
pub mod procs;
pub mod pthread;
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
    /// Every comparison, one table each.
    #[default]
    All,
}

/// Arguments of `mmring bench`.
#[derive(Debug, Default, clap::Args)]
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
    /// Length of one measured window in milliseconds [default: 200, 50 with
    /// --quick].
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
/// tables): progress to stderr, the tables to stdout.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.which {
        Which::Counter => run_groups(args, &[Group::CounterTwoProcs, Group::CounterOneProc]),
        Which::Cell => run_groups(args, &[Group::ReadWithWriter, Group::ReadAlone]),
        Which::Spsc => spsc_table::run(args),
        Which::All => {
            run_groups(args, &Group::ALL)?;
            println!();
            spsc_table::run(args)
        }
    }
}

/// Runs the counter and cell `groups` and prints their table.
///
/// Each round measures every row once, in table order (so slow drift of
/// the machine hits every row alike); a short unmeasured warm-up round
/// comes first. Ratios are taken between medians of the same run.
///
/// # Errors
///
/// Any failure to set up or run a benchmark. The files are removed in
/// every case.
fn run_groups(args: &BenchArgs, groups: &[Group]) -> Result<(), Box<dyn std::error::Error>> {
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 5 }) as usize;
    let window = Duration::from_millis(args.window_ms.unwrap_or(if args.quick { 50 } else { 200 }));
    let budget = match args.ops {
        Some(n) => Budget::ops(n),
        None => Budget::time(window),
    };
    let warm_up = match args.ops {
        Some(n) => Budget::ops((n / 4).max(1)),
        None => Budget::time(window / 4),
    };
    let dir = match &args.dir {
        Some(parent) => BenchDir::new_in(parent)?,
        None => BenchDir::new()?,
    };
    let fixture = Fixture::new_in(dir)?;
    if let Some(busy) = cpu_busy(Duration::from_millis(100)) {
        if busy > 0.2 {
            eprintln!(
                "warning: other processes kept {busy:.1} CPUs busy just before the run: rows \
                 with two parties may run time-sliced instead of in parallel"
            );
        }
    }
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
                .measure(case, if round == 0 { warm_up } else { budget })
                .map_err(|e| format!("{}: {e}", case.label()))?;
            if round > 0 {
                samples[i].push(sample);
            }
        }
    }
    progress.finish(started.elapsed());

    let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
    let stat = |case: Case| stats[cases.iter().position(|&c| c == case).unwrap_or(0)];
    let window_text = match args.ops {
        Some(n) => format!("{n} ops"),
        None => format!("{} ms", window.as_millis()),
    };
    let mut out = String::new();
    out.push_str(&format!(
        "mmring bench: median of {rounds} windows of {window_text} per row, {} CPUs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    out.push_str(&format!(
        "{:<48}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
        "mechanism", "ops/s", "range (min-max)", "vs base", "peer", "target"
    ));
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
                Group::CounterTwoProcs => {
                    format!(
                        "child did {:.0}% of ops",
                        100.0 * s.peer / s.median.max(1e-9)
                    )
                }
                Group::ReadWithWriter => format!("writer stores {}/s", rate(s.peer)),
                Group::CounterOneProc | Group::ReadAlone => String::new(),
            };
            out.push_str(&format!(
                "{:<48}  {:>10}  {:>19}  {:>8}  {:<26}  {}\n",
                case.label(),
                rate(s.median),
                format!("{}-{}", rate(s.min), rate(s.max)),
                ratio,
                peer,
                target(case, s.median, base, &stat),
            ));
        }
    }
    let (two, one) = (
        stat(Case::RawTwoProcs).median,
        stat(Case::RawOneProc).median,
    );
    let counters =
        groups.contains(&Group::CounterTwoProcs) && groups.contains(&Group::CounterOneProc);
    if counters && two > 0.8 * one {
        eprintln!(
            "warning: two processes on one counter ran at {:.0}% of the speed of one alone: \
             they were mostly not running at the same time (a busy machine?), so the \
             contended rows read too high",
            100.0 * two / one
        );
    }
    print!("{out}");
    std::io::stdout().flush()?;
    Ok(())
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

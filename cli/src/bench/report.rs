//! What every table is made of: the [`Plan`] of a comparison (rounds and
//! windows, from the command's options), the [`Stats`] of a row's rounds,
//! the [`Report`] a comparison returns (its text and the same figures as
//! JSON), throughputs written with a unit ([`rate`]) and the [`Progress`]
//! line on stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::BenchArgs;
use super::plot::Plot;
use super::runner::control::{Budget, Sample};
use super::runner::dir::BenchDir;

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
    /// What `--plot` draws of it.
    pub plot: Plot,
}

/// How one comparison measures: rounds, the budget of a measured window
/// and of the warm-up one.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Measured rounds.
    pub rounds: usize,
    window: Duration,
    budget: Budget,
    warm_up: Budget,
}

impl Plan {
    /// The plan `args` asks for, with a window of `default_ms` unless told
    /// (or `--quick`).
    pub fn of(args: &BenchArgs, default_ms: u64) -> Self {
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
    pub fn budget(&self, round: usize) -> Budget {
        if round == 0 {
            self.warm_up
        } else {
            self.budget
        }
    }

    /// "3 windows of 100 ms", "3 windows of 5000 ops".
    pub fn text(&self, args: &BenchArgs, unit: &str) -> String {
        match args.ops {
            Some(n) => format!("{} windows of {n} {unit}", self.rounds),
            None => format!("{} windows of {} ms", self.rounds, self.window.as_millis()),
        }
    }

    /// The plan as JSON.
    pub fn json(&self, args: &BenchArgs) -> serde_json::Value {
        serde_json::json!({
            "rounds": self.rounds,
            "window_ms": args.ops.is_none().then_some(self.window.as_millis() as u64),
            "window_ops": args.ops,
        })
    }
}

/// The private directory for one comparison's files, where `args` says.
pub fn bench_dir(args: &BenchArgs) -> std::io::Result<BenchDir> {
    match &args.dir {
        Some(parent) => BenchDir::new_in(parent),
        None => BenchDir::new(),
    }
}

/// Median, min and max of a row as JSON (`null` if unmeasured).
pub fn stats_json(s: Option<Stats>) -> serde_json::Value {
    s.map_or(
        serde_json::Value::Null,
        |s| serde_json::json!({ "median": s.median, "min": s.min, "max": s.max }),
    )
}

/// The median, lowest and highest throughput of one row, and the median
/// rate of its peer (the child's share of a counter row, the writer's
/// stores of a read row).
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// The median throughput.
    pub median: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// The median rate of the peer.
    pub peer: f64,
}

impl Stats {
    /// The figures of a row's samples (at least one).
    pub fn of(samples: &[Sample]) -> Self {
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

/// A throughput with a unit that keeps three or four significant digits.
pub fn rate(per_sec: f64) -> String {
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

/// Whether a target is met, as the tables say it: "ok" or "MISSED".
pub fn met(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// `[k/n] what` on stderr: rewritten in place on a terminal, one line each
/// otherwise.
pub struct Progress {
    total: usize,
    done: std::cell::Cell<usize>,
    tty: bool,
}

impl Progress {
    /// A count of `total` steps.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: std::cell::Cell::new(0),
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// The next step: `what`.
    pub fn step(&self, what: &str) {
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

    /// All steps done, in `took`.
    pub fn finish(&self, took: Duration) {
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

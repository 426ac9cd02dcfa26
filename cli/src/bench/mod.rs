//! The benchmark harness behind `mmring bench` and `cli/benches/`:
//! mmring's objects against real lock-based baselines in the same kind of
//! mapping, through mmring's public API only.
//!
//! `mmring bench [counter|cell|spsc|mpmc|map|all]` (no argument: all, about
//! a minute on a 2-core machine) prints one table per comparison, or the
//! same figures as JSON with `--json`, and with `--plot DIR` draws them as
//! SVG files too; progress goes to stderr.
//!
//! * [`group`]: the comparisons, one each: its fixture (the objects its
//!   rows measure, which the criterion bench of the same name measures
//!   through too), its rows and its table;
//! * [`baseline`]: what mmring is compared with across processes — the
//!   process-shared pthread mutex and what is built on it (a counter, a
//!   ring, a hash table), a bare atomic, a Unix pipe;
//! * [`peer`]: the in-process queues (rtrb, crossbeam's `ArrayQueue`,
//!   `Mutex<VecDeque>`), between threads;
//! * [`runner`]: how every run goes — forked processes or threads, the
//!   start/stop protocol, the workloads, the private directory and the
//!   harness's own shared mappings, the load of the rest of the machine;
//! * [`report`]: plans, medians, rates and the progress line;
//! * [`plot`]: `--plot DIR`, the tables as SVG pictures.
//!
//! This module: the `mmring bench` command (which comparisons, and the
//! text or JSON they print).

pub mod baseline;
pub mod group;
pub mod peer;
pub mod plot;
pub mod report;
pub mod runner;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use self::group::cell::CellFixture;
use self::group::counter::CounterFixture;
use self::group::map::MapFixture;
use self::group::{mpmc, ops, spsc};
use self::report::Report;
use self::runner::cpu::cpus;

/// Which comparison `mmring bench` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Counter `fetch_add` against a process-shared mutex and a raw atomic.
    Counter,
    /// `SeqCell` reads against `RwLock`.
    Cell,
    /// The SPSC ring against the mutex version, a pipe, rtrb, `ArrayQueue`
    /// and `Mutex<VecDeque>`; round trips against one cache line and a pipe
    /// (and iceoryx2, built with `--features iceoryx2`).
    Spsc,
    /// The MPMC queue (1P1C, 2P2C) against the mutex version, `ArrayQueue`
    /// and `Mutex<VecDeque>`.
    Mpmc,
    /// `Map::update` (one hot key, 1024 keys), `ByteMap` updates of a
    /// 100-byte value, and key churn (insert + remove of ever new keys),
    /// against a hash table behind a process-shared mutex.
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
    /// Also draw the results as SVG files in DIR (made if missing): the
    /// throughput bars of every comparison, and the round-trip latency
    /// distributions of `spsc`.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
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
    if let Some(dir) = &args.plot {
        let files = plot::write(dir, &reports)?;
        eprintln!("wrote {} SVG files to {}", files.len(), dir.display());
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
        Which::Counter => ops::run::<CounterFixture>(args),
        Which::Cell => ops::run::<CellFixture>(args),
        Which::Spsc => spsc::table::run(args),
        Which::Mpmc => mpmc::table::run(args),
        Which::Map => ops::run::<MapFixture>(args),
        Which::All => Err("`all` is not one comparison".into()),
    }
}

//! The classic `multiprocessing.Value` demo, without `get_lock()`: 20
//! processes each take 1 from a shared count of 20,000, a thousand times.
//! With `fetch_sub` (one atomic instruction on the shared mapping) the count
//! ends at exactly 0. For contrast, the same work done as a separate load and
//! store (what `value.value -= 1` does without the lock, with a yield in
//! between to make the interleaving likely) is run first, and the updates it
//! loses are counted.
//!
//! ```text
//! cargo run --release --example countdown
//! ```
//!
//! Every process is a real one: this program starts itself again with a
//! `worker` argument. The files live in a fresh directory under `/dev/shm`
//! (or the system temporary directory), removed at the end.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::Counter;

const PROCESSES: usize = 20;
const DECREMENTS: i64 = 1000;
const START: i64 = PROCESSES as i64 * DECREMENTS;

mod common;

use common::{scratch_dir, wait_all};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "worker" {
        return worker(Path::new(&args[2]), &args[3]);
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("countdown: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One worker process: waits for the others at the start line, then
/// decrements `count` in the given `mode`.
fn worker(dir: &Path, mode: &str) -> ExitCode {
    let open = |name: &str| Counter::open(dir.join(name));
    let (Ok(count), Ok(ready)) = (open("count"), open("ready")) else {
        eprintln!(
            "worker {}: cannot open the shared files",
            std::process::id()
        );
        return ExitCode::FAILURE;
    };
    ready.fetch_add(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load() < PROCESSES as i64 {
        if Instant::now() > deadline {
            return ExitCode::FAILURE;
        }
        std::thread::yield_now();
    }
    for _ in 0..DECREMENTS {
        if mode == "atomic" {
            count.fetch_sub(1);
        } else {
            // Read, then write back: a process descheduled in between (the
            // yield makes that likely rather than rare) overwrites the
            // updates others made meanwhile.
            let v = count.load();
            std::thread::yield_now();
            count.store(v - 1);
        }
    }
    ExitCode::SUCCESS
}

/// Runs the 20 processes in `mode`; the final value of the count.
fn countdown(dir: &Path, mode: &str) -> Result<(i64, Duration), Box<dyn std::error::Error>> {
    let sub = dir.join(mode);
    std::fs::create_dir(&sub)?;
    let count = Counter::create(sub.join("count"), START)?;
    let _ready = Counter::create(sub.join("ready"), 0)?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children = (0..PROCESSES)
        .map(|_| Command::new(&exe).arg("worker").arg(&sub).arg(mode).spawn())
        .collect::<Result<Vec<Child>, _>>()?;
    wait_all(children)?;
    Ok((count.load(), started.elapsed()))
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = scratch_dir("countdown")?;
    println!("{PROCESSES} processes each take 1 from {START}, {DECREMENTS} times");

    let (racy, _) = countdown(dir.path(), "racy")?;
    println!("  load, yield, store:      final value {racy:>6}  ({racy} updates lost)");

    let (value, took) = countdown(dir.path(), "atomic")?;
    println!(
        "  fetch_sub, no lock:      final value {value:>6}  ({:.1} ms, process start-up included)",
        took.as_secs_f64() * 1e3
    );
    let ok = value == 0;
    if ok {
        println!("ok: the count ends at exactly 0: no update lost, no lock taken");
    } else {
        println!("FAILED: the count ends at {value}, expected 0");
    }
    Ok(ok)
}

//! Round-trip latency between two processes through two SPSC rings: this
//! process sends a number on `ping`, the other answers on `pong`, and the
//! time from send to answer is measured for every round trip.
//!
//! ```text
//! cargo run --release --example pingpong [-- ROUNDS]
//! ```
//!
//! Two variants, each with a fresh pair of rings and a fresh child process:
//!
//! * `blocking`: both sides use blocking `push`/`pop` (a short spin, then a
//!   futex sleep inside the mapping);
//! * `spinning`: both sides loop on `try_push`/`try_pop`, with a spin hint
//!   between attempts and a `yield_now` every so often.
//!
//! Every answer is checked (a wrong one ends the program with a failure
//! status). The percentiles printed are of single round trips, sorted; on a
//! machine with fewer than two free cores the spinning variant mostly
//! measures the scheduler.
//!
//! The other process is this program started again with an `echo`
//! argument. The files live in a fresh directory under `/dev/shm` (or the
//! system temporary directory), removed at the end.

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::spsc::{Consumer, Producer};
use mmring::{PopTimeoutError, TryPopError, TryPushError};

/// Round trips measured per variant (unless given on the command line).
const ROUNDS: usize = 100_000;
/// Round trips made first and not measured (page faults, caches, clocks).
const WARMUP: u64 = 10_000;
/// Slots per ring (only one message is ever in flight).
const CAPACITY: usize = 8;
/// The longest anything may take: a stuck peer ends the program.
const WATCHDOG: Duration = Duration::from_secs(60);
/// Failed spinning attempts between two yields.
const SPINS_PER_YIELD: u32 = 128;

const VARIANTS: [&str; 2] = ["blocking", "spinning"];

type Error = Box<dyn std::error::Error>;

/// The answer to `v`: never `v` itself, so an echo of the wrong ring or a
/// stale slot is caught.
fn reply(v: u64) -> u64 {
    v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5_a5a5
}

mod common;

use common::scratch_dir;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "echo" {
        return match echo(Path::new(&args[2]), &args[3]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pingpong echo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rounds = match args.get(1).map(|a| a.parse::<usize>()) {
        None => ROUNDS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: pingpong [ROUNDS]   (ROUNDS > 0, default {ROUNDS})");
            return ExitCode::FAILURE;
        }
    };
    match run(rounds) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Measures both variants; false if an answer was wrong or a child failed.
fn run(rounds: usize) -> Result<bool, Error> {
    let dir = scratch_dir("pingpong")?;
    println!(
        "ping-pong between two processes: {rounds} round trips per variant \
         (after {WARMUP} unmeasured), u64 through two rings of {CAPACITY} slots"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "variant", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    let mut ok = true;
    for variant in VARIANTS {
        let sub = dir.path().join(variant);
        std::fs::create_dir(&sub)?;
        match measure(&sub, variant, rounds)? {
            Some(mut times) => {
                times.sort_unstable();
                let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
                let mean = times.iter().sum::<Duration>() / times.len() as u32;
                println!(
                    "{variant:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                    show(pct(0.50)),
                    show(pct(0.90)),
                    show(pct(0.99)),
                    show(pct(0.999)),
                    show(times[times.len() - 1]),
                    show(mean),
                );
            }
            None => ok = false,
        }
    }
    Ok(ok)
}

/// A duration in microseconds, to the nanosecond.
fn show(d: Duration) -> String {
    format!("{:.3} us", d.as_secs_f64() * 1e6)
}

/// One variant: creates the rings, starts the echo process, makes the
/// round trips. The measured round-trip times (unsorted), or `None` after
/// a wrong answer or a failed child (reported on stderr).
fn measure(dir: &Path, variant: &str, rounds: usize) -> Result<Option<Vec<Duration>>, Error> {
    let mut tx = Producer::<u64>::create(dir.join("ping"), CAPACITY)?;
    let mut rx = Consumer::<u64>::create(dir.join("pong"), CAPACITY)?;
    let child = Command::new(std::env::current_exe()?)
        .arg("echo")
        .arg(dir)
        .arg(variant)
        .spawn()?;
    let mut child = KillOnDrop(Some(child));
    // Wait for the echo process to attach both ends: until then a blocking
    // pop on `pong` returns `Disconnected` (no producer to wait for).
    if !(tx.wait_for_peer(WATCHDOG) && rx.wait_for_peer(WATCHDOG)) {
        return Err(format!("{variant}: the echo process never attached").into());
    }

    let total = WARMUP + rounds as u64;
    let mut times = Vec::with_capacity(rounds);
    let deadline = Instant::now() + WATCHDOG;
    for i in 0..total {
        let start = Instant::now();
        let answer = if variant == "blocking" {
            tx.push(i).map_err(|e| format!("push {i}: {e}"))?;
            rx.pop_timeout(WATCHDOG)
                .map_err(|e| format!("answer to {i}: {e}"))?
        } else {
            spin_push(&mut tx, i, deadline)?;
            spin_pop(&mut rx, deadline)?.ok_or_else(|| format!("answer to {i}: ring closed"))?
        };
        let took = start.elapsed();
        if answer != reply(i) {
            eprintln!(
                "{variant}: wrong answer to {i}: {answer:#x}, expected {:#x}",
                reply(i)
            );
            return Ok(None);
        }
        if i >= WARMUP {
            times.push(took);
        }
    }
    // Closing `ping` tells the echo process to finish: it drains, sees
    // `Closed`, checks its count and closes `pong`.
    tx.close();
    match rx.pop_timeout(WATCHDOG) {
        Err(PopTimeoutError::Closed) => {}
        other => return Err(format!("{variant}: after the last round trip: {other:?}").into()),
    }
    let status = child.wait(WATCHDOG)?;
    if !status.success() {
        eprintln!("{variant}: the echo process failed: {status}");
        return Ok(None);
    }
    Ok(Some(times))
}

/// The other process: answers every number on `ping` with `reply(number)` on
/// `pong`, checking that the numbers come as 0, 1, 2, ...; ends when `ping`
/// is closed.
fn echo(dir: &Path, variant: &str) -> Result<(), Error> {
    let mut rx = Consumer::<u64>::open(dir.join("ping"))?;
    let mut tx = Producer::<u64>::open(dir.join("pong"))?;
    let mut expect = 0u64;
    loop {
        let v = if variant == "blocking" {
            match rx.pop_timeout(WATCHDOG) {
                Ok(v) => v,
                Err(PopTimeoutError::Closed) => break,
                Err(e) => return Err(format!("ping after {expect}: {e}").into()),
            }
        } else {
            // The deadline is per message: between variants the parent
            // waits for us, so a long idle time means it is gone.
            match spin_pop(&mut rx, Instant::now() + WATCHDOG)? {
                Some(v) => v,
                None => break,
            }
        };
        if v != expect {
            return Err(format!("ping number {expect} was {v}").into());
        }
        if variant == "blocking" {
            tx.push(reply(v))
                .map_err(|e| format!("answer to {v}: {e}"))?;
        } else {
            spin_push(&mut tx, reply(v), Instant::now() + WATCHDOG)?;
        }
        expect += 1;
    }
    tx.close();
    Ok(())
}

/// Spins on `try_pop` (a spin hint between attempts, a yield every
/// [`SPINS_PER_YIELD`]) until a value comes (`Some`), the ring is closed
/// and drained (`None`), or `deadline` passes (an error).
fn spin_pop(rx: &mut Consumer<u64>, deadline: Instant) -> Result<Option<u64>, Error> {
    let mut spins = 0u32;
    loop {
        match rx.try_pop() {
            Ok(v) => return Ok(Some(v)),
            Err(TryPopError::Closed) => return Ok(None),
            Err(TryPopError::Empty) => {}
        }
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_YIELD == 0 {
            if Instant::now() > deadline {
                return Err("spinning pop: nothing came before the deadline".into());
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Spins on `try_push` like [`spin_pop`] until `v` is in the ring.
fn spin_push(tx: &mut Producer<u64>, mut v: u64, deadline: Instant) -> Result<(), Error> {
    let mut spins = 0u32;
    loop {
        match tx.try_push(v) {
            Ok(()) => return Ok(()),
            Err(TryPushError::Closed(_)) => return Err("spinning push: ring closed".into()),
            Err(TryPushError::Full(back)) => v = back,
        }
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_YIELD == 0 {
            if Instant::now() > deadline {
                return Err("spinning push: no room before the deadline".into());
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A child process that is killed (and reaped) if it is still running when
/// this is dropped: an early return never leaves an echo process behind.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Waits at most `limit` for the child to exit; kills it after that.
    fn wait(&mut self, limit: Duration) -> Result<std::process::ExitStatus, Error> {
        let child = self.0.as_mut().ok_or("already waited for")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                self.0 = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("the echo process still runs after {limit:?}: killed").into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

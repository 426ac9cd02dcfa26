//! [`Control`]: the start/stop protocol of one measured run, shared by the
//! two-process runner ([`procs`](super::procs)) and the two-thread runner
//! ([`threads`](super::threads)).
//!
//! A run has a *lead* (the parent process, or the calling thread), which
//! measures, and an optional *peer* (a forked child, or a second thread).
//!
//! 1. The peer raises `READY` and waits (yielding) for `GO`.
//! 2. The lead waits for `READY`, starts its clock and raises `GO`; both run
//!    their operation in chunks of [`CHUNK`]. After each chunk the peer
//!    publishes its count in `PROGRESS` and looks at `STOP`; the lead adds
//!    the peer's count to its own (when the peer's operations count) and
//!    stops once the [`Budget`] is spent.
//! 3. The lead raises `STOP`, waits for the peer's `DONE` and takes its
//!    final count. The wall time runs from `GO` to the moment the last
//!    counted operation is known to be done.
//!
//! So both sides are busy for the whole measured window: the figure is the
//! throughput of the contended operation, not that of whichever side
//! happened to finish its share last, alone.
//!
//! Every control word sits on its own 128-byte stretch (a cache line and its
//! prefetch buddy), away from the object being measured.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::yield_now;
use std::time::{Duration, Instant};

/// Words from one control word to the next (128 bytes).
const STRIDE: usize = 16;
const READY: usize = 0;
const GO: usize = 1;
const STOP: usize = 2;
const PROGRESS: usize = 3;
const DONE: usize = 4;
const FAILED: usize = 5;

/// The number of `AtomicU64` words a [`Control`] needs.
pub const WORDS: usize = 6 * STRIDE;

/// Operations between two looks at the control words.
pub const CHUNK: u64 = 128;

/// The lead's chunks between two looks at the clock (a clock read costs as
/// much as a few uncontended operations).
const CLOCK_EVERY: u64 = 8;

/// How long the lead waits for a peer to start, or to stop once asked.
const PEER_PATIENCE: Duration = Duration::from_secs(10);

/// How much one run measures.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    ops: u64,
    time: Option<Duration>,
}

impl Budget {
    /// Stop once this many counted operations are done (rounded up to a
    /// whole chunk on each side): what criterion's `iter_custom` asks for.
    pub fn ops(n: u64) -> Self {
        Self {
            ops: n.max(1),
            time: None,
        }
    }

    /// Stop once this much time has passed.
    pub fn time(window: Duration) -> Self {
        Self {
            ops: u64::MAX,
            time: Some(window),
        }
    }

    /// The counted operations after which a run stops (`u64::MAX` for a
    /// timed budget).
    pub fn max_ops(&self) -> u64 {
        self.ops
    }

    /// The window of a timed budget.
    pub fn window(&self) -> Option<Duration> {
        self.time
    }
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Counted operations.
    pub ops: u64,
    /// Wall time they took, measured by the lead.
    pub elapsed: Duration,
    /// Operations the peer did in the same run, counted or not (for a
    /// background writer: how hard it was writing).
    pub peer_ops: u64,
}

impl Sample {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// The peer's operations per second over the same window.
    pub fn peer_per_sec(&self) -> f64 {
        self.peer_ops as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// The time `iters` operations take at the measured rate (a run does a
    /// few more than asked, up to a chunk per side; criterion wants the time
    /// for exactly `iters`).
    pub fn time_for(&self, iters: u64) -> Duration {
        let per_op = self.elapsed.as_secs_f64() / self.ops.max(1) as f64;
        Duration::from_secs_f64(per_op * iters as f64)
    }
}

/// Whose operations a run counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Both sides do the measured operation (two processes on one counter).
    Both,
    /// Only the lead's operations count; the peer is background load (a
    /// writer storing continuously while the lead reads).
    LeadOnly,
}

/// Tells the lead whether its peer is still running: `Ok(false)` once it
/// has exited (for whatever reason), `Err` if that cannot be told.
pub type PeerCheck<'a> = &'a mut dyn FnMut() -> io::Result<bool>;

/// The control words of a run, in a mapping (two processes) or on the heap
/// (two threads).
#[derive(Clone, Copy, Debug)]
pub struct Control<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Control<'a> {
    /// Views `words` (at least [`WORDS`] of them) as control words.
    ///
    /// # Panics
    ///
    /// If `words` is too short (a harness bug).
    pub fn new(words: &'a [AtomicU64]) -> Self {
        assert!(words.len() >= WORDS, "a Control needs {WORDS} words");
        Self { words }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i * STRIDE]
    }

    /// Clears every word before a run. No peer of an earlier run may still
    /// be running (the runners reap or join theirs before returning).
    pub fn reset(&self) {
        for i in [READY, GO, STOP, PROGRESS, DONE, FAILED] {
            // Relaxed: the peer that will read these is started afterwards
            // (`fork(2)` or `thread::spawn`), and starting it orders these
            // stores before everything it does.
            self.word(i).store(0, Ordering::Relaxed);
        }
    }

    /// Whether the lead has asked the peer to stop: for a peer `op` that
    /// waits on the lead (a producer facing a full queue that the lead no
    /// longer drains) and must give up its wait to let the run end. Such an
    /// op returns `true` after seeing it; the peer then stops at the end of
    /// the chunk, the remaining calls returning at once.
    #[inline]
    pub fn stop_requested(&self) -> bool {
        // Relaxed: a stop request carries no data.
        self.word(STOP).load(Ordering::Relaxed) != 0
    }

    /// The peer's side of a run: `op` in chunks from `GO` to `STOP`.
    /// Returns whether every `op` succeeded.
    ///
    /// Runs in a forked child, so it allocates nothing and takes no lock:
    /// atomics, `sched_yield(2)` and whatever `op` does.
    pub fn peer(&self, mut op: impl FnMut() -> bool) -> bool {
        // Relaxed: a start signal only; nothing is published through it.
        self.word(READY).store(1, Ordering::Relaxed);
        loop {
            // Acquire pairs with the lead's Release store of GO in `lead`:
            // everything the lead set up before the start is visible here.
            if self.word(GO).load(Ordering::Acquire) != 0 {
                break;
            }
            // Relaxed: a request to give up before starting; no data.
            if self.word(STOP).load(Ordering::Relaxed) != 0 {
                self.finish(0, true);
                return true;
            }
            yield_now();
        }
        let mut done = 0u64;
        let ok = 'run: loop {
            for _ in 0..CHUNK {
                if !op() {
                    break 'run false;
                }
            }
            done += CHUNK;
            // Relaxed: a running count for the lead's stop condition only;
            // the final count is published by the Release store of DONE.
            self.word(PROGRESS).store(done, Ordering::Relaxed);
            // Relaxed: a stop request carries no data.
            if self.word(STOP).load(Ordering::Relaxed) != 0 {
                break true;
            }
        };
        self.finish(done, ok);
        ok
    }

    fn finish(&self, done: u64, ok: bool) {
        // Relaxed (both): published by the Release store of DONE below.
        self.word(PROGRESS).store(done, Ordering::Relaxed);
        self.word(FAILED).store(u64::from(!ok), Ordering::Relaxed);
        // Release pairs with the Acquire loads of DONE in `wait_done`: the
        // final PROGRESS and FAILED above are visible to the lead once it
        // sees DONE.
        self.word(DONE).store(1, Ordering::Release);
    }

    /// The lead's side of a run: waits for the peer (if any), runs `op` in
    /// chunks until `budget` is spent, stops the peer (dropping `op` right
    /// after raising `STOP`) and returns what was measured. `op` returning
    /// `false` ends the run with an error.
    ///
    /// # Errors
    ///
    /// If an operation failed on either side, or the peer did not start or
    /// stop within 10 s, or exited early.
    pub fn lead(
        &self,
        budget: Budget,
        counted: Counted,
        mut peer: Option<PeerCheck<'_>>,
        mut op: impl FnMut() -> bool,
    ) -> io::Result<Sample> {
        // From here on, every way out of this function tells the peer to
        // stop, so a waiting peer thread can be joined.
        let _stop = StopOnDrop(*self);
        if let Some(check) = peer.as_deref_mut() {
            self.wait_ready(check)?;
        }
        let counts_peer = peer.is_some() && counted == Counted::Both;
        let start = Instant::now();
        // Release pairs with the peer's Acquire load of GO in `peer`.
        self.word(GO).store(1, Ordering::Release);
        let mut mine = 0u64;
        let mut chunks = 0u64;
        loop {
            for _ in 0..CHUNK {
                if !op() {
                    return Err(io::Error::other(
                        "an operation failed in the measuring process",
                    ));
                }
            }
            mine += CHUNK;
            chunks += 1;
            let theirs = if counts_peer {
                // Relaxed: a running count for the stop condition only.
                self.word(PROGRESS).load(Ordering::Relaxed)
            } else {
                0
            };
            if mine.saturating_add(theirs) >= budget.ops {
                break;
            }
            if chunks % CLOCK_EVERY == 0 && budget.time.is_some_and(|w| start.elapsed() >= w) {
                break;
            }
        }
        let lead_end = start.elapsed();
        // Relaxed: a stop request carries no data.
        self.word(STOP).store(1, Ordering::Relaxed);
        // The lead's part is over: dropping `op` now lets it release what a
        // peer blocked in the kernel may be waiting on (a ring end it owns,
        // whose drop gives its role back and wakes the peer, which then
        // returns `Disconnected`).
        drop(op);
        let Some(check) = peer else {
            return Ok(Sample {
                ops: mine,
                elapsed: lead_end,
                peer_ops: 0,
            });
        };
        let theirs = self.wait_done(check)?;
        Ok(if counts_peer {
            Sample {
                ops: mine + theirs,
                elapsed: start.elapsed(),
                peer_ops: theirs,
            }
        } else {
            Sample {
                ops: mine,
                elapsed: lead_end,
                peer_ops: theirs,
            }
        })
    }

    fn wait_ready(&self, check: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<()> {
        let since = Instant::now();
        // Relaxed: a start signal only (see `peer`).
        while self.word(READY).load(Ordering::Relaxed) == 0 {
            if !check()? {
                return Err(io::Error::other("the peer exited before it started"));
            }
            if since.elapsed() > PEER_PATIENCE {
                return Err(io::Error::other("the peer did not start within 10 s"));
            }
            yield_now();
        }
        Ok(())
    }

    /// Waits for the peer's DONE; its final count.
    fn wait_done(&self, check: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<u64> {
        let since = Instant::now();
        loop {
            // Acquire pairs with the Release store of DONE in `finish`.
            if self.word(DONE).load(Ordering::Acquire) != 0 {
                break;
            }
            if !check()? {
                // It may have exited just after raising DONE: look again.
                // Acquire as above.
                if self.word(DONE).load(Ordering::Acquire) != 0 {
                    break;
                }
                return Err(io::Error::other(
                    "the peer exited without finishing its run",
                ));
            }
            if since.elapsed() > PEER_PATIENCE {
                return Err(io::Error::other("the peer did not stop within 10 s"));
            }
            yield_now();
        }
        // Relaxed (both): made visible by the Acquire load of DONE above.
        if self.word(FAILED).load(Ordering::Relaxed) != 0 {
            return Err(io::Error::other("an operation failed in the peer"));
        }
        Ok(self.word(PROGRESS).load(Ordering::Relaxed))
    }
}

/// Raises STOP when dropped.
struct StopOnDrop<'a>(Control<'a>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        // Relaxed: a stop request carries no data.
        self.0.word(STOP).store(1, Ordering::Relaxed);
    }
}

/// Runs `op` alone in this thread: the uncontended rows.
///
/// # Errors
///
/// If an operation failed.
pub fn alone(budget: Budget, op: impl FnMut() -> bool) -> io::Result<Sample> {
    let words: Vec<AtomicU64> = (0..WORDS).map(|_| AtomicU64::new(0)).collect();
    Control::new(&words).lead(budget, Counted::LeadOnly, None, op)
}

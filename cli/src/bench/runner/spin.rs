//! [`Spin`]: the one waiting policy of every spinning row of the SPSC
//! comparison (mmring's `try_push`/`try_pop`, rtrb, crossbeam's
//! `ArrayQueue`, `Mutex<VecDeque>`, the cache-line floor), so that they
//! differ only in the queue.
//!
//! A failed try is followed by a `spin_loop` hint for the first
//! [`SPINS`] tries, then by `sched_yield(2)`: on a 2-core machine a waiter
//! that never yields can starve the very party it waits for, and a busy
//! machine needs the core back. Once yielding, the wait looks at the clock
//! now and then and gives up after [`PATIENCE`]: the other party is gone.

use std::hint::spin_loop;
use std::thread::yield_now;
use std::time::{Duration, Instant};

/// Failed tries answered with a spin hint before the first yield.
pub const SPINS: u32 = 128;

/// How long a wait may last before the other party is taken for dead.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Yields between two looks at the clock.
const CLOCK_EVERY: u32 = 256;

/// The state of one wait: create it when the first try fails (it costs
/// nothing), call [`snooze`](Self::snooze) after every failed try.
#[derive(Debug, Default)]
pub struct Spin {
    tries: u32,
    since: Option<Instant>,
}

impl Spin {
    /// A fresh wait.
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits a little after a failed try. `false` once the wait has lasted
    /// [`PATIENCE`]: the caller fails its operation.
    #[inline]
    pub fn snooze(&mut self) -> bool {
        self.tries = self.tries.saturating_add(1);
        if self.tries <= SPINS {
            spin_loop();
            return true;
        }
        yield_now();
        if self.tries % CLOCK_EVERY != 0 {
            return true;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        since.elapsed() < PATIENCE
    }
}

/// Tries `attempt` until it returns `Some`, waiting with a [`Spin`]
/// between tries. `None` if `stop` (asked after every failed try: a load
/// of a word nobody writes during a run, so a cache hit) says so, or the
/// wait ran out of [`PATIENCE`].
#[inline]
pub fn until<R>(
    mut attempt: impl FnMut() -> Option<R>,
    mut stop: impl FnMut() -> bool,
) -> Option<R> {
    let mut spin = Spin::new();
    loop {
        if let Some(r) = attempt() {
            return Some(r);
        }
        if stop() || !spin.snooze() {
            return None;
        }
    }
}

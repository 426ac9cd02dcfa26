//! [`Pace`]: a loop run at a fixed rate, for the side of a comparison that
//! must load the other at the same rate whatever the mechanism (the writer
//! of the `cell` rows).
//!
//! A writer storing flat out measures how the two sides share a cache line
//! more than the reads: the rate it reaches depends on the mechanism and on
//! the scheduler, and an `RwLock` reader under such a writer swings between
//! runs (whenever the writer has to wait, std's lock makes new readers
//! queue behind it). At a fixed rate both mechanisms face the same load.

use std::hint::spin_loop;
use std::time::{Duration, Instant};

/// Ticks at a fixed rate: [`Pace::wait`] returns once per period.
#[derive(Debug)]
pub struct Pace {
    period: Duration,
    next: Option<Instant>,
}

impl Pace {
    /// A pace of `per_second` ticks a second (at least 1).
    pub fn per_second(per_second: u32) -> Self {
        Self {
            period: Duration::from_secs(1) / per_second.max(1),
            next: None,
        }
    }

    /// Waits (spinning: the periods are microseconds) for the next tick.
    /// Ticks never come closer than one period apart (the next one is
    /// due a period after this one returns): a caller that fell behind
    /// (descheduled) goes on from now instead of catching up in a burst,
    /// so the rate is at most, and on a free core about, the one asked.
    pub fn wait(&mut self) {
        let now = Instant::now();
        let Some(next) = self.next else {
            self.next = Some(now + self.period);
            return;
        };
        let mut t = now;
        while t < next {
            spin_loop();
            t = Instant::now();
        }
        self.next = Some(t + self.period);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_runs_faster_than_its_rate() {
        let mut pace = Pace::per_second(10_000);
        let start = Instant::now();
        for _ in 0..101 {
            pace.wait();
        }
        // 100 periods of 100 us after the first tick: at least 10 ms.
        assert!(start.elapsed() >= Duration::from_millis(10));
    }
}

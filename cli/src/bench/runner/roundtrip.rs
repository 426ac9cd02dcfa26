//! The round-trip runner: a forked child echoes every message back; the
//! parent sends one, waits for it to come back, and times each round trip.
//!
//! The parent makes [`WARM_UP`] untimed round trips first (the child
//! starting, caches and page tables filling), then `n` timed ones, reading
//! a time stamp once per round trip: each sample runs from the end of one
//! round trip to the end of the next. Then it sends the stop message
//! ([`STOP`]) in band and reaps the child. The child gets no clock and no
//! control words: it only echoes.
//!
//! The time stamps are the TSC on x86-64 (some 15 ns a read here, against
//! some 40 ns for `Instant::now` on a virtual machine), converted to
//! nanoseconds with a calibration against `Instant` (once per process);
//! the cost of one read, measured back to back just before, is taken off
//! every sample. At a floor of ~100 ns that is not a detail: uncorrected,
//! the clock's cost would pull every ratio to the floor towards 1.

use std::io;
use std::time::{Duration, Instant};

use super::flow::{Echo, STOP};
use super::procs;

/// Untimed round trips before the timed ones.
pub const WARM_UP: u64 = 1_000;

/// The timed round trips of one run, in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct RoundTrips {
    /// One sample per round trip, in the order they were made.
    pub nanos: Vec<u64>,
    /// The clock's step, in nanoseconds: samples are multiples of it, give
    /// or take the conversion (10 ns on the AMD EPYC this was written on,
    /// whose TSC advances 26 ticks at a time; about 1 where the clock
    /// steps finer than a read costs).
    pub resolution: f64,
    /// Wall time of all the timed round trips together.
    pub elapsed: Duration,
    /// How many times the timing thread went to sleep during the timed
    /// round trips (its voluntary context switches; a yield is not one):
    /// about one per round trip when its waits block in the kernel, none
    /// when the answer always came while it was still spinning.
    pub sleeps: u64,
}

impl RoundTrips {
    /// Adds another run's samples (for percentiles over several runs).
    pub fn extend(&mut self, other: &RoundTrips) {
        self.nanos.extend_from_slice(&other.nanos);
        self.resolution = self.resolution.max(other.resolution);
        self.elapsed += other.elapsed;
        self.sleeps += other.sleeps;
    }

    /// The `p`-th percentile (0 to 100) of the samples; zero when there are
    /// none. See [`quantile`].
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.nanos.clone();
        v.sort_unstable();
        Duration::from_secs_f64(quantile(&v, p, self.resolution) / 1e9)
    }

    /// Sleeps of the timing side per round trip (see [`Self::sleeps`]).
    pub fn sleeps_per_trip(&self) -> f64 {
        self.sleeps as f64 / self.nanos.len().max(1) as f64
    }

    /// The median and the 99th percentile.
    pub fn p50_p99(&self) -> (Duration, Duration) {
        let mut v = self.nanos.clone();
        v.sort_unstable();
        let at = |p| Duration::from_secs_f64(quantile(&v, p, self.resolution) / 1e9);
        (at(50.0), at(99.0))
    }
}

/// The `p`-th percentile of sorted samples taken with a clock that steps
/// by `step`: the nearest-rank sample, then placed within its step by
/// where the rank falls among the samples of that step (the median of
/// grouped data). With a step of a nanosecond or less it is the
/// nearest-rank sample itself; with a 10-ns step it keeps a 70-ns median
/// from reading as 70 or 80 by the luck of the tie.
pub fn quantile(sorted: &[u64], p: f64, step: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let rank = ((p / 100.0) * n as f64).clamp(0.0, n as f64);
    let v = sorted[(rank.ceil() as usize).clamp(1, n) - 1] as f64;
    if step <= 1.0 {
        return v;
    }
    let (low, high) = (v - step / 2.0, v + step / 2.0);
    let below = sorted.partition_point(|&x| (x as f64) <= low);
    let within = sorted.partition_point(|&x| (x as f64) <= high) - below;
    let into = ((rank - below as f64) / within.max(1) as f64).clamp(0.0, 1.0);
    low + step * into
}

/// Runs `n` timed round trips: `ping(seq)` here (send message `seq`, wait
/// for it to come back, check it), `echo()` in a forked child until it
/// returns [`Echo::Stop`]; `ping(STOP)` sends the message that makes it do
/// so, and waits for nothing.
///
/// With a `gap`, this process sleeps that long before each round trip, so
/// that the echo side is asleep when the message comes (and this side,
/// waiting for the answer while the other wakes up, falls asleep too); each
/// sample then times one round trip alone (two clock reads), and only
/// [`WARM_UP`] / 10 untimed round trips come first.
///
/// `after_fork` runs in the parent right after the fork (to close
/// the child's ends of pipes, so that a dead child shows up as an end of
/// file).
///
/// `echo` runs in a forked child: the rules of [`procs::run`] apply (no
/// allocation, no lock another thread could hold).
///
/// # Errors
///
/// If `fork` fails, a round trip fails (the child is killed and reaped),
/// or the child does not exit cleanly.
pub fn run(
    n: u64,
    gap: Option<Duration>,
    mut ping: impl FnMut(u64) -> bool,
    mut echo: impl FnMut() -> Echo,
    after_fork: impl FnOnce(),
) -> io::Result<RoundTrips> {
    let mut nanos = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut child = procs::spawn(move || {
        loop {
            match echo() {
                Echo::Again => {}
                Echo::Stop => return true,
                Echo::Failed => return false,
            }
        }
    })?;
    after_fork();
    let failed = |child: &mut procs::Child| {
        if child.running().unwrap_or(false) {
            io::Error::other("a round trip failed (no echo within 10 s, or a wrong one)")
        } else {
            io::Error::other("the echo process exited during the run")
        }
    };
    let warm_up = if gap.is_some() { WARM_UP / 10 } else { WARM_UP };
    for seq in 0..warm_up {
        if !ping(seq) {
            return Err(failed(&mut child));
        }
    }
    let overhead = stamp::overhead();
    let mut ticks = Vec::with_capacity(nanos.capacity());
    let mut sleeps = 0;
    let wall = Instant::now();
    if let Some(gap) = gap {
        for seq in warm_up..warm_up + n {
            std::thread::sleep(gap);
            let before = voluntary_switches();
            let start = stamp::now();
            if !ping(seq) {
                return Err(failed(&mut child));
            }
            let end = stamp::now();
            sleeps += voluntary_switches().saturating_sub(before);
            ticks.push(end.wrapping_sub(start).saturating_sub(overhead));
        }
    } else {
        let before = voluntary_switches();
        let mut last = stamp::now();
        for seq in warm_up..warm_up + n {
            if !ping(seq) {
                return Err(failed(&mut child));
            }
            let now = stamp::now();
            ticks.push(now.wrapping_sub(last).saturating_sub(overhead));
            last = now;
        }
        sleeps = voluntary_switches().saturating_sub(before);
    }
    let wall = wall.elapsed();
    let ns_per_tick = stamp::ns_per_tick();
    nanos.extend(
        ticks
            .iter()
            .map(|&t| (t as f64 * ns_per_tick).round() as u64),
    );
    let elapsed = if gap.is_some() {
        Duration::from_nanos(nanos.iter().sum())
    } else {
        wall
    };
    if !ping(STOP) {
        return Err(io::Error::other("could not send the stop message"));
    }
    child.wait()?;
    Ok(RoundTrips {
        nanos,
        resolution: overhead as f64 * ns_per_tick,
        elapsed,
        sleeps,
    })
}

/// Cheap time stamps in ticks of an unknown but constant rate, and that
/// rate.
mod stamp {
    /// A time stamp: the TSC (x86-64 Linux marks it constant and
    /// non-stop; the kernel itself keeps time with it).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn now() -> u64 {
        // SAFETY: RDTSC is available on every x86-64 CPU and only reads the
        // time-stamp counter.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// A time stamp: nanoseconds since the first call.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub(super) fn now() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds per tick, measured once per process against `Instant`
    /// over 20 ms.
    pub(super) fn ns_per_tick() -> f64 {
        static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        *RATE.get_or_init(|| {
            let (wall, first) = (std::time::Instant::now(), now());
            while wall.elapsed() < std::time::Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            let (ns, ticks) = (wall.elapsed().as_nanos() as f64, now().wrapping_sub(first));
            ns / ticks.max(1) as f64
        })
    }

    /// The cost of one stamp in a loop that does nothing else: the median
    /// gap between consecutive stamps. It is also the clock's step where
    /// the clock steps coarser than a read costs (the TSC of AMD's Zen
    /// steps 10 ns at a time: consecutive reads differ by one step).
    pub(super) fn overhead() -> u64 {
        let mut gaps = [0u64; 255];
        let mut last = now();
        for g in &mut gaps {
            let t = now();
            *g = t.wrapping_sub(last);
            last = t;
        }
        gaps.sort_unstable();
        gaps[gaps.len() / 2]
    }
}

/// The calling thread's voluntary context switches so far (0 where they
/// cannot be read).
fn voluntary_switches() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let who = libc::RUSAGE_THREAD;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let who = libc::RUSAGE_SELF;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `usage` is writable storage for one rusage, filled by the
    // call when it succeeds (and only read then).
    if unsafe { libc::getrusage(who, usage.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded, so `usage` is initialized.
    let usage = unsafe { usage.assume_init() };
    u64::try_from(usage.ru_nvcsw).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank_and_within_a_step() {
        let rt = RoundTrips {
            nanos: (1..=100).rev().collect(),
            ..RoundTrips::default()
        };
        assert_eq!(
            rt.p50_p99(),
            (Duration::from_nanos(50), Duration::from_nanos(99))
        );
        assert_eq!(rt.percentile(100.0), Duration::from_nanos(100));
        assert_eq!(rt.percentile(0.0), Duration::from_nanos(1));
        assert_eq!(RoundTrips::default().percentile(50.0), Duration::ZERO);
        // A 10-ns clock: a quarter at 70, three quarters at 80 (give or
        // take a nanosecond of conversion): the median lies in the step
        // around the 50th sample (79), a third of the way into its 75
        // samples.
        let mut v: Vec<u64> = [70; 25]
            .into_iter()
            .chain([79, 80, 81].repeat(25))
            .collect();
        v.sort_unstable();
        let p50 = quantile(&v, 50.0, 10.0);
        assert!((p50 - (74.0 + 10.0 / 3.0)).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&v, 50.0, 1.0), 79.0);
    }

    #[test]
    fn a_failing_round_trip_is_an_error() {
        // The child fails at once; the parent's pings fail too.
        let err = run(10, None, |_| false, || Echo::Failed, || {}).expect_err("failed");
        let text = err.to_string();
        assert!(
            text.contains("round trip") || text.contains("exited"),
            "{text}"
        );
    }
}

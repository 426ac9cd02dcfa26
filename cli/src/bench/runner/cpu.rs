//! What the rest of the machine is doing: how many CPUs this process may
//! run on, and how busy other processes keep them — just before a run
//! ([`warn_if_busy`]) and on average during one ([`Others`]). A benchmark
//! whose parties must run in parallel reads too slow on a machine that
//! someone else keeps busy, so the tables say so.
//!
//! The machine's busy time comes from the first line of `/proc/stat`,
//! read in one place (`machine_ticks`).

use std::time::{Duration, Instant};

/// The number of CPUs this process may run on (0 if that cannot be told).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The whole machine's CPU time since boot, in clock ticks: `(total,
/// idle)`, idle counting iowait too; `None` where `/proc/stat` cannot be
/// read.
fn machine_ticks() -> Option<(u64, u64)> {
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

/// How many CPUs' worth of time the whole machine spent busy over `over`;
/// `None` where that cannot be read.
fn cpu_busy(over: Duration) -> Option<f64> {
    let (t0, i0) = machine_ticks()?;
    std::thread::sleep(over);
    let (t1, i1) = machine_ticks()?;
    let total = t1.checked_sub(t0)?.max(1) as f64;
    let idle = i1.saturating_sub(i0) as f64;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some((1.0 - idle / total) * cpus)
}

/// Warns on stderr if other processes kept the machine busy just before a
/// run; how many CPUs they kept busy (if that can be told).
pub fn warn_if_busy() -> Option<f64> {
    let busy = cpu_busy(Duration::from_millis(100))?;
    if busy > 0.2 {
        eprintln!(
            "warning: other processes kept {busy:.1} CPUs busy just before the run: rows \
             with two parties may run time-sliced instead of in parallel"
        );
    }
    Some(busy)
}

/// CPU time the rest of the machine used while the benchmark ran: the
/// whole machine's busy time (`/proc/stat`) less this process's and its
/// reaped children's (`getrusage`).
#[derive(Debug)]
pub struct Others {
    busy: f64,
    own: f64,
    since: Instant,
}

impl Others {
    /// Starts measuring (`None` where the times cannot be read).
    pub fn start() -> Option<Self> {
        Some(Self {
            busy: machine_busy_secs()?,
            own: own_cpu_secs()?,
            since: Instant::now(),
        })
    }

    /// Average CPUs the rest of the machine kept busy since `start`.
    pub fn cpus(&self) -> Option<f64> {
        let busy = machine_busy_secs()? - self.busy;
        let own = own_cpu_secs()? - self.own;
        Some(((busy - own) / self.since.elapsed().as_secs_f64().max(1e-9)).max(0.0))
    }
}

/// CPU-seconds the whole machine has spent busy since boot.
fn machine_busy_secs() -> Option<f64> {
    let (total, idle) = machine_ticks()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| total.saturating_sub(idle) as f64 / ticks as f64)
}

/// CPU-seconds (user and system) of this process and its reaped children.
fn own_cpu_secs() -> Option<f64> {
    let mut secs = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `usage` is writable storage for one rusage, read only
        // after the call succeeded.
        if unsafe { libc::getrusage(who, usage.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: getrusage succeeded, so `usage` is initialized.
        let usage = unsafe { usage.assume_init() };
        for t in [usage.ru_utime, usage.ru_stime] {
            secs += t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        }
    }
    Some(secs)
}

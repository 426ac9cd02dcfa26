//! The semaphore's words and algorithm: a compare-and-swap on a shared
//! permit count, sleeping on the shared futex when none is left (see
//! [`Semaphore`](crate::Semaphore), the handle over a file).
//!
//! Each process's acquired permits are recorded in a holders table (pid and
//! count). A waiter that sleeps for a while looks for holders whose process
//! is gone and gives their permits back, so a process killed while holding
//! a permit does not leak it. Permits are attributed to the process that
//! acquired them: a release by another process is not attributed to anyone.

use std::time::Instant;

pub use crate::error::ReleaseError;
use crate::layout::{BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{SLICE, WaitPoint, wait_sliced};

/// Entries in the holders table.
pub const HOLDERS: usize = 64;

/// Bytes of a semaphore's body: one line of counters and wait point, then
/// the holders table.
const BODY_SIZE: u64 = 64 + 8 * HOLDERS as u64;

/// The body layout of a semaphore: no payload, one block of words.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    super::unit_body_layout(Kind::Semaphore, elem, capacity, BODY_SIZE)
}

/// The semaphore's shared words.
#[repr(C)]
pub struct SemaphoreWords {
    pub(crate) permits: AtomicU64,
    /// The bound (0: unbounded).
    pub(crate) max: AtomicU64,
    epoch: AtomicU32,
    waiters: AtomicU32,
    pub(crate) recovered: AtomicU64,
    _pad: [u64; 4],
    /// `pid << 32 | count` per holding process; 0 = free.
    pub(crate) holders: [AtomicU64; HOLDERS],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<SemaphoreWords>() as u64, BODY_SIZE);

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding.
unsafe impl crate::layout::MappedAtomic for SemaphoreWords {}

/// A holder entry read from the table: (pid, permits held).
pub type Holder = (u32, u64);

impl SemaphoreWords {
    /// A semaphore with `permits`, bounded to `max` (0: unbounded).
    pub fn new(permits: u64, max: u64) -> Self {
        Self {
            permits: AtomicU64::new(permits),
            max: AtomicU64::new(max),
            epoch: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            recovered: AtomicU64::new(0),
            _pad: [0; 4],
            holders: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[cfg_attr(
        loom,
        allow(dead_code, reason = "used by the handle, which loom does not build")
    )]
    pub(crate) fn init(&self, permits: u64, max: u64) {
        // Relaxed: the file is still private to its creator.
        self.permits.store(permits, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
    }

    fn point(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.epoch, &self.waiters)
    }

    /// Permits available now (a snapshot).
    pub fn available(&self) -> u64 {
        // Relaxed: a snapshot.
        self.permits.load(Ordering::Relaxed)
    }

    /// The bound (0: unbounded).
    pub fn max(&self) -> u64 {
        // Relaxed: written before the file was published, never changed.
        self.max.load(Ordering::Relaxed)
    }

    /// Permits given back after their holder died, so far.
    pub fn recovered(&self) -> u64 {
        // Relaxed: a statistic.
        self.recovered.load(Ordering::Relaxed)
    }

    /// The holders table's non-empty entries.
    pub fn holders(&self) -> Vec<Holder> {
        self.holders
            .iter()
            // Relaxed: a snapshot for display.
            .map(|h| h.load(Ordering::Relaxed))
            .filter(|&h| h != 0)
            .map(|h| ((h >> 32) as u32, h & 0xffff_ffff))
            .collect()
    }

    /// Adds `delta` (+1 or -1) to `pid`'s holder entry. Best effort: with the
    /// table full, the permit is simply not attributed.
    fn record(&self, pid: u32, acquire: bool) {
        let tag = u64::from(pid) << 32;
        for h in &self.holders {
            // Acquire pairs with the AcqRel CASes below (of other threads
            // of this process, and of `recover_dead_holders`): a scan that
            // restarts after a failed CAS sees every entry created before
            // the CAS that beat it, so a release never misses the entry
            // holding its count (loom model `semaphore_holders_table_balances`).
            let cur = h.load(Ordering::Acquire);
            if cur & !0xffff_ffff == tag && cur != 0 {
                // The count is read from the mapping: it never carries
                // into (or borrows from) the pid half. A full count stays
                // full (the permit goes unattributed, as with a full
                // table); a zero count (never written by us) frees the
                // entry on a release.
                let count = cur & 0xffff_ffff;
                let new = match (acquire, count) {
                    (true, 0xffff_ffff) => return,
                    (true, _) => cur + 1,
                    (false, 0 | 1) => 0,
                    (false, _) => cur - 1,
                };
                // AcqRel: pairs with the Acquire scan loads above and with
                // `recover_dead_holders`' CAS on the entry; Acquire on
                // failure for the same reason as the scan loads.
                if h.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return;
                }
                return self.record(pid, acquire);
            }
        }
        if acquire {
            for h in &self.holders {
                // AcqRel: as above.
                if h.compare_exchange(0, tag | 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }

    /// Takes a permit if one is left, never waiting.
    pub fn try_acquire(&self) -> bool {
        // AcqRel on success: acquires what the releaser did before (pairs
        // with the Release half of `release`), publishes the new count.
        let ok = self
            .permits
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| p.checked_sub(1))
            .is_ok();
        if ok {
            self.record(crate::pid::current(), true);
        }
        ok
    }

    /// Takes a permit, sleeping while none is left, until `deadline`;
    /// whether it got one. While asleep, gives back permits of dead holders
    /// (a process that exited normally holding permits counts as dead).
    pub fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        self.acquire_sliced(deadline, true)
    }

    /// [`SemaphoreWords::acquire_until`] without the recovery: permits
    /// taken by processes that are gone stay taken, as with
    /// `multiprocessing.Semaphore`. For a semaphore used to signal (one
    /// process releases, another acquires and keeps the permit), where a
    /// permit is not a loan its taker gives back.
    pub fn acquire_until_without_recovery(&self, deadline: Option<Instant>) -> bool {
        self.acquire_sliced(deadline, false)
    }

    fn acquire_sliced(&self, deadline: Option<Instant>, recover: bool) -> bool {
        let ready = || self.try_acquire().then_some(());
        // Between slices: give back what dead holders took, then look again.
        let housekeeping = |_: &mut _| {
            if recover {
                self.recover_dead_holders();
            }
            None
        };
        wait_sliced(self.point(), deadline, SLICE, ready, housekeeping).is_ok()
    }

    /// Gives a permit back and wakes a sleeper.
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] if a bounded semaphore is already at its bound (the
    /// count is unchanged).
    pub fn release(&self) -> Result<(), ReleaseError> {
        let max = self.max();
        // AcqRel: the Release half pairs with the acquirer's Acquire.
        self.permits
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| {
                if max != 0 && p >= max {
                    None
                } else {
                    p.checked_add(1)
                }
            })
            .map_err(|_| ReleaseError { max })?;
        self.record(crate::pid::current(), false);
        self.point().notify();
        Ok(())
    }

    /// Gives back the permits of holders whose process is gone; how many
    /// (saturating: the counts come from the mapping, which any process can
    /// scribble on).
    pub fn recover_dead_holders(&self) -> u64 {
        let mut total: u64 = 0;
        for h in &self.holders {
            // Relaxed: the CAS below validates it.
            let cur = h.load(Ordering::Relaxed);
            if cur == 0 || crate::pid::is_alive((cur >> 32) as u32) {
                continue;
            }
            // AcqRel: exactly one survivor takes the entry over.
            if h.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let count = cur & 0xffff_ffff;
            let max = self.max();
            // AcqRel: like `release`; never past the bound. Saturating:
            // `permits`, `max` and `count` are all read from the mapping
            // (regression: a file with permits near u64::MAX and a dead
            // holder made this add overflow, fuzz/corpus/open_file/
            // semaphore-add-overflow).
            let _ = self
                .permits
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| {
                    let p = p.saturating_add(count);
                    Some(if max != 0 { p.min(max) } else { p })
                });
            total = total.saturating_add(count);
        }
        if total > 0 {
            // Relaxed: a statistic.
            self.recovered.fetch_add(total, Ordering::Relaxed);
            self.point().notify();
        }
        total
    }
}

//! [`Semaphore`] and bounded semaphores: `multiprocessing.Semaphore` /
//! `BoundedSemaphore` across processes, a compare-and-swap on a shared
//! permit count, sleeping on the shared futex when none is left.
//!
//! Each process's acquired permits are recorded in a holders table (pid and
//! count). A waiter that sleeps for a while looks for holders whose process
//! is gone and gives their permits back, so a process killed while holding
//! a permit does not leak it. Permits are attributed to the process that
//! acquired them: a release by another process is not attributed to anyone.

use std::time::{Duration, Instant};

pub use crate::error::ReleaseError;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitPoint;

/// Entries in the holders table.
pub const HOLDERS: usize = 64;

/// How often a blocked acquirer looks for permits held by dead processes.
pub const RECOVERY_CHECK: Duration = Duration::from_millis(50);

/// The semaphore's shared words.
#[repr(C)]
pub struct SemaphoreWords {
    permits: AtomicU64,
    /// The bound (0: unbounded).
    max: AtomicU64,
    epoch: AtomicU32,
    waiters: AtomicU32,
    recovered: AtomicU64,
    _pad: [u64; 4],
    /// `pid << 32 | count` per holding process; 0 = free.
    holders: [AtomicU64; HOLDERS],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<SemaphoreWords>(), 64 + HOLDERS * 8);

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
    /// whether it got one. While asleep, gives back permits of dead holders.
    pub fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            let slice_end = Instant::now() + RECOVERY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            if self
                .point()
                .wait_until(Some(until), || self.try_acquire().then_some(()))
                .is_ok()
            {
                return true;
            }
            self.recover_dead_holders();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.try_acquire();
            }
        }
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

#[cfg(not(loom))]
pub use mapped::Semaphore;

#[cfg(not(loom))]
mod mapped {
    use super::*;
    use crate::error::OpenError;
    use crate::layout::Kind;
    use crate::pod::TypeInfo;
    use crate::region::{self, CreateOptions, Expect, Region, View};
    use std::path::Path;

    /// A counting semaphore in a file, shared by any number of processes
    /// (`multiprocessing.Semaphore`, or `BoundedSemaphore` when created with
    /// [`Semaphore::create_bounded`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("slots");
    /// use mmring::Semaphore;
    ///
    /// let slots = Semaphore::create_bounded(&path, 2)?;
    /// assert!(slots.try_acquire());
    /// assert!(slots.try_acquire());
    /// assert!(!slots.try_acquire()); // both taken
    /// slots.release()?;
    /// slots.release()?;
    /// assert!(slots.release().is_err()); // a bounded semaphore refuses a third
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub struct Semaphore {
        view: View<SemaphoreWords>,
    }

    impl std::fmt::Debug for Semaphore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Semaphore")
                .field("path", &self.view.region().path())
                .field("available", &self.available())
                .finish()
        }
    }

    fn expect() -> Expect {
        Expect {
            kind: Kind::Semaphore,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    impl Semaphore {
        fn wrap(region: Region) -> Self {
            Self {
                view: View::new(region, |r| &r.body::<SemaphoreWords>(0, 1)[0]),
            }
        }

        fn make(path: &Path, permits: u64, max: u64) -> Result<Self, OpenError> {
            Region::create(path, expect(), 1, &CreateOptions::default(), move |r| {
                r.body::<SemaphoreWords>(0, 1)[0].init(permits, max)
            })
            .map(Self::wrap)
        }

        /// Creates a semaphore file with `permits` permits and no bound.
        ///
        /// # Errors
        ///
        /// The [`OpenError`]s of any create.
        pub fn create(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
            Self::make(&region::resolve(path), permits, 0)
        }

        /// Creates a bounded semaphore file with `permits` permits: a release
        /// past `permits` is an error (`BoundedSemaphore`).
        ///
        /// # Errors
        ///
        /// [`OpenError::InvalidCapacity`] for 0 permits; the [`OpenError`]s of
        /// any create.
        pub fn create_bounded(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            if permits == 0 {
                return Err(OpenError::InvalidCapacity {
                    path,
                    expected: "at least 1 permit for a bounded semaphore".into(),
                    found: 0,
                });
            }
            Self::make(&path, permits, permits)
        }

        /// Opens an existing semaphore file.
        ///
        /// # Errors
        ///
        /// The validation errors of any open.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open(&path, expect()).map(Self::wrap)
        }

        /// Opens the semaphore at `path`, or creates it with `permits`
        /// permits and no bound if there is none. Racing processes all end
        /// up with the same semaphore (one creator wins the name, the others
        /// open its file).
        ///
        /// Opening an existing semaphore never resets it: `permits` applies
        /// only when the file is created, and the permits it has now (taken
        /// or given back by anyone) are kept.
        ///
        /// # Errors
        ///
        /// As [`Semaphore::open`] and [`Semaphore::create`], and
        /// [`OpenError::InvalidCapacity`] (naming both bounds) if the
        /// existing semaphore is bounded.
        ///
        /// # Examples
        ///
        /// ```
        /// # let dir = tempfile::tempdir().unwrap();
        /// # let path = dir.path().join("workers");
        /// use mmring::Semaphore;
        ///
        /// let first = Semaphore::open_or_create(&path, 2)?; // creates it
        /// assert!(first.try_acquire());
        /// // Any process, later: the same semaphore, not a fresh one.
        /// let again = Semaphore::open_or_create(&path, 2)?;
        /// assert_eq!(again.available(), 1);
        /// # Ok::<(), mmring::OpenError>(())
        /// ```
        pub fn open_or_create(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
            Self::open_or_make(&region::resolve(path), permits, 0)
        }

        /// Opens the bounded semaphore at `path`, or creates it with
        /// `permits` permits (also its bound) if there is none
        /// ([`Semaphore::create_bounded`]). Racing processes all end up with
        /// the same semaphore.
        ///
        /// Opening an existing semaphore never resets it: its permits now
        /// are kept.
        ///
        /// # Errors
        ///
        /// [`OpenError::InvalidCapacity`] for 0 permits, or (naming both
        /// bounds) if the existing semaphore has another bound or none; the
        /// errors of [`Semaphore::open`] and [`Semaphore::create_bounded`].
        ///
        /// # Examples
        ///
        /// ```
        /// # let dir = tempfile::tempdir().unwrap();
        /// # let path = dir.path().join("slots");
        /// use mmring::{OpenError, Semaphore};
        ///
        /// let slots = Semaphore::open_or_create_bounded(&path, 3)?;
        /// assert!(slots.try_acquire());
        /// assert_eq!(Semaphore::open_or_create_bounded(&path, 3)?.available(), 2);
        /// // Another bound is another semaphore: refused, not reset.
        /// assert!(matches!(
        ///     Semaphore::open_or_create_bounded(&path, 4),
        ///     Err(OpenError::InvalidCapacity { found: 3, .. })
        /// ));
        /// # Ok::<(), OpenError>(())
        /// ```
        pub fn open_or_create_bounded(
            path: impl AsRef<Path>,
            permits: u64,
        ) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            if permits == 0 {
                return Err(OpenError::InvalidCapacity {
                    path,
                    expected: "at least 1 permit for a bounded semaphore".into(),
                    found: 0,
                });
            }
            Self::open_or_make(&path, permits, permits)
        }

        fn open_or_make(path: &Path, permits: u64, max: u64) -> Result<Self, OpenError> {
            let region =
                Region::open_or_create(path, expect(), 1, &CreateOptions::default(), |r| {
                    r.body::<SemaphoreWords>(0, 1)[0].init(permits, max)
                })?;
            let found = region.body::<SemaphoreWords>(0, 1)[0].max();
            if found != max {
                let permits = |n: u64| match n {
                    1 => "1 permit".to_string(),
                    n => format!("{n} permits"),
                };
                let asked = match max {
                    0 => "an unbounded semaphore".to_string(),
                    n => format!("a semaphore bounded to {}", permits(n)),
                };
                let has = match found {
                    0 => "an unbounded one".to_string(),
                    n => format!("one bounded to {}", permits(n)),
                };
                return Err(OpenError::InvalidCapacity {
                    path: path.to_path_buf(),
                    expected: format!("{asked} as asked, found {has}"),
                    found,
                });
            }
            Ok(Self::wrap(region))
        }

        /// Takes a permit if one is left, never waiting.
        pub fn try_acquire(&self) -> bool {
            self.view.try_acquire()
        }

        /// Takes a permit, sleeping (no CPU) while none is left. Permits held
        /// by processes that died are given back while it waits.
        pub fn acquire(&self) {
            self.view.acquire_until(None);
        }

        /// [`Semaphore::acquire`], giving up after `timeout`; whether it got one.
        pub fn acquire_timeout(&self, timeout: Duration) -> bool {
            self.view.acquire_until(crate::wait::deadline(timeout))
        }

        /// Gives a permit back.
        ///
        /// # Errors
        ///
        /// [`ReleaseError`] if a bounded semaphore is already at its bound.
        pub fn release(&self) -> Result<(), ReleaseError> {
            self.view.release()
        }

        /// Permits available now (a snapshot).
        pub fn available(&self) -> u64 {
            self.view.available()
        }

        /// Gives back the permits of processes that died holding them; how many.
        pub fn recover_dead_holders(&self) -> u64 {
            self.view.recover_dead_holders()
        }

        /// The shared words (holders, bound, statistics).
        pub fn words(&self) -> &SemaphoreWords {
            &self.view
        }

        /// The mapped file.
        pub fn region(&self) -> &Region {
            self.view.region()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_attributed_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Semaphore::create_bounded(dir.path().join("s"), 2).unwrap();
        assert!(s.try_acquire());
        assert!(s.acquire_timeout(Duration::from_millis(5)));
        assert!(!s.acquire_timeout(Duration::from_millis(5)));
        assert_eq!(s.words().holders(), [(crate::pid::current(), 2)]);
        s.release().unwrap();
        s.release().unwrap();
        assert!(s.words().holders().is_empty());
        assert_eq!(s.release(), Err(ReleaseError { max: 2 }));
        assert_eq!(s.available(), 2);
        let u = Semaphore::create(dir.path().join("u"), 0).unwrap();
        u.release().unwrap();
        u.release().unwrap();
        assert_eq!(u.available(), 2, "an unbounded semaphore grows");
        assert!(matches!(
            Semaphore::create_bounded(dir.path().join("z"), 0),
            Err(crate::OpenError::InvalidCapacity { .. })
        ));
    }

    #[test]
    fn permits_of_a_dead_holder_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Semaphore::create_bounded(dir.path().join("s"), 3).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // What a process killed while holding two permits leaves behind.
        s.words().permits.store(1, Ordering::Relaxed);
        s.words().holders[5].store(u64::from(dead) << 32 | 2, Ordering::Relaxed);
        assert_eq!(s.recover_dead_holders(), 2);
        assert_eq!(s.available(), 3);
        assert_eq!(s.words().recovered(), 2);
        assert_eq!(s.recover_dead_holders(), 0);
    }

    /// Regression (fuzz/corpus/open_file/semaphore-add-overflow): permits
    /// and bound near `u64::MAX` in the file, and dead holders with full
    /// counts, made recovery overflow (a panic with overflow checks on).
    /// Whatever the words say, an open and every operation return.
    #[test]
    fn hostile_counts_in_the_file_never_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let dead = crate::pid::dead_pid();
        for (permits, max) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 0),
            (u64::MAX - 1, 0),
            (5, 3),
        ] {
            drop(Semaphore::create(&p, 0).unwrap());
            {
                // Written through another handle, as a hostile peer would.
                let w = Semaphore::open(&p).unwrap();
                let w = w.words();
                w.permits.store(permits, Ordering::Relaxed);
                w.max.store(max, Ordering::Relaxed);
                w.recovered.store(u64::MAX, Ordering::Relaxed);
                for h in &w.holders[..3] {
                    h.store(u64::from(dead) << 32 | 0xffff_ffff, Ordering::Relaxed);
                }
                // This process's own entry, full, and one with a zero count.
                let me = u64::from(crate::pid::current()) << 32;
                w.holders[3].store(me | 0xffff_ffff, Ordering::Relaxed);
            }
            let s = Semaphore::open(&p).unwrap();
            assert_eq!(s.recover_dead_holders(), 3 * 0xffff_ffff);
            let full = if max == 0 { u64::MAX } else { max };
            assert_eq!(s.available(), full, "permits {permits}, bound {max}");
            if s.try_acquire() {
                let _ = s.release();
            }
            let _ = s.release();
            // A full count never carries into the pid half (the acquire
            // goes unattributed; the releases take from it).
            let holders = s.words().holders();
            assert_eq!(holders.len(), 1, "{holders:?}");
            assert_eq!(holders[0].0, crate::pid::current(), "{holders:?}");
            assert!(holders[0].1 >= 0xffff_fffd, "{holders:?}");
            drop(s);
            std::fs::remove_file(&p).unwrap();
        }
        // A zero count of ours (never written by this library) is freed by
        // a release instead of borrowing from the pid.
        let s = Semaphore::create(&p, 0).unwrap();
        let me = u64::from(crate::pid::current()) << 32;
        s.words().holders[0].store(me, Ordering::Relaxed);
        s.release().unwrap();
        assert!(s.words().holders().is_empty(), "{:?}", s.words().holders());
    }

    #[test]
    fn a_release_wakes_a_sleeping_acquirer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let s = Semaphore::create(&p, 0).unwrap();
        std::thread::scope(|sc| {
            let h = sc.spawn(|| {
                Semaphore::open(&p)
                    .unwrap()
                    .acquire_timeout(Duration::from_secs(30))
            });
            std::thread::sleep(Duration::from_millis(20));
            s.release().unwrap();
            assert!(h.join().unwrap());
        });
    }
}

//! [`Semaphore`] and bounded semaphores: `multiprocessing.Semaphore` /
//! `BoundedSemaphore` across processes, a compare-and-swap on a shared
//! permit count, sleeping on the shared futex when none is left.
//!
//! Each process's acquired permits are recorded in a holders table (pid and
//! count). A waiter that sleeps for a while looks for holders whose process
//! is gone and gives their permits back, so a process killed while holding
//! a permit does not leak it. Permits are attributed to the process that
//! acquired them: a release by another process is not attributed to anyone.
//!
//! The permit count, the holders table and the algorithm are
//! `raw::semaphore`'s [`SemaphoreWords`].

use std::path::Path;
use std::time::Duration;

use crate::error::OpenError;
pub use crate::error::ReleaseError;
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::TypeInfo;
pub use crate::raw::semaphore::{HOLDERS, Holder, SemaphoreWords};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;

/// What `create` asks for: the permits, and the bound (0: none).
struct Permits {
    permits: u64,
    max: u64,
}

/// A semaphore file: its words at the start of the body.
struct SemaphoreShape;

impl Shape for SemaphoreShape {
    type Spec = Permits;
    /// The bound as stored (0: unbounded), read once at open.
    type Geometry = u64;
    type Head = SemaphoreWords;
    type Elem = AtomicU64;

    fn expect(_: Option<&Permits>) -> Expect {
        Expect {
            kind: Kind::Semaphore,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    fn capacity(_: &Permits) -> u64 {
        1
    }

    fn init(region: &Region, spec: &Permits) {
        region.body::<SemaphoreWords>(0, 1)[0].init(spec.permits, spec.max);
    }

    fn geometry(region: &Region) -> Result<u64, OpenError> {
        Ok(region.body::<SemaphoreWords>(0, 1)[0].max())
    }

    fn elems(_: &u64) -> usize {
        0
    }

    fn matches(found: &u64, spec: &Permits, path: &Path) -> Result<(), OpenError> {
        let (found, max) = (*found, spec.max);
        if found == max {
            return Ok(());
        }
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
        Err(OpenError::InvalidCapacity {
            path: path.to_path_buf(),
            expected: format!("{asked} as asked, found {has}"),
            found,
        })
    }
}

/// Refuses a bounded semaphore of no permits.
fn bounded(path: impl AsRef<Path>, permits: u64) -> Result<Permits, OpenError> {
    if permits == 0 {
        return Err(OpenError::InvalidCapacity {
            path: crate::region::resolve(path),
            expected: "at least 1 permit for a bounded semaphore".into(),
            found: 0,
        });
    }
    Ok(Permits {
        permits,
        max: permits,
    })
}

/// A counting semaphore in a file, shared by any number of processes
/// (`multiprocessing.Semaphore`, or `BoundedSemaphore` when created with
/// [`Semaphore::create_bounded`]).
///
/// Unlike `multiprocessing`'s, a blocked [`Semaphore::acquire`] gives back
/// the permits of processes that are gone — killed, or exited normally
/// while holding them — so a permit is a loan its taker returns, and a
/// crash does not leak it. A semaphore used to *signal* (one process
/// releases, another acquires and keeps the permit, then exits) must not
/// recover: there every process acquires with
/// [`Semaphore::try_acquire`] or
/// [`Semaphore::acquire_timeout_without_recovery`] (the Python binding's
/// `Semaphore` and `BoundedSemaphore` do; its `Lock` recovers).
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
    mapped: Mapped<SemaphoreShape>,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("path", &self.region().path())
            .field("available", &self.available())
            .finish()
    }
}

impl Semaphore {
    /// Creates a semaphore file with `permits` permits and no bound.
    ///
    /// # Errors
    ///
    /// The [`OpenError`]s of any create.
    pub fn create(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
        let spec = Permits { permits, max: 0 };
        Mapped::create(path, &spec, &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Creates a bounded semaphore file with `permits` permits: a release
    /// past `permits` is an error (`BoundedSemaphore`).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for 0 permits; the [`OpenError`]s of
    /// any create.
    pub fn create_bounded(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
        let spec = bounded(&path, permits)?;
        Mapped::create(path, &spec, &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Opens an existing semaphore file.
    ///
    /// # Errors
    ///
    /// The validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(|mapped| Self { mapped })
    }

    /// Opens the semaphore at `path`, or creates it with `permits`
    /// permits and no bound if there is none. Racing processes all end
    /// up with the same semaphore (one creator wins the name, the others
    /// open its file).
    ///
    /// Opening an existing semaphore never resets it: `permits` applies
    /// only when the file is created, and the permits it has now (taken
    /// or given back by anyone) are kept. What is checked is its shape
    /// (unbounded); a mismatch leaves the file alone.
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
        let spec = Permits { permits, max: 0 };
        Mapped::open_or_create(path, &spec, &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Opens the bounded semaphore at `path`, or creates it with
    /// `permits` permits (also its bound) if there is none
    /// ([`Semaphore::create_bounded`]). Racing processes all end up with
    /// the same semaphore.
    ///
    /// Opening an existing semaphore never resets it: its permits now
    /// are kept. What is checked is its shape (the same bound); a
    /// mismatch leaves the file alone.
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
    pub fn open_or_create_bounded(path: impl AsRef<Path>, permits: u64) -> Result<Self, OpenError> {
        let spec = bounded(&path, permits)?;
        Mapped::open_or_create(path, &spec, &CreateOptions::default()).map(|mapped| Self { mapped })
    }

    /// Takes a permit if one is left, never waiting.
    pub fn try_acquire(&self) -> bool {
        self.mapped.head().try_acquire()
    }

    /// Takes a permit, sleeping (no CPU) while none is left. Permits held
    /// by processes that died are given back while it waits.
    pub fn acquire(&self) {
        self.mapped.head().acquire_until(None);
    }

    /// [`Semaphore::acquire`], giving up after `timeout`; whether it got one.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.mapped
            .head()
            .acquire_until(crate::wait::deadline(timeout))
    }

    /// [`Semaphore::acquire_timeout`] without the recovery: permits taken
    /// by processes that are gone stay taken, as with
    /// `multiprocessing.Semaphore` (see the type's doc for when that is
    /// what you want).
    pub fn acquire_timeout_without_recovery(&self, timeout: Duration) -> bool {
        self.mapped
            .head()
            .acquire_until_without_recovery(crate::wait::deadline(timeout))
    }

    /// Gives a permit back.
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] if a bounded semaphore is already at its bound.
    pub fn release(&self) -> Result<(), ReleaseError> {
        self.mapped.head().release()
    }

    /// Permits available now (a snapshot).
    pub fn available(&self) -> u64 {
        self.mapped.head().available()
    }

    /// Gives back the permits of processes that died holding them; how many.
    pub fn recover_dead_holders(&self) -> u64 {
        self.mapped.head().recover_dead_holders()
    }

    /// The shared words (holders, bound, statistics).
    pub fn words(&self) -> &SemaphoreWords {
        self.mapped.head()
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Ordering;

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

    /// A blocked acquire recovers a dead holder's permit; the one without
    /// recovery leaves it taken (the semaphore used to signal).
    #[test]
    fn only_the_recovering_acquire_gives_a_dead_holders_permit_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Semaphore::create(dir.path().join("s"), 0).unwrap();
        let dead = crate::pid::dead_pid();
        s.words().holders[2].store(u64::from(dead) << 32 | 1, Ordering::Relaxed);
        // Longer than a slice: the recovering acquire would have recovered.
        let slice = crate::wait::SLICE;
        assert!(!s.acquire_timeout_without_recovery(slice * 3));
        assert_eq!(s.words().holders(), vec![(dead, 1)]);
        assert_eq!(s.available(), 0);
        assert!(s.acquire_timeout(slice * 20));
        assert_eq!(s.words().recovered(), 1);
        assert_eq!(s.available(), 0);
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

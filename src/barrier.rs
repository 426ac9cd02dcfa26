//! [`Barrier`]: N parties in any processes wait until all have arrived —
//! `multiprocessing.Barrier` without the manager. Reusable: a generation
//! counter tells one round from the next.
//!
//! State is one word, `generation << 32 | arrived`, changed only by
//! compare-and-swap: the last party to arrive starts the next generation
//! (and wakes everyone) in the same step that resets the count, and a party
//! that times out withdraws its arrival only if its generation is still
//! running, so a timeout can never corrupt the next round.
//!
//! Each party that opens the barrier registers its pid, and marks the
//! generation it last arrived in. A waiter that finds a registered party
//! dead without having arrived in the current generation reports the
//! barrier broken instead of waiting forever.
//!
//! The state word, the member table and the algorithm are
//! `raw::barrier`'s [`BarrierWords`].

use std::path::Path;
use std::time::Duration;

use crate::error::OpenError;
pub use crate::error::{BarrierError, BarrierTimeoutError};
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::TypeInfo;
pub use crate::raw::barrier::{Arrival, BarrierWaitResult, BarrierWords, MAX_PARTIES};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;

/// A barrier file: its words at the start of the body.
struct BarrierShape;

impl Shape for BarrierShape {
    /// The number of parties.
    type Spec = u32;
    /// The number of parties as stored (unclamped), read once at open.
    type Geometry = u32;
    type Head = BarrierWords;
    type Elem = AtomicU64;

    fn expect(_: Option<&u32>) -> Expect {
        Expect {
            kind: Kind::Barrier,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    fn capacity(_: &u32) -> u64 {
        1
    }

    fn init(region: &Region, parties: &u32) {
        region.body::<BarrierWords>(0, 1)[0].init(*parties);
    }

    fn geometry(region: &Region) -> Result<u32, OpenError> {
        Ok(region.body::<BarrierWords>(0, 1)[0].stored_parties())
    }

    fn elems(_: &u32) -> usize {
        0
    }

    fn matches(found: &u32, parties: &u32, path: &Path) -> Result<(), OpenError> {
        if found != parties {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!(
                    "a barrier for {parties} parties as asked, found one for {found}"
                ),
                found: u64::from(*found),
            });
        }
        Ok(())
    }
}

/// Refuses a party count no barrier can have.
fn check_parties(path: impl AsRef<Path>, parties: u32) -> Result<(), OpenError> {
    if parties == 0 || parties as usize > MAX_PARTIES {
        return Err(OpenError::InvalidCapacity {
            path: crate::region::resolve(path),
            expected: format!("1 to {MAX_PARTIES} parties"),
            found: u64::from(parties),
        });
    }
    Ok(())
}

/// A reusable barrier for a fixed number of parties, in a file.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("round");
/// use mmring::Barrier;
///
/// let b = Barrier::create(&path, 1)?; // a one-party barrier never waits
/// assert!(b.wait()?.is_leader);
/// assert_eq!(b.wait()?.generation, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Barrier {
    mapped: Mapped<BarrierShape>,
    me: u32,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("path", &self.region().path())
            .field("parties", &self.parties())
            .field("state", &self.words().state())
            .finish()
    }
}

impl Barrier {
    /// Joins a mapped barrier as a party.
    fn join(mapped: Mapped<BarrierShape>) -> Self {
        let me = crate::pid::current();
        let words = mapped.head();
        // A stale barrier (every party killed) is taken over.
        words.take_over_if_abandoned();
        words.register(me);
        Self { mapped, me }
    }

    /// Creates a barrier file for `parties` parties (1 to 64) and joins it.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for 0 or more than 64 parties; the
    /// [`OpenError`]s of any create.
    pub fn create(path: impl AsRef<Path>, parties: u32) -> Result<Self, OpenError> {
        check_parties(&path, parties)?;
        Mapped::create(path, &parties, &CreateOptions::default()).map(Self::join)
    }

    /// Opens the barrier at `path` and joins it, or creates it for
    /// `parties` parties (1 to 64) if there is none. Racing processes
    /// all end up with the same barrier (one creator wins the name, the
    /// others open its file), so N processes that each call this and
    /// then [`Barrier::wait`] pass together.
    ///
    /// Opening an existing barrier never resets it: `parties` applies
    /// only when the file is created, and its generation and the arrivals
    /// of the round in progress are kept. What is checked is its shape
    /// (the number of parties); a mismatch leaves the file alone.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for 0 or more than 64 parties, or
    /// (naming both counts) if the existing barrier is for another
    /// number of parties (nothing is joined then); the errors of
    /// [`Barrier::open`] and [`Barrier::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("round");
    /// use mmring::{Barrier, OpenError};
    ///
    /// let b = Barrier::open_or_create(&path, 1)?; // creates it
    /// b.wait()?;
    /// let same = Barrier::open_or_create(&path, 1)?; // opens it
    /// assert_eq!(same.words().state().0, 1, "generation kept");
    /// assert!(matches!(
    ///     Barrier::open_or_create(&path, 2),
    ///     Err(OpenError::InvalidCapacity { found: 1, .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>, parties: u32) -> Result<Self, OpenError> {
        check_parties(&path, parties)?;
        // The party count is checked (`matches`) before `join` registers
        // this process as a party.
        Mapped::open_or_create(path, &parties, &CreateOptions::default()).map(Self::join)
    }

    /// Opens an existing barrier file and joins it as a party.
    ///
    /// # Errors
    ///
    /// The validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::join)
    }

    /// Arrives and waits (asleep) for every party.
    ///
    /// # Errors
    ///
    /// [`BarrierError::Broken`] if a party that joined died without
    /// arriving; [`BarrierError::Aborted`] if the round is broken or was
    /// reset.
    pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
        self.mapped.head().wait_until(None).map_err(|e| match e {
            BarrierTimeoutError::Broken { pid } => BarrierError::Broken { pid },
            BarrierTimeoutError::Aborted => BarrierError::Aborted,
            BarrierTimeoutError::Timeout => {
                unreachable!("a wait without a deadline cannot time out")
            }
        })
    }

    /// Arrives without waiting (`threading.Barrier`'s way: then
    /// [`Barrier::await_round`], as often as needed; the arrival stands).
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Aborted`] if the round is broken.
    pub fn arrive(&self) -> Result<Arrival, BarrierTimeoutError> {
        self.mapped.head().arrive()
    }

    /// Waits up to `timeout` for the round of `generation` (arrived in
    /// with [`Barrier::arrive`]) to end; a timeout leaves the arrival
    /// standing.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Timeout`], [`BarrierTimeoutError::Aborted`]
    /// (broken or reset), [`BarrierTimeoutError::Broken`] (a dead party:
    /// the round is broken for everyone).
    pub fn await_round(&self, generation: u32, timeout: Duration) -> Result<(), BarrierTimeoutError> {
        self.mapped
            .head()
            .await_round(generation, crate::wait::deadline(timeout))
    }

    /// Breaks the round of `generation` for every party unless it ended;
    /// `Ok` if it passed first.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Aborted`] once the round is broken or reset.
    pub fn break_round(&self, generation: u32) -> Result<(), BarrierTimeoutError> {
        self.mapped.head().break_round(generation)
    }

    /// Breaks the round in progress: its waiters and later arrivals fail
    /// until [`Barrier::reset`].
    pub fn abort(&self) {
        self.mapped.head().abort();
    }

    /// Returns the barrier to a fresh round; the waiters of the round in
    /// progress fail with [`BarrierTimeoutError::Aborted`].
    pub fn reset(&self) {
        self.mapped.head().reset();
    }

    /// Whether the round in progress is broken (a snapshot).
    pub fn is_broken(&self) -> bool {
        self.mapped.head().is_broken()
    }

    /// [`Barrier::wait`], giving up after `timeout` (withdrawing this
    /// party's arrival).
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Broken`] as [`Barrier::wait`], and
    /// [`BarrierTimeoutError::Timeout`].
    pub fn wait_timeout(
        &self,
        timeout: Duration,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        self.mapped
            .head()
            .wait_until(crate::wait::deadline(timeout))
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.mapped.head().parties()
    }

    /// The shared words (state, parties).
    pub fn words(&self) -> &BarrierWords {
        self.mapped.head()
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        self.mapped.head().unregister(self.me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_threads_pass_two_generations_with_one_leader_each() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        let b = Barrier::create(&p, 3).unwrap();
        let results: Vec<Vec<BarrierWaitResult>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let b = Barrier::open(&p).unwrap();
                        (0..2)
                            .map(|_| b.wait_timeout(Duration::from_secs(30)).unwrap())
                            .collect()
                    })
                })
                .collect();
            let mine: Vec<_> = (0..2)
                .map(|_| b.wait_timeout(Duration::from_secs(30)).unwrap())
                .collect();
            let mut all: Vec<Vec<_>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            all.push(mine);
            all
        });
        for generation in 0..2 {
            let leaders = results.iter().filter(|r| r[generation].is_leader).count();
            assert_eq!(leaders, 1);
            assert!(
                results
                    .iter()
                    .all(|r| r[generation].generation == generation as u32)
            );
        }
        assert_eq!(b.words().state(), (2, 0));
    }

    #[test]
    fn a_timeout_withdraws_and_a_dead_party_breaks_the_barrier() {
        let dir = tempfile::tempdir().unwrap();
        let b = Barrier::create(dir.path().join("b"), 2).unwrap();
        assert_eq!(
            b.wait_timeout(Duration::from_millis(10)),
            Err(BarrierTimeoutError::Timeout)
        );
        assert_eq!(b.words().state(), (0, 0), "the arrival was withdrawn");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        b.words().register(dead);
        assert_eq!(
            b.wait_timeout(Duration::from_secs(30)),
            Err(BarrierTimeoutError::Broken { pid: dead })
        );
        assert_eq!(b.words().state(), (0, 0));
        assert!(matches!(
            Barrier::create(dir.path().join("z"), 0),
            Err(crate::OpenError::InvalidCapacity { .. })
        ));
    }

    #[test]
    fn arrive_then_await_in_slices_breaks_on_give_up_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        let b = Barrier::create(&p, 2).unwrap();
        // Waiting in slices never withdraws: the arrival stands.
        let a = b.arrive().unwrap();
        assert_eq!((a.generation, a.index, a.is_leader), (0, 0, false));
        for _ in 0..3 {
            assert_eq!(
                b.await_round(0, Duration::from_millis(5)),
                Err(BarrierTimeoutError::Timeout)
            );
        }
        assert_eq!(b.words().state(), (0, 1));
        // The other party arrives last: index 1, the round passes.
        let other = Barrier::open(&p).unwrap();
        let l = other.arrive().unwrap();
        assert_eq!((l.generation, l.index, l.is_leader), (0, 1, true));
        assert_eq!(b.await_round(0, Duration::from_secs(30)), Ok(()));
        // A party that gives up breaks the round for everyone.
        assert_eq!(b.arrive().unwrap().generation, 1);
        assert_eq!(b.break_round(1), Err(BarrierTimeoutError::Aborted));
        assert!(b.is_broken());
        assert_eq!(
            other.await_round(1, Duration::from_secs(30)),
            Err(BarrierTimeoutError::Aborted)
        );
        assert_eq!(other.arrive(), Err(BarrierTimeoutError::Aborted));
        assert_eq!(
            other.wait_timeout(Duration::from_secs(30)),
            Err(BarrierTimeoutError::Aborted)
        );
        // A reset starts generation 2; round 1's waiters read it as broken.
        b.reset();
        assert!(!b.is_broken());
        assert_eq!(b.words().state(), (2, 0));
        assert_eq!(
            b.await_round(1, Duration::ZERO),
            Err(BarrierTimeoutError::Aborted)
        );
        // A round that passed still reads as passed.
        assert_eq!(b.await_round(0, Duration::ZERO), Ok(()));
        // A reset with a waiter in the round breaks it for that waiter.
        assert_eq!(b.arrive().unwrap().generation, 2);
        b.reset();
        assert_eq!(
            b.await_round(2, Duration::ZERO),
            Err(BarrierTimeoutError::Aborted)
        );
        // Breaking a round that passed answers Ok.
        let x = b.arrive().unwrap();
        let y = other.arrive().unwrap();
        assert!(y.is_leader && x.index == 0);
        assert_eq!(b.break_round(x.generation), Ok(()));
        assert!(!b.is_broken());
        // A fresh barrier with nothing arrived: reset leaves it alone;
        // abort breaks it.
        b.reset();
        assert_eq!(b.words().state(), (4, 0));
        b.abort();
        assert_eq!(b.arrive(), Err(BarrierTimeoutError::Aborted));
        b.reset();
        assert_eq!(b.words().state(), (5, 0));
    }

    #[test]
    fn a_dead_party_breaks_the_round_for_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let b = Barrier::create(dir.path().join("b"), 3).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        b.words().register(dead);
        let a = b.arrive().unwrap();
        assert_eq!(
            b.await_round(a.generation, Duration::from_secs(30)),
            Err(BarrierTimeoutError::Broken { pid: dead })
        );
        assert!(b.is_broken(), "the others see the break");
    }
}

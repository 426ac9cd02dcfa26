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

use std::time::{Duration, Instant};

pub use crate::error::{BarrierError, BarrierTimeoutError};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitPoint;

/// Most parties a barrier can have.
pub const MAX_PARTIES: usize = 64;

/// How often a waiter checks that every registered party is alive.
pub const PARTY_CHECK: Duration = Duration::from_millis(50);

/// Member entry: no arrival yet.
const NEVER: u64 = 0xffff_ffff;

/// The barrier's shared words.
#[repr(C)]
pub struct BarrierWords {
    state: AtomicU64,
    parties: AtomicU32,
    epoch: AtomicU32,
    waiters: AtomicU32,
    _reserved: AtomicU32,
    _pad: [u64; 5],
    /// `pid << 32 | generation last arrived in` (low bits `NEVER` if none);
    /// 0 = free.
    members: [AtomicU64; MAX_PARTIES],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<BarrierWords>(), 64 + MAX_PARTIES * 8);

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding.
unsafe impl crate::layout::MappedAtomic for BarrierWords {}

/// What a completed wait tells its party.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarrierWaitResult {
    /// The generation that completed.
    pub generation: u32,
    /// Whether this party arrived last (exactly one per generation is).
    pub is_leader: bool,
}

impl BarrierWords {
    /// A barrier for `parties` parties.
    pub fn new(parties: u32) -> Self {
        Self {
            state: AtomicU64::new(0),
            parties: AtomicU32::new(parties),
            epoch: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            _pad: [0; 5],
            members: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// A barrier for `parties` parties whose state already reads
    /// `(generation, arrived)`, with `dead` registered as a party that has
    /// not arrived: the state a barrier is left in when its processes are
    /// killed, for models and tests of [`BarrierWords::take_over_if_abandoned`].
    #[doc(hidden)]
    pub fn abandoned(parties: u32, generation: u32, arrived: u32, dead: u32) -> Self {
        let b = Self::new(parties);
        // Relaxed: not shared yet.
        b.state.store(
            u64::from(generation) << 32 | u64::from(arrived),
            Ordering::Relaxed,
        );
        b.register(dead);
        b
    }

    pub(crate) fn init(&self, parties: u32) {
        // Relaxed: the file is still private to its creator.
        self.parties.store(parties, Ordering::Relaxed);
    }

    /// The party count as stored (unclamped: for telling a caller which
    /// barrier the file holds).
    fn stored_parties(&self) -> u32 {
        // Relaxed: written before the file was published, never changed.
        self.parties.load(Ordering::Relaxed)
    }

    fn point(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.epoch, &self.waiters)
    }

    /// The number of parties (clamped to 1..=[`MAX_PARTIES`]: the word is
    /// read from the mapping).
    pub fn parties(&self) -> u32 {
        // Relaxed: written before the file was published, never changed.
        self.parties
            .load(Ordering::Relaxed)
            .clamp(1, MAX_PARTIES as u32)
    }

    /// (generation, parties arrived in it) now (a snapshot).
    pub fn state(&self) -> (u32, u32) {
        // Relaxed: a snapshot.
        let s = self.state.load(Ordering::Relaxed);
        ((s >> 32) as u32, s as u32)
    }

    /// Registers `pid` as a party (so that its death breaks the barrier for
    /// the others). Best effort: with the table full it is not registered.
    pub fn register(&self, pid: u32) {
        let entry = u64::from(pid) << 32 | NEVER;
        for m in &self.members {
            // AcqRel: pairs with the other CASes on member entries.
            if m.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Takes over a barrier whose every registered party is dead (its file
    /// is stale: all the processes that used it were killed): their entries
    /// are freed, so that they do not break the rounds of the new parties,
    /// and a round that dead parties had partly arrived in is abandoned for
    /// a fresh generation. Called by a new party before it registers; a
    /// barrier with a live registered party (or none registered) is left
    /// alone. Whether it was taken over.
    pub fn take_over_if_abandoned(&self) -> bool {
        // Acquire: pairs with the AcqRel arrivals, so the members read
        // below are at least as new as this state.
        let seen = self.state.load(Ordering::Acquire);
        let mut dead = Vec::new();
        for m in &self.members {
            // Acquire: pairs with the AcqRel CASes of `register`.
            let cur = m.load(Ordering::Acquire);
            if cur == 0 {
                continue;
            }
            if crate::pid::is_alive((cur >> 32) as u32) {
                return false;
            }
            dead.push((m, cur));
        }
        if dead.is_empty() {
            return false;
        }
        if seen as u32 != 0 {
            // Dead parties' arrivals must not count for the new ones: a
            // fresh generation, from the state read before the check. This
            // comes before the entries are freed: a new party that finds no
            // entry left must also find the dead arrivals gone (else it
            // could arrive in their round and pass with too few parties).
            // If the state changed since (another new party took it over
            // first), that party frees the entries.
            let next = u64::from(((seen >> 32) as u32).wrapping_add(1)) << 32;
            // AcqRel: as in the arrival of `wait_until`.
            if self
                .state
                .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
        }
        for (m, cur) in dead {
            // AcqRel: as in `register`; a failed CAS means the entry changed
            // (freed by another new party): leave it.
            let _ = m.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        true
    }

    /// Removes `pid`'s registration.
    pub fn unregister(&self, pid: u32) {
        for m in &self.members {
            // Relaxed: the CAS validates it.
            let cur = m.load(Ordering::Relaxed);
            if cur != 0 && (cur >> 32) as u32 == pid {
                // AcqRel: as in `register`.
                let _ = m.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Relaxed);
                return;
            }
        }
    }

    fn mark_arrived(&self, pid: u32, generation: u32) {
        for m in &self.members {
            // Relaxed: only this process writes its own entry after register.
            let cur = m.load(Ordering::Relaxed);
            if cur != 0 && (cur >> 32) as u32 == pid {
                m.store(
                    u64::from(pid) << 32 | u64::from(generation),
                    Ordering::Relaxed,
                );
                return;
            }
        }
    }

    /// A registered party that is dead and has not arrived in `generation`.
    fn dead_party(&self, generation: u32) -> Option<u32> {
        self.members.iter().find_map(|m| {
            // Relaxed: a liveness probe, confirmed with the kernel.
            let cur = m.load(Ordering::Relaxed);
            let pid = (cur >> 32) as u32;
            (cur != 0 && cur & 0xffff_ffff != u64::from(generation) && !crate::pid::is_alive(pid))
                .then_some(pid)
        })
    }

    /// Arrives and waits for the other parties, until `deadline`.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Timeout`] (the arrival is withdrawn) or
    /// [`BarrierTimeoutError::Broken`].
    pub fn wait_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        let parties = self.parties();
        let me = crate::pid::current();
        // Arrive: one CAS either counts us in or, as the last party, starts
        // the next generation. AcqRel: the Release half publishes what we
        // did before arriving to the parties that see the new state; the
        // Acquire half (and the waiters' Acquire loads below) sees theirs.
        let mut cur = self.state.load(Ordering::Acquire);
        let (generation, leader) = loop {
            let (generation, arrived) = ((cur >> 32) as u32, (cur as u32).min(parties - 1));
            self.mark_arrived(me, generation);
            let next = if arrived + 1 >= parties {
                u64::from(generation.wrapping_add(1)) << 32
            } else {
                u64::from(generation) << 32 | u64::from(arrived + 1)
            };
            match self
                .state
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (generation, arrived + 1 >= parties),
                Err(now) => cur = now,
            }
        };
        if leader {
            self.point().notify();
            return Ok(BarrierWaitResult {
                generation,
                is_leader: true,
            });
        }
        // Acquire pairs with the leader's AcqRel CAS that ends the round.
        let passed =
            || ((self.state.load(Ordering::Acquire) >> 32) as u32 != generation).then_some(());
        loop {
            let slice_end = Instant::now() + PARTY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            if self.point().wait_until(Some(until), passed).is_ok() {
                return Ok(BarrierWaitResult {
                    generation,
                    is_leader: false,
                });
            }
            let broken = self
                .dead_party(generation)
                .map(|pid| BarrierTimeoutError::Broken { pid });
            let timed_out = deadline
                .is_some_and(|d| Instant::now() >= d)
                .then_some(BarrierTimeoutError::Timeout);
            if let Some(err) = broken.or(timed_out) {
                // Withdraw, unless the round completed meanwhile.
                let mut cur = self.state.load(Ordering::Acquire);
                loop {
                    if (cur >> 32) as u32 != generation {
                        return Ok(BarrierWaitResult {
                            generation,
                            is_leader: false,
                        });
                    }
                    let next = cur - u64::from(cur as u32 > 0);
                    // AcqRel / Acquire: as in the arrival above.
                    match self.state.compare_exchange(
                        cur,
                        next,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Err(err),
                        Err(now) => cur = now,
                    }
                }
            }
        }
    }
}

#[cfg(not(loom))]
pub use mapped::Barrier;

#[cfg(not(loom))]
mod mapped {
    use super::*;
    use crate::error::OpenError;
    use crate::layout::Kind;
    use crate::pod::TypeInfo;
    use crate::region::{self, CreateOptions, Expect, Region, View};
    use std::path::Path;

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
        view: View<BarrierWords>,
        me: u32,
    }

    impl std::fmt::Debug for Barrier {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Barrier")
                .field("path", &self.view.region().path())
                .field("parties", &self.view.parties())
                .field("state", &self.view.state())
                .finish()
        }
    }

    fn expect() -> Expect {
        Expect {
            kind: Kind::Barrier,
            elem: TypeInfo::NONE,
            any_size: false,
        }
    }

    impl Barrier {
        fn wrap(region: Region) -> Self {
            let me = crate::pid::current();
            let view = View::new(region, |r| &r.body::<BarrierWords>(0, 1)[0]);
            // A stale barrier (every party killed) is taken over.
            view.take_over_if_abandoned();
            view.register(me);
            Self { view, me }
        }

        fn check_parties(path: &Path, parties: u32) -> Result<(), OpenError> {
            if parties == 0 || parties as usize > MAX_PARTIES {
                return Err(OpenError::InvalidCapacity {
                    path: path.to_path_buf(),
                    expected: format!("1 to {MAX_PARTIES} parties"),
                    found: u64::from(parties),
                });
            }
            Ok(())
        }

        /// Creates a barrier file for `parties` parties (1 to 64) and joins it.
        ///
        /// # Errors
        ///
        /// [`OpenError::InvalidCapacity`] for 0 or more than 64 parties; the
        /// [`OpenError`]s of any create.
        pub fn create(path: impl AsRef<Path>, parties: u32) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Self::check_parties(&path, parties)?;
            Region::create(&path, expect(), 1, &CreateOptions::default(), move |r| {
                r.body::<BarrierWords>(0, 1)[0].init(parties)
            })
            .map(Self::wrap)
        }

        /// Opens the barrier at `path` and joins it, or creates it for
        /// `parties` parties (1 to 64) if there is none. Racing processes
        /// all end up with the same barrier (one creator wins the name, the
        /// others open its file), so N processes that each call this and
        /// then [`Barrier::wait`] pass together.
        ///
        /// Opening an existing barrier never resets it: its generation and
        /// the arrivals of the round in progress are kept.
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
            let path = region::resolve(path);
            Self::check_parties(&path, parties)?;
            let region =
                Region::open_or_create(&path, expect(), 1, &CreateOptions::default(), |r| {
                    r.body::<BarrierWords>(0, 1)[0].init(parties)
                })?;
            // Checked before `wrap` registers this process as a party.
            let found = region.body::<BarrierWords>(0, 1)[0].stored_parties();
            if found != parties {
                return Err(OpenError::InvalidCapacity {
                    path,
                    expected: format!(
                        "a barrier for {parties} parties as asked, found one for {found}"
                    ),
                    found: u64::from(found),
                });
            }
            Ok(Self::wrap(region))
        }

        /// Opens an existing barrier file and joins it as a party.
        ///
        /// # Errors
        ///
        /// The validation errors of any open.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open(&path, expect()).map(Self::wrap)
        }

        /// Arrives and waits (asleep) for every party.
        ///
        /// # Errors
        ///
        /// [`BarrierError::Broken`] if a party that joined died without arriving.
        pub fn wait(&self) -> Result<BarrierWaitResult, BarrierError> {
            self.view.wait_until(None).map_err(|e| match e {
                BarrierTimeoutError::Broken { pid } => BarrierError::Broken { pid },
                BarrierTimeoutError::Timeout => {
                    unreachable!("a wait without a deadline cannot time out")
                }
            })
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
            self.view.wait_until(crate::wait::deadline(timeout))
        }

        /// The number of parties.
        pub fn parties(&self) -> u32 {
            self.view.parties()
        }

        /// The shared words (state, parties).
        pub fn words(&self) -> &BarrierWords {
            &self.view
        }

        /// The mapped file.
        pub fn region(&self) -> &Region {
            self.view.region()
        }
    }

    impl Drop for Barrier {
        fn drop(&mut self) {
            self.view.unregister(self.me);
        }
    }
}

#[cfg(all(test, not(loom)))]
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
}

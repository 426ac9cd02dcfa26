//! The barrier's words and algorithm (see [`Barrier`](crate::Barrier),
//! the handle over a file).
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
//! `threading.Barrier`'s rules are a second way to wait: [`BarrierWords::arrive`]
//! once, then [`BarrierWords::await_round`] as often as the caller likes
//! (its deadline only ends that call: the arrival stands, so a caller that
//! waits in slices can never count twice nor let a round pass without it).
//! A round can be *broken* — [`BarrierWords::break_round`] (a party that
//! gives up), [`BarrierWords::abort`], or a dead party found by a waiter —
//! which sets [`BROKEN`] in the state word in the same compare-and-swap
//! that checks the generation, so a round either passes or breaks, never
//! both. A broken barrier refuses arrivals until [`BarrierWords::reset`]
//! starts a fresh generation; the waiters of the round that reset ended
//! learn it from `resets` (the generation last ended by a reset, and which
//! of the 31 before it were ended by one too).

use std::time::Instant;

pub use crate::error::{BarrierError, BarrierTimeoutError};
use crate::layout::{BodyLayout, Kind, LayoutError};
use crate::pod::TypeInfo;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{SLICE, WaitPoint, wait_sliced};

/// Most parties a barrier can have.
pub const MAX_PARTIES: usize = 64;

/// Bytes of a barrier's body: one line of state and wait point, then the
/// member table.
const BODY_SIZE: u64 = 64 + 8 * MAX_PARTIES as u64;

/// The body layout of a barrier: no payload, one block of words.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    super::unit_body_layout(Kind::Barrier, elem, capacity, BODY_SIZE)
}

/// Member entry: no arrival yet.
const NEVER: u64 = 0xffff_ffff;

/// State bit: the round in progress is broken (a party gave up, died or
/// aborted); no arrival counts until a reset. The rest of the low half
/// counts the arrivals.
pub const BROKEN: u64 = 1 << 31;

/// The arrivals in the state's low half.
const ARRIVED: u64 = BROKEN - 1;

/// The barrier's shared words.
#[repr(C)]
pub struct BarrierWords {
    state: AtomicU64,
    parties: AtomicU32,
    epoch: AtomicU32,
    waiters: AtomicU32,
    /// Unused (0). Earlier builds kept the generation last reset, plus 1,
    /// here: ambiguous at the wrap (`u32::MAX + 1` is 0, "none").
    _reserved: AtomicU32,
    /// The rounds ended by [`BarrierWords::reset`]: `base << 32 | bits`,
    /// bit `k` set if generation `base - k` was (`bits == 0`: none yet).
    /// Read by the waiters of a round that ended, to tell a reset from a
    /// pass.
    resets: AtomicU64,
    _pad: [u64; 4],
    /// `pid << 32 | generation last arrived in` (low bits `NEVER` if none);
    /// 0 = free.
    members: [AtomicU64; MAX_PARTIES],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(size_of::<BarrierWords>() as u64, BODY_SIZE);

#[cfg(not(loom))]
// SAFETY: repr(C), only the switch module's atomics and u64 padding.
unsafe impl crate::layout::MappedAtomic for BarrierWords {}

/// A party's arrival ([`BarrierWords::arrive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The generation arrived in.
    pub generation: u32,
    /// How many parties had arrived before (0 for the first; `parties - 1`
    /// for the last, the leader): distinct within a round.
    pub index: u32,
    /// Whether this arrival completed the round (it has passed already).
    pub is_leader: bool,
}

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
            resets: AtomicU64::new(0),
            _pad: [0; 4],
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

    /// A fresh barrier for `parties` parties whose first round is
    /// `generation` (for tests of the generation's wrap).
    #[doc(hidden)]
    pub fn starting_at(parties: u32, generation: u32) -> Self {
        let b = Self::new(parties);
        // Relaxed: not shared yet.
        b.state
            .store(u64::from(generation) << 32, Ordering::Relaxed);
        b
    }

    #[cfg_attr(
        loom,
        allow(dead_code, reason = "used by the handle, which loom does not build")
    )]
    pub(crate) fn init(&self, parties: u32) {
        // Relaxed: the file is still private to its creator.
        self.parties.store(parties, Ordering::Relaxed);
    }

    /// The party count as stored (unclamped: for telling a caller which
    /// barrier the file holds).
    #[cfg_attr(
        loom,
        allow(dead_code, reason = "used by the handle, which loom does not build")
    )]
    pub(crate) fn stored_parties(&self) -> u32 {
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
        ((s >> 32) as u32, (s & ARRIVED) as u32)
    }

    /// Whether the round in progress is broken (a snapshot).
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & BROKEN != 0
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

    /// Arrives: one compare-and-swap either counts this party in or, as the
    /// last party, starts the next generation (and wakes everyone). Marks
    /// this process's member entry first (see `dead_party`).
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Aborted`] if the round is broken (nothing is
    /// counted).
    pub fn arrive(&self) -> Result<Arrival, BarrierTimeoutError> {
        let parties = self.parties();
        let me = crate::pid::current();
        // AcqRel: the Release half publishes what we did before arriving to
        // the parties that see the new state; the Acquire half (and the
        // waiters' Acquire loads in `outcome`) sees theirs.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & BROKEN != 0 {
                return Err(BarrierTimeoutError::Aborted);
            }
            let generation = (cur >> 32) as u32;
            let arrived = ((cur & ARRIVED) as u32).min(parties - 1);
            self.mark_arrived(me, generation);
            let leader = arrived + 1 >= parties;
            let next = if leader {
                u64::from(generation.wrapping_add(1)) << 32
            } else {
                u64::from(generation) << 32 | u64::from(arrived + 1)
            };
            match self
                .state
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if leader {
                        self.point().notify();
                    }
                    return Ok(Arrival {
                        generation,
                        index: arrived,
                        is_leader: leader,
                    });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// How round `generation` ended for a party that arrived in it: passed
    /// (`Ok`), broken or ended by a reset (`Aborted`); `None` while it runs.
    fn outcome(&self, generation: u32) -> Option<Result<(), BarrierTimeoutError>> {
        // Acquire pairs with the AcqRel CAS that ended or broke the round
        // (the leader's arrival, `break_round`, `abort`, `reset`); a later
        // state is an RMW in that CAS's release sequence.
        let s = self.state.load(Ordering::Acquire);
        if (s >> 32) as u32 != generation {
            // Relaxed: `reset` records the round before its AcqRel CAS that
            // ended it, which the Acquire load above synchronized with.
            // Its bit is gone only if a reset 32 or more rounds later was
            // recorded while this party slept through all of them (then
            // this reads as a pass: the one window, documented on `reset`).
            let reset = was_reset(self.resets.load(Ordering::Relaxed), generation);
            return Some(if reset {
                Err(BarrierTimeoutError::Aborted)
            } else {
                Ok(())
            });
        }
        (s & BROKEN != 0).then_some(Err(BarrierTimeoutError::Aborted))
    }

    /// Waits until round `generation` (which this party arrived in) ends,
    /// or until `deadline`. Never withdraws the arrival: a timeout here
    /// only ends this call, and the caller may wait again (or give up with
    /// [`BarrierWords::break_round`]).
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Timeout`] at the deadline (nothing changed);
    /// [`BarrierTimeoutError::Aborted`] if the round was broken or reset;
    /// [`BarrierTimeoutError::Broken`] if this waiter found a registered
    /// party dead without arriving (it breaks the round for everyone).
    pub fn await_round(
        &self,
        generation: u32,
        deadline: Option<Instant>,
    ) -> Result<(), BarrierTimeoutError> {
        let ready = || self.outcome(generation);
        // Between slices: a registered party that died without arriving
        // breaks the round (unless it passed meanwhile).
        let housekeeping = |_: &mut _| {
            let pid = self.dead_party(generation)?;
            Some(
                self.break_round(generation)
                    .map_err(|_| BarrierTimeoutError::Broken { pid }),
            )
        };
        wait_sliced(self.point(), deadline, SLICE, ready, housekeeping)
            .unwrap_or(Err(BarrierTimeoutError::Timeout))
    }

    /// Breaks round `generation` for every party (`threading.Barrier`'s
    /// rule for a party that gives up), unless it ended already; returns
    /// how it ended: `Ok` if it passed first, else `Aborted`.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Aborted`]: the round is broken (by this call
    /// or before) or was reset.
    pub fn break_round(&self, generation: u32) -> Result<(), BarrierTimeoutError> {
        // Acquire: as in `arrive`.
        let mut cur = self.state.load(Ordering::Acquire);
        while (cur >> 32) as u32 == generation && cur & BROKEN == 0 {
            // AcqRel: the Release half pairs with the waiters' Acquire in
            // `outcome`; the Acquire half as in `arrive`.
            match self.state.compare_exchange(
                cur,
                cur | BROKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.point().notify();
                    break;
                }
                Err(now) => cur = now,
            }
        }
        self.outcome(generation)
            .unwrap_or(Err(BarrierTimeoutError::Aborted))
    }

    /// Breaks the round in progress (`threading.Barrier.abort`): its
    /// waiters and every later arrival fail with
    /// [`BarrierTimeoutError::Aborted`] until [`BarrierWords::reset`].
    pub fn abort(&self) {
        // Acquire: as in `arrive`.
        let mut cur = self.state.load(Ordering::Acquire);
        while cur & BROKEN == 0 {
            // AcqRel: as in `break_round`.
            match self.state.compare_exchange(
                cur,
                cur | BROKEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.point().notify();
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Returns the barrier to a fresh round (`threading.Barrier.reset`):
    /// the round in progress, if anyone arrived in it or it is broken, is
    /// broken first (so it cannot pass meanwhile), then ended by starting
    /// the next generation; its waiters fail with
    /// [`BarrierTimeoutError::Aborted`]. A barrier with no arrival and no
    /// break is left as it is.
    ///
    /// The rounds it ended are remembered for 32 generations: a waiter
    /// reads its round as reset as long as no reset of a round 32 or more
    /// generations later has happened. One window, then: a waiter that
    /// sleeps (without once looking at the state: every reset and pass
    /// wakes it) through the reset of its round, 31 more rounds and the
    /// reset of a later one, reads its round as passed. Those rounds can
    /// only pass without it where more processes than the parties use the
    /// barrier.
    pub fn reset(&self) {
        // Acquire: as in `arrive`.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & !(u64::from(u32::MAX) << 32) == 0 {
                return;
            }
            let generation = (cur >> 32) as u32;
            if cur & BROKEN == 0 {
                // Break first: no arrival completes the round once the
                // reset has marked it (a completion racing the reset would
                // otherwise read as reset to its waiters).
                // AcqRel: as in `break_round`.
                match self.state.compare_exchange(
                    cur,
                    cur | BROKEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => cur |= BROKEN,
                    Err(now) => {
                        cur = now;
                        continue;
                    }
                }
            }
            // Relaxed: published by the AcqRel CAS below (see `outcome`).
            let _ = self
                .resets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    with_reset(old, generation)
                });
            // AcqRel: the Release half publishes `resets` to the waiters'
            // Acquire in `outcome`; the Acquire half as in `arrive`.
            match self.state.compare_exchange(
                cur,
                u64::from(generation.wrapping_add(1)) << 32,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.point().notify();
                    return;
                }
                Err(now) => {
                    if (now >> 32) as u32 != generation {
                        // Another reset ended this round.
                        return;
                    }
                    cur = now;
                }
            }
        }
    }

    /// Arrives and waits for the other parties, until `deadline`.
    ///
    /// # Errors
    ///
    /// [`BarrierTimeoutError::Timeout`] (the arrival is withdrawn),
    /// [`BarrierTimeoutError::Broken`] (a registered party died without
    /// arriving; the arrival is withdrawn) or
    /// [`BarrierTimeoutError::Aborted`] (the round is broken or was reset).
    pub fn wait_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        let arrival = self.arrive()?;
        let generation = arrival.generation;
        let result = BarrierWaitResult {
            generation,
            is_leader: arrival.is_leader,
        };
        if arrival.is_leader {
            return Ok(result);
        }
        let ready = || self.outcome(generation);
        // Between slices: a registered party that died without arriving
        // breaks the barrier for this waiter.
        let housekeeping = |_: &mut _| {
            let pid = self.dead_party(generation)?;
            Some(self.withdraw(generation, BarrierTimeoutError::Broken { pid }))
        };
        wait_sliced(self.point(), deadline, SLICE, ready, housekeeping)
            .unwrap_or_else(|_| self.withdraw(generation, BarrierTimeoutError::Timeout))
            .map(|()| result)
    }

    /// Withdraws our arrival in `generation` and fails with `err`, unless
    /// the round ended meanwhile (then its outcome).
    fn withdraw(
        &self,
        generation: u32,
        err: BarrierTimeoutError,
    ) -> Result<(), BarrierTimeoutError> {
        // Acquire: as in `arrive`.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != generation || cur & BROKEN != 0 {
                return self
                    .outcome(generation)
                    .unwrap_or(Err(BarrierTimeoutError::Aborted));
            }
            let next = cur - u64::from(cur & ARRIVED > 0);
            // AcqRel / Acquire: as in `arrive`.
            match self
                .state
                .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Err(err),
                Err(now) => cur = now,
            }
        }
    }
}

/// `resets` (see [`BarrierWords`]) with `generation` recorded as ended by a
/// reset; `None` if nothing changes (already recorded, or older than the
/// 32 generations the record keeps). Only forward (wrapping): a reset that
/// read an older round late keeps the newer ones.
fn with_reset(resets: u64, generation: u32) -> Option<u64> {
    let (base, bits) = ((resets >> 32) as u32, resets as u32);
    let ahead = generation.wrapping_sub(base) as i32;
    let (base, bits) = if bits == 0 || ahead >= 32 {
        (generation, 1)
    } else if ahead > 0 {
        (generation, bits << ahead | 1)
    } else if ahead > -32 {
        (base, bits | 1 << -ahead)
    } else {
        return None;
    };
    let new = u64::from(base) << 32 | u64::from(bits);
    (new != resets).then_some(new)
}

/// Whether `resets` records `generation` as ended by a reset.
fn was_reset(resets: u64, generation: u32) -> bool {
    let (base, bits) = ((resets >> 32) as u32, resets as u32);
    let behind = base.wrapping_sub(generation);
    bits != 0 && behind < 32 && bits >> behind & 1 != 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A party's wait for round `generation`, looking once.
    fn look(b: &BarrierWords, generation: u32) -> Result<(), BarrierTimeoutError> {
        b.await_round(generation, Some(Instant::now()))
    }

    #[test]
    fn a_pass_at_the_last_generation_is_a_pass() {
        let b = BarrierWords::starting_at(2, u32::MAX);
        let a = b.arrive().unwrap();
        assert_eq!((a.generation, a.is_leader), (u32::MAX, false));
        assert_eq!(look(&b, u32::MAX), Err(BarrierTimeoutError::Timeout));
        assert!(b.arrive().unwrap().is_leader);
        assert_eq!(b.state(), (0, 0));
        assert_eq!(look(&b, u32::MAX), Ok(()), "the wrap read as a reset");
    }

    #[test]
    fn a_reset_across_the_wrap_is_a_reset() {
        let b = BarrierWords::starting_at(2, u32::MAX - 1);
        b.arrive().unwrap();
        b.reset();
        assert_eq!(b.state(), (u32::MAX, 0));
        b.arrive().unwrap();
        b.reset();
        assert_eq!(b.state(), (0, 0));
        // Round 0 passes; round 1 is reset.
        b.arrive().unwrap();
        b.arrive().unwrap();
        b.arrive().unwrap();
        b.reset();
        assert_eq!(b.state(), (2, 0));
        assert_eq!(look(&b, u32::MAX - 1), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&b, u32::MAX), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&b, 0), Ok(()));
        assert_eq!(look(&b, 1), Err(BarrierTimeoutError::Aborted));
    }

    /// A waiter that slept through the reset of its round and a reset of a
    /// later one still reads its round as reset (31 rounds back at most).
    #[test]
    fn a_later_reset_does_not_turn_an_earlier_one_into_a_pass() {
        let b = BarrierWords::starting_at(1, 7);
        let waiter = BarrierWords::starting_at(2, 7);
        // Two parties; the waiter's round 7 is reset, 8 passes, 9 is reset.
        waiter.arrive().unwrap();
        waiter.reset();
        waiter.arrive().unwrap();
        waiter.arrive().unwrap();
        waiter.arrive().unwrap();
        waiter.reset();
        assert_eq!(waiter.state(), (10, 0));
        assert_eq!(look(&waiter, 7), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&waiter, 8), Ok(()));
        assert_eq!(look(&waiter, 9), Err(BarrierTimeoutError::Aborted));
        // A single party passes every round (a reset needs a break
        // first). Round 7 is reset; a reset 31 rounds on keeps it known;
        // one 33 rounds on forgets it (the documented window).
        b.abort();
        b.reset();
        for _ in 8..38 {
            b.arrive().unwrap();
        }
        assert_eq!(b.state(), (38, 0));
        b.abort();
        b.reset();
        assert_eq!(look(&b, 7), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&b, 8), Ok(()));
        assert_eq!(look(&b, 38), Err(BarrierTimeoutError::Aborted));
        b.arrive().unwrap();
        b.abort();
        b.reset();
        assert_eq!(b.state(), (41, 0));
        assert_eq!(look(&b, 38), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&b, 39), Ok(()));
        assert_eq!(look(&b, 40), Err(BarrierTimeoutError::Aborted));
        assert_eq!(look(&b, 7), Ok(()), "forgotten after 32 generations");
    }

    #[test]
    fn the_reset_record_moves_only_forward() {
        let mut r = 0;
        for g in [5, 3, 40, 9, 8, 39] {
            if let Some(new) = with_reset(r, g) {
                r = new;
            }
        }
        // 40, 39 and 9 (31 back); 8 came too late, 5 and 3 are forgotten.
        for g in 0..50 {
            assert_eq!(was_reset(r, g), [9, 39, 40].contains(&g), "{g}");
        }
        assert_eq!(with_reset(r, 40), None, "recorded already");
        assert_eq!(with_reset(r, 8), None, "too old");
    }
}

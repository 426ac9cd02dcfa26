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
//! learn it from `reset_of` (the generation last ended by a reset, plus 1).

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
    /// The generation last ended by [`BarrierWords::reset`], plus 1 (0: none
    /// yet); read by the waiters of a round that ended, to tell a reset from
    /// a pass.
    reset_of: AtomicU32,
    _pad: [u64; 5],
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
            reset_of: AtomicU32::new(0),
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
            // Relaxed: `reset` stores it before its AcqRel CAS that ended
            // the round, which the Acquire load above synchronized with.
            // It can have moved on only if a later round was also reset
            // while this party slept through both (then this reads as a
            // pass: the one window, documented on `reset`).
            let reset = self.reset_of.load(Ordering::Relaxed) == generation.wrapping_add(1);
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
    /// One window: a waiter that sleeps through this reset *and* a reset of
    /// the next round, without once looking at the state in between (the
    /// reset wakes it), reads its round as passed.
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
            // Only forward (wrapping): a reset that read an older round
            // late must not overwrite the mark of a newer one.
            let mark = generation.wrapping_add(1);
            // Relaxed: published by the AcqRel CAS below (see `outcome`).
            let _ = self
                .reset_of
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    (mark.wrapping_sub(old) as i32 > 0).then_some(mark)
                });
            // AcqRel: the Release half publishes `reset_of` to the waiters'
            // Acquire in `outcome`; the Acquire half as in `arrive`.
            match self.state.compare_exchange(
                cur,
                u64::from(mark) << 32,
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

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
static_assertions::const_assert_eq!(size_of::<BarrierWords>() as u64, BODY_SIZE);

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
        let done = || {
            passed().map(|()| {
                Ok(BarrierWaitResult {
                    generation,
                    is_leader: false,
                })
            })
        };
        // Between slices: a registered party that died without arriving
        // breaks the barrier.
        let housekeeping = |_: &mut _| {
            let pid = self.dead_party(generation)?;
            Some(self.withdraw(generation, BarrierTimeoutError::Broken { pid }))
        };
        wait_sliced(self.point(), deadline, SLICE, done, housekeeping)
            .unwrap_or_else(|_| self.withdraw(generation, BarrierTimeoutError::Timeout))
    }

    /// Withdraws our arrival in `generation` and fails with `err`, unless
    /// the round completed meanwhile (then the wait succeeded after all).
    fn withdraw(
        &self,
        generation: u32,
        err: BarrierTimeoutError,
    ) -> Result<BarrierWaitResult, BarrierTimeoutError> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if (cur >> 32) as u32 != generation {
                return Ok(BarrierWaitResult {
                    generation,
                    is_leader: false,
                });
            }
            let next = cur - u64::from(cur as u32 > 0);
            // AcqRel / Acquire: as in the arrival in `wait_until`.
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

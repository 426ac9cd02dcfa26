//! One push or one pop: claiming the next position (helping the tail or
//! head past positions others claimed), writing or reading its payload,
//! and publishing (freeing) the slot; the non-blocking `try_*` calls and
//! the blocking and timed loops built on them.

use std::time::{Duration, Instant};

use super::recovery::{InFlight, Stalled};
use super::{
    Attempt, RECOVERY_CHECK, ROLE_CONSUMER, ROLE_HOLE, ROLE_NONE, ROLE_PRODUCER, RawQueue,
    SLOT_HEADER_WORDS, TAIL_CLOSED, claim, free_seq, full_seq, role_at,
};
use crate::error::{
    PopError, PopTimeoutError, PushError, PushTimeoutError, TryPopError, TryPushError,
};
use crate::sync::{AtomicU64, Ordering};

impl RawQueue<'_> {
    /// Claims position `pos` for a producer: its slot is free for `pos`
    /// (sequence `free_seq(pos)`, read with Acquire) and holds no claim on
    /// `pos` yet. `Err(claimed)`: someone else's claim on `pos` is there
    /// (or the compare-and-swap lost to a change, or the slot moved on:
    /// `claimed` is false, look again).
    #[inline(always)]
    pub(super) fn claim_push(&self, slot: &[AtomicU64], pos: u64) -> Result<(), bool> {
        // Acquire pairs with the AcqRel compare-and-swap that stored it: if
        // it is a later lap's claim, what its claimer saw of the sequence
        // (a later lap's) is visible to the check below.
        let held = slot[1].load(Ordering::Acquire);
        if role_at(held, pos) != ROLE_NONE {
            return Err(true);
        }
        // The sequence again, now that the claim is read: any value that is
        // not a claim on `pos` is accepted as the previous lap's, so it must
        // be read while the slot is still free for `pos`. Otherwise a
        // producer that stalled between the caller's sequence check and the
        // claim read could take a later lap's claim for the previous lap's
        // and win the slot from under it (found by an in-process stress run:
        // a published item was overwritten, the head and tail passed it).
        // Acquire: as the caller's load.
        if slot[0].load(Ordering::Acquire) != free_seq(pos) {
            return Err(false);
        }
        // AcqRel: the Release half publishes what we saw of the sequence
        // to whoever reads this claim (see the Acquire load above); the
        // payload itself is published with the slot's sequence (Release)
        // and recovery validates the claim with its own compare-and-swap.
        slot[1]
            .compare_exchange(
                held,
                claim(ROLE_PRODUCER, self.me(), pos),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(|_| false)
    }

    /// Claims the published item at `pos` for a consumer (sequence
    /// `full_seq(pos)`, read with Acquire). `Ok(hole)`: ours, and whether it
    /// is a hole. `Err(Some(role))`: not claimable, the claim on `pos` is
    /// `role`'s (`ROLE_CONSUMER`: taken; `ROLE_NONE`: no claim on `pos`,
    /// a stale view or garbage); `Err(None)`: the compare-and-swap lost to
    /// a change, look again.
    #[inline(always)]
    pub(super) fn claim_pop(&self, slot: &[AtomicU64], pos: u64) -> Result<bool, Option<u64>> {
        // Acquire: as in `claim_push`. Read after the caller's Acquire of
        // the sequence, so it is at least the producer's claim (or the hole
        // mark) of `pos`. Only a claim *on* `pos` is accepted, so unlike a
        // producer a consumer needs no second look at the sequence: a claim
        // on `pos` is never stored again once the slot moved on.
        let held = slot[1].load(Ordering::Acquire);
        let role = role_at(held, pos);
        if role != ROLE_PRODUCER && role != ROLE_HOLE {
            return Err(Some(role));
        }
        // AcqRel: as in `claim_push`; the sequence's Acquire ordered the
        // payload.
        slot[1]
            .compare_exchange(
                held,
                claim(ROLE_CONSUMER, self.me(), pos),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .map(|_| role == ROLE_HOLE)
            .map_err(|_| None)
    }

    /// Claims the next free position for a push (helping the tail past
    /// positions other producers claimed, and waiting out a consumer in
    /// flight with `wait`): `Ok(pos)`, or why not.
    #[inline(always)]
    fn claim_next_push(&self, mut wait: Option<&mut InFlight>) -> Result<u64, Attempt<()>> {
        let mut pos = self.tail_now();
        loop {
            if pos & TAIL_CLOSED != 0 {
                return Err(Attempt::Closed);
            }
            let slot = self.slot(pos);
            // Acquire pairs with the Release store that freed the slot (a
            // consumer's, or `init_slots`): its payload reads are done.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(free_seq(pos)) as i64;
            if diff == 0 {
                match self.claim_push(slot, pos) {
                    Ok(()) => return Ok(pos),
                    Err(true) => {
                        // Another producer's: help the tail past it.
                        self.move_tail(pos, 1);
                        pos = self.tail_now();
                    }
                    Err(false) => {} // the claim changed: look again
                }
            } else if diff < 0 {
                // The slot still holds an earlier lap: full, or a pop in
                // flight.
                match self.push_stalled(pos, seq, wait.as_deref_mut()) {
                    Stalled::Retry => pos = self.tail_now(),
                    Stalled::Blocked | Stalled::Closed => return Err(Attempt::Blocked),
                }
            } else {
                // Another producer took `pos`: try the current tail.
                let now = self.tail_now();
                if now == pos {
                    // The sequence is ahead of the tail: only a peer writing
                    // garbage does that. Report full rather than spin.
                    return Err(Attempt::Blocked);
                }
                pos = now;
            }
        }
    }

    /// One push attempt: claims a position and runs `write` on its payload
    /// words, or says why not. `in_flight`: wait out a pop in flight in the
    /// slot at the tail rather than answer full.
    #[inline]
    fn attempt_push(
        &self,
        write: &mut dyn FnMut(&[AtomicU64]),
        in_flight: Option<Duration>,
    ) -> Attempt<()> {
        if self.is_closed() {
            return Attempt::Closed;
        }
        let mut wait = in_flight.map(InFlight::new);
        let pos = match self.claim_next_push(wait.as_mut()) {
            Ok(pos) => pos,
            Err(why) => return why,
        };
        if self.move_tail(pos, 1) == 0 {
            // Closed before the tail covered our claim: the position is
            // given up (consumers stop before it), the push refused.
            return Attempt::Closed;
        }
        let slot = self.slot(pos);
        write(&slot[SLOT_HEADER_WORDS..]);
        // Release pairs with the consumer's Acquire load of the sequence:
        // the payload is visible with it.
        slot[0].store(full_seq(pos), Ordering::Release);
        self.ctl.data().notify();
        Attempt::Done(())
    }

    /// Claims the next published position for a pop (helping the head past
    /// positions other consumers claimed, and waiting out a producer in
    /// flight with `wait`): `Ok((pos, hole))`, or why not.
    #[inline(always)]
    fn claim_next_pop<R>(
        &self,
        mut wait: Option<&mut InFlight>,
    ) -> Result<(u64, bool), Attempt<R>> {
        let mut pos = self.head_now();
        loop {
            let slot = self.slot(pos);
            // Acquire pairs with the producer's Release store of its
            // `full_seq`: the payload (and claim) it wrote are visible.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(full_seq(pos)) as i64;
            if diff == 0 {
                match self.claim_pop(slot, pos) {
                    Ok(hole) => return Ok((pos, hole)),
                    Err(Some(ROLE_CONSUMER)) => {
                        // Another consumer's: help the head past it.
                        self.move_head(pos, 1);
                        pos = self.head_now();
                    }
                    Err(Some(_)) => {
                        // No claim on `pos`: our view is stale (the slot
                        // moved on) or the words are garbage.
                        let now = self.head_now();
                        if now == pos {
                            return Err(Attempt::Blocked);
                        }
                        pos = now;
                    }
                    Err(None) => {} // the claim changed: look again
                }
            } else if diff < 0 {
                // Not published: empty, or a push in flight.
                match self.pop_stalled(pos, seq, wait.as_deref_mut()) {
                    Stalled::Retry => pos = self.head_now(),
                    Stalled::Blocked => return Err(Attempt::Blocked),
                    Stalled::Closed => return Err(Attempt::Closed),
                }
            } else {
                let now = self.head_now();
                if now == pos {
                    return Err(Attempt::Blocked);
                }
                pos = now;
            }
        }
    }

    /// One pop attempt: claims a position and runs `read` on its payload
    /// words, or says why not. Holes left by dead producers are skipped.
    /// `in_flight`: wait out a push in flight at the head rather than
    /// answer empty.
    #[inline]
    fn attempt_pop<R>(
        &self,
        read: &mut dyn FnMut(&[AtomicU64]) -> R,
        in_flight: Option<Duration>,
    ) -> Attempt<R> {
        let mut wait = in_flight.map(InFlight::new);
        loop {
            let (pos, hole) = match self.claim_next_pop(wait.as_mut()) {
                Ok(won) => won,
                Err(why) => return why,
            };
            self.move_head(pos, 1);
            let slot = self.slot(pos);
            let out = (!hole).then(|| read(&slot[SLOT_HEADER_WORDS..]));
            // Release pairs with the next lap's producer Acquire: our
            // payload reads are done before it overwrites.
            slot[0].store(free_seq(pos.wrapping_add(self.mask + 1)), Ordering::Release);
            self.ctl.space().notify();
            if let Some(r) = out {
                return Attempt::Done(r);
            }
            // A hole (its task was counted done when it was made): go on.
        }
    }

    /// Claims the next free position for a push and stops there, as a
    /// producer killed right after its claim (before it moves the tail)
    /// leaves the queue. For models and tests of recovery, with
    /// [`as_pid`](Self::as_pid); returns whether it claimed one.
    #[doc(hidden)]
    pub fn claim_push_and_stop(&self) -> bool {
        self.claim_next_push(None).is_ok()
    }

    /// Claims the next published position for a pop and stops there, as a
    /// consumer killed right after its claim (before it moves the head)
    /// leaves the queue. For models and tests, like
    /// [`claim_push_and_stop`](Self::claim_push_and_stop).
    #[doc(hidden)]
    pub fn claim_pop_and_stop(&self) -> bool {
        self.claim_next_pop::<()>(None).is_ok()
    }

    /// Pushes by running `write` on a slot's payload words, never waiting
    /// for room (only, briefly, for a pop in flight).
    ///
    /// Never answers `Full` while a pop that has returned left room: if the
    /// slot at the tail still holds an item that a consumer has claimed and
    /// not yet freed (the pop is in flight), it waits for that consumer
    /// (spinning, yielding, then sleeping until its free wakes the call;
    /// nanoseconds, or a time slice if it was preempted; at most
    /// [`IN_FLIGHT_PATIENCE`], for a stopped process), and frees the slot
    /// itself if the consumer's process died.
    ///
    /// # Errors
    ///
    /// `Full` or `Closed` (the `()` inside stands for the payload the caller
    /// still holds).
    pub fn try_push_with(
        &self,
        mut write: impl FnMut(&[AtomicU64]),
    ) -> Result<(), TryPushError<()>> {
        match self.attempt_push(&mut write, Some(self.patience)) {
            Attempt::Done(()) => Ok(()),
            Attempt::Blocked => Err(TryPushError::Full(())),
            Attempt::Closed => Err(TryPushError::Closed(())),
        }
    }

    /// Pops by running `read` on a slot's payload words, never waiting for
    /// an item (only, briefly, for a push in flight).
    ///
    /// Linearizable: never answers `Empty` while an item whose push has
    /// returned is still queued. If the slot at the head is claimed by a
    /// producer that the tail has passed and that has not published yet
    /// (the push is in flight), it waits for that producer (spinning,
    /// yielding, then sleeping until its publish wakes the call;
    /// nanoseconds, or a time slice if it was preempted; at most
    /// [`IN_FLIGHT_PATIENCE`], for a stopped process), and turns the slot
    /// into a skipped hole itself if the producer's process died.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_with<R>(
        &self,
        mut read: impl FnMut(&[AtomicU64]) -> R,
    ) -> Result<R, TryPopError> {
        match self.attempt_pop(&mut read, Some(self.patience)) {
            Attempt::Done(r) => Ok(r),
            Attempt::Blocked => Err(TryPopError::Empty),
            Attempt::Closed => Err(TryPopError::Closed),
        }
    }

    /// The push loop of the blocking and timed calls: `Ok`, or `Err(true)`
    /// for closed, `Err(false)` for the deadline passed.
    fn push_wait(
        &self,
        write: &mut dyn FnMut(&[AtomicU64]),
        deadline: Option<Instant>,
    ) -> Result<(), bool> {
        // The common case first: no clock read unless the call must wait.
        // Attempts made while waiting do not wait out a pop in flight: its
        // free wakes the sleepers.
        match self.attempt_push(write, None) {
            Attempt::Done(()) => return Ok(()),
            Attempt::Closed => return Err(true),
            Attempt::Blocked => {}
        }
        loop {
            let slice_end = Instant::now() + RECOVERY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let res =
                self.ctl
                    .space()
                    .wait_until(Some(until), || match self.attempt_push(write, None) {
                        Attempt::Done(()) => Some(Ok(())),
                        Attempt::Closed => Some(Err(true)),
                        Attempt::Blocked => None,
                    });
            if let Ok(r) = res {
                return r;
            }
            self.recover_abandoned_pop();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // The last look waits out a pop in flight, as `try_push`,
                // but past the deadline for one owner check at most.
                return match self.attempt_push(write, Some(self.last_look())) {
                    Attempt::Done(()) => Ok(()),
                    Attempt::Closed => Err(true),
                    Attempt::Blocked => Err(false),
                };
            }
        }
    }

    /// Pushes, sleeping while full. While blocked, looks every
    /// [`RECOVERY_CHECK`] for a slot abandoned by a dead consumer and frees
    /// it.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] (with `()` standing for the payload the caller
    /// still holds); never `Disconnected` (an MPMC queue has no single
    /// consumer whose death ends it).
    pub fn push_with(&self, mut write: impl FnMut(&[AtomicU64])) -> Result<(), PushError<()>> {
        self.push_wait(&mut write, None)
            .map_err(|_| PushError::Closed(()))
    }

    /// Pushes, sleeping while full, until `deadline` (`None`: no limit, and
    /// no timeout), as [`push_with`](Self::push_with).
    ///
    /// # Errors
    ///
    /// [`PushTimeoutError::Closed`] or [`PushTimeoutError::Timeout`] (never
    /// `Disconnected`).
    pub fn push_with_until(
        &self,
        mut write: impl FnMut(&[AtomicU64]),
        deadline: Option<Instant>,
    ) -> Result<(), PushTimeoutError<()>> {
        self.push_wait(&mut write, deadline).map_err(|closed| {
            if closed {
                PushTimeoutError::Closed(())
            } else {
                PushTimeoutError::Timeout(())
            }
        })
    }

    /// The pop loop of the blocking and timed calls: `Ok`, or `Err(true)`
    /// for closed and drained, `Err(false)` for the deadline passed.
    fn pop_wait<R>(
        &self,
        read: &mut dyn FnMut(&[AtomicU64]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R, bool> {
        // The common case first: no clock read unless the call must wait.
        // Attempts made while waiting do not wait out a push in flight: its
        // publish wakes the sleepers.
        match self.attempt_pop(read, None) {
            Attempt::Done(r) => return Ok(r),
            Attempt::Closed => return Err(true),
            Attempt::Blocked => {}
        }
        loop {
            let slice_end = Instant::now() + RECOVERY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let res =
                self.ctl
                    .data()
                    .wait_until(Some(until), || match self.attempt_pop(read, None) {
                        Attempt::Done(r) => Some(Ok(r)),
                        Attempt::Closed => Some(Err(true)),
                        Attempt::Blocked => None,
                    });
            if let Ok(r) = res {
                return r;
            }
            self.recover_abandoned_push();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // The last look waits out a push in flight, as `try_pop`,
                // but past the deadline for one owner check at most.
                return match self.attempt_pop(read, Some(self.last_look())) {
                    Attempt::Done(r) => Ok(r),
                    Attempt::Closed => Err(true),
                    Attempt::Blocked => Err(false),
                };
            }
        }
    }

    /// Pops, sleeping while empty. While blocked, looks every
    /// [`RECOVERY_CHECK`] for a slot abandoned by a dead producer and turns
    /// it into a hole.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained; never `Disconnected`
    /// (an MPMC queue has no single producer whose death ends it).
    pub fn pop_with<R>(&self, mut read: impl FnMut(&[AtomicU64]) -> R) -> Result<R, PopError> {
        self.pop_wait(&mut read, None).map_err(|_| PopError::Closed)
    }

    /// Pops, sleeping while empty, until `deadline` (`None`: no limit, and
    /// no timeout), as [`pop_with`](Self::pop_with).
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError::Closed`] once closed and drained, or
    /// [`PopTimeoutError::Timeout`] (never `Disconnected`).
    pub fn pop_with_until<R>(
        &self,
        mut read: impl FnMut(&[AtomicU64]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R, PopTimeoutError> {
        self.pop_wait(&mut read, deadline).map_err(|closed| {
            if closed {
                PopTimeoutError::Closed
            } else {
                PopTimeoutError::Timeout
            }
        })
    }
}

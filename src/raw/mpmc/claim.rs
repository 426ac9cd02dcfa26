//! One push or one pop: claiming the next position (helping the tail or
//! head past positions others claimed), writing or reading its payload,
//! and publishing (freeing) the slot; the non-blocking `try_*` calls and
//! the blocking and timed loops built on them.

use std::time::{Duration, Instant};

use super::recovery::{InFlight, Stalled};
use super::{
    RawQueue, Refused, Role, SLOT_HEADER_WORDS, TAIL_CLOSED, claim, free_seq, full_seq, role_at,
};
use crate::error::{
    PopError, PopTimeoutError, PushError, PushTimeoutError, TryPopError, TryPushError,
};
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{SLICE, TimedOut, wait_sliced};

/// What a producer's claim on one position came to ([`RawQueue::claim_push`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PushClaim {
    /// The position is ours.
    Won,
    /// Another producer's claim on it is there: help the tail past it.
    Taken,
    /// The compare-and-swap lost to a change, or the slot moved on: look
    /// again.
    Changed,
}

/// What a consumer's claim on one published position came to
/// ([`RawQueue::claim_pop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PopClaim {
    /// The position is ours, and this is what it holds.
    Won(Content),
    /// Another consumer's claim on it is there: help the head past it.
    Taken,
    /// No producer's claim (nor the hole mark) on it: the caller's view is
    /// stale (the slot moved on) or the words are garbage.
    Stale,
    /// The compare-and-swap lost to a change: look again.
    Changed,
}

/// What the bound lets a producer do at a tail position
/// ([`RawQueue::room_at`]; queues with a bound below the capacity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Room {
    /// This many positions from the tail position on may be claimed (1 or
    /// more; a single push claims one).
    Free(u64),
    /// `bound` items or more were held at one instant of the look.
    Full,
    /// The head or the tail moved under the caller (or the caller moved the
    /// head for a consumer): look again from the tail.
    Moved,
}

/// What a position a consumer won holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Content {
    /// A published item: read it.
    Item,
    /// A hole left by a dead producer: skip it.
    Hole,
}

impl RawQueue<'_> {
    /// Claims position `pos` for a producer: its slot is free for `pos`
    /// (sequence `free_seq(pos)`, read with Acquire) and holds no claim on
    /// `pos` yet. [`PushClaim::Taken`]: someone else's claim on `pos` is
    /// there; [`PushClaim::Changed`]: the compare-and-swap lost to a change,
    /// or the slot moved on.
    #[inline(always)]
    pub(super) fn claim_push(&self, slot: &[AtomicU64], pos: u64) -> PushClaim {
        // Acquire pairs with the AcqRel compare-and-swap that stored it: if
        // it is a later lap's claim, what its claimer saw of the sequence
        // (a later lap's) is visible to the check below.
        let held = slot[1].load(Ordering::Acquire);
        if role_at(held, pos) != Role::None {
            return PushClaim::Taken;
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
            return PushClaim::Changed;
        }
        // AcqRel: the Release half publishes what we saw of the sequence
        // to whoever reads this claim (see the Acquire load above); the
        // payload itself is published with the slot's sequence (Release)
        // and recovery validates the claim with its own compare-and-swap.
        match slot[1].compare_exchange(
            held,
            claim(Role::Producer, self.me(), pos),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => PushClaim::Won,
            Err(_) => PushClaim::Changed,
        }
    }

    /// Claims the published item at `pos` for a consumer (sequence
    /// `full_seq(pos)`, read with Acquire): [`PopClaim::Won`] with what it
    /// holds, or why not (see [`PopClaim`]).
    #[inline(always)]
    pub(super) fn claim_pop(&self, slot: &[AtomicU64], pos: u64) -> PopClaim {
        // Acquire: as in `claim_push`. Read after the caller's Acquire of
        // the sequence, so it is at least the producer's claim (or the hole
        // mark) of `pos`. Only a claim *on* `pos` is accepted, so unlike a
        // producer a consumer needs no second look at the sequence: a claim
        // on `pos` is never stored again once the slot moved on.
        let held = slot[1].load(Ordering::Acquire);
        let content = match role_at(held, pos) {
            Role::Producer => Content::Item,
            Role::Hole => Content::Hole,
            Role::Consumer => return PopClaim::Taken,
            Role::None => return PopClaim::Stale,
        };
        // AcqRel: as in `claim_push`; the sequence's Acquire ordered the
        // payload.
        match slot[1].compare_exchange(
            held,
            claim(Role::Consumer, self.me(), pos),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => PopClaim::Won(content),
            Err(_) => PopClaim::Changed,
        }
    }

    /// Whether the bound leaves room for a push at tail position `pos` (a
    /// tail value read before the call), and for how many: the look at the
    /// head that every claim of a queue with a bound below its capacity
    /// makes first. See "A bound below the capacity" in the module docs for
    /// why a claim after [`Room::Free`] never takes the queue past its
    /// bound and why [`Room::Full`] was true at an instant of the look.
    #[inline]
    pub(super) fn room_at(&self, pos: u64) -> Room {
        // Acquire: as in `push_stalled`, pairs with the Release moves of the
        // head (`move_head`): the consumer claims on the positions it
        // passed are visible to what this producer does next.
        let head = self.head_now();
        let held = pos.wrapping_sub(head);
        if held < self.bound {
            return Room::Free(self.bound - held);
        }
        if (held as i64) < 0 {
            // The head is past our tail position: the tail we read is stale
            // (pushes and pops went past it since), or a peer wrote garbage
            // (a tail that did not move: report full rather than spin).
            return if self.tail_now() == pos {
                Room::Full
            } else {
                Room::Moved
            };
        }
        let slot = self.slot(head);
        // Acquire pairs with the AcqRel claim of the consumer (producer)
        // that stored it: as in `push_stalled`, what that claimer did before
        // is visible to a helper that moves the head past it.
        match role_at(slot[1].load(Ordering::Acquire), head) {
            // The pop of `head` counted and has not moved the head yet: move
            // it for that consumer (as a consumer helping another would).
            // Each such help moves the head past one more claim on its own
            // position, and a slot's claim names one position: a peer's
            // garbage makes this happen at most once per slot.
            Role::Consumer => {
                self.move_head(head, 1);
                Room::Moved
            }
            // `head` not taken when its claim was read, the positions up to
            // `pos` all pushed: `bound` items or more held then.
            Role::Producer | Role::Hole => Room::Full,
            // A claim on another position: the slot moved on, so did the
            // head (look again), unless a peer wrote garbage there.
            Role::None => {
                if self.head_now() == head {
                    Room::Full
                } else {
                    Room::Moved
                }
            }
        }
    }

    /// Claims the next free position for a push (helping the tail past
    /// positions other producers claimed, and waiting out a consumer in
    /// flight with `wait`): `Ok(pos)`, or why not.
    #[inline(always)]
    fn claim_next_push(&self, mut wait: Option<&mut InFlight>) -> Result<u64, Refused> {
        let mut pos = self.tail_now();
        loop {
            if pos & TAIL_CLOSED != 0 {
                return Err(Refused::Closed);
            }
            // A bound below the capacity: the head must be less than `bound`
            // positions behind the one to claim (the branch always goes the
            // same way for a view).
            if self.bounded() {
                match self.room_at(pos) {
                    Room::Free(_) => {}
                    Room::Full => return Err(Refused::Blocked),
                    Room::Moved => {
                        pos = self.tail_now();
                        continue;
                    }
                }
            }
            let slot = self.slot(pos);
            // Acquire pairs with the Release store that freed the slot (a
            // consumer's, or `init_slots`): its payload reads are done.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(free_seq(pos)) as i64;
            if diff == 0 {
                match self.claim_push(slot, pos) {
                    PushClaim::Won => return Ok(pos),
                    PushClaim::Taken => {
                        // Another producer's: help the tail past it.
                        self.move_tail(pos, 1);
                        pos = self.tail_now();
                    }
                    PushClaim::Changed => {} // look again
                }
            } else if diff < 0 {
                // The slot still holds an earlier lap: full, or a pop in
                // flight.
                match self.push_stalled(pos, seq, wait.as_deref_mut()) {
                    Stalled::Retry => pos = self.tail_now(),
                    Stalled::Blocked | Stalled::Closed => return Err(Refused::Blocked),
                }
            } else {
                // Another producer took `pos`: try the current tail.
                let now = self.tail_now();
                if now == pos {
                    // The sequence is ahead of the tail: only a peer writing
                    // garbage does that. Report full rather than spin.
                    return Err(Refused::Blocked);
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
    ) -> Result<(), Refused> {
        if self.is_closed() {
            return Err(Refused::Closed);
        }
        let mut wait = in_flight.map(InFlight::new);
        let pos = self.claim_next_push(wait.as_mut())?;
        if self.move_tail(pos, 1) == 0 {
            // Closed before the tail covered our claim: the position is
            // given up (consumers stop before it), the push refused.
            return Err(Refused::Closed);
        }
        let slot = self.slot(pos);
        write(&slot[SLOT_HEADER_WORDS..]);
        // Release pairs with the consumer's Acquire load of the sequence:
        // the payload is visible with it.
        slot[0].store(full_seq(pos), Ordering::Release);
        self.ctl.data().notify();
        Ok(())
    }

    /// Claims the next published position for a pop (helping the head past
    /// positions other consumers claimed, and waiting out a producer in
    /// flight with `wait`): `Ok((pos, content))`, or why not.
    #[inline(always)]
    fn claim_next_pop(&self, mut wait: Option<&mut InFlight>) -> Result<(u64, Content), Refused> {
        let mut pos = self.head_now();
        loop {
            let slot = self.slot(pos);
            // Acquire pairs with the producer's Release store of its
            // `full_seq`: the payload (and claim) it wrote are visible.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(full_seq(pos)) as i64;
            if diff == 0 {
                match self.claim_pop(slot, pos) {
                    PopClaim::Won(content) => return Ok((pos, content)),
                    PopClaim::Taken => {
                        // Another consumer's: help the head past it.
                        self.move_head(pos, 1);
                        pos = self.head_now();
                    }
                    PopClaim::Stale => {
                        // No claim on `pos`: our view is stale (the slot
                        // moved on) or the words are garbage.
                        let now = self.head_now();
                        if now == pos {
                            return Err(Refused::Blocked);
                        }
                        pos = now;
                    }
                    PopClaim::Changed => {} // look again
                }
            } else if diff < 0 {
                // Not published: empty, or a push in flight.
                match self.pop_stalled(pos, seq, wait.as_deref_mut()) {
                    Stalled::Retry => pos = self.head_now(),
                    Stalled::Blocked => return Err(Refused::Blocked),
                    Stalled::Closed => return Err(Refused::Closed),
                }
            } else {
                let now = self.head_now();
                if now == pos {
                    return Err(Refused::Blocked);
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
    ) -> Result<R, Refused> {
        let mut wait = in_flight.map(InFlight::new);
        loop {
            let (pos, content) = self.claim_next_pop(wait.as_mut())?;
            self.move_head(pos, 1);
            let slot = self.slot(pos);
            let out = (content == Content::Item).then(|| read(&slot[SLOT_HEADER_WORDS..]));
            // Release pairs with the next lap's producer Acquire: our
            // payload reads are done before it overwrites.
            slot[0].store(free_seq(pos.wrapping_add(self.mask + 1)), Ordering::Release);
            self.ctl.space().notify();
            if let Some(r) = out {
                return Ok(r);
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
        self.claim_next_pop(None).is_ok()
    }

    /// Pushes by running `write` on a slot's payload words, never waiting
    /// for room (only, briefly, for a pop in flight).
    ///
    /// Never answers `Full` while a pop that has returned left room: if the
    /// slot at the tail still holds an item that a consumer has claimed and
    /// not yet freed (the pop is in flight), it waits for that consumer
    /// (spinning, yielding, then sleeping until its free wakes the call;
    /// nanoseconds, or a time slice if it was preempted; at most
    /// [`IN_FLIGHT_PATIENCE`](super::IN_FLIGHT_PATIENCE), for a stopped
    /// process), and frees the slot itself if the consumer's process died.
    ///
    /// # Errors
    ///
    /// `Full` or `Closed` (the `()` inside stands for the payload the caller
    /// still holds).
    pub fn try_push_with(
        &self,
        mut write: impl FnMut(&[AtomicU64]),
    ) -> Result<(), TryPushError<()>> {
        self.attempt_push(&mut write, Some(self.patience))
            .map_err(|why| match why {
                Refused::Blocked => TryPushError::Full(()),
                Refused::Closed => TryPushError::Closed(()),
            })
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
    /// [`IN_FLIGHT_PATIENCE`](super::IN_FLIGHT_PATIENCE), for a stopped
    /// process), and turns the slot into a skipped hole itself if the
    /// producer's process died.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_with<R>(
        &self,
        mut read: impl FnMut(&[AtomicU64]) -> R,
    ) -> Result<R, TryPopError> {
        self.attempt_pop(&mut read, Some(self.patience))
            .map_err(|why| match why {
                Refused::Blocked => TryPopError::Empty,
                Refused::Closed => TryPopError::Closed,
            })
    }

    /// The push loop of the blocking and timed calls: `Ok`, or
    /// [`Refused::Closed`], or [`Refused::Blocked`] once the deadline passed
    /// with the queue still full.
    fn push_wait(
        &self,
        write: &mut dyn FnMut(&[AtomicU64]),
        deadline: Option<Instant>,
    ) -> Result<(), Refused> {
        // The common case first (`wait_sliced` reads no clock before its
        // first attempt). Attempts made while waiting do not wait out a pop
        // in flight: its free wakes the sleepers. Between two slices, the
        // slots the tail waits for that dead consumers left are freed.
        let waited = wait_sliced(
            self.ctl.space(),
            deadline,
            SLICE,
            || match self.attempt_push(write, None) {
                Err(Refused::Blocked) => None,
                done => Some(done),
            },
            |_| {
                self.recover_abandoned_pop();
                None
            },
        );
        match waited {
            Ok(done) => done,
            // The last look waits out a pop in flight, as `try_push`, but
            // past the deadline for one owner check at most.
            Err(TimedOut) => self.attempt_push(write, Some(self.last_look())),
        }
    }

    /// Pushes, sleeping while full. While blocked, looks every
    /// [`SLICE`](crate::wait::SLICE) for a slot abandoned by a dead consumer
    /// and frees it.
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
        self.push_wait(&mut write, deadline)
            .map_err(|why| match why {
                Refused::Closed => PushTimeoutError::Closed(()),
                Refused::Blocked => PushTimeoutError::Timeout(()),
            })
    }

    /// The pop loop of the blocking and timed calls: `Ok`, or
    /// [`Refused::Closed`] once closed and drained, or [`Refused::Blocked`]
    /// once the deadline passed with the queue still empty.
    fn pop_wait<R>(
        &self,
        read: &mut dyn FnMut(&[AtomicU64]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R, Refused> {
        // The common case first (`wait_sliced` reads no clock before its
        // first attempt). Attempts made while waiting do not wait out a push
        // in flight: its publish wakes the sleepers. Between two slices, the
        // slots at the head that dead producers left become holes.
        let waited = wait_sliced(
            self.ctl.data(),
            deadline,
            SLICE,
            || match self.attempt_pop(read, None) {
                Err(Refused::Blocked) => None,
                done => Some(done),
            },
            |_| {
                self.recover_abandoned_push();
                None
            },
        );
        match waited {
            Ok(done) => done,
            // The last look waits out a push in flight, as `try_pop`, but
            // past the deadline for one owner check at most.
            Err(TimedOut) => self.attempt_pop(read, Some(self.last_look())),
        }
    }

    /// Pops, sleeping while empty. While blocked, looks every
    /// [`SLICE`](crate::wait::SLICE) for a slot abandoned by a dead producer
    /// and turns it into a hole.
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
        self.pop_wait(&mut read, deadline).map_err(|why| match why {
            Refused::Closed => PopTimeoutError::Closed,
            Refused::Blocked => PopTimeoutError::Timeout,
        })
    }
}

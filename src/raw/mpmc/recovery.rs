//! Claimers in flight and dead claimers: waiting out a live peer between
//! its claim and its publish (free), and recovering the positions that a
//! process killed mid-operation left claimed (see "Processes that die
//! mid-operation" in the [module docs](super)).

use std::time::{Duration, Instant};

use super::{
    BATCH_MAX, OWNER_CHECK, RawQueue, Role, TAIL_CLOSED, claim, free_seq, full_seq, owner_is_dead,
    owner_known, role_at,
};
use crate::sync::Ordering;
use crate::wait::WaitPoint;

/// Waiting out a peer in flight between its claim and its publish (free),
/// on the wait point that the publish (free) notifies: a short spin, then
/// yields (on 2 cores a waiter that only spins can starve the very process
/// it waits for), then a futex sleep, in slices of [`OWNER_CHECK`] between
/// which the caller checks whether the peer died; gives up after its
/// patience ([`IN_FLIGHT_PATIENCE`](super::IN_FLIGHT_PATIENCE) unless the
/// queue's view says otherwise). (Sleeping rather than yielding for ever also keeps the loom
/// models finite: two yielding waiters could otherwise hand the processor
/// to each other while the peer they wait for never runs.)
#[derive(Debug)]
pub(super) struct InFlight {
    /// The end of the patience, set by the first wait.
    until: Option<Instant>,
    /// How long the first wait may last in all.
    patience: Duration,
}

impl InFlight {
    pub(super) fn new(patience: Duration) -> Self {
        Self {
            until: None,
            patience,
        }
    }

    /// Whether the caller should check the claimer's liveness before
    /// waiting: after the first slice (a live peer needs far less), and
    /// under loom every time (a model's dead claimer must be found before
    /// the sleep, which ignores deadlines there).
    fn check_owner(&self) -> bool {
        cfg!(loom) || self.until.is_some()
    }

    /// Waits (one slice at most) on `point` until `changed` says the slot
    /// moved on; `false` once the patience has run out. `changed` must read
    /// the slot with Acquire loads (see [`WaitPoint::wait_until`]).
    pub(super) fn wait(&mut self, point: WaitPoint<'_>, mut changed: impl FnMut() -> bool) -> bool {
        let now = Instant::now();
        let patience = self.patience;
        let until = *self
            .until
            .get_or_insert_with(|| now.checked_add(patience).unwrap_or(now));
        if now >= until {
            return false;
        }
        let slice = now.checked_add(OWNER_CHECK).map_or(until, |s| s.min(until));
        // A timeout only ends the slice: the caller looks again.
        let _ = point.wait_until(Some(slice), || changed().then_some(()));
        true
    }
}

/// What a caller does about a slot that is not ready for it.
pub(super) enum Stalled {
    /// Empty (pop) or full (push): nothing in flight to wait for.
    Blocked,
    /// Closed and drained (pop).
    Closed,
    /// Something changed, or a wait is over: look again.
    Retry,
}

impl RawQueue<'_> {
    /// The patience of a timed call's last look, made after its deadline:
    /// one owner check at most.
    pub(super) fn last_look(&self) -> Duration {
        self.patience.min(OWNER_CHECK)
    }

    /// A producer found the slot of tail position `pos` still holding an
    /// earlier lap (sequence `seq`, below `free_seq(pos)`). Full if no pop
    /// counted at the position before `pos` in that slot (the head is not
    /// past it); otherwise a consumer is in flight there: waits for it to
    /// free the slot (with `wait`; without, answers full), recovering it if
    /// its process died.
    pub(super) fn push_stalled(&self, pos: u64, seq: u64, wait: Option<&mut InFlight>) -> Stalled {
        let prev = pos.wrapping_sub(self.mask + 1);
        // Acquire pairs with the Release compare-and-swap that moved the
        // head past `prev` (`move_head`): the consumer claim on `prev` it
        // covered is visible to the claim read below.
        let head = self.ctl.head.load(Ordering::Acquire);
        let ahead = head.wrapping_sub(prev);
        if ahead == 0 || (ahead as i64) < 0 {
            return Stalled::Blocked; // full (behind: garbage)
        }
        let Some(wait) = wait else {
            return Stalled::Blocked;
        };
        let slot = self.slot(pos);
        // Acquire: pairs with the consumer's AcqRel claim (see above).
        let held = slot[1].load(Ordering::Acquire);
        if role_at(held, prev) == Role::Consumer && owner_known(held) {
            if wait.check_owner() && owner_is_dead(held) && self.recover_pop_at(prev) {
                self.ctl.space().notify();
                return Stalled::Retry;
            }
            // Until the consumer frees the slot (its free notifies `space`)
            // or someone takes its claim over. Acquire (both): as the loads
            // above, for the look again that follows.
            let changed = || {
                slot[0].load(Ordering::Acquire) != seq || slot[1].load(Ordering::Acquire) != held
            };
            return if wait.wait(self.ctl.space(), changed) {
                Stalled::Retry
            } else {
                Stalled::Blocked
            };
        }
        // No consumer's claim on `prev`: our view is stale (the slot moved
        // on since `seq` was read) or the words are garbage.
        // Acquire: as the caller's load.
        if slot[0].load(Ordering::Acquire) != seq {
            Stalled::Retry
        } else {
            Stalled::Blocked
        }
    }

    /// A consumer found the slot of head position `pos` unpublished
    /// (sequence `seq`, below `full_seq(pos)`). Empty (or closed and
    /// drained) if no push counted at `pos` (the tail is not past it);
    /// otherwise a producer is in flight there: waits for it to publish
    /// (with `wait`; without, answers empty), turning its slot into a hole
    /// if its process died.
    pub(super) fn pop_stalled(&self, pos: u64, seq: u64, wait: Option<&mut InFlight>) -> Stalled {
        // Acquire pairs with the Release compare-and-swap that moved the
        // tail past `pos` (`move_tail`): the producer claim on `pos` it
        // covered is visible to the claim read below.
        let tail = self.ctl.tail.load(Ordering::Acquire);
        let ahead = (tail & !TAIL_CLOSED).wrapping_sub(pos);
        if ahead == 0 || (ahead as i64) < 0 {
            // No push counted at `pos` (behind: garbage).
            return if ahead == 0 && tail & TAIL_CLOSED != 0 {
                Stalled::Closed
            } else {
                Stalled::Blocked
            };
        }
        let Some(wait) = wait else {
            return Stalled::Blocked;
        };
        let slot = self.slot(pos);
        // Acquire: pairs with the producer's AcqRel claim (see above).
        let held = slot[1].load(Ordering::Acquire);
        let role = role_at(held, pos);
        if role == Role::Hole || (role == Role::Producer && owner_known(held)) {
            // A hole whose recoverer has not published it yet (it may have
            // died too) is finished at once; a dead producer's claim becomes
            // a hole.
            let dead = role == Role::Hole || (wait.check_owner() && owner_is_dead(held));
            if dead && self.recover_push_at(pos) {
                self.ctl.data().notify();
                return Stalled::Retry;
            }
            // Until the producer publishes (which notifies `data`) or its
            // claim is recovered. Acquire (both): as the loads above.
            let changed = || {
                slot[0].load(Ordering::Acquire) != seq || slot[1].load(Ordering::Acquire) != held
            };
            return if wait.wait(self.ctl.data(), changed) {
                Stalled::Retry
            } else {
                Stalled::Blocked
            };
        }
        // Not a producer's claim on `pos`: as in `push_stalled`.
        // Acquire: as the caller's load.
        if slot[0].load(Ordering::Acquire) != seq {
            Stalled::Retry
        } else {
            Stalled::Blocked
        }
    }

    /// Recovers position `pos` if a producer whose process is gone claimed
    /// it and never published it: turns the claim into the hole mark
    /// (counting its task done) and publishes the hole. Also publishes a
    /// hole whose recoverer died before publishing it. Returns whether it
    /// published a hole.
    fn recover_push_at(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        // Relaxed: validated by the compare-and-swap below.
        let held = slot[1].load(Ordering::Relaxed);
        let hole = claim(Role::Hole, 0, pos);
        match role_at(held, pos) {
            Role::Producer if owner_is_dead(held) => {
                // Acquire pairs with the producer's Release of its sequence.
                // Read only now, after its death was seen: a publish it
                // made before dying is visible (see the module docs).
                if slot[0].load(Ordering::Acquire) != free_seq(pos) {
                    return false; // published (or already moved on)
                }
                // AcqRel: exactly one survivor turns the claim into the
                // hole mark; the Release half publishes it with the
                // sequence store below.
                if slot[1]
                    .compare_exchange(held, hole, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    return false;
                }
                // Relaxed: a statistic.
                self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
                // Its task will never be done by anyone.
                self.finish_tasks(1);
            }
            Role::Hole => {} // made, perhaps not published: finish it
            _ => return false,
        }
        // A compare-and-swap, not a store: a second survivor finishing the
        // same hole must not overwrite a later lap's sequence. Release
        // pairs with the consumer's Acquire of the sequence: it sees the
        // hole mark with it. Relaxed on failure: nothing to see.
        slot[0]
            .compare_exchange(
                free_seq(pos),
                full_seq(pos),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Turns the slots from the head on (at most [`BATCH_MAX`], before the
    /// tail) that producers whose processes are gone claimed and never
    /// published into holes that consumers skip, counting their tasks done.
    /// Also publishes a hole whose recoverer died before publishing it.
    /// Returns how many holes it published.
    pub fn recover_abandoned_push(&self) -> usize {
        // Relaxed: positions only; every slot is re-validated by its claim.
        let head = self.ctl.head.load(Ordering::Relaxed);
        // Only positions the tail covers: a claim past it never counted
        // (its push never returned `Ok`; a producer helping the tail over it
        // brings it in).
        let span = self.ctl.pushed().wrapping_sub(head).min(BATCH_MAX as u64);
        let done = (0..span)
            .filter(|&k| self.recover_push_at(head.wrapping_add(k)))
            .count();
        if done > 0 {
            self.ctl.data().notify();
        }
        done
    }

    /// Frees the slot of position `prev` if a consumer whose process is
    /// gone claimed it and never freed it (its item is lost with it),
    /// moving the head past it if nobody had. Returns whether it freed it.
    fn recover_pop_at(&self, prev: u64) -> bool {
        let slot = self.slot(prev);
        // Relaxed: validated by the compare-and-swap below.
        let held = slot[1].load(Ordering::Relaxed);
        if role_at(held, prev) != Role::Consumer || !owner_is_dead(held) {
            return false;
        }
        // Acquire pairs with the Release that published the slot; read
        // after the death was seen, as in `recover_push_at`.
        if slot[0].load(Ordering::Acquire) != full_seq(prev) {
            return false; // freed before it died
        }
        // AcqRel: exactly one survivor takes the claim over; if it dies
        // too, the next one finds its claim and does the same.
        if slot[1]
            .compare_exchange(
                held,
                claim(Role::Consumer, self.me(), prev),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // Relaxed: a statistic.
        self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
        self.move_head(prev, 1);
        // Release pairs with the producer's Acquire of the sequence. A
        // compare-and-swap for symmetry with the push side: only the
        // claim's holder frees the slot. Relaxed on failure: nothing to see.
        slot[0]
            .compare_exchange(
                full_seq(prev),
                free_seq(prev.wrapping_add(self.mask + 1)),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Frees the slots the tail waits for (at most [`BATCH_MAX`], up to
    /// the head) that consumers whose processes are gone claimed and never
    /// freed; their items are lost with them. Returns how many.
    pub fn recover_abandoned_pop(&self) -> usize {
        // The previous lap's position of the slot the tail waits for.
        let first = self.ctl.pushed().wrapping_sub(self.mask + 1);
        // Relaxed: positions only; every slot is re-validated by its claim.
        let head = self.ctl.head.load(Ordering::Relaxed);
        // Up to the head itself: a consumer may have died between its claim
        // and moving the head.
        let span = (head.wrapping_sub(first).wrapping_add(1)).min(BATCH_MAX as u64);
        let done = (0..span)
            .filter(|&k| self.recover_pop_at(first.wrapping_add(k)))
            .count();
        if done > 0 {
            self.ctl.space().notify();
        }
        done
    }
}

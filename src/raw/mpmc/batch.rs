//! Batches: up to [`BATCH_MAX`] consecutive positions claimed one
//! compare-and-swap each, the tail (head) moved past all of them at once,
//! and one wake-up for the lot.

use super::claim::{Content, PopClaim, PushClaim, Room};
use super::recovery::{InFlight, Stalled};
use super::{
    BATCH_MAX, RawQueue, Role, SLOT_HEADER_WORDS, TAIL_CLOSED, free_seq, full_seq, role_at,
};
use crate::sync::{AtomicU64, Ordering};

impl RawQueue<'_> {
    /// Claims up to `max` consecutive free positions (a compare-and-swap
    /// each, stopping at the first it cannot have), moves the tail past
    /// them, runs `write(i, payload)` for each, and publishes them. Returns
    /// how many (0 if full). One call claims at most [`BATCH_MAX`]
    /// positions, and never takes the queue past its bound (it claims at
    /// most as many as the bound left room for when it read the head). Like [`try_push_with`](Self::try_push_with), it waits out
    /// a pop in flight in the slot at the tail rather than answer 0.
    ///
    /// # Errors
    ///
    /// `Closed` if the queue was closed.
    pub fn push_batch_with(
        &self,
        max: usize,
        mut write: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, crate::error::Closed> {
        if self.is_closed() {
            return Err(crate::error::Closed);
        }
        let max = max.min(self.capacity()).min(BATCH_MAX) as u64;
        if max == 0 {
            return Ok(0);
        }
        let mut wait = InFlight::new(self.patience);
        let mut pos = self.tail_now();
        loop {
            if pos & TAIL_CLOSED != 0 {
                return Err(crate::error::Closed);
            }
            // A bound below the capacity: no more than it leaves room for
            // (see `room_at`; the branch always goes the same way).
            let mut limit = max;
            if self.bounded() {
                match self.room_at(pos) {
                    Room::Free(room) => limit = limit.min(room),
                    Room::Full => return Ok(0),
                    Room::Moved => {
                        pos = self.tail_now();
                        continue;
                    }
                }
            }
            let mut n = 0;
            while n < limit {
                let p = pos.wrapping_add(n);
                let slot = self.slot(p);
                // Acquire pairs with the Release that freed the slot.
                if slot[0].load(Ordering::Acquire) != free_seq(p)
                    || self.claim_push(slot, p) != PushClaim::Won
                {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                let slot = self.slot(pos);
                // Acquire: as above.
                let seq = slot[0].load(Ordering::Acquire);
                let diff = seq.wrapping_sub(free_seq(pos)) as i64;
                if diff == 0 {
                    // Acquire: as in `claim_push` (and what a helper must
                    // have seen before moving the tail, see `move_tail`).
                    if role_at(slot[1].load(Ordering::Acquire), pos) != Role::None {
                        self.move_tail(pos, 1); // another producer's: help
                    }
                } else if diff < 0 {
                    match self.push_stalled(pos, seq, Some(&mut wait)) {
                        Stalled::Retry => {}
                        Stalled::Blocked | Stalled::Closed => return Ok(0),
                    }
                } else {
                    let now = self.tail_now();
                    if now == pos {
                        return Ok(0); // garbage ahead
                    }
                }
                pos = self.tail_now();
                continue;
            }
            let counted = self.move_tail(pos, n);
            if counted == 0 {
                return Err(crate::error::Closed);
            }
            for k in 0..counted {
                let p = pos.wrapping_add(k);
                let slot = self.slot(p);
                write(k as usize, &slot[SLOT_HEADER_WORDS..]);
                // Release pairs with the consumer's Acquire of the sequence.
                slot[0].store(full_seq(p), Ordering::Release);
            }
            self.ctl.data().notify();
            return Ok(counted as usize);
        }
    }

    /// Claims up to `max` consecutive published positions (a
    /// compare-and-swap each), moves the head past them, runs
    /// `read(i, payload)` for each item (holes left by dead producers are
    /// skipped without a call), and frees the slots. Returns how many items
    /// were read (0 if empty). One call claims at most [`BATCH_MAX`]
    /// positions. Like [`try_pop_with`](Self::try_pop_with), it waits out a
    /// push in flight at the head rather than answer 0 with completed
    /// pushes behind it.
    ///
    /// # Errors
    ///
    /// `Closed` once the queue is closed and drained.
    pub fn pop_batch_with(
        &self,
        max: usize,
        mut read: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, crate::error::Closed> {
        let max = max.min(self.capacity()).min(BATCH_MAX) as u64;
        let mut pos = self.head_now();
        if max == 0 {
            return if self.closed_at(pos) {
                Err(crate::error::Closed)
            } else {
                Ok(0)
            };
        }
        let mut wait = InFlight::new(self.patience);
        loop {
            let mut n = 0;
            let mut holes = 0u64;
            while n < max {
                let p = pos.wrapping_add(n);
                let slot = self.slot(p);
                // Acquire pairs with the producer's Release of its sequence.
                if slot[0].load(Ordering::Acquire) != full_seq(p) {
                    break;
                }
                match self.claim_pop(slot, p) {
                    PopClaim::Won(content) => holes |= u64::from(content == Content::Hole) << n,
                    PopClaim::Taken | PopClaim::Stale | PopClaim::Changed => break,
                }
                n += 1;
            }
            if n == 0 {
                let slot = self.slot(pos);
                // Acquire: as above.
                let seq = slot[0].load(Ordering::Acquire);
                let diff = seq.wrapping_sub(full_seq(pos)) as i64;
                if diff == 0 {
                    let now = self.head_now();
                    // Acquire: as in `claim_pop` (and what a helper must
                    // have seen before moving the head, see `move_head`).
                    match role_at(slot[1].load(Ordering::Acquire), pos) {
                        Role::Consumer => self.move_head(pos, 1), // taken: help
                        Role::Producer | Role::Hole => {}         // changed: again
                        Role::None if now == pos => return Ok(0), // garbage
                        Role::None => {}
                    }
                } else if diff < 0 {
                    match self.pop_stalled(pos, seq, Some(&mut wait)) {
                        Stalled::Retry => {}
                        Stalled::Blocked => return Ok(0),
                        Stalled::Closed => return Err(crate::error::Closed),
                    }
                } else {
                    let now = self.head_now();
                    if now == pos {
                        return Ok(0); // garbage ahead
                    }
                }
                pos = self.head_now();
                continue;
            }
            self.move_head(pos, n);
            let mut got = 0;
            for k in 0..n {
                let p = pos.wrapping_add(k);
                let slot = self.slot(p);
                if holes & (1 << k) == 0 {
                    read(got, &slot[SLOT_HEADER_WORDS..]);
                    got += 1;
                }
                // Release pairs with the next lap producer's Acquire.
                slot[0].store(free_seq(p.wrapping_add(self.mask + 1)), Ordering::Release);
            }
            self.ctl.space().notify();
            if got > 0 {
                return Ok(got);
            }
            // Only holes: look again.
            pos = self.head_now();
        }
    }
}

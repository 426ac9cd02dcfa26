//! The multi-producer, multi-consumer ring: the job of
//! `multiprocessing.Queue` and `JoinableQueue`, for any number of processes
//! at once, with no lock.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>):
//! a sequence number per slot says whose turn the slot is, and producers
//! (consumers) claim positions with a compare-and-swap on the tail (head).
//! Slot `p & (capacity - 1)` holds position `p`; its sequence is `p` when
//! free for the producer of `p`, `p + 1` when it holds `p`'s item, and
//! `p + capacity` once consumed (free for the next lap).
//!
//! Slots are words: `[sequence, claim, payload...]`. The payload is copied
//! through relaxed atomic word accesses, ordered by the sequence's
//! release/acquire, so there is no data race even with a misbehaving peer,
//! and the same code runs in a mapping, on the heap and under loom. The
//! payload is a typed value ([`Queue`]) or a length and bytes
//! ([`ByteQueue`]).
//!
//! # Processes that die mid-operation
//!
//! Right after winning a position, a producer or consumer stores a *claim*
//! in the slot: its role, its pid and the position. A process killed
//! between that claim and publishing the slot would stall everyone behind
//! it; instead, a waiter that finds the slot stuck and the claimer's pid
//! gone recovers it: an abandoned push becomes a hole that consumers skip
//! (Aeron pads abandoned claims the same way), an abandoned pop frees the
//! slot (its item was taken by the dead consumer and is lost with it).
//! Recovery is a compare-and-swap on the claim word, so exactly one
//! survivor does it. A process killed in the two instructions between
//! winning the position and storing its claim cannot be told apart from a
//! slow one: waiters then wait, within their timeout.

use std::time::{Duration, Instant};

use crate::error::{PopError, PushError, TryPopError, TryPushError};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitPoint;

/// Words before a slot's payload: sequence and claim.
pub const SLOT_HEADER_WORDS: usize = 2;

/// `flags` bit: the queue counts unfinished tasks (`task_done`/`join`).
pub const FLAG_JOINABLE: u32 = 1;

/// How often a blocked caller looks for slots abandoned by dead processes.
pub const RECOVERY_CHECK: Duration = Duration::from_millis(50);

const ROLE_PRODUCER: u64 = 1;
const ROLE_CONSUMER: u64 = 2;
const ROLE_HOLE: u64 = 3;

/// The claim word: role (2 bits), pid (30 bits), position (low 32 bits).
#[inline(always)]
fn claim(role: u64, pid: u32, pos: u64) -> u64 {
    (role << 62) | ((u64::from(pid) & 0x3fff_ffff) << 32) | (pos & 0xffff_ffff)
}

fn claim_parts(word: u64) -> (u64, u32, u64) {
    (
        word >> 62,
        ((word >> 32) & 0x3fff_ffff) as u32,
        word & 0xffff_ffff,
    )
}

/// The queue's shared words (everything but the slots).
#[repr(C)]
pub struct Control {
    tail: AtomicU64,
    _pad0: [u64; 15],
    head: AtomicU64,
    _pad1: [u64; 15],
    closed: AtomicU32,
    flags: AtomicU32,
    unfinished: AtomicU64,
    data_epoch: AtomicU32,
    data_waiters: AtomicU32,
    space_epoch: AtomicU32,
    space_waiters: AtomicU32,
    join_epoch: AtomicU32,
    join_waiters: AtomicU32,
    recovered: AtomicU64,
    _pad2: [u64; 10],
}

#[cfg(not(loom))]
mod layout_checks {
    use std::mem::offset_of;

    use static_assertions::const_assert_eq;

    use super::Control;

    const_assert_eq!(
        size_of::<Control>(),
        crate::layout::RING_CONTROL_SIZE as usize
    );
    const_assert_eq!(offset_of!(Control, tail), 0);
    const_assert_eq!(offset_of!(Control, head), 128);
    const_assert_eq!(offset_of!(Control, closed), 256);
    const_assert_eq!(offset_of!(Control, flags), 260);
    const_assert_eq!(offset_of!(Control, unfinished), 264);
    const_assert_eq!(offset_of!(Control, data_epoch), 272);
    const_assert_eq!(offset_of!(Control, data_waiters), 276);
    const_assert_eq!(offset_of!(Control, space_epoch), 280);
    const_assert_eq!(offset_of!(Control, space_waiters), 284);
    const_assert_eq!(offset_of!(Control, join_epoch), 288);
    const_assert_eq!(offset_of!(Control, join_waiters), 292);
    const_assert_eq!(offset_of!(Control, recovered), 296);
}

#[cfg(not(loom))]
// SAFETY: repr(C), made only of the switch module's atomics (integer
// layout, any bit pattern valid) and u64 padding; alignment 8; offsets
// pinned above.
unsafe impl crate::region::MappedAtomic for Control {}

/// A display snapshot of a queue's control words (each read on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Next position to claim for a push.
    pub tail: u64,
    /// Next position to claim for a pop.
    pub head: u64,
    /// Non-zero once closed.
    pub closed: u32,
    /// [`FLAG_JOINABLE`] if tasks are counted.
    pub flags: u32,
    /// Items pushed and not yet marked done (joinable queues).
    pub unfinished: u64,
    /// Slots recovered from dead processes so far.
    pub recovered: u64,
    /// Consumers asleep waiting for items.
    pub data_waiters: u32,
    /// Producers asleep waiting for room.
    pub space_waiters: u32,
    /// Processes asleep in `join`.
    pub join_waiters: u32,
}

impl Default for Control {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Control {
    /// Fresh control words with `flags` ([`FLAG_JOINABLE`] or 0).
    pub fn new(flags: u32) -> Self {
        Self {
            tail: AtomicU64::new(0),
            _pad0: [0; 15],
            head: AtomicU64::new(0),
            _pad1: [0; 15],
            closed: AtomicU32::new(0),
            flags: AtomicU32::new(flags),
            unfinished: AtomicU64::new(0),
            data_epoch: AtomicU32::new(0),
            data_waiters: AtomicU32::new(0),
            space_epoch: AtomicU32::new(0),
            space_waiters: AtomicU32::new(0),
            join_epoch: AtomicU32::new(0),
            join_waiters: AtomicU32::new(0),
            recovered: AtomicU64::new(0),
            _pad2: [0; 10],
        }
    }

    /// Sets the creation flags (only while nobody else can see the words).
    pub fn init_flags(&self, flags: u32) {
        // Relaxed: the file is still private to its creator.
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Each word, read once (Relaxed: a display snapshot).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            tail: self.tail.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
            unfinished: self.unfinished.load(Ordering::Relaxed),
            recovered: self.recovered.load(Ordering::Relaxed),
            data_waiters: self.data_waiters.load(Ordering::Relaxed),
            space_waiters: self.space_waiters.load(Ordering::Relaxed),
            join_waiters: self.join_waiters.load(Ordering::Relaxed),
        }
    }

    fn data(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.data_epoch, &self.data_waiters)
    }

    fn space(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.space_epoch, &self.space_waiters)
    }

    fn joined(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.join_epoch, &self.join_waiters)
    }
}

/// Why `task_done` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// More `task_done` calls than items pushed.
    #[error("task_done called more times than items were pushed")]
    TooManyDone,
    /// The queue was not created joinable.
    #[error("the queue does not track tasks (create it joinable)")]
    NotJoinable,
}

/// Why `join` returned without every task done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The timeout passed with this many tasks unfinished.
    #[error("timed out with {0} tasks unfinished")]
    Timeout(u64),
    /// The queue was not created joinable.
    #[error("the queue does not track tasks (create it joinable)")]
    NotJoinable,
}

/// What happened to one attempt on a slot.
enum Attempt<R> {
    Done(R),
    /// Full (push) or empty (pop).
    Blocked,
    Closed,
}

/// A queue over memory the caller hands in: control words and `capacity`
/// slots of `stride` words each. Any number of these, in any number of
/// threads or processes, may work on the same memory at once. The typed
/// [`Queue`] and [`ByteQueue`] wrap one over a mapped file.
#[derive(Clone, Copy)]
pub struct RawQueue<'a> {
    ctl: &'a Control,
    words: &'a [AtomicU64],
    mask: u64,
    stride: usize,
    joinable: bool,
    me: u32,
}

impl std::fmt::Debug for RawQueue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQueue")
            .field("capacity", &self.capacity())
            .field("stride", &self.stride)
            .finish()
    }
}

impl<'a> RawQueue<'a> {
    /// Words a queue of `capacity` slots with `payload_words` each needs.
    pub fn words_needed(capacity: usize, payload_words: usize) -> usize {
        capacity * (SLOT_HEADER_WORDS + payload_words)
    }

    /// Sets every slot's sequence to its first position (what a fresh
    /// queue needs; only while nobody else can see the words).
    pub fn init_slots(words: &[AtomicU64], capacity: usize) {
        let stride = words.len() / capacity;
        for i in 0..capacity {
            // Relaxed: the memory is still private to its creator.
            words[i * stride].store(i as u64, Ordering::Relaxed);
        }
    }

    /// A view of a queue. `words` holds `capacity` slots (the stride is
    /// `words.len() / capacity`), initialized by [`RawQueue::init_slots`].
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two of at least 2, or `words` is not
    /// `capacity` slots of more than [`SLOT_HEADER_WORDS`] words.
    pub fn new(ctl: &'a Control, words: &'a [AtomicU64], capacity: usize) -> Self {
        assert!(
            capacity >= 2 && capacity.is_power_of_two(),
            "mpmc capacity must be a power of two >= 2, got {capacity}"
        );
        let stride = words.len() / capacity;
        assert!(
            stride > SLOT_HEADER_WORDS && stride * capacity == words.len(),
            "{} words are not {capacity} slots of a payload",
            words.len()
        );
        Self {
            ctl,
            words,
            mask: capacity as u64 - 1,
            stride,
            // Relaxed: set before the file was published, never changed.
            joinable: ctl.flags.load(Ordering::Relaxed) & FLAG_JOINABLE != 0,
            me: crate::pid::current(),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mask as usize + 1
    }

    /// Words of payload per slot.
    pub fn payload_words(&self) -> usize {
        self.stride - SLOT_HEADER_WORDS
    }

    /// Whether the queue counts tasks.
    pub fn is_joinable(&self) -> bool {
        self.joinable
    }

    #[inline(always)]
    fn slot(&self, pos: u64) -> &'a [AtomicU64] {
        // Masked: in bounds whatever position a peer wrote.
        let start = (pos & self.mask) as usize * self.stride;
        &self.words[start..start + self.stride]
    }

    #[inline]
    fn is_closed(&self) -> bool {
        // Acquire pairs with the Release `fetch_or` in `close`.
        self.ctl.closed.load(Ordering::Acquire) != 0
    }

    /// One push attempt: claims a position and runs `write` on its payload
    /// words, or says why not.
    #[inline]
    fn attempt_push(&self, write: &mut dyn FnMut(&[AtomicU64])) -> Attempt<()> {
        if self.is_closed() {
            return Attempt::Closed;
        }
        // Relaxed: the slot's sequence (Acquire, below) is what orders the
        // payload; the tail only hands out positions.
        let mut pos = self.ctl.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            // Acquire pairs with the Release store that freed the slot (a
            // consumer's, or `init_slots`): its payload reads are done.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i64;
            if diff == 0 {
                // Relaxed: see the tail load above.
                match self.ctl.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        if self.joinable {
                            // Relaxed: ordered before the consumer's
                            // decrement by the slot's Release/Acquire below.
                            self.ctl.unfinished.fetch_add(1, Ordering::Relaxed);
                        }
                        // Relaxed: the claim is published with the slot.
                        slot[1].store(claim(ROLE_PRODUCER, self.me, pos), Ordering::Relaxed);
                        write(&slot[SLOT_HEADER_WORDS..]);
                        // Release pairs with the consumer's Acquire load of
                        // the sequence: the payload is visible with it.
                        slot[0].store(pos.wrapping_add(1), Ordering::Release);
                        self.ctl.data().notify();
                        return Attempt::Done(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                // The slot still holds the item of the previous lap: full.
                return Attempt::Blocked;
            } else {
                // Another producer took `pos`: try the current tail.
                // Relaxed: see above.
                let now = self.ctl.tail.load(Ordering::Relaxed);
                if now == pos {
                    // The sequence is ahead of the tail: only a peer writing
                    // garbage does that. Report full rather than spin.
                    return Attempt::Blocked;
                }
                pos = now;
            }
        }
    }

    /// One pop attempt: claims a position and runs `read` on its payload
    /// words, or says why not. Holes left by dead producers are skipped.
    #[inline]
    fn attempt_pop<R>(&self, read: &mut dyn FnMut(&[AtomicU64]) -> R) -> Attempt<R> {
        // Relaxed: the slot's sequence (Acquire, below) orders the payload.
        let mut pos = self.ctl.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            // Acquire pairs with the producer's Release store of `pos + 1`:
            // the payload (and claim) it wrote are visible.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as i64;
            if diff == 0 {
                // Relaxed: see the head load above.
                match self.ctl.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // Relaxed: read after the Acquire above.
                        let hole = claim_parts(slot[1].load(Ordering::Relaxed)).0 == ROLE_HOLE;
                        // Relaxed: the claim is a diagnostic for recovery.
                        slot[1].store(claim(ROLE_CONSUMER, self.me, pos), Ordering::Relaxed);
                        let out = if hole {
                            None
                        } else {
                            Some(read(&slot[SLOT_HEADER_WORDS..]))
                        };
                        // Release pairs with the next lap's producer Acquire:
                        // our payload reads are done before it overwrites.
                        slot[0].store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                        self.ctl.space().notify();
                        match out {
                            Some(r) => return Attempt::Done(r),
                            None => {
                                // A hole: its task will never be done by
                                // anyone; count it done and go on.
                                self.finish_tasks(1);
                                // Relaxed: a statistic.
                                pos = self.ctl.head.load(Ordering::Relaxed);
                                continue;
                            }
                        }
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                // Empty, or the slot at `pos` is claimed and unfinished.
                // Closed and drained only if nothing was claimed past us.
                // Acquire (in is_closed) pairs with `close`'s Release.
                if self.is_closed() {
                    // Relaxed: after the Acquire above, the tail of every
                    // push claimed before the close is visible.
                    let tail = self.ctl.tail.load(Ordering::Relaxed);
                    if tail == pos {
                        return Attempt::Closed;
                    }
                }
                return Attempt::Blocked;
            } else {
                // Relaxed: see above.
                let now = self.ctl.head.load(Ordering::Relaxed);
                if now == pos {
                    return Attempt::Blocked;
                }
                pos = now;
            }
        }
    }

    /// Claims up to `max` consecutive free positions with one
    /// compare-and-swap of the tail, runs `write(i, payload)` for each, and
    /// publishes them. Returns how many (0 if full).
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
        let max = max.min(self.capacity());
        // Relaxed: positions only; each slot's sequence orders its payload.
        let mut pos = self.ctl.tail.load(Ordering::Relaxed);
        loop {
            // Count the free slots from `pos` on. Acquire pairs with the
            // Release that freed each one.
            let n = (0..max as u64)
                .take_while(|&k| {
                    let p = pos.wrapping_add(k);
                    self.slot(p)[0].load(Ordering::Acquire) == p
                })
                .count();
            if n == 0 {
                // Relaxed: positions only.
                let now = self.ctl.tail.load(Ordering::Relaxed);
                if now == pos {
                    return Ok(0);
                }
                pos = now;
                continue;
            }
            // Relaxed: as in `attempt_push`. Winning the CAS from `pos`
            // means no other producer claimed any of the `n` positions, and
            // consumers never touch a free slot, so all `n` are ours.
            match self.ctl.tail.compare_exchange_weak(
                pos,
                pos.wrapping_add(n as u64),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.joinable {
                        // Relaxed: as in `attempt_push`.
                        self.ctl.unfinished.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    for k in 0..n {
                        let p = pos.wrapping_add(k as u64);
                        let slot = self.slot(p);
                        // Relaxed: published with the slot.
                        slot[1].store(claim(ROLE_PRODUCER, self.me, p), Ordering::Relaxed);
                        write(k, &slot[SLOT_HEADER_WORDS..]);
                        // Release pairs with the consumer's Acquire of the
                        // sequence.
                        slot[0].store(p.wrapping_add(1), Ordering::Release);
                    }
                    self.ctl.data().notify();
                    return Ok(n);
                }
                Err(now) => pos = now,
            }
        }
    }

    /// Claims up to `max` consecutive published positions with one
    /// compare-and-swap of the head, runs `read(i, payload)` for each item
    /// (holes left by dead producers are skipped without a call), and frees
    /// the slots. Returns how many items were read (0 if empty).
    ///
    /// # Errors
    ///
    /// `Closed` once the queue is closed and drained.
    pub fn pop_batch_with(
        &self,
        max: usize,
        mut read: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, crate::error::Closed> {
        let max = max.min(self.capacity());
        // Relaxed: positions only.
        let mut pos = self.ctl.head.load(Ordering::Relaxed);
        loop {
            // Acquire pairs with each producer's Release of `p + 1`.
            let n = (0..max as u64)
                .take_while(|&k| {
                    let p = pos.wrapping_add(k);
                    self.slot(p)[0].load(Ordering::Acquire) == p.wrapping_add(1)
                })
                .count();
            if n == 0 {
                // Relaxed: positions only.
                let now = self.ctl.head.load(Ordering::Relaxed);
                if now != pos {
                    pos = now;
                    continue;
                }
                // Same test as `attempt_pop` for closed and drained.
                if self.is_closed() && self.ctl.tail.load(Ordering::Relaxed) == pos {
                    return Err(crate::error::Closed);
                }
                return Ok(0);
            }
            // Relaxed: as in `attempt_pop`; winning from `pos` makes all `n`
            // published items ours.
            match self.ctl.head.compare_exchange_weak(
                pos,
                pos.wrapping_add(n as u64),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let mut got = 0;
                    let mut holes = 0;
                    for k in 0..n {
                        let p = pos.wrapping_add(k as u64);
                        let slot = self.slot(p);
                        // Relaxed: read after the Acquire above.
                        let hole = claim_parts(slot[1].load(Ordering::Relaxed)).0 == ROLE_HOLE;
                        // Relaxed: diagnostic for recovery.
                        slot[1].store(claim(ROLE_CONSUMER, self.me, p), Ordering::Relaxed);
                        if hole {
                            holes += 1;
                        } else {
                            read(got, &slot[SLOT_HEADER_WORDS..]);
                            got += 1;
                        }
                        // Release pairs with the next lap producer's Acquire.
                        slot[0].store(p.wrapping_add(self.mask + 1), Ordering::Release);
                    }
                    self.ctl.space().notify();
                    if holes > 0 {
                        self.finish_tasks(holes);
                    }
                    if got == 0 {
                        // Only holes: look again.
                        // Relaxed: positions only.
                        pos = self.ctl.head.load(Ordering::Relaxed);
                        continue;
                    }
                    return Ok(got);
                }
                Err(now) => pos = now,
            }
        }
    }

    /// Pushes by running `write` on a slot's payload words, never waiting.
    ///
    /// # Errors
    ///
    /// `Full` or `Closed` (the `()` inside stands for the payload the caller
    /// still holds).
    pub fn try_push_with(
        &self,
        mut write: impl FnMut(&[AtomicU64]),
    ) -> Result<(), TryPushError<()>> {
        match self.attempt_push(&mut write) {
            Attempt::Done(()) => Ok(()),
            Attempt::Blocked => Err(TryPushError::Full(())),
            Attempt::Closed => Err(TryPushError::Closed(())),
        }
    }

    /// Pops by running `read` on a slot's payload words, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_with<R>(
        &self,
        mut read: impl FnMut(&[AtomicU64]) -> R,
    ) -> Result<R, TryPopError> {
        match self.attempt_pop(&mut read) {
            Attempt::Done(r) => Ok(r),
            Attempt::Blocked => Err(TryPopError::Empty),
            Attempt::Closed => Err(TryPopError::Closed),
        }
    }

    /// Pushes, sleeping while full, until `deadline` (`None`: no limit).
    /// While blocked, looks every [`RECOVERY_CHECK`] for a slot abandoned by
    /// a dead consumer and frees it.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] or [`PushError::Timeout`] (with `()` standing
    /// for the payload the caller still holds).
    pub fn push_with_until(
        &self,
        mut write: impl FnMut(&[AtomicU64]),
        deadline: Option<Instant>,
    ) -> Result<(), PushError<()>> {
        loop {
            let slice_end = Instant::now() + RECOVERY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let res =
                self.ctl
                    .space()
                    .wait_until(Some(until), || match self.attempt_push(&mut write) {
                        Attempt::Done(()) => Some(Ok(())),
                        Attempt::Closed => Some(Err(PushError::Closed(()))),
                        Attempt::Blocked => None,
                    });
            if let Ok(r) = res {
                return r;
            }
            self.recover_abandoned_pop();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return match self.attempt_push(&mut write) {
                    Attempt::Done(()) => Ok(()),
                    Attempt::Closed => Err(PushError::Closed(())),
                    Attempt::Blocked => Err(PushError::Timeout(())),
                };
            }
        }
    }

    /// Pops, sleeping while empty, until `deadline` (`None`: no limit).
    /// While blocked, looks every [`RECOVERY_CHECK`] for a slot abandoned by
    /// a dead producer and turns it into a hole.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained, or [`PopError::Timeout`].
    pub fn pop_with_until<R>(
        &self,
        mut read: impl FnMut(&[AtomicU64]) -> R,
        deadline: Option<Instant>,
    ) -> Result<R, PopError> {
        loop {
            let slice_end = Instant::now() + RECOVERY_CHECK;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            let res =
                self.ctl
                    .data()
                    .wait_until(Some(until), || match self.attempt_pop(&mut read) {
                        Attempt::Done(r) => Some(Ok(r)),
                        Attempt::Closed => Some(Err(PopError::Closed)),
                        Attempt::Blocked => None,
                    });
            if let Ok(r) = res {
                return r;
            }
            self.recover_abandoned_push();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return match self.attempt_pop(&mut read) {
                    Attempt::Done(r) => Ok(r),
                    Attempt::Closed => Err(PopError::Closed),
                    Attempt::Blocked => Err(PopError::Timeout),
                };
            }
        }
    }

    /// If the slot at the head was claimed by a producer whose process is
    /// gone, turns it into a hole that consumers skip. Returns whether it
    /// did.
    pub fn recover_abandoned_push(&self) -> bool {
        // Relaxed: positions are re-validated against the slot below.
        let pos = self.ctl.head.load(Ordering::Relaxed);
        let tail = self.ctl.tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(pos) as i64 <= 0 {
            return false; // nothing claimed past the head
        }
        let slot = self.slot(pos);
        // Acquire: pairs with the Release that last set the sequence.
        if slot[0].load(Ordering::Acquire) != pos {
            return false; // published already (or not this lap's)
        }
        // Relaxed: the CAS below validates it.
        let word = slot[1].load(Ordering::Relaxed);
        let (role, pid, low) = claim_parts(word);
        if role != ROLE_PRODUCER || low != pos & 0xffff_ffff || crate::pid::is_alive(pid) {
            return false;
        }
        // AcqRel: exactly one survivor turns the claim into a hole.
        if slot[1]
            .compare_exchange(
                word,
                claim(ROLE_HOLE, 0, pos),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // Release pairs with the consumer's Acquire of the sequence: it
        // sees the hole mark with it.
        slot[0].store(pos.wrapping_add(1), Ordering::Release);
        // Relaxed: a statistic.
        self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
        self.ctl.data().notify();
        true
    }

    /// If the slot at the tail is held by a consumer whose process is gone
    /// (it claimed the item and died before freeing the slot), frees it; the
    /// item is lost with the consumer. Returns whether it did.
    pub fn recover_abandoned_pop(&self) -> bool {
        // Relaxed: positions are re-validated against the slot below.
        let pos = self.ctl.tail.load(Ordering::Relaxed);
        let prev = pos.wrapping_sub(self.mask + 1);
        let head = self.ctl.head.load(Ordering::Relaxed);
        if head.wrapping_sub(prev) as i64 <= 0 {
            return false; // the previous lap's item was not claimed yet
        }
        let slot = self.slot(pos);
        // Acquire: pairs with the Release that last set the sequence.
        if slot[0].load(Ordering::Acquire) != prev.wrapping_add(1) {
            return false; // freed already
        }
        // Relaxed: the CAS below validates it.
        let word = slot[1].load(Ordering::Relaxed);
        let (role, pid, low) = claim_parts(word);
        if role != ROLE_CONSUMER || low != prev & 0xffff_ffff || crate::pid::is_alive(pid) {
            return false;
        }
        // AcqRel: exactly one survivor frees the slot.
        if slot[1]
            .compare_exchange(
                word,
                claim(ROLE_HOLE, 0, prev),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // Release pairs with the producer's Acquire of the sequence.
        slot[0].store(pos, Ordering::Release);
        // Relaxed: a statistic.
        self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
        self.ctl.space().notify();
        true
    }

    /// Closes the queue: pushes are refused from now on, consumers drain
    /// what is left and then get `Closed`. Wakes every sleeper.
    pub fn close(&self) {
        // Release pairs with the Acquire loads in `is_closed`: a consumer
        // that sees the close sees every tail claimed before it.
        self.ctl.closed.fetch_or(1, Ordering::Release);
        self.ctl.data().notify();
        self.ctl.space().notify();
        self.ctl.joined().notify();
    }

    /// Whether the queue was closed.
    pub fn is_closed_now(&self) -> bool {
        self.is_closed()
    }

    /// Items in the queue right now (claimed positions included; a
    /// snapshot, clamped to the capacity).
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot.
        let tail = self.ctl.tail.load(Ordering::Relaxed);
        let head = self.ctl.head.load(Ordering::Relaxed);
        let n = tail.wrapping_sub(head);
        if n > self.mask + 1 {
            if (n as i64) < 0 { 0 } else { self.capacity() }
        } else {
            n as usize
        }
    }

    /// Whether the queue is empty right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn finish_tasks(&self, n: u64) {
        if !self.joinable {
            return;
        }
        // AcqRel: pairs with `join`'s Acquire load; never below zero.
        let _ = self
            .ctl
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                u.checked_sub(n).or(Some(0))
            });
        self.ctl.joined().notify();
    }

    /// Marks one popped item as processed (`JoinableQueue.task_done`).
    ///
    /// # Errors
    ///
    /// [`TaskError::TooManyDone`] if every pushed item is already done (the
    /// count stays at zero, it never wraps); [`TaskError::NotJoinable`].
    pub fn task_done(&self) -> Result<(), TaskError> {
        if !self.joinable {
            return Err(TaskError::NotJoinable);
        }
        // AcqRel: the Release half pairs with `join`'s Acquire load (the
        // work done before `task_done` is visible to the joiner); Relaxed on
        // failure: nothing changed.
        self.ctl
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| u.checked_sub(1))
            .map_err(|_| TaskError::TooManyDone)?;
        self.ctl.joined().notify();
        Ok(())
    }

    /// Items pushed and not yet marked done (a snapshot).
    pub fn unfinished(&self) -> u64 {
        // Relaxed: a snapshot.
        self.ctl.unfinished.load(Ordering::Relaxed)
    }

    /// Waits until every pushed item has been marked done, until `deadline`.
    ///
    /// # Errors
    ///
    /// [`JoinError::Timeout`] with the number still unfinished, or
    /// [`JoinError::NotJoinable`].
    pub fn join_until(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        if !self.joinable {
            return Err(JoinError::NotJoinable);
        }
        self.ctl
            .joined()
            .wait_until(deadline, || {
                // Acquire pairs with the AcqRel decrement in `task_done`.
                (self.ctl.unfinished.load(Ordering::Acquire) == 0).then_some(())
            })
            .map_err(|_| JoinError::Timeout(self.unfinished()))
    }
}

pub use crate::error::BytePushError;
#[cfg(not(loom))]
pub use mapped::{ByteQueue, Queue, QueueOptions};

#[cfg(not(loom))]
mod mapped;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Mem {
        ctl: Control,
        words: Vec<AtomicU64>,
    }

    fn mem(capacity: usize, payload: usize, flags: u32) -> Mem {
        let words: Vec<AtomicU64> = (0..RawQueue::words_needed(capacity, payload))
            .map(|_| AtomicU64::new(0))
            .collect();
        RawQueue::init_slots(&words, capacity);
        Mem {
            ctl: Control::new(flags),
            words,
        }
    }

    fn q(m: &Mem) -> RawQueue<'_> {
        RawQueue::new(&m.ctl, &m.words, m.words.len() / 3)
    }

    fn push(q: &RawQueue<'_>, v: u64) -> Result<(), TryPushError<()>> {
        q.try_push_with(|w| w[0].store(v, Ordering::Relaxed))
    }

    fn pop(q: &RawQueue<'_>) -> Result<u64, TryPopError> {
        q.try_pop_with(|w| w[0].load(Ordering::Relaxed))
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn fifo_full_and_wrap() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        for round in 0..5u64 {
            for i in 0..4 {
                push(&q, round * 10 + i).unwrap();
            }
            assert_eq!(push(&q, 99), Err(TryPushError::Full(())));
            assert_eq!(q.len(), 4);
            for i in 0..4 {
                assert_eq!(pop(&q), Ok(round * 10 + i));
            }
            assert_eq!(pop(&q), Err(TryPopError::Empty));
        }
    }

    #[test]
    fn close_refuses_pushes_and_drains() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        q.close();
        assert_eq!(push(&q, 2), Err(TryPushError::Closed(())));
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(pop(&q), Err(TryPopError::Closed));
        assert_eq!(
            q.pop_with_until(|w| w[0].load(Ordering::Relaxed), None),
            Err(PopError::Closed)
        );
    }

    #[test]
    fn batches_claim_what_is_there() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        let vals = [1u64, 2, 3, 4, 5];
        let n = q
            .push_batch_with(5, |i, w| w[0].store(vals[i], Ordering::Relaxed))
            .unwrap();
        assert_eq!(n, 4);
        let mut out = [0u64; 3];
        let got = q
            .pop_batch_with(3, |i, w| out[i] = w[0].load(Ordering::Relaxed))
            .unwrap();
        assert_eq!((got, out), (3, [1, 2, 3]));
        assert_eq!(
            q.push_batch_with(8, |_, w| w[0].store(6, Ordering::Relaxed)),
            Ok(3)
        );
        let mut all = Vec::new();
        while let Ok(n) = q.pop_batch_with(2, |_, w| all.push(w[0].load(Ordering::Relaxed))) {
            if n == 0 {
                break;
            }
        }
        assert_eq!(all, [4, 6, 6, 6]);
    }

    #[test]
    fn task_done_and_join() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        push(&q, 1).unwrap();
        push(&q, 2).unwrap();
        assert_eq!(q.unfinished(), 2);
        let soon = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(q.join_until(soon), Err(JoinError::Timeout(2)));
        pop(&q).unwrap();
        q.task_done().unwrap();
        pop(&q).unwrap();
        q.task_done().unwrap();
        assert_eq!(q.join_until(None), Ok(()));
        assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
        assert_eq!(q.unfinished(), 0, "never wraps below zero");
        let plain = mem(2, 1, 0);
        let p = RawQueue::new(&plain.ctl, &plain.words, 2);
        assert_eq!(p.task_done(), Err(TaskError::NotJoinable));
        assert_eq!(p.join_until(None), Err(JoinError::NotJoinable));
    }

    #[test]
    fn a_push_abandoned_by_a_dead_producer_becomes_a_skipped_hole() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        push(&q, 1).unwrap();
        // A producer claims position 1, counts its task, writes its claim,
        // and dies before publishing.
        let dead = dead_pid();
        m.ctl.tail.store(2, Ordering::Relaxed);
        m.ctl.unfinished.fetch_add(1, Ordering::Relaxed);
        q.slot(1)[1].store(claim(ROLE_PRODUCER, dead, 1), Ordering::Relaxed);
        push(&q, 3).unwrap();
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(
            pop(&q),
            Err(TryPopError::Empty),
            "stuck behind the dead claim"
        );
        assert!(
            !q.recover_abandoned_pop(),
            "nothing for producers to recover"
        );
        assert!(q.recover_abandoned_push());
        assert!(!q.recover_abandoned_push(), "exactly once");
        assert_eq!(pop(&q), Ok(3), "the hole is skipped");
        assert_eq!(m.ctl.snapshot().recovered, 1);
        // Tasks: 1 and 3 pushed, the hole counted done on the dead one's behalf.
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert_eq!(q.unfinished(), 0);
    }

    #[test]
    fn a_slot_held_by_a_dead_consumer_is_freed() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        push(&q, 2).unwrap();
        // A consumer claims position 0 and dies before freeing its slot.
        let dead = dead_pid();
        m.ctl.head.store(1, Ordering::Relaxed);
        q.slot(0)[1].store(claim(ROLE_CONSUMER, dead, 0), Ordering::Relaxed);
        assert_eq!(push(&q, 3), Err(TryPushError::Full(())));
        assert!(!q.recover_abandoned_push());
        assert!(q.recover_abandoned_pop());
        push(&q, 3).unwrap();
        assert_eq!(pop(&q), Ok(2));
        assert_eq!(pop(&q), Ok(3));
    }

    #[test]
    fn a_live_claimer_is_never_recovered() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        m.ctl.tail.store(1, Ordering::Relaxed);
        q.slot(0)[1].store(
            claim(ROLE_PRODUCER, crate::pid::current(), 0),
            Ordering::Relaxed,
        );
        assert!(!q.recover_abandoned_push());
        assert_eq!(pop(&q), Err(TryPopError::Empty));
    }

    #[test]
    fn garbage_words_give_errors_or_wrong_data_never_a_hang_or_panic() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        let garbage = [0u64, 1, 3, u64::MAX, 1 << 63, 0xdead_beef, 5];
        for (i, &g) in garbage.iter().cycle().take(200).enumerate() {
            match i % 4 {
                0 => m.ctl.tail.store(g, Ordering::Relaxed),
                1 => m.ctl.head.store(g.rotate_left(7), Ordering::Relaxed),
                2 => m.words[(g as usize) % m.words.len()].store(g ^ 0x55, Ordering::Relaxed),
                _ => m.ctl.unfinished.store(g, Ordering::Relaxed),
            }
            let _ = push(&q, 1);
            let _ = pop(&q);
            let _ = q.push_batch_with(3, |_, w| w[0].store(2, Ordering::Relaxed));
            let _ = q.pop_batch_with(3, |_, _| ());
            let _ = q.recover_abandoned_push();
            let _ = q.recover_abandoned_pop();
            let _ = q.task_done();
            assert!(q.len() <= 4);
        }
    }
}

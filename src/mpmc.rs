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
//! in the slot: its role, its pid and the position (a batch stores one
//! claim naming its first position on each of its slots, last slot first,
//! so that slots it did not get to are still known to be its). A process
//! killed
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

/// Bit 63 of the tail word: the queue is closed. Set by `close` with one
/// atomic OR, it makes every later compare-and-swap of the tail fail (they
/// all expect a value without it), so no push can claim a position after
/// the close, and the tail's position part is final from then on.
pub const TAIL_CLOSED: u64 = 1 << 63;

/// Most positions one batch (`push_batch_with`, `pop_batch_with`) claims:
/// a claim names its batch's first position, and recovery looks at most
/// this far for it.
pub const BATCH_MAX: usize = 64;

/// How often a blocked caller looks for slots abandoned by dead processes.
pub const RECOVERY_CHECK: Duration = Duration::from_millis(50);

const ROLE_PRODUCER: u64 = 1;
const ROLE_CONSUMER: u64 = 2;
const ROLE_HOLE: u64 = 3;

/// The claim word: role (2 bits), pid (30 bits), and the low 32 bits of the
/// first position of the claimer's batch (its own position for a single
/// push or pop). A batch stores its claims last slot first, so a process
/// that dies while storing them leaves a claim *after* the slots it did not
/// get to, and that claim proves who won them (see `dead_claimer`).
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

/// Whether a claim whose batch starts at (the low 32 bits) `start` covers
/// position `pos`: `pos` is at most [`BATCH_MAX`] - 1 past it.
#[inline]
fn covers(start: u64, pos: u64) -> bool {
    (pos.wrapping_sub(start) & 0xffff_ffff) < BATCH_MAX as u64
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
            tail: self.tail.load(Ordering::Relaxed) & !TAIL_CLOSED,
            head: self.head.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed)
                | u32::from(self.tail.load(Ordering::Relaxed) & TAIL_CLOSED != 0),
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

    /// The same view, storing `pid` in the claims it makes (the pid that
    /// recovery checks). For models and tests that play a process which
    /// dies mid-operation; real callers keep their own pid.
    #[must_use]
    pub fn as_pid(self, pid: u32) -> Self {
        Self { me: pid, ..self }
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

    /// Closed and drained, for a consumer whose next position is `pos` and
    /// found it unpublished: the tail carries TAIL_CLOSED (so it is final)
    /// and no push claimed a position at or past `pos`.
    #[inline]
    fn closed_at(&self, pos: u64) -> bool {
        // Relaxed: only the value matters; once TAIL_CLOSED is seen the tail
        // never changes again, and a tail still moving means not drained.
        let tail = self.ctl.tail.load(Ordering::Relaxed);
        tail & TAIL_CLOSED != 0 && tail & !TAIL_CLOSED == pos
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
            if pos & TAIL_CLOSED != 0 {
                return Attempt::Closed;
            }
            let slot = self.slot(pos);
            // Acquire pairs with the Release store that freed the slot (a
            // consumer's, or `init_slots`): its payload reads are done.
            let seq = slot[0].load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i64;
            if diff == 0 {
                // Relaxed: see the tail load above. Fails once `close` has
                // set TAIL_CLOSED, so a push either claims its position
                // before the close (and consumers drain it) or is refused.
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
                if self.closed_at(pos) {
                    return Attempt::Closed;
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
    /// publishes them. Returns how many (0 if full). One call claims at
    /// most [`BATCH_MAX`] positions.
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
        let max = max.min(self.capacity()).min(BATCH_MAX);
        // Relaxed: positions only; each slot's sequence orders its payload.
        let mut pos = self.ctl.tail.load(Ordering::Relaxed);
        loop {
            if pos & TAIL_CLOSED != 0 {
                return Err(crate::error::Closed);
            }
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
                    // Every claim first, last slot first, then the payloads:
                    // if this process dies mid-batch, each unpublished slot
                    // names it or lies before one that does (see
                    // `dead_claimer`), and survivors turn them into holes.
                    let mine = claim(ROLE_PRODUCER, self.me, pos);
                    for k in (0..n).rev() {
                        // Relaxed: published with the slot; read by
                        // recovery, validated by its CAS.
                        self.slot(pos.wrapping_add(k as u64))[1].store(mine, Ordering::Relaxed);
                    }
                    for k in 0..n {
                        let p = pos.wrapping_add(k as u64);
                        let slot = self.slot(p);
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
    /// the slots. Returns how many items were read (0 if empty). One call
    /// claims at most [`BATCH_MAX`] positions.
    ///
    /// # Errors
    ///
    /// `Closed` once the queue is closed and drained.
    pub fn pop_batch_with(
        &self,
        max: usize,
        mut read: impl FnMut(usize, &[AtomicU64]),
    ) -> Result<usize, crate::error::Closed> {
        let max = max.min(self.capacity()).min(BATCH_MAX);
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
                if self.closed_at(pos) {
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
                    // Which slots are holes, then every claim (last slot
                    // first), then the reads: if this process dies
                    // mid-batch, each slot it has not freed names it or lies
                    // before one that does, and producers free them.
                    let mut hole_bits = 0u64;
                    for k in 0..n {
                        let p = pos.wrapping_add(k as u64);
                        // Relaxed: read after the Acquire above.
                        if claim_parts(self.slot(p)[1].load(Ordering::Relaxed)).0 == ROLE_HOLE {
                            hole_bits |= 1 << k;
                        }
                    }
                    let mine = claim(ROLE_CONSUMER, self.me, pos);
                    for k in (0..n).rev() {
                        // Relaxed: read by recovery, validated by its CAS.
                        self.slot(pos.wrapping_add(k as u64))[1].store(mine, Ordering::Relaxed);
                    }
                    for k in 0..n {
                        let p = pos.wrapping_add(k as u64);
                        let slot = self.slot(p);
                        if hole_bits & (1 << k) != 0 {
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
        // The common case first: no clock read unless the call must wait.
        match self.attempt_push(&mut write) {
            Attempt::Done(()) => return Ok(()),
            Attempt::Closed => return Err(PushError::Closed(())),
            Attempt::Blocked => {}
        }
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
        // The common case first: no clock read unless the call must wait.
        match self.attempt_pop(&mut read) {
            Attempt::Done(r) => return Ok(r),
            Attempt::Closed => return Err(PopError::Closed),
            Attempt::Blocked => {}
        }
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

    /// The claim word on `pos`'s slot if `pos` was won by a process (of
    /// `role`) that is now dead and left it unfinished, `None` otherwise.
    ///
    /// A slot is unfinished while its sequence is `pos + offset` (0: won by
    /// a producer, not published; 1: won by a consumer, not freed), for
    /// positions before `end` (the tail or the head: won by someone). The
    /// first unfinished slot from `pos` on that carries a claim of `role`
    /// decides: it belongs to this lap (a slot's claim is rewritten by every
    /// role that takes it, so an unfinished slot carries `role` only if this
    /// lap's claimer stored it), and if its batch start covers `pos`, the
    /// claimer won every position from that start to that slot with one
    /// compare-and-swap, `pos` included. Slots before it without a claim
    /// are the ones a batch did not get to (claims go last slot first).
    ///
    /// A process killed between its compare-and-swap and its first claim
    /// store leaves nothing to find: waiters then wait for it, within their
    /// timeout, as for a slow process.
    fn dead_claimer(&self, pos: u64, role: u64, offset: u64, end: u64) -> Option<u64> {
        // Relaxed: the recovery CAS validates it.
        let own = self.slot(pos)[1].load(Ordering::Relaxed);
        for k in 0..BATCH_MAX as u64 {
            let q = pos.wrapping_add(k);
            if end.wrapping_sub(q) as i64 <= 0 {
                return None; // not won by anyone
            }
            let slot = self.slot(q);
            // Acquire: pairs with the Release that last set the sequence
            // (the claim read below is at least as new as that lap's).
            if slot[0].load(Ordering::Acquire) != q.wrapping_add(offset) {
                return None; // finished: a batch finishes in order
            }
            // Relaxed: validated by the recovery CAS on `pos`'s slot.
            let (r, pid, start) = claim_parts(slot[1].load(Ordering::Relaxed));
            if r == role {
                return (covers(start, pos) && covers(start, q) && !crate::pid::is_alive(pid))
                    .then_some(own);
            }
        }
        None
    }

    /// Turns the slots from the head on that were claimed by producers whose
    /// processes are gone into holes that consumers skip. Returns how many.
    pub fn recover_abandoned_push(&self) -> usize {
        // Relaxed: positions are re-validated against the slots.
        let head = self.ctl.head.load(Ordering::Relaxed);
        let tail = self.ctl.tail.load(Ordering::Relaxed) & !TAIL_CLOSED;
        let mut done = 0;
        let mut pos = head;
        while done < BATCH_MAX {
            let hole = claim(ROLE_HOLE, 0, pos);
            let Some(word) = self.dead_claimer(pos, ROLE_PRODUCER, 0, tail) else {
                break;
            };
            if word == hole {
                // Recovered already (by us or another survivor, whose
                // sequence store we have not seen yet): the CAS below would
                // succeed without changing anything.
                break;
            }
            // AcqRel: exactly one survivor turns the slot into a hole.
            if self.slot(pos)[1]
                .compare_exchange(word, hole, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                break;
            }
            // Release pairs with the consumer's Acquire of the sequence: it
            // sees the hole mark with it.
            self.slot(pos)[0].store(pos.wrapping_add(1), Ordering::Release);
            // Relaxed: a statistic.
            self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
            done += 1;
            pos = pos.wrapping_add(1);
        }
        if done > 0 {
            self.ctl.data().notify();
        }
        done
    }

    /// Frees the slots from the tail on that are held by consumers whose
    /// processes are gone (they claimed the items and died before freeing
    /// the slots); the items are lost with them. Returns how many.
    pub fn recover_abandoned_pop(&self) -> usize {
        // Relaxed: positions are re-validated against the slots.
        let tail = self.ctl.tail.load(Ordering::Relaxed) & !TAIL_CLOSED;
        let head = self.ctl.head.load(Ordering::Relaxed);
        let mut done = 0;
        // The previous lap's position of the slot the tail waits for.
        let mut prev = tail.wrapping_sub(self.mask + 1);
        while done < BATCH_MAX {
            let hole = claim(ROLE_HOLE, 0, prev);
            let Some(word) = self.dead_claimer(prev, ROLE_CONSUMER, 1, head) else {
                break;
            };
            if word == hole {
                // Freed already, as above. (Also what a hole left by a dead
                // producer looks like when the consumer that took it died
                // before storing its claim: one of the windows nobody can
                // tell from a slow process.)
                break;
            }
            // AcqRel: exactly one survivor frees the slot.
            if self.slot(prev)[1]
                .compare_exchange(word, hole, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                break;
            }
            // Release pairs with the producer's Acquire of the sequence.
            self.slot(prev)[0].store(prev.wrapping_add(self.mask + 1), Ordering::Release);
            // Relaxed: a statistic.
            self.ctl.recovered.fetch_add(1, Ordering::Relaxed);
            done += 1;
            prev = prev.wrapping_add(1);
        }
        if done > 0 {
            self.ctl.space().notify();
        }
        done
    }

    /// Closes the queue: pushes are refused from now on, consumers drain
    /// what is left and then get `Closed`. Wakes every sleeper.
    pub fn close(&self) {
        // Relaxed: the bit only has to be in the tail's modification order;
        // every push that claimed a position is before it there, and every
        // later compare-and-swap of the tail fails (see TAIL_CLOSED).
        self.ctl.tail.fetch_or(TAIL_CLOSED, Ordering::Relaxed);
        // Release pairs with the Acquire load in `is_closed`, the fast path
        // that refuses pushes before they touch the tail.
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
        let tail = self.ctl.tail.load(Ordering::Relaxed) & !TAIL_CLOSED;
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
        let dead = crate::pid::dead_pid();
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
        assert_eq!(
            q.recover_abandoned_pop(),
            0,
            "nothing for producers to recover"
        );
        assert_eq!(q.recover_abandoned_push(), 1);
        assert_eq!(q.recover_abandoned_push(), 0, "exactly once");
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
        let dead = crate::pid::dead_pid();
        m.ctl.head.store(1, Ordering::Relaxed);
        q.slot(0)[1].store(claim(ROLE_CONSUMER, dead, 0), Ordering::Relaxed);
        assert_eq!(push(&q, 3), Err(TryPushError::Full(())));
        assert_eq!(q.recover_abandoned_push(), 0);
        assert_eq!(q.recover_abandoned_pop(), 1);
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
        assert_eq!(q.recover_abandoned_push(), 0);
        assert_eq!(pop(&q), Err(TryPopError::Empty));
    }

    #[test]
    fn a_batch_abandoned_while_storing_its_claims_is_recovered() {
        let m = mem(8, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        // A producer wins positions 1..5 with one CAS and dies after storing
        // its claim (naming the batch start, 1) on slots 4 and 3 only.
        let dead = crate::pid::dead_pid();
        m.ctl.tail.store(5, Ordering::Relaxed);
        for p in [4, 3] {
            q.slot(p)[1].store(claim(ROLE_PRODUCER, dead, 1), Ordering::Relaxed);
        }
        push(&q, 6).unwrap();
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(pop(&q), Err(TryPopError::Empty));
        assert_eq!(q.recover_abandoned_push(), 4, "positions 1 to 4");
        assert_eq!(pop(&q), Ok(6), "the holes are skipped");
        assert_eq!(q.recover_abandoned_push(), 0);
    }

    #[test]
    fn slots_before_a_live_or_later_claim_are_left_alone() {
        let m = mem(8, 1, 0);
        let q = q(&m);
        let dead = crate::pid::dead_pid();
        // Positions 0 and 1 won by someone who stored no claim yet (alive
        // or not, nobody can tell), 2 and 3 by a dead batch starting at 2.
        m.ctl.tail.store(4, Ordering::Relaxed);
        for p in [2, 3] {
            q.slot(p)[1].store(claim(ROLE_PRODUCER, dead, 2), Ordering::Relaxed);
        }
        assert_eq!(q.recover_abandoned_push(), 0);
        // The same batch claimed by a live process: left alone too.
        q.slot(0)[1].store(
            claim(ROLE_PRODUCER, crate::pid::current(), 0),
            Ordering::Relaxed,
        );
        assert_eq!(q.recover_abandoned_push(), 0);
    }

    #[test]
    fn a_pop_batch_abandoned_while_storing_its_claims_is_freed() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        for v in 1..=4 {
            push(&q, v).unwrap();
        }
        // A consumer wins positions 0..3 and dies after claiming slot 2.
        let dead = crate::pid::dead_pid();
        m.ctl.head.store(3, Ordering::Relaxed);
        q.slot(2)[1].store(claim(ROLE_CONSUMER, dead, 0), Ordering::Relaxed);
        assert_eq!(push(&q, 5), Err(TryPushError::Full(())));
        assert_eq!(q.recover_abandoned_pop(), 3);
        for v in 5..=7 {
            push(&q, v).unwrap();
        }
        assert_eq!(pop(&q), Ok(4));
        assert_eq!(pop(&q), Ok(5));
    }

    #[test]
    fn a_push_after_close_is_refused_even_past_the_closed_check() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        q.close();
        // As if a producer had read `closed` = 0 before the close: the tail
        // CAS still fails, because the tail carries the closed bit.
        m.ctl.closed.store(0, Ordering::Relaxed);
        assert_eq!(push(&q, 2), Err(TryPushError::Closed(())));
        assert_eq!(
            q.push_batch_with(2, |_, w| w[0].store(3, Ordering::Relaxed)),
            Err(crate::error::Closed)
        );
        assert_eq!(q.len(), 1);
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(pop(&q), Err(TryPopError::Closed));
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

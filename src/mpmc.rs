//! The multi-producer, multi-consumer ring: the job of
//! `multiprocessing.Queue` and `JoinableQueue`, for any number of processes
//! at once, with no lock.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>):
//! a sequence number per slot says whose turn the slot is. Slot
//! `p & (capacity - 1)` holds position `p`. Sequences count half-steps:
//! a slot's sequence is `2p` when free for the producer of `p`, `2p + 1`
//! when it holds `p`'s item, and `2(p + capacity)` once consumed (free for
//! the next lap). (Vyukov's whole steps, `p` and `p + 1`, cannot tell "holds
//! `p`" from "free for `p + 1`" in a queue of one slot; crossbeam's
//! `ArrayQueue` doubles its laps for the same reason.)
//!
//! Slots are words: `[sequence, claim, payload...]`. The payload is copied
//! through relaxed atomic word accesses, ordered by the sequence's
//! release/acquire, so there is no data race even with a misbehaving peer,
//! and the same code runs in a mapping, on the heap and under loom. The
//! payload is a typed value ([`Queue`]) or a length and bytes
//! ([`ByteQueue`]).
//!
//! # Who owns a position: the claim word
//!
//! Where Vyukov's producers (consumers) win a position with a
//! compare-and-swap of the tail (head), ours win it with a compare-and-swap
//! of the slot's *claim* word, from whatever the previous lap left there
//! to their own claim: role, pid and position. The tail (head) then only
//! records how far the claims go: the winner moves it past its position,
//! and so does any producer (consumer) that finds the slot at the tail
//! (head) already claimed, so a claimer that stops never holds the others
//! up. A batch claims consecutive slots one compare-and-swap each and moves
//! the tail (head) past all of them at once.
//!
//! A push counts once the tail has moved past its position: `close` sets a
//! bit in the tail ([`TAIL_CLOSED`]) that makes every later move fail, so a
//! producer whose claim the tail had not covered when the queue closed
//! gives its position up and reports `Closed`. A pop counts from its claim.
//!
//! # Never a false "empty" or "full": waiting out a claimer in flight
//!
//! A push is done once the tail is past its position *and* it published;
//! between the two, the slot at the head may be claimed and not published
//! while pushes after it are complete. A consumer that finds the slot at
//! the head unpublished therefore looks at the tail: not past the head, the
//! queue is empty; past it, a push there counted and is in flight, and the
//! consumer waits for it (spinning, then yielding, as crossbeam's
//! `ArrayQueue::pop` does, then sleeping on the queue's futex until the
//! publish wakes it) instead of answering "empty" with completed pushes
//! queued behind it. Likewise a producer that finds the slot at the
//! tail still holding the previous lap's item looks at the head: not past
//! that item, the queue is full; past it, a pop there is in flight, and the
//! producer waits for it to free the slot. A claimer found dead meanwhile
//! is recovered on the spot (below). The wait is bounded by
//! [`IN_FLIGHT_PATIENCE`], which only a process stopped in the middle of an
//! operation (`SIGSTOP`, a debugger) or a peer writing garbage exhausts;
//! blocking calls do not wait this way, they sleep until the claimer's
//! publish (free) wakes them.
//!
//! # Processes that die mid-operation
//!
//! Because the winning step *is* the claim, there is no instant at which a
//! position is won and nothing in the queue says by whom. A process killed
//! at any point after its claim leaves the slot claimed under a dead pid;
//! a waiter that finds it there recovers it: an abandoned push becomes a
//! hole that consumers skip (Aeron pads abandoned claims the same way), an
//! abandoned pop frees the slot (its item was taken by the dead consumer
//! and is lost with it). Recovery is a compare-and-swap on the claim word,
//! so exactly one survivor does it, and its own last step (storing the
//! sequence) is a compare-and-swap too, so that another survivor can finish
//! it if the first one dies as well.
//!
//! Recovery reads a dead producer's sequence only *after* it has seen that
//! the process is gone, and trusts that every store a process made before
//! it died is visible once its death is (its exit and our `kill(pid, 0)`
//! both go through the kernel, which orders them).
//!
//! Claims hold the low 40 bits of the position, so the claim compare-and-
//! swap can only be fooled (ABA) by a process that stops between reading a
//! claim and swapping it while 2^40 other operations run on the queue.

use std::time::{Duration, Instant};

pub use crate::error::{JoinError, JoinTimeoutError, TaskError};
use crate::error::{
    PopError, PopTimeoutError, PushError, PushTimeoutError, TryPopError, TryPushError,
};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitPoint;

/// Words before a slot's payload: sequence and claim.
pub const SLOT_HEADER_WORDS: usize = 2;

/// `flags` bit: the queue counts unfinished tasks (`task_done`/`join`).
pub const FLAG_JOINABLE: u32 = 1;

/// Bit 63 of the tail word: the queue is closed. Set by `close` with one
/// atomic OR, it makes every later compare-and-swap of the tail fail (they
/// all expect a value without it), so no push can count after the close,
/// and the tail's position part is final from then on.
pub const TAIL_CLOSED: u64 = 1 << 63;

/// Most positions one batch (`push_batch_with`, `pop_batch_with`) claims,
/// and most slots one recovery call looks at.
pub const BATCH_MAX: usize = 64;

/// How often a blocked caller looks for slots abandoned by dead processes.
pub const RECOVERY_CHECK: Duration = Duration::from_millis(50);

/// The longest a non-blocking call (`try_push`, `try_pop`, the batches, the
/// last look of a timed call) waits for a live peer caught between its
/// claim and its publish (free) before it answers "empty" ("full") after
/// all (see "Never a false empty" in the module docs). A live peer needs
/// nanoseconds, or a time slice when it was preempted; only a process
/// stopped mid-operation or a peer writing garbage makes a call wait this
/// long. Dead claimers are recovered, never waited for.
pub const IN_FLIGHT_PATIENCE: Duration = Duration::from_secs(1);

/// While waiting out a claimer in flight, its liveness (a `kill(2)` and a
/// `/proc` read) is checked this often.
const OWNER_CHECK: Duration = Duration::from_millis(10);

const ROLE_NONE: u64 = 0;
const ROLE_PRODUCER: u64 = 1;
const ROLE_CONSUMER: u64 = 2;
const ROLE_HOLE: u64 = 3;

/// Bits of the position a claim holds.
const POS_BITS: u32 = 40;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Bits of the pid a claim holds: Linux pids are below 2^22
/// (`PID_MAX_LIMIT`). A larger pid is stored as 0, which recovery treats
/// as alive (never recovered).
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// The claim word: role (bits 63-62), pid (61-40), and the low 40 bits of
/// the position claimed.
#[inline(always)]
fn claim(role: u64, pid: u32, pos: u64) -> u64 {
    (role << 62) | (u64::from(pid) << POS_BITS) | (pos & POS_MASK)
}

/// The pid a claim can carry for `pid`: itself, or 0 (never recovered) if
/// it does not fit.
fn claim_pid(pid: u32) -> u32 {
    if u64::from(pid) <= PID_MASK { pid } else { 0 }
}

/// The role of `word` if it is a claim on position `pos`, else
/// [`ROLE_NONE`] (a claim of an earlier lap, or none yet).
#[inline(always)]
fn role_at(word: u64, pos: u64) -> u64 {
    if (word ^ pos) & POS_MASK == 0 {
        word >> 62
    } else {
        ROLE_NONE
    }
}

/// The pid in a claim word.
#[inline]
fn claim_owner(word: u64) -> u32 {
    ((word >> POS_BITS) & PID_MASK) as u32
}

/// Whether the process that made a claim is gone (pid 0: unknown, taken as
/// alive).
fn owner_is_dead(word: u64) -> bool {
    let pid = claim_owner(word);
    pid != 0 && !crate::pid::is_alive(pid)
}

/// The sequence of a slot free for the producer of position `pos`:
/// sequences count half-steps (see the module docs). The bit shifted out
/// is dropped on purpose: sequences wrap, and are only ever compared by
/// their wrapping difference.
#[inline(always)]
fn free_seq(pos: u64) -> u64 {
    pos << 1
}

/// The sequence of a slot holding the item of position `pos`.
#[inline(always)]
fn full_seq(pos: u64) -> u64 {
    (pos << 1) | 1
}

/// Whether a claim word names a process (pid 0 is "unknown": a pid that did
/// not fit, or garbage). Only such claimers are waited for.
#[inline]
fn owner_known(word: u64) -> bool {
    claim_owner(word) != 0
}

/// Waiting out a peer in flight between its claim and its publish (free),
/// on the wait point that the publish (free) notifies: a short spin, then
/// yields (on 2 cores a waiter that only spins can starve the very process
/// it waits for), then a futex sleep, in slices of [`OWNER_CHECK`] between
/// which the caller checks whether the peer died; gives up after
/// its patience ([`IN_FLIGHT_PATIENCE`] unless the queue's view says
/// otherwise). (Sleeping rather than yielding for ever also keeps the loom
/// models finite: two yielding waiters could otherwise hand the processor
/// to each other while the peer they wait for never runs.)
#[derive(Debug)]
struct InFlight {
    /// The end of the patience, set by the first wait.
    until: Option<Instant>,
    /// How long the first wait may last in all.
    patience: Duration,
}

impl InFlight {
    fn new(patience: Duration) -> Self {
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
    fn wait(&mut self, point: WaitPoint<'_>, mut changed: impl FnMut() -> bool) -> bool {
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
enum Stalled {
    /// Empty (pop) or full (push): nothing in flight to wait for.
    Blocked,
    /// Closed and drained (pop).
    Closed,
    /// Something changed, or a wait is over: look again.
    Retry,
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
    /// Tasks done (joinable queues): `task_done` calls plus holes. The
    /// unfinished ones are the tail's position minus this.
    done: AtomicU64,
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
    const_assert_eq!(offset_of!(Control, done), 264);
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
unsafe impl crate::layout::MappedAtomic for Control {}

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
            done: AtomicU64::new(0),
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

    /// The tail's position (without [`TAIL_CLOSED`]): positions pushed.
    /// Relaxed: every caller only needs some recent value (see each).
    fn pushed(&self) -> u64 {
        self.tail.load(Ordering::Relaxed) & !TAIL_CLOSED
    }

    /// Unfinished tasks: pushed minus done, never below zero (0 if the
    /// queue does not count tasks).
    fn unfinished(&self) -> u64 {
        // Relaxed (both): a snapshot; the flags never change after creation.
        if self.flags.load(Ordering::Relaxed) & FLAG_JOINABLE == 0 {
            return 0;
        }
        self.pushed()
            .saturating_sub(self.done.load(Ordering::Relaxed))
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
            unfinished: self.unfinished(),
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
    /// The pid this view's claims carry (see [`claim_pid`]), if set by
    /// [`as_pid`](Self::as_pid); else the calling process's, read at each
    /// claim (so a forked child that inherited the view claims as itself).
    me: Option<u32>,
    /// How long a `try_*` call waits out a peer in flight.
    patience: Duration,
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

    /// Sets every slot's sequence to "free for its first position" and its
    /// claim to none (what a fresh queue needs; only while nobody else can
    /// see the words).
    pub fn init_slots(words: &[AtomicU64], capacity: usize) {
        let stride = words.len() / capacity;
        for i in 0..capacity {
            // Relaxed: the memory is still private to its creator.
            words[i * stride].store(free_seq(i as u64), Ordering::Relaxed);
            words[i * stride + 1].store(claim(ROLE_NONE, 0, 0), Ordering::Relaxed);
        }
    }

    /// A view of a queue. `words` holds `capacity` slots (the stride is
    /// `words.len() / capacity`), initialized by [`RawQueue::init_slots`].
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two (1 included), or `words` is not
    /// `capacity` slots of more than [`SLOT_HEADER_WORDS`] words.
    pub fn new(ctl: &'a Control, words: &'a [AtomicU64], capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "mpmc capacity must be a power of two, got {capacity}"
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
            me: None,
            patience: IN_FLIGHT_PATIENCE,
        }
    }

    /// The same view, with `patience` as the longest a `try_*` call waits
    /// out a peer in flight (a push claimed but not yet published at the
    /// head, a pop not yet freed at the tail) before it answers `Empty`
    /// (`Full`) after all. [`IN_FLIGHT_PATIENCE`] by default; zero never
    /// waits (the calls are then no longer linearizable: a push that
    /// returned can be behind one in flight that a pop does not wait for).
    #[must_use]
    pub fn with_in_flight_patience(self, patience: Duration) -> Self {
        Self { patience, ..self }
    }

    /// The patience of a timed call's last look, made after its deadline:
    /// one owner check at most.
    fn last_look(&self) -> Duration {
        self.patience.min(OWNER_CHECK)
    }

    /// The pid this view's claims carry.
    #[inline]
    fn me(&self) -> u32 {
        self.me.unwrap_or_else(|| claim_pid(crate::pid::current()))
    }

    /// The same view, storing `pid` in the claims it makes (the pid that
    /// recovery checks). For models and tests that play a process which
    /// dies mid-operation; real callers keep their own pid.
    #[must_use]
    pub fn as_pid(self, pid: u32) -> Self {
        Self {
            me: Some(claim_pid(pid)),
            ..self
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

    /// Closed and drained, for a consumer whose next position is `pos`
    /// (used by empty batches): the tail carries TAIL_CLOSED (so it is
    /// final) and no push counted at or past `pos`.
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

    /// The tail, where a producer looks for its position (the slot's
    /// sequence, read with Acquire, orders the payload).
    ///
    /// Acquire pairs with the Release compare-and-swap that moved the tail
    /// there (`move_tail`; through its release sequence, every earlier
    /// move): what those producers did before (the pops they made) happens
    /// before what this caller does next, so its look at the head
    /// (`push_stalled`) is at least as new, and it does not take a pop that
    /// is done for one that never happened.
    #[inline(always)]
    fn tail_now(&self) -> u64 {
        self.ctl.tail.load(Ordering::Acquire)
    }

    /// The head, where a consumer looks for its item. Acquire pairs with
    /// the Release moves of the head (`move_head`), as in `tail_now`: a
    /// consumer that sees the head past an item another thread popped also
    /// sees the pushes that thread made before, so its look at the tail
    /// (`pop_stalled`) cannot be older and answer "empty" with such a push
    /// queued (found by loom, `a_pop_after_a_completed_push_never_finds_
    /// the_queue_empty`: a relaxed head showed one thread's pop and a
    /// stale tail hid its push).
    #[inline(always)]
    fn head_now(&self) -> u64 {
        self.ctl.head.load(Ordering::Acquire)
    }

    /// Moves the tail past positions `pos .. pos + n`, all claimed by
    /// producers (the caller's own, or one it found claimed), unless a
    /// close stops it first. Returns how many of them count: `n` if the
    /// tail got past them all (here or by a helper), fewer if the queue was
    /// closed with the tail among them (the rest are given up), and 0 for a
    /// tail behind `pos` (only a peer writing garbage does that).
    #[inline]
    fn move_tail(&self, pos: u64, n: u64) -> u64 {
        // First guess: the tail is still at `pos` (a failed compare-and-swap
        // tells the real value).
        let mut tail = pos;
        loop {
            let ahead = (tail & !TAIL_CLOSED).wrapping_sub(pos);
            if ahead >= n {
                // Past them all, or (wrapped: huge) behind `pos`.
                return if (ahead as i64) < 0 { 0 } else { n };
            }
            if tail & TAIL_CLOSED != 0 {
                return ahead;
            }
            // Release pairs with the Acquire tail load in `pop_stalled`: a
            // consumer that sees the tail past `pos` sees the claims on the
            // positions it covers (ours, or the one a helper read with
            // Acquire before helping). Whether a push counts is decided by
            // this word's modification order alone (against `close`'s
            // `fetch_or`); the payload is ordered by each slot's sequence.
            // Relaxed on failure: only the value read matters.
            match self.ctl.tail.compare_exchange_weak(
                tail,
                pos.wrapping_add(n),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return n,
                Err(now) => tail = now,
            }
        }
    }

    /// Moves the head past positions `pos .. pos + n`, all claimed by
    /// consumers (nothing stops a pop: its claim is what counts).
    #[inline]
    fn move_head(&self, pos: u64, n: u64) {
        // First guess: as in `move_tail`.
        let mut head = pos;
        loop {
            if head.wrapping_sub(pos) >= n {
                return; // past them (a helper moved it), or garbage behind
            }
            // Release pairs with the Acquire head load in `push_stalled`: a
            // producer that sees the head past a position sees the consumer
            // claim on it. Relaxed on failure: only the value read matters.
            match self.ctl.head.compare_exchange_weak(
                head,
                pos.wrapping_add(n),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Claims position `pos` for a producer: its slot is free for `pos`
    /// (sequence `free_seq(pos)`, read with Acquire) and holds no claim on
    /// `pos` yet. `Err(claimed)`: someone else's claim on `pos` is there
    /// (or the compare-and-swap lost to a change, or the slot moved on:
    /// `claimed` is false, look again).
    #[inline(always)]
    fn claim_push(&self, slot: &[AtomicU64], pos: u64) -> Result<(), bool> {
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
    fn claim_pop(&self, slot: &[AtomicU64], pos: u64) -> Result<bool, Option<u64>> {
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

    /// A producer found the slot of tail position `pos` still holding an
    /// earlier lap (sequence `seq`, below `free_seq(pos)`). Full if no pop
    /// counted at the position before `pos` in that slot (the head is not
    /// past it); otherwise a consumer is in flight there: waits for it to
    /// free the slot (with `wait`; without, answers full), recovering it if
    /// its process died.
    fn push_stalled(&self, pos: u64, seq: u64, wait: Option<&mut InFlight>) -> Stalled {
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
        if role_at(held, prev) == ROLE_CONSUMER && owner_known(held) {
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
    fn pop_stalled(&self, pos: u64, seq: u64, wait: Option<&mut InFlight>) -> Stalled {
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
        if role == ROLE_HOLE || (role == ROLE_PRODUCER && owner_known(held)) {
            // A hole whose recoverer has not published it yet (it may have
            // died too) is finished at once; a dead producer's claim becomes
            // a hole.
            let dead = role == ROLE_HOLE || (wait.check_owner() && owner_is_dead(held));
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

    /// Claims up to `max` consecutive free positions (a compare-and-swap
    /// each, stopping at the first it cannot have), moves the tail past
    /// them, runs `write(i, payload)` for each, and publishes them. Returns
    /// how many (0 if full). One call claims at most [`BATCH_MAX`]
    /// positions. Like [`try_push_with`](Self::try_push_with), it waits out
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
            let mut n = 0;
            while n < max {
                let p = pos.wrapping_add(n);
                let slot = self.slot(p);
                // Acquire pairs with the Release that freed the slot.
                if slot[0].load(Ordering::Acquire) != free_seq(p)
                    || self.claim_push(slot, p).is_err()
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
                    if role_at(slot[1].load(Ordering::Acquire), pos) != ROLE_NONE {
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
                    Ok(hole) => holes |= u64::from(hole) << n,
                    Err(_) => break,
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
                        ROLE_CONSUMER => self.move_head(pos, 1), // taken: help
                        ROLE_PRODUCER | ROLE_HOLE => {}          // changed: again
                        _ if now == pos => return Ok(0),         // garbage
                        _ => {}
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

    /// Recovers position `pos` if a producer whose process is gone claimed
    /// it and never published it: turns the claim into the hole mark
    /// (counting its task done) and publishes the hole. Also publishes a
    /// hole whose recoverer died before publishing it. Returns whether it
    /// published a hole.
    fn recover_push_at(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        // Relaxed: validated by the compare-and-swap below.
        let held = slot[1].load(Ordering::Relaxed);
        let hole = claim(ROLE_HOLE, 0, pos);
        match role_at(held, pos) {
            ROLE_PRODUCER if owner_is_dead(held) => {
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
            ROLE_HOLE => {} // made, perhaps not published: finish it
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
        if role_at(held, prev) != ROLE_CONSUMER || !owner_is_dead(held) {
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
                claim(ROLE_CONSUMER, self.me(), prev),
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

    /// Closes the queue: pushes are refused from now on, consumers drain
    /// what is left and then get `Closed`. Wakes every sleeper.
    pub fn close(&self) {
        // Relaxed: the bit only has to be in the tail's modification order;
        // every push that counts moved the tail before it there, and every
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

    /// The positions from the head to the tail: `(head, n)`, `n` clamped
    /// to the capacity (0 for a tail behind the head: garbage).
    fn span(&self) -> (u64, u64) {
        // Acquire (`head_now`), then the tail: as a pop looks. The tail
        // needs no more than some recent value (each slot is looked at
        // through its own sequence, with Acquire, by the callers).
        let head = self.head_now();
        let n = self.ctl.pushed().wrapping_sub(head);
        (
            head,
            if (n as i64) < 0 {
                0
            } else {
                n.min(self.mask + 1)
            },
        )
    }

    /// Whether position `pos` holds a published item that no consumer has
    /// claimed yet (what a pop can return; holes and claims are not).
    fn published_at(&self, pos: u64) -> bool {
        let slot = self.slot(pos);
        // Acquire pairs with the producer's Release of its sequence: the
        // claim it made before is visible, so a producer's claim on `pos`
        // read below is the item's (a consumer's replaces it).
        slot[0].load(Ordering::Acquire) == full_seq(pos)
            && role_at(slot[1].load(Ordering::Acquire), pos) == ROLE_PRODUCER
    }

    /// Published items in the queue right now: what pops can return
    /// without waiting (pushes in flight, claimed and not yet published,
    /// are not counted, nor items a consumer has claimed). Looks at each
    /// slot from the head to the tail: O(items). A snapshot, out of date
    /// as soon as it returns; an item pushed before the call and still
    /// queued after it is always counted.
    pub fn len(&self) -> usize {
        let (head, n) = self.span();
        (0..n)
            .filter(|&k| self.published_at(head.wrapping_add(k)))
            .count()
    }

    /// Whether the queue holds no published item right now (a snapshot,
    /// stopping at the first item found; `false` whenever an item pushed
    /// before the call is still queued after it).
    pub fn is_empty(&self) -> bool {
        let (head, n) = self.span();
        !(0..n).any(|k| self.published_at(head.wrapping_add(k)))
    }

    /// Whether the queue is full right now: every slot is claimed by a
    /// push that counted and not yet by a pop, so a push finds no room (a
    /// snapshot; pops in flight have made room already, as `try_push_with`
    /// sees it).
    pub fn is_full(&self) -> bool {
        // Relaxed: a snapshot of positions.
        let head = self.ctl.head.load(Ordering::Relaxed);
        let n = self.ctl.pushed().wrapping_sub(head);
        (n as i64) >= 0 && n > self.mask
    }

    /// Counts `n` tasks done on behalf of no caller (holes).
    fn finish_tasks(&self, n: u64) {
        if !self.joinable {
            return;
        }
        // Release pairs with `join`'s Acquire load.
        self.ctl.done.fetch_add(n, Ordering::Release);
        self.ctl.joined().notify();
    }

    /// Marks one popped item as processed (`JoinableQueue.task_done`).
    ///
    /// # Errors
    ///
    /// [`TaskError::TooManyDone`] if every pushed item is already done (the
    /// count never passes the number pushed); [`TaskError::NotJoinable`].
    pub fn task_done(&self) -> Result<(), TaskError> {
        if !self.joinable {
            return Err(TaskError::NotJoinable);
        }
        // AcqRel: the Release half pairs with `join`'s Acquire load (the
        // work done before `task_done` is visible to the joiner); Relaxed on
        // failure: nothing changed. The tail read inside is at least the
        // tail that covered every item this caller popped (ordered before
        // the pop by the slot's Release/Acquire), and it only grows.
        self.ctl
            .done
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |d| {
                (d < self.ctl.pushed()).then(|| d + 1)
            })
            .map_err(|_| TaskError::TooManyDone)?;
        self.ctl.joined().notify();
        Ok(())
    }

    /// Items pushed and not yet marked done (a snapshot).
    pub fn unfinished(&self) -> u64 {
        self.ctl.unfinished()
    }

    /// Waits until every pushed item has been marked done, until `deadline`.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError::Timeout`] with the number still unfinished, or
    /// [`JoinTimeoutError::NotJoinable`].
    pub fn join_until(&self, deadline: Option<Instant>) -> Result<(), JoinTimeoutError> {
        if !self.joinable {
            return Err(JoinTimeoutError::NotJoinable);
        }
        self.ctl
            .joined()
            .wait_until(deadline, || {
                // Acquire pairs with the Release increments in `task_done`
                // and `finish_tasks`.
                let done = self.ctl.done.load(Ordering::Acquire);
                (done >= self.ctl.pushed()).then_some(())
            })
            .map_err(|_| JoinTimeoutError::Timeout(self.unfinished()))
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
            q.pop_with(|w| w[0].load(Ordering::Relaxed)),
            Err(PopError::Closed)
        );
        assert_eq!(
            q.pop_with_until(|w| w[0].load(Ordering::Relaxed), None),
            Err(PopTimeoutError::Closed)
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

    /// Regression (found by the `mpmc_ops` and `hostile_peer` fuzzers):
    /// a batch of zero items looped for ever once batches claimed slot by
    /// slot (it claimed nothing and took that for a lost race).
    #[test]
    fn empty_batches_return_at_once() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        assert_eq!(q.push_batch_with(0, |_, _| unreachable!()), Ok(0));
        assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
        push(&q, 1).unwrap();
        assert_eq!(q.push_batch_with(0, |_, _| unreachable!()), Ok(0));
        assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
        q.close();
        assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(
            q.pop_batch_with(0, |_, _| unreachable!()),
            Err(crate::error::Closed)
        );
        assert_eq!(
            q.push_batch_with(0, |_, _| unreachable!()),
            Err(crate::error::Closed)
        );
    }

    #[test]
    fn task_done_and_join() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        push(&q, 1).unwrap();
        push(&q, 2).unwrap();
        assert_eq!(q.unfinished(), 2);
        let soon = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(q.join_until(soon), Err(JoinTimeoutError::Timeout(2)));
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
        assert_eq!(p.join_until(None), Err(JoinTimeoutError::NotJoinable));
    }

    /// Plays a process that won `pos` for `role` with its claim and died.
    fn dead_claim(q: &RawQueue<'_>, role: u64, pos: u64) {
        let dead = crate::pid::dead_pid();
        q.slot(pos)[1].store(claim(role, dead, pos), Ordering::Relaxed);
    }

    #[test]
    fn a_push_abandoned_by_a_dead_producer_becomes_a_skipped_hole() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        push(&q, 1).unwrap();
        // A producer claims position 1, moves the tail past it, and dies
        // before publishing.
        dead_claim(&q, ROLE_PRODUCER, 1);
        m.ctl.tail.store(2, Ordering::Relaxed);
        push(&q, 3).unwrap();
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(q.len(), 1, "3 is published, the dead claim is not");
        assert_eq!(
            q.recover_abandoned_pop(),
            0,
            "nothing for producers to recover"
        );
        assert_eq!(q.recover_abandoned_push(), 1);
        assert_eq!(q.recover_abandoned_push(), 0, "exactly once");
        assert_eq!(pop(&q), Ok(3), "the hole is skipped");
        assert_eq!(m.ctl.snapshot().recovered, 1);
        // Tasks: 1 and 3 pushed, the hole counted done when it was made.
        assert_eq!(q.unfinished(), 2);
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert_eq!(q.unfinished(), 0);
        assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    }

    /// A consumer that meets a dead producer's claim at the head with a
    /// completed push behind it does not answer `Empty`: it recovers the
    /// claim on the spot and takes the item behind (so do batches).
    #[test]
    fn a_pop_meeting_a_dead_producers_claim_recovers_it_on_the_spot() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        dead_claim(&q, ROLE_PRODUCER, 0);
        m.ctl.tail.store(1, Ordering::Relaxed);
        push(&q, 3).unwrap();
        assert_eq!(pop(&q), Ok(3), "not stuck behind the dead claim");
        assert_eq!(m.ctl.snapshot().recovered, 1);
        assert_eq!(q.unfinished(), 1, "the hole's task counted done");
        dead_claim(&q, ROLE_PRODUCER, 2);
        m.ctl.tail.store(3, Ordering::Relaxed);
        push(&q, 4).unwrap();
        let mut got = Vec::new();
        assert_eq!(
            q.pop_batch_with(4, |_, w| got.push(w[0].load(Ordering::Relaxed))),
            Ok(1)
        );
        assert_eq!(got, [4]);
        assert_eq!(m.ctl.snapshot().recovered, 2);
        assert_eq!(pop(&q), Err(TryPopError::Empty));
    }

    #[test]
    fn a_claim_the_tail_does_not_cover_counts_once_a_producer_helps_it_in() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        // A producer claims position 0 and dies before moving the tail: its
        // push never counted, and nobody recovers what is not pushed.
        dead_claim(&q, ROLE_PRODUCER, 0);
        assert_eq!(q.recover_abandoned_push(), 0);
        assert_eq!((q.len(), q.unfinished()), (0, 0));
        assert_eq!(pop(&q), Err(TryPopError::Empty), "no push counted");
        // The next producer helps the tail past it and pushes at 1.
        push(&q, 5).unwrap();
        assert_eq!(m.ctl.pushed(), 2);
        assert_eq!(q.recover_abandoned_push(), 1);
        assert_eq!(pop(&q), Ok(5));
        q.task_done().unwrap();
        assert_eq!(q.join_until(None), Ok(()));
    }

    #[test]
    fn a_hole_whose_recoverer_died_before_publishing_it_is_finished() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        q.slot(0)[1].store(claim(ROLE_HOLE, 0, 0), Ordering::Relaxed);
        m.ctl.tail.store(1, Ordering::Relaxed);
        push(&q, 9).unwrap();
        assert_eq!(q.recover_abandoned_push(), 1);
        assert_eq!(q.recover_abandoned_push(), 0);
        assert_eq!(pop(&q), Ok(9));
        // The same hole met by a consumer: finished on the spot.
        q.slot(2)[1].store(claim(ROLE_HOLE, 0, 2), Ordering::Relaxed);
        m.ctl.tail.store(3, Ordering::Relaxed);
        push(&q, 10).unwrap();
        assert_eq!(pop(&q), Ok(10));
    }

    #[test]
    fn a_slot_held_by_a_dead_consumer_is_freed() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        push(&q, 2).unwrap();
        // A consumer claims position 0, moves the head, and dies before
        // freeing its slot.
        dead_claim(&q, ROLE_CONSUMER, 0);
        m.ctl.head.store(1, Ordering::Relaxed);
        assert!(!q.is_full(), "the pop counted");
        assert_eq!(q.recover_abandoned_push(), 0);
        assert_eq!(q.recover_abandoned_pop(), 1);
        assert_eq!(q.recover_abandoned_pop(), 0, "exactly once");
        push(&q, 3).unwrap();
        assert_eq!(pop(&q), Ok(2));
        assert_eq!(pop(&q), Ok(3));
        // The same death met by a producer: it frees the slot on the spot
        // (the pop counted, so "full" would be false).
        push(&q, 4).unwrap();
        dead_claim(&q, ROLE_CONSUMER, 3);
        m.ctl.head.store(4, Ordering::Relaxed);
        push(&q, 5).unwrap();
        assert_eq!(pop(&q), Ok(5), "4 was lost with the dead consumer");
    }

    #[test]
    fn a_consumer_dead_before_moving_the_head_is_passed_and_freed() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        push(&q, 2).unwrap();
        // Claimed position 0, died before moving the head.
        dead_claim(&q, ROLE_CONSUMER, 0);
        assert_eq!(pop(&q), Ok(2), "the next consumer helps the head past it");
        // A producer meets slot 0 still held: the pop there counted (the
        // head is past it), so it frees the slot on the spot.
        push(&q, 3).unwrap();
        push(&q, 4).unwrap();
        assert_eq!(m.ctl.snapshot().recovered, 1);
        assert_eq!(pop(&q), Ok(3));
        assert_eq!(pop(&q), Ok(4));
        // The same death with no other consumer around: recovery moves the
        // head itself.
        push(&q, 5).unwrap();
        push(&q, 6).unwrap();
        dead_claim(&q, ROLE_CONSUMER, 4);
        assert_eq!(
            push(&q, 7),
            Err(TryPushError::Full(())),
            "the head is not past the dead claim: the pop never counted"
        );
        assert_eq!(q.recover_abandoned_pop(), 1);
        assert_eq!(m.ctl.head.load(Ordering::Relaxed), 5);
        assert_eq!(pop(&q), Ok(6));
    }

    /// A live producer between its claim and its publish is waited for,
    /// never recovered; a `try_pop` gives up only after
    /// [`IN_FLIGHT_PATIENCE`] (a process stopped mid-push), and a claim
    /// that names no process is not waited for at all.
    #[test]
    fn a_live_claimer_is_never_recovered() {
        let m = mem(2, 1, 0);
        let q = q(&m);
        m.ctl.tail.store(1, Ordering::Relaxed);
        q.slot(0)[1].store(claim(ROLE_PRODUCER, q.me(), 0), Ordering::Relaxed);
        assert_eq!(q.recover_abandoned_push(), 0);
        let start = Instant::now();
        assert_eq!(pop(&q), Err(TryPopError::Empty));
        assert!(
            start.elapsed() >= IN_FLIGHT_PATIENCE,
            "{:?}",
            start.elapsed()
        );
        // Nor one whose pid did not fit in a claim (stored as 0).
        q.slot(0)[1].store(claim(ROLE_PRODUCER, 0, 0), Ordering::Relaxed);
        assert_eq!(q.recover_abandoned_push(), 0);
        let start = Instant::now();
        assert_eq!(pop(&q), Err(TryPopError::Empty));
        assert!(
            start.elapsed() < IN_FLIGHT_PATIENCE,
            "pid 0 is not waited for"
        );
        assert_eq!(claim_pid(1 << 22), 0);
    }

    /// A view's patience bounds its wait for a live claimer in flight:
    /// zero never waits, a short one gives up after it; both answer Empty.
    #[test]
    fn the_in_flight_patience_is_the_views() {
        let m = mem(2, 1, 0);
        let q = q(&m).with_in_flight_patience(Duration::ZERO);
        m.ctl.tail.store(1, Ordering::Relaxed);
        q.slot(0)[1].store(claim(ROLE_PRODUCER, q.me(), 0), Ordering::Relaxed);
        assert_eq!(pop(&q), Err(TryPopError::Empty));
        let short = Duration::from_millis(20);
        let q = q.with_in_flight_patience(short);
        let start = Instant::now();
        assert_eq!(pop(&q), Err(TryPopError::Empty));
        assert!(start.elapsed() >= short, "{:?}", start.elapsed());
        // The claim is still there, untouched: its owner is alive.
        assert_eq!(q.recover_abandoned_push(), 0);
    }

    #[test]
    fn a_batch_abandoned_by_a_dead_producer_becomes_holes() {
        let m = mem(8, 1, 0);
        let q = q(&m);
        push(&q, 1).unwrap();
        // A batch claims positions 1..5, moves the tail, publishes 1 and
        // dies.
        for p in 1..5 {
            dead_claim(&q, ROLE_PRODUCER, p);
        }
        m.ctl.tail.store(5, Ordering::Relaxed);
        q.slot(1)[2].store(2, Ordering::Relaxed);
        q.slot(1)[0].store(full_seq(1), Ordering::Release);
        push(&q, 6).unwrap();
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(pop(&q), Ok(2), "published before it died");
        assert_eq!(q.len(), 1, "only 6 is published");
        assert_eq!(q.recover_abandoned_push(), 3, "positions 2 to 4");
        assert_eq!(pop(&q), Ok(6), "the holes are skipped");
        assert_eq!(q.recover_abandoned_push(), 0);
    }

    #[test]
    fn a_pop_batch_abandoned_by_a_dead_consumer_is_freed() {
        let m = mem(4, 1, 0);
        let q = q(&m);
        for v in 1..=4 {
            push(&q, v).unwrap();
        }
        // A consumer claims positions 0..3, moves the head and dies.
        for p in 0..3 {
            dead_claim(&q, ROLE_CONSUMER, p);
        }
        m.ctl.head.store(3, Ordering::Relaxed);
        assert_eq!((q.len(), q.is_full()), (1, false));
        assert_eq!(q.recover_abandoned_pop(), 3);
        for v in 5..=7 {
            push(&q, v).unwrap();
        }
        assert!(q.is_full());
        assert_eq!(pop(&q), Ok(4));
        assert_eq!(pop(&q), Ok(5));
    }

    #[test]
    fn a_claim_the_close_left_outside_the_tail_is_given_up() {
        let m = mem(4, 1, FLAG_JOINABLE);
        let q = q(&m);
        push(&q, 1).unwrap();
        // A live producer claimed position 1 but had not moved the tail
        // when the queue closed: that push is refused, and consumers stop
        // before position 1.
        q.slot(1)[1].store(claim(ROLE_PRODUCER, q.me(), 1), Ordering::Relaxed);
        q.close();
        assert_eq!(q.move_tail(1, 1), 0, "its move fails: given up");
        assert_eq!(pop(&q), Ok(1));
        assert_eq!(pop(&q), Err(TryPopError::Closed));
        q.task_done().unwrap();
        assert_eq!(q.join_until(None), Ok(()));
        // A batch that the close cut short counts the part the tail covers.
        let m2 = mem(8, 1, 0);
        let q2 = RawQueue::new(&m2.ctl, &m2.words, 8);
        m2.ctl.tail.store(3 | TAIL_CLOSED, Ordering::Relaxed);
        assert_eq!(q2.move_tail(1, 4), 2);
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

    /// Three producer and three consumer threads mix single and batch
    /// operations on a 16-slot queue, many rounds: every item arrives
    /// exactly once, each producer's items in order for each consumer, and
    /// the queue never stops moving (a watchdog dumps the slots if it
    /// does).
    ///
    /// Regression: a producer that stalled between its sequence check and
    /// its claim read could take a later lap's claim for the previous
    /// lap's, win the slot from under it, and publish an old position
    /// there; the head and tail then passed that slot for good. Loom's
    /// small models never went a whole lap behind one thread's back; this
    /// found it within a few dozen rounds.
    #[test]
    fn threads_mixing_singles_and_batches_deliver_exactly_once() {
        use std::sync::Arc;

        const CAP: usize = 16;
        const PRODUCERS: u64 = 3;
        const CONSUMERS: u64 = 3;
        let (rounds, per) = if cfg!(debug_assertions) {
            (40, 10_000u64)
        } else {
            (200, 20_000u64)
        };
        let rand = |r: &mut u64| {
            *r = r
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *r >> 33
        };
        for round in 0..rounds {
            let m = Arc::new(mem(CAP, 1, 0));
            let got = Arc::new(AtomicU64::new(0));
            let mut producers = Vec::new();
            for p in 0..PRODUCERS {
                let m = m.clone();
                producers.push(std::thread::spawn(move || {
                    let q = q(&m);
                    let (mut next, mut r) = (0, p * 7 + round);
                    while next < per {
                        let k = (rand(&mut r) % 9) as usize; // 0: single
                        let n = if k == 0 {
                            let v = (p << 32) | next;
                            usize::from(
                                q.try_push_with(|w| w[0].store(v, Ordering::Relaxed))
                                    .is_ok(),
                            )
                        } else {
                            let k = k.min((per - next) as usize);
                            let first = next;
                            q.push_batch_with(k, |i, w| {
                                w[0].store((p << 32) | (first + i as u64), Ordering::Relaxed);
                            })
                            .unwrap()
                        };
                        if n == 0 {
                            std::thread::yield_now();
                        }
                        next += n as u64;
                    }
                }));
            }
            let mut consumers = Vec::new();
            for c in 0..CONSUMERS {
                let (m, got) = (m.clone(), got.clone());
                consumers.push(std::thread::spawn(move || {
                    let q = q(&m);
                    let mut r = c * 13 + round + 5;
                    let mut mine = Vec::new();
                    while got.load(Ordering::Relaxed) < PRODUCERS * per {
                        let k = (rand(&mut r) % 9) as usize;
                        let before = mine.len();
                        if k == 0 {
                            if let Ok(v) = q.try_pop_with(|w| w[0].load(Ordering::Relaxed)) {
                                mine.push(v);
                            }
                        } else {
                            q.pop_batch_with(k, |_, w| mine.push(w[0].load(Ordering::Relaxed)))
                                .unwrap();
                        }
                        let n = (mine.len() - before) as u64;
                        if n == 0 {
                            std::thread::yield_now();
                        }
                        got.fetch_add(n, Ordering::Relaxed);
                    }
                    mine
                }));
            }
            // Watchdog: the count must keep moving.
            let (mut seen, mut since) = (0, Instant::now());
            while got.load(Ordering::Relaxed) < PRODUCERS * per {
                std::thread::sleep(Duration::from_millis(5));
                let now = got.load(Ordering::Relaxed);
                if now != seen {
                    (seen, since) = (now, Instant::now());
                }
                if since.elapsed() > Duration::from_secs(20) {
                    let q = q(&m);
                    let (tail, head) = (m.ctl.pushed(), m.ctl.head.load(Ordering::Relaxed));
                    let slots: Vec<String> = (head..head + CAP as u64)
                        .map(|p| {
                            let s = q.slot(p);
                            let c = s[1].load(Ordering::Relaxed);
                            format!(
                                "{p}: seq {} claim role {} on {}",
                                s[0].load(Ordering::Relaxed),
                                c >> 62,
                                c & POS_MASK
                            )
                        })
                        .collect();
                    panic!(
                        "round {round}: stuck at {now} items, tail {tail}, head {head}: {slots:#?}"
                    );
                }
            }
            for p in producers {
                p.join().unwrap();
            }
            let mut all = Vec::new();
            for c in consumers {
                let mine = c.join().unwrap();
                for p in 0..PRODUCERS {
                    let from_p: Vec<u64> =
                        mine.iter().filter(|&&v| v >> 32 == p).copied().collect();
                    assert!(
                        from_p.windows(2).all(|w| w[0] < w[1]),
                        "round {round}: producer {p}'s items out of order"
                    );
                }
                all.extend(mine);
            }
            all.sort_unstable();
            let want: Vec<u64> = (0..PRODUCERS)
                .flat_map(|p| (0..per).map(move |i| (p << 32) | i))
                .collect();
            assert!(all == want, "round {round}: items lost or repeated");
            assert_eq!(q(&m).len(), 0);
        }
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
                _ => m.ctl.done.store(g, Ordering::Relaxed),
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

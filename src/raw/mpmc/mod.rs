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
//! payload is a typed value ([`Queue`](crate::mpmc::Queue)) or a length
//! and bytes ([`ByteQueue`](crate::mpmc::ByteQueue)).
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
//! # A bound below the capacity
//!
//! A queue may hold fewer items than it has slots (`multiprocessing.Queue
//! (maxsize=6)` is full at 6; its ring has 8 slots): the bound, recorded in
//! the control words at creation and read once, at open, into the view.
//! The ring works as above; a producer only adds one look at the head
//! before each claim (`room_at`, in `claim.rs`): it may claim tail
//! position `t` only after it read a head `h` with `t - h < bound`, that
//! is `h >= t - bound + 1`. No lock, and no other shared word.
//!
//! *Never more than `bound` items.* Positions are claimed in order: a
//! producer claims `t + 1` only once the tail is past `t`, so only once `t`
//! was claimed; and the head only passes positions that consumers claimed.
//! When `t` is claimed, the head is at least the `h` read before, so every
//! position below `h` is taken, none above `t` is claimed, and the items
//! held (positions pushed and not yet taken, holes and pushes in flight
//! included) are at most `t + 1 - h <= bound`. A batch claims at most
//! `bound - (t - h)` positions from `t` on, the same argument for each.
//!
//! *"Full" is true at some instant of the call.* The producer read the tail
//! `t`, then the head `h` with `t - h >= bound`, then the claim of the
//! slot at `h`. If that claim is a consumer's, the pop of `h` counted and
//! only its move of the head is missing: the producer moves the head for
//! it and looks again (so a consumer stopped between its claim and its
//! move never makes the queue look full). If it is a producer's claim or a
//! hole on `h`, then when it was read `h` was not taken (nor, since
//! consumers also claim in order, any position after it), and every
//! position from `h` to `t - 1` was pushed (the tail only grows, and it
//! only passes claimed positions): `bound` items or more were held. (A
//! claim on another position means the head moved on: look again.)
//!
//! Cost: with the bound at the capacity (the default) nothing changes but
//! a test of a field the view carries, always false. Below it, each push
//! attempt (and batch) loads the head once more, an acquire load of the
//! cache line every consumer writes; a push that finds the queue full also
//! reads the claim of the slot at the head. Pops are unchanged: every pop
//! already wakes the producers sleeping for room once it has moved the
//! head, which is what lets a push below the bound go through.
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

use std::time::Duration;

use crate::layout::{BodyLayout, LayoutError, MAX_BODY, MAX_SLOT_SIZE, whole_lines};
use crate::pod::TypeInfo;
use crate::raw::message;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitPoint;

/// Words before a slot's payload: sequence and claim.
pub const SLOT_HEADER_WORDS: usize = 2;

/// Bytes of the queue's control words ([`Control`]) before its slots.
pub const CONTROL_SIZE: u64 = 384;

/// Most slots a queue may have (2^31: a slot's claim word records the low
/// 40 bits of a position, which must differ between laps, and the
/// half-step sequences count two per position).
pub const MAX_CAPACITY: u64 = 1 << 31;

/// The body layout of a queue of `capacity` values of `elem`
/// ([`Kind::Mpmc`](crate::layout::Kind::Mpmc)).
///
/// # Errors
///
/// What a valid payload or capacity would be.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let elem_size = u64::from(elem.size);
    if elem_size == 0
        || elem_size > MAX_SLOT_SIZE
        || !elem.align.is_power_of_two()
        || elem.align > 8
    {
        return Err(LayoutError::Payload(format!(
            "a value of 1 to {MAX_SLOT_SIZE} bytes aligned to at most 8, found size {}, align {}",
            elem.size, elem.align
        )));
    }
    slots_layout(elem_size.div_ceil(8), capacity)
}

/// The body layout of a queue of `capacity` byte messages of at most
/// `elem.size` bytes ([`Kind::MpmcBytes`](crate::layout::Kind::MpmcBytes),
/// [`bytes_type`](crate::layout::bytes_type)): a slot's payload is a
/// message's words ([`message::words`]).
///
/// # Errors
///
/// What a valid payload or capacity would be.
pub fn bytes_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let max_len = message::check_payload(elem)?;
    slots_layout(message::words(max_len), capacity)
}

/// The body of `capacity` slots of `payload_words` words each after the
/// control words.
fn slots_layout(payload_words: u64, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let stride = (SLOT_HEADER_WORDS as u64 + payload_words) * 8;
    // Short-circuits: the product is formed only for a capacity of at most
    // 2^31, with a stride below 2^17.
    if !capacity.is_power_of_two()
        || !(1..=MAX_CAPACITY).contains(&capacity)
        || capacity * stride > MAX_BODY - CONTROL_SIZE
    {
        return Err(LayoutError::Capacity(format!(
            "a power of two from 1 to {MAX_CAPACITY} slots, at most {MAX_BODY} bytes in all"
        )));
    }
    Ok(BodyLayout {
        slot_size: stride,
        body_size: whole_lines(CONTROL_SIZE + capacity * stride),
    })
}

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

/// Who holds a position: the top two bits of a slot's claim word
/// (docs/FORMAT.md: 0 none, 1 producer, 2 consumer, 3 hole; the
/// discriminants are those bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// No claim on the position: a fresh slot, or (from [`role_at`]) a
    /// claim on another position (an earlier lap).
    None = 0,
    /// A producer's claim: its push is in flight, or its item published.
    Producer = 1,
    /// A consumer's claim: the item is taken (the pop in flight or done).
    Consumer = 2,
    /// The hole mark: a dead producer's push, which consumers skip.
    Hole = 3,
}

impl Role {
    /// Where the role sits in a claim word.
    const SHIFT: u32 = 62;

    /// The role's bits, in place in a claim word.
    #[inline(always)]
    const fn encode(self) -> u64 {
        (self as u64) << Self::SHIFT
    }

    /// The role a claim word's top two bits name (every value names one).
    #[inline(always)]
    const fn decode(word: u64) -> Self {
        match word >> Self::SHIFT {
            0 => Self::None,
            1 => Self::Producer,
            2 => Self::Consumer,
            _ => Self::Hole,
        }
    }
}

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
fn claim(role: Role, pid: u32, pos: u64) -> u64 {
    role.encode() | (u64::from(pid) << POS_BITS) | (pos & POS_MASK)
}

/// The pid a claim can carry for `pid`: itself, or 0 (never recovered) if
/// it does not fit.
fn claim_pid(pid: u32) -> u32 {
    if u64::from(pid) <= PID_MASK { pid } else { 0 }
}

/// The role of `word` if it is a claim on position `pos`, else
/// [`Role::None`] (a claim of an earlier lap, or none yet).
#[inline(always)]
fn role_at(word: u64, pos: u64) -> Role {
    if (word ^ pos) & POS_MASK == 0 {
        Role::decode(word)
    } else {
        Role::None
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
    /// The most items the queue holds at once (1 to the capacity), recorded
    /// at creation and read once, at open, into the handle's [`Geometry`].
    bound: AtomicU64,
    _pad2: [u64; 9],
}

#[cfg(not(loom))]
mod layout_checks {
    use std::mem::offset_of;

    use static_assertions::const_assert_eq;

    use super::Control;

    const_assert_eq!(size_of::<Control>(), super::CONTROL_SIZE as usize);
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
    const_assert_eq!(offset_of!(Control, bound), 304);
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
    /// The most items the queue holds at once, as recorded at creation (the
    /// capacity unless created with a lower bound; 0 in a control block
    /// never given one, which a file must not have).
    pub bound: u64,
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
            bound: AtomicU64::new(0),
            _pad2: [0; 9],
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

    /// Whether the creation flags say the queue counts tasks
    /// ([`FLAG_JOINABLE`]).
    pub fn is_joinable(&self) -> bool {
        // Relaxed: set before the file was published, never changed.
        self.flags.load(Ordering::Relaxed) & FLAG_JOINABLE != 0
    }

    /// Sets the creation flags (only while nobody else can see the words).
    pub fn init_flags(&self, flags: u32) {
        // Relaxed: the file is still private to its creator.
        self.flags.store(flags, Ordering::Relaxed);
    }

    /// Records the bound, the most items the queue may hold at once (only
    /// while nobody else can see the words).
    pub fn init_bound(&self, bound: u64) {
        // Relaxed: the file is still private to its creator.
        self.bound.store(bound, Ordering::Relaxed);
    }

    /// The bound recorded at creation, as it is now: unchecked (a peer may
    /// have written anything there). Read once, at open, and validated
    /// into the handle's [`Geometry`]; 0 in a control block made by
    /// [`Control::new`] and never given one.
    pub fn bound(&self) -> u64 {
        // Relaxed: set before the file was published, never changed.
        self.bound.load(Ordering::Relaxed)
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
            bound: self.bound(),
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

/// Why an attempt on the queue (a claim, a push or pop, a blocking call at
/// its deadline) did not go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// Full (push) or empty (pop), with nothing in flight to wait for.
    Blocked,
    /// Closed (push), or closed and drained (pop).
    Closed,
}

/// The shape of a queue's memory, fixed when it was made: what a view
/// needs besides the memory itself. A handle reads it once, when it opens
/// the file, so that building a view per call is only pointer copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    mask: u64,
    bound: u64,
    stride: usize,
    joinable: bool,
}

impl Geometry {
    /// `capacity` slots of `stride` words each (header and payload), for a
    /// queue that holds at most `bound` items at once and counts tasks if
    /// `joinable`; `None` unless `capacity` is a power of two (1 included),
    /// `bound` is 1 to `capacity`, and `stride` more than
    /// [`SLOT_HEADER_WORDS`].
    pub fn new(capacity: usize, bound: u64, stride: usize, joinable: bool) -> Option<Self> {
        (capacity.is_power_of_two()
            && (1..=capacity as u64).contains(&bound)
            && stride > SLOT_HEADER_WORDS)
            .then_some(Self {
                mask: capacity as u64 - 1,
                bound,
                stride,
                joinable,
            })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.mask as usize + 1
    }

    /// The most items the queue holds at once.
    pub fn bound(&self) -> usize {
        self.bound as usize
    }

    /// Words per slot.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Words of all the slots.
    pub fn words(&self) -> usize {
        self.capacity() * self.stride
    }

    /// Whether the queue counts tasks.
    pub fn is_joinable(&self) -> bool {
        self.joinable
    }
}

/// A queue over memory the caller hands in: control words and `capacity`
/// slots of `stride` words each. Any number of these, in any number of
/// threads or processes, may work on the same memory at once. The typed
/// [`Queue`](crate::mpmc::Queue) and [`ByteQueue`](crate::mpmc::ByteQueue)
/// wrap one over a mapped file.
#[derive(Clone, Copy)]
pub struct RawQueue<'a> {
    ctl: &'a Control,
    words: &'a [AtomicU64],
    mask: u64,
    /// The most items held at once: `mask + 1` unless created with a lower
    /// bound (see "A bound below the capacity" in the module docs).
    bound: u64,
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
            words[i * stride + 1].store(claim(Role::None, 0, 0), Ordering::Relaxed);
        }
    }

    /// A view of a queue. `words` holds `capacity` slots (the stride is
    /// `words.len() / capacity`), initialized by [`RawQueue::init_slots`];
    /// the bound is the one `ctl` records ([`Control::init_bound`]), or the
    /// capacity if it records none (0, as [`Control::new`] makes it).
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two (1 included), `words` is not
    /// `capacity` slots of more than [`SLOT_HEADER_WORDS`] words, or the
    /// bound is above the capacity.
    pub fn new(ctl: &'a Control, words: &'a [AtomicU64], capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "mpmc capacity must be a power of two, got {capacity}"
        );
        let bound = match ctl.bound() {
            0 => capacity as u64,
            b => b,
        };
        assert!(
            bound <= capacity as u64,
            "mpmc bound {bound} is above the capacity {capacity}"
        );
        let stride = words.len() / capacity;
        let geometry = Geometry::new(capacity, bound, stride, ctl.is_joinable())
            .filter(|g| g.words() == words.len());
        let Some(geometry) = geometry else {
            panic!(
                "{} words are not {capacity} slots of a payload",
                words.len()
            );
        };
        Self::from_parts(ctl, words, geometry)
    }

    /// A view of a queue of `geometry` over `ctl` and `words` (the
    /// `geometry.words()` words of the slots, initialized by
    /// [`RawQueue::init_slots`]), checking nothing and reading nothing: what
    /// a handle builds on every call from the geometry it read at open. A
    /// `words` shorter than the geometry says makes the calls panic, never
    /// reach outside it.
    #[inline(always)]
    pub fn from_parts(ctl: &'a Control, words: &'a [AtomicU64], geometry: Geometry) -> Self {
        Self {
            ctl,
            words,
            mask: geometry.mask,
            bound: geometry.bound,
            stride: geometry.stride,
            joinable: geometry.joinable,
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

    /// The most items the queue holds at once (the capacity unless it was
    /// created with a lower bound).
    pub fn bound(&self) -> usize {
        self.bound as usize
    }

    /// Whether the queue holds fewer items than it has slots: pushes then
    /// check the head against the bound (see "A bound below the capacity"
    /// in the module docs). Fixed for the view's life, so the branch on it
    /// always goes the same way.
    #[inline(always)]
    fn bounded(&self) -> bool {
        self.bound <= self.mask
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
        // Acquire (`head_now`), then the tail, as a pop looks. The tail with
        // Acquire too, pairing with the Release of the move that set it
        // (`move_tail`): the producer of the position below it read the
        // head before its claim, and whatever consumer claims that head
        // value covered are then visible to the slot reads that follow, so
        // no item counted was already taken before that producer's look
        // (what keeps `len` within the bound; see "A bound below the
        // capacity" in the module docs).
        let head = self.head_now();
        let n = (self.ctl.tail.load(Ordering::Acquire) & !TAIL_CLOSED).wrapping_sub(head);
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
            && role_at(slot[1].load(Ordering::Acquire), pos) == Role::Producer
    }

    /// Published items in the queue right now: what pops can return
    /// without waiting (pushes in flight, claimed and not yet published,
    /// are not counted, nor items a consumer has claimed). Looks at each
    /// slot from the head to the tail: O(items). A snapshot, out of date
    /// as soon as it returns; an item pushed before the call and still
    /// queued after it is always counted, and the count is never above the
    /// bound (every item counted is below the tail read and was not yet
    /// taken when the producer of the position below that tail read the
    /// head, which was then at most `bound` positions behind it).
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

    /// Whether the queue is full right now: the positions from the head to
    /// the tail (pushes that counted and that no pop has claimed) number
    /// the bound, so a push finds no room (a snapshot; pops in flight have
    /// made room already, as `try_push_with` sees it).
    pub fn is_full(&self) -> bool {
        // Relaxed: a snapshot of positions.
        let head = self.ctl.head.load(Ordering::Relaxed);
        let n = self.ctl.pushed().wrapping_sub(head);
        (n as i64) >= 0 && n >= self.bound
    }
}

mod batch;
mod claim;
mod recovery;
mod tasks;
#[cfg(all(test, not(loom)))]
mod tests;

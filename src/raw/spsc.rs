//! The single-producer, single-consumer ring: what `multiprocessing.Pipe`
//! and a 1:1 `Queue` do, with two indices on their own cache lines and no
//! lock (Lamport's ring, with each side caching the other's index as in
//! rtrb, so the hot path rarely touches the other side's line).
//!
//! Layout of the body (offsets pinned in `Control`'s assertions):
//!
//! ```text
//! 0     tail      next position the producer writes (only it stores)
//! 128   head      next position the consumer reads (only it stores)
//! 256   producer pid, consumer pid (0 = role free), closed bits,
//!       data wait point (consumer sleeps), space wait point (producer sleeps)
//! 384   slots: capacity × slot_words::<T>() words, position p at slot
//!       p & (capacity - 1)
//! ```
//!
//! A slot is whole `AtomicU64` words: `size_of::<T>()` rounded up to 8
//! bytes ([`slot_words`]), the value's bytes in native order, the tail of
//! the last word zero. Values go in and out through relaxed atomic word
//! stores and loads (the Release store and Acquire load of the positions
//! order them), never through plain reads or references into the mapping:
//! another process can write any byte of the file at any time, and a plain
//! access racing that write would be a data race, undefined behaviour in
//! *our* process. So the chunks hand out copies ([`ReadChunk::get`],
//! [`ReadChunk::iter`], [`ReadChunk::copy_to_slice`]) and take values
//! ([`WriteChunk::set`], [`WriteChunk::copy_from_slice`],
//! [`WriteChunk::fill_from_iter`]), never `&[T]` / `&mut [T]` into the
//! slots. A batch copies the words of at most two contiguous runs of slots
//! (the second when it wraps around the end of the ring).
//!
//! Positions are 64-bit and never wrap in practice. Everything read from the
//! mapping is untrusted: positions are masked before use, a count of items
//! is clamped to the capacity, and position arithmetic wraps by design, so
//! a peer that writes garbage gets garbage back, never an out-of-bounds
//! access, an overflow panic or undefined behaviour.
//!
//! # Roles
//!
//! Each end is a role, held by one live process at a time: its pid in the
//! role word, claimed by compare-and-swap from 0 (or from a dead holder's
//! pid) and given back by compare-and-swap to 0 ([`Control::claim`],
//! [`Control::release`]). What the roles promise users (drop, `SIGKILL`,
//! `Disconnected`, `close`) is told in [`crate::spsc`]. A side about to
//! wait looks at the other role (`block`'s housekeeping probes a holder's
//! pid every [`SLICE`](crate::wait::SLICE)); the `try_*` calls never look
//! at roles.
//!
//! [`RawProducer`] / [`RawConsumer`] run the algorithm over a [`Control`]
//! and slot words that the caller hands in (the heap, loom, or a mapping),
//! with their positions in a cursor they own or borrow;
//! [`Producer`](crate::spsc::Producer) / [`Consumer`](crate::spsc::Consumer)
//! own a mapped ring file and build a raw end for each call.

use std::borrow::BorrowMut;
use std::cell::Cell;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::time::Instant;

use crate::error::{
    ChunkError, Closed, PopError, PopTimeoutError, PushError, PushTimeoutError, TryPopError,
    TryPushError,
};
use crate::layout::{
    BodyLayout, LayoutError, MAX_BODY, MAX_RING_CAPACITY, MAX_SLOT_SIZE, whole_lines,
};
use crate::pod::{Pod, TypeInfo};
use crate::raw::seqlock::{copy_in, copy_out};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{SLICE, WaitPoint, wait_sliced};

pub mod bytes;

/// `closed` bit: the producer closed the ring (no more pushes; consumers
/// drain, then get `Closed`).
pub const CLOSED_BY_PRODUCER: u32 = 1;
/// `closed` bit: the consumer closed the ring (pushes get `Closed`).
pub const CLOSED_BY_CONSUMER: u32 = 2;

/// Bytes of the ring's control words ([`Control`]) before its slots.
pub const CONTROL_SIZE: u64 = 384;

/// Offset of the first slot in the body.
pub const SLOTS_OFFSET: usize = CONTROL_SIZE as usize;

/// Bytes one slot of an SPSC ring takes for an element of `elem_size`
/// bytes: the size rounded up to whole 8-byte words (the slot stride).
pub fn slot_size(elem_size: u64) -> u64 {
    elem_size.div_ceil(8).saturating_mul(8)
}

/// The body layout of a ring of `capacity` values of `elem`.
pub fn body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let elem_size = u64::from(elem.size);
    // Slots are whole 8-byte words (values are copied through atomic
    // words), so the alignment only has to be a real one.
    if elem_size == 0 || elem_size > MAX_SLOT_SIZE || !elem.align.is_power_of_two() {
        return Err(LayoutError::Payload(format!(
            "a value of 1 to {MAX_SLOT_SIZE} bytes with a power-of-two alignment, found size {}, align {}",
            elem.size, elem.align
        )));
    }
    let stride = slot_size(elem_size);
    // Short-circuits: the product is formed only for a capacity of at most
    // 2^32, so it stays below 2^49.
    if !capacity.is_power_of_two()
        || capacity > MAX_RING_CAPACITY
        || capacity * stride > MAX_BODY - CONTROL_SIZE
    {
        return Err(LayoutError::Capacity(format!(
            "a power of two from 1 to {MAX_RING_CAPACITY} slots, at most {MAX_BODY} bytes in all"
        )));
    }
    Ok(BodyLayout {
        slot_size: stride,
        body_size: whole_lines(CONTROL_SIZE + capacity * stride),
    })
}

/// The body layout of a byte ring of `capacity` words for pieces of at
/// most `elem.size` bytes ([`bytes_type`](crate::layout::bytes_type)).
pub fn bytes_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    // The ring holds u64 words; a message is a length word and its bytes,
    // `message::words(max)` words in all.
    let max_len = crate::raw::message::check_payload(elem)?;
    let k = crate::raw::message::words(max_len);
    if !capacity.is_power_of_two() || capacity < k || capacity > MAX_RING_CAPACITY {
        return Err(LayoutError::Capacity(format!(
            "a power of two from {k} (one message) to {MAX_RING_CAPACITY} words"
        )));
    }
    Ok(BodyLayout {
        slot_size: 8,
        body_size: whole_lines(CONTROL_SIZE + capacity * 8),
    })
}

/// The ring's shared words (everything but the slots).
#[repr(C)]
pub struct Control {
    tail: AtomicU64,
    _pad0: [u64; 15],
    head: AtomicU64,
    _pad1: [u64; 15],
    producer: AtomicU32,
    consumer: AtomicU32,
    closed: AtomicU32,
    _reserved: AtomicU32,
    data_epoch: AtomicU32,
    data_waiters: AtomicU32,
    space_epoch: AtomicU32,
    space_waiters: AtomicU32,
    _pad2: [u64; 12],
}

#[cfg(not(loom))]
mod layout_checks {
    use std::mem::offset_of;

    use static_assertions::const_assert_eq;

    use super::{Control, SLOTS_OFFSET};

    const_assert_eq!(size_of::<Control>(), SLOTS_OFFSET);
    const_assert_eq!(offset_of!(Control, tail), 0);
    const_assert_eq!(offset_of!(Control, head), 128);
    const_assert_eq!(offset_of!(Control, producer), 256);
    const_assert_eq!(offset_of!(Control, consumer), 260);
    const_assert_eq!(offset_of!(Control, closed), 264);
    const_assert_eq!(offset_of!(Control, data_epoch), 272);
    const_assert_eq!(offset_of!(Control, data_waiters), 276);
    const_assert_eq!(offset_of!(Control, space_epoch), 280);
    const_assert_eq!(offset_of!(Control, space_waiters), 284);
}

#[cfg(not(loom))]
// SAFETY: repr(C) and made only of the switch module's atomics (each
// MappedAtomic: integer layout, any bit pattern valid) and u64 padding
// arrays (any bit pattern valid); alignment 8, and the offsets are pinned
// above, so any bytes at an 8-aligned offset of a mapping are a valid
// Control accessed only atomically.
unsafe impl crate::layout::MappedAtomic for Control {}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Control")
            .field("tail", &s.tail)
            .field("head", &s.head)
            .field("producer", &s.producer)
            .field("consumer", &s.consumer)
            .field("closed", &s.closed)
            .finish()
    }
}

/// A display snapshot of a ring's control words (each read on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Next position to write.
    pub tail: u64,
    /// Next position to read.
    pub head: u64,
    /// Producer pid (0 = none).
    pub producer: u32,
    /// Consumer pid (0 = none).
    pub consumer: u32,
    /// [`CLOSED_BY_PRODUCER`] | [`CLOSED_BY_CONSUMER`] bits.
    pub closed: u32,
    /// Consumers asleep waiting for data.
    pub data_waiters: u32,
    /// Producers asleep waiting for space.
    pub space_waiters: u32,
}

impl Control {
    /// Fresh control words: empty, open, no roles held.
    pub fn new() -> Self {
        Self {
            tail: AtomicU64::new(0),
            _pad0: [0; 15],
            head: AtomicU64::new(0),
            _pad1: [0; 15],
            producer: AtomicU32::new(0),
            consumer: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            data_epoch: AtomicU32::new(0),
            data_waiters: AtomicU32::new(0),
            space_epoch: AtomicU32::new(0),
            space_waiters: AtomicU32::new(0),
            _pad2: [0; 12],
        }
    }

    /// Each word, read once (Relaxed: a display snapshot, synchronizing with
    /// nothing).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            tail: self.tail.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            producer: self.producer.load(Ordering::Relaxed),
            consumer: self.consumer.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            data_waiters: self.data_waiters.load(Ordering::Relaxed),
            space_waiters: self.space_waiters.load(Ordering::Relaxed),
        }
    }

    fn data(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.data_epoch, &self.data_waiters)
    }

    fn space(&self) -> WaitPoint<'_> {
        WaitPoint::new(&self.space_epoch, &self.space_waiters)
    }

    /// Marks the ring closed from one side (`bit`: [`CLOSED_BY_PRODUCER`]
    /// or [`CLOSED_BY_CONSUMER`]) and wakes every sleeper.
    pub fn close(&self, bit: u32) {
        // Release pairs with the Acquire loads of `closed` in `try_pop`:
        // every push published before the close is visible to a consumer
        // that sees it closed.
        self.closed.fetch_or(bit, Ordering::Release);
        self.data().notify();
        self.space().notify();
    }

    /// Items between `head` and `tail` as seen now, clamped to `capacity`.
    /// A snapshot: out of date as soon as it returns.
    pub fn len(&self, capacity: usize) -> usize {
        // Relaxed: a snapshot of two independent counters.
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Relaxed);
        clamp(tail.wrapping_sub(head), capacity)
    }

    fn role(&self, role: Role) -> &AtomicU32 {
        match role {
            Role::Producer => &self.producer,
            Role::Consumer => &self.consumer,
        }
    }

    /// Claims `role` for the process `me`: free (0) or held by a dead
    /// process (see [`claim_role`]). The new holder continues from the
    /// published index, so nothing the previous one committed is lost.
    ///
    /// # Errors
    ///
    /// The pid of a live holder (this process included: one handle per
    /// role).
    pub fn claim(&self, role: Role, me: u32) -> Result<(), u32> {
        self.claim_as(role, me, false)
    }

    /// [`claim`](Self::claim), taking over a word that holds `me` when
    /// `mine_is_stale` (see [`claim_role_as`]).
    pub(crate) fn claim_as(&self, role: Role, me: u32, mine_is_stale: bool) -> Result<(), u32> {
        claim_role_as(self.role(role), me, mine_is_stale)?;
        // After the role word changed (the state `wait_for` checks): the
        // wait point's protocol, see `WaitPoint::notify`.
        self.peer_point(role).notify();
        Ok(())
    }

    /// The wait point the other side of `role` sleeps on: a consumer waits
    /// for data (and for a producer), a producer for room (and a consumer).
    fn peer_point(&self, role: Role) -> WaitPoint<'_> {
        match role {
            Role::Producer => self.data(),
            Role::Consumer => self.space(),
        }
    }

    /// Waits until a live process holds `role` (`true`), or the ring is
    /// closed or `deadline` passes (`false`). Asleep on the futex while it
    /// waits: a claim wakes it at once; a holder that is a dead process is
    /// not counted (its role is free for the taking).
    pub fn wait_for(&self, role: Role, deadline: Option<Instant>) -> bool {
        // The last holder found dead: not probed again (its pid stays in
        // the word until someone claims the role).
        let mut dead = 0;
        let ready = || {
            // Acquire (closed): pairs with the Release `fetch_or` in
            // `close`.
            if self.closed.load(Ordering::Acquire) != 0 {
                return Some(false);
            }
            // Acquire: pairs with the AcqRel claim in `claim_role` (the
            // wait point's protocol asks its checks for Acquire loads).
            let pid = self.role(role).load(Ordering::Acquire);
            if pid != 0 && pid != dead {
                // One probe per holder seen: a live one ends the wait.
                if crate::pid::is_alive(pid) {
                    return Some(true);
                }
                dead = pid;
            }
            None
        };
        wait_sliced(self.peer_point(role), deadline, SLICE, ready, |_| None).unwrap_or(false)
    }

    /// Gives `role` back if `me` still holds it, and wakes the other side
    /// if it sleeps: a consumer waiting for data (or a producer waiting for
    /// room) learns that nobody holds the role it waits on and returns
    /// `Disconnected` once it has drained (or found no room). The ring
    /// stays open; a new holder can claim the role.
    pub fn release(&self, role: Role, me: u32) {
        release_role(self.role(role), me);
        // After the role word changed (the state the sleepers check):
        // the wait point's protocol, see `WaitPoint::notify`.
        self.peer_point(role).notify();
    }

    /// The pid holding `role` (0: free). A snapshot.
    pub fn holder(&self, role: Role) -> u32 {
        // Relaxed: a snapshot for display and liveness probes; it orders
        // nothing.
        self.role(role).load(Ordering::Relaxed)
    }

    /// Whether `role` is free or held by a process that no longer exists.
    /// A snapshot: a new holder may claim it as soon as this returns.
    pub fn is_abandoned(&self, role: Role) -> bool {
        let pid = self.holder(role);
        pid == 0 || !crate::pid::is_alive(pid)
    }

    /// Whether either side closed the ring. A snapshot.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a snapshot; callers that act on a close re-read it with
        // the orderings their protocol needs.
        self.closed.load(Ordering::Relaxed) != 0
    }
}

/// One of the ring's two ends, each held by at most one live process at a
/// time (its pid in the role word; 0 = free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The end that pushes (the `producer` word).
    Producer,
    /// The end that pops (the `consumer` word).
    Consumer,
}

impl Role {
    /// The other end.
    pub fn other(self) -> Self {
        match self {
            Self::Producer => Self::Consumer,
            Self::Consumer => Self::Producer,
        }
    }
}

/// A count of items read from the mapping, clamped to the capacity (a
/// garbage index can make it anything).
#[inline(always)]
fn clamp(n: u64, capacity: usize) -> usize {
    if n > capacity as u64 {
        capacity
    } else {
        n as usize
    }
}

/// Claims a role word for `me`: free (0) or held by a dead process.
///
/// # Errors
///
/// The pid of a live holder (this process included: one handle per role).
pub fn claim_role(role: &AtomicU32, me: u32) -> Result<(), u32> {
    claim_role_as(role, me, false)
}

/// [`claim_role`], where `mine_is_stale` says that this process holds no
/// handle on the role, so a word holding `me` was left by an earlier
/// process that had this pid and died (pids are reused: a restarted
/// service can get its predecessor's), and is taken over like any dead
/// holder's.
pub(crate) fn claim_role_as(role: &AtomicU32, me: u32, mine_is_stale: bool) -> Result<(), u32> {
    // Acquire pairs with the Release in `release_role` (or the dead
    // holder's last index stores, which came before its claim's
    // successors): the previous holder's published index is visible.
    let mut cur = role.load(Ordering::Acquire);
    loop {
        let live = if cur == me {
            !mine_is_stale
        } else {
            crate::pid::is_alive(cur)
        };
        if cur != 0 && live {
            return Err(cur);
        }
        // AcqRel on success: acquires as above and publishes our claim;
        // Acquire on failure: the new holder is re-examined.
        match role.compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// Gives a role back if `me` still holds it.
pub fn release_role(role: &AtomicU32, me: u32) {
    // Release pairs with the Acquire in `claim_role`: our index stores are
    // visible to the next holder. Relaxed on failure: someone took the role
    // over (we were thought dead); nothing to do.
    let _ = role.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
}

/// What a blocked side waits for, besides its own condition.
enum Blocked {
    Disconnected,
    Timeout,
}

/// Waits at `point` until `attempt` succeeds, the deadline passes, or no
/// live process holds the `peer` role: free (its holder dropped its handle,
/// or none ever attached) or held by a process that is gone. Before giving
/// up on the peer, one last attempt is made after seeing it gone, so
/// nothing the peer committed is missed.
///
/// A free role is seen at once (the releaser notifies `point`); a dead
/// holder within about [`SLICE`] (the pid is probed with the kernel in the
/// housekeeping between two slices of [`wait_sliced`]).
fn block<R>(
    point: WaitPoint<'_>,
    peer: &AtomicU32,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Option<R>,
) -> Result<R, Blocked> {
    // Set once the peer's holder was found dead: the last look then gives
    // up on it.
    let peer_gone = Cell::new(false);
    let step = || -> Option<Result<R, Blocked>> {
        if let Some(r) = attempt() {
            return Some(Ok(r));
        }
        // Acquire: pairs with the Release in `release_role`: the leaving
        // holder's last index store (and what it published) is visible to
        // the attempt below, so an item pushed (or a slot freed) just
        // before the release is never missed.
        if peer_gone.get() || peer.load(Ordering::Acquire) == 0 {
            return Some(attempt().ok_or(Blocked::Disconnected));
        }
        None
    };
    wait_sliced(point, deadline, SLICE, step, |step| {
        // Relaxed: a liveness probe; the pid is confirmed with the kernel,
        // and `step` re-reads what matters with Acquire.
        let pid = peer.load(Ordering::Relaxed);
        if pid == 0 || crate::pid::is_alive(pid) {
            return None;
        }
        peer_gone.set(true);
        Some(step().unwrap_or(Err(Blocked::Disconnected)))
    })
    .unwrap_or(Err(Blocked::Timeout))
}

/// A blocking call's error from the timed one it is built on: with no
/// deadline, [`block`] never times out.
#[cold]
fn no_deadline_no_timeout<T>() -> T {
    unreachable!("a wait without a deadline cannot time out")
}

/// Words one slot of a `T` takes: its size rounded up to whole 8-byte
/// words (the slot stride, in words). Alignment plays no part: the value is
/// copied through the words, never referenced in place.
///
/// # Examples
///
/// ```
/// use mmring::raw::spsc::slot_words;
///
/// assert_eq!(slot_words::<u64>(), 1);
/// assert_eq!(slot_words::<[u8; 3]>(), 1); // 3 bytes, then 5 zero bytes
/// assert_eq!(slot_words::<[u16; 5]>(), 2);
/// ```
#[inline(always)]
pub const fn slot_words<T>() -> usize {
    size_of::<T>().div_ceil(8)
}

/// Words a ring of `capacity` slots of `T` needs (what to hand to
/// [`RawProducer::new`] and [`RawConsumer::new`]).
///
/// # Panics
///
/// If the product overflows `usize`.
///
/// # Examples
///
/// ```
/// use mmring::raw::spsc::words_for;
///
/// assert_eq!(words_for::<u64>(1024), 1024);
/// assert_eq!(words_for::<[u32; 3]>(8), 16); // 12-byte values in 16-byte slots
/// ```
pub const fn words_for<T>(capacity: usize) -> usize {
    match capacity.checked_mul(slot_words::<T>()) {
        Some(n) => n,
        None => panic!("ring size overflows usize"),
    }
}

/// Copies a value out of its slot (relaxed word loads: the caller's Acquire
/// load of the producer's position orders them after the producer's
/// stores). `slot` is exactly [`slot_words::<T>()`](slot_words) long, so
/// that after inlining every length here is a constant and a `u64` is one
/// load.
#[inline(always)]
fn load<T: Pod>(slot: &[AtomicU64]) -> T {
    let mut v = T::zeroed();
    copy_out(slot, bytemuck::bytes_of_mut(&mut v));
    v
}

/// Copies a value into its slot (relaxed word stores, published by the
/// caller's Release store of its position); the tail of the last word is
/// zero.
#[inline(always)]
fn store<T: Pod>(slot: &[AtomicU64], v: &T) {
    copy_in(slot, bytemuck::bytes_of(v));
}

struct Ring<'a, T> {
    ctl: &'a Control,
    /// `capacity` slots of [`slot_words::<T>()`](slot_words) words each.
    words: &'a [AtomicU64],
    /// `capacity - 1` (the capacity is a power of two).
    mask: u64,
    _values: PhantomData<T>,
}

impl<T> Clone for Ring<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Ring<'_, T> {}

impl<'a, T: Pod> Ring<'a, T> {
    fn new(ctl: &'a Control, words: &'a [AtomicU64]) -> Self {
        let stride = slot_words::<T>();
        assert!(stride > 0, "a ring cannot hold zero-sized values");
        let cap = words.len() / stride;
        assert!(
            cap.is_power_of_two() && cap * stride == words.len(),
            "ring capacity must be a power of two, got {} words of {stride}-word slots",
            words.len()
        );
        Self {
            ctl,
            words,
            mask: cap as u64 - 1,
            _values: PhantomData,
        }
    }

    /// A ring over validated parts (see [`RawProducer::from_parts`]):
    /// pointer copies and one subtraction. A capacity that is not a power
    /// of two, or too few words, would only make `slot` panic (its slicing
    /// is checked), never reach outside `words`.
    #[inline(always)]
    fn from_parts(ctl: &'a Control, words: &'a [AtomicU64], capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        debug_assert!(capacity.saturating_mul(slot_words::<T>()) <= words.len());
        Self {
            ctl,
            words,
            mask: (capacity as u64).wrapping_sub(1),
            _values: PhantomData,
        }
    }

    #[inline(always)]
    fn capacity(&self) -> usize {
        // The mask came from a usize capacity: no truncation.
        self.mask as usize + 1
    }

    /// The words of the slot of position `pos`.
    #[inline(always)]
    fn slot(&self, pos: u64) -> &'a [AtomicU64] {
        let stride = slot_words::<T>();
        // Masked: in bounds whatever `pos` a peer wrote (index < capacity,
        // so start + stride <= capacity * stride = words.len()).
        let start = (pos & self.mask) as usize * stride;
        &self.words[start..start + stride]
    }

    /// The words of the `n` slots from position `pos`, as the run up to
    /// the end of the ring and the run that wraps around to its start
    /// (empty unless the slots wrap). `n` is at most the capacity (callers
    /// pass counts clamped to it).
    #[inline(always)]
    fn runs(&self, pos: u64, n: usize) -> (&'a [AtomicU64], &'a [AtomicU64]) {
        let stride = slot_words::<T>();
        let start = (pos & self.mask) as usize;
        let first = n.min(self.capacity() - start);
        (
            &self.words[start * stride..(start + first) * stride],
            &self.words[..(n - first) * stride],
        )
    }

    /// Copies `values` into the `values.len()` slots from `pos`.
    #[inline(always)]
    fn store_run(&self, pos: u64, values: &[T]) {
        let (a, b) = self.runs(pos, values.len());
        let (va, vb) = values.split_at(a.len() / slot_words::<T>());
        for (slot, v) in a.chunks_exact(slot_words::<T>()).zip(va) {
            store(slot, v);
        }
        for (slot, v) in b.chunks_exact(slot_words::<T>()).zip(vb) {
            store(slot, v);
        }
    }

    /// Copies the `out.len()` values from `pos` into `out`.
    #[inline(always)]
    fn load_run(&self, pos: u64, out: &mut [T]) {
        let (a, b) = self.runs(pos, out.len());
        let (oa, ob) = out.split_at_mut(a.len() / slot_words::<T>());
        for (slot, v) in a.chunks_exact(slot_words::<T>()).zip(oa) {
            *v = load(slot);
        }
        for (slot, v) in b.chunks_exact(slot_words::<T>()).zip(ob) {
            *v = load(slot);
        }
    }
}

/// A producer's own positions, kept between calls by whoever holds the
/// end: a [`RawProducer`] made with [`RawProducer::new`] owns its cursor; a
/// handle over a mapped file keeps one and lends it to the raw end it
/// builds for each call ([`RawProducer::from_parts`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProducerCursor {
    /// Our own position: the authority, whatever the shared word says.
    tail: u64,
    /// The consumer's position as last read (a lower bound of the real one).
    head_cache: u64,
}

impl ProducerCursor {
    /// The positions of a producer attaching to the ring: it continues
    /// from the published tail. Call it after claiming the role (whose
    /// Acquire makes the previous holder's last tail visible).
    pub fn attach(ctl: &Control) -> Self {
        Self {
            // Acquire: pairs with the previous producer's Release store of
            // tail (its slot writes are behind it), if any.
            tail: ctl.tail.load(Ordering::Acquire),
            // Acquire: pairs with the consumer's Release store of head.
            head_cache: ctl.head.load(Ordering::Acquire),
        }
    }
}

/// A consumer's own positions (see [`ProducerCursor`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsumerCursor {
    /// Our own position: the authority, whatever the shared word says.
    head: u64,
    /// The producer's position as last read (a lower bound of the real one).
    tail_cache: u64,
}

impl ConsumerCursor {
    /// The positions of a consumer attaching to the ring: it continues
    /// from the published head (call it after claiming the role).
    pub fn attach(ctl: &Control) -> Self {
        Self {
            // Acquire: pairs with the previous consumer's Release store.
            head: ctl.head.load(Ordering::Acquire),
            // Acquire: pairs with the producer's Release store of tail.
            tail_cache: ctl.tail.load(Ordering::Acquire),
        }
    }
}

/// The producing end of a ring in memory the caller hands in (the heap,
/// loom's atomics in a model, or a mapping).
/// [`Producer`](crate::spsc::Producer) builds one per call over its mapped
/// file, lending it its cursor (`C = &mut ProducerCursor`); one made with
/// [`new`](Self::new) owns its cursor.
pub struct RawProducer<'a, T, C = ProducerCursor> {
    ring: Ring<'a, T>,
    cur: C,
}

impl<'a, T: Pod> RawProducer<'a, T> {
    /// Attaches to a ring as its producer, continuing from the published
    /// tail. Does not claim the role (see [`claim_role`]). `slots` holds
    /// the slot words: a power of two of slots of [`slot_words::<T>()`]
    /// words each ([`words_for::<T>(capacity)`](words_for) in all).
    ///
    /// # Panics
    ///
    /// If `slots.len()` is not a power-of-two number of slots, or `T` is
    /// zero-sized.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmring::raw::spsc::{Control, RawConsumer, RawProducer, words_for};
    /// use mmring::sync::AtomicU64;
    ///
    /// let ctl = Control::new();
    /// // 4 slots of a 12-byte value: 2 words each.
    /// let words: Vec<AtomicU64> = (0..words_for::<[u32; 3]>(4)).map(|_| AtomicU64::new(0)).collect();
    /// let mut p = RawProducer::<[u32; 3]>::new(&ctl, &words);
    /// let mut c = RawConsumer::<[u32; 3]>::new(&ctl, &words);
    /// p.try_push([1, 2, 3])?;
    /// assert_eq!(c.try_pop(), Ok([1, 2, 3]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(ctl: &'a Control, slots: &'a [AtomicU64]) -> Self {
        Self {
            ring: Ring::new(ctl, slots),
            cur: ProducerCursor::attach(ctl),
        }
    }
}

impl<'a, T: Pod, C: BorrowMut<ProducerCursor>> RawProducer<'a, T, C> {
    /// A producer over a ring whose shape was validated once (by the
    /// caller: `capacity` a power of two, `slots` at least
    /// [`words_for::<T>(capacity)`](words_for) words), continuing from
    /// `cursor`. Pointer copies only: no loads and no checks, so a handle
    /// can build one for every call.
    #[inline(always)]
    pub fn from_parts(
        ctl: &'a Control,
        slots: &'a [AtomicU64],
        capacity: usize,
        cursor: C,
    ) -> Self {
        Self {
            ring: Ring::from_parts(ctl, slots, capacity),
            cur: cursor,
        }
    }

    /// The same end, lending its cursor (what a chunk holds).
    #[inline(always)]
    fn by_ref(&mut self) -> RawProducer<'_, T, &mut ProducerCursor> {
        RawProducer {
            ring: self.ring,
            cur: self.cur.borrow_mut(),
        }
    }

    #[inline(always)]
    fn tail(&self) -> u64 {
        self.cur.borrow().tail
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Free slots, reloading the consumer's position only if the cached
    /// one shows fewer than `want`.
    #[inline]
    fn free(&mut self, want: usize) -> usize {
        let cap = self.capacity();
        let cur = self.cur.borrow_mut();
        let free = cap - clamp(cur.tail.wrapping_sub(cur.head_cache), cap);
        if free >= want {
            return free;
        }
        // Acquire: pairs with the consumer's Release store of head: its
        // reads of the slots before that position are done before we
        // overwrite them.
        cur.head_cache = self.ring.ctl.head.load(Ordering::Acquire);
        cap - clamp(cur.tail.wrapping_sub(cur.head_cache), cap)
    }

    /// Whether one slot is free: [`free(1)`](Self::free) `> 0`, with one
    /// comparison on the cached path (`free(1) == 0` exactly when the
    /// wrapped distance from the cached head is at least the capacity,
    /// garbage from a peer included).
    #[inline(always)]
    fn has_room(&mut self) -> bool {
        let cap = self.capacity() as u64;
        let cur = self.cur.borrow_mut();
        if cur.tail.wrapping_sub(cur.head_cache) < cap {
            return true;
        }
        // Acquire: as in `free`.
        cur.head_cache = self.ring.ctl.head.load(Ordering::Acquire);
        cur.tail.wrapping_sub(cur.head_cache) < cap
    }

    #[inline]
    fn is_closed(&self) -> bool {
        // Relaxed: only decides whether to refuse a push; a push racing a
        // close may still land (and stay unread), as with any channel.
        self.ring.ctl.closed.load(Ordering::Relaxed) != 0
    }

    #[inline]
    fn publish(&mut self, n: usize) {
        let cur = self.cur.borrow_mut();
        cur.tail = cur.tail.wrapping_add(n as u64);
        // Release: pairs with the consumer's Acquire load of tail: the slot
        // writes above are visible before the new position is.
        self.ring.ctl.tail.store(cur.tail, Ordering::Release);
        self.ring.ctl.data().notify();
    }

    /// Copies `value` into the slot `offset` places past our tail. Callers
    /// checked with `free` that it lies before the consumer's head +
    /// capacity, so the consumer is not reading it (if a peer lied about
    /// the head, the words are still only ever accessed atomically).
    #[inline(always)]
    fn write(&self, offset: usize, value: &T) {
        store(
            self.ring.slot(self.tail().wrapping_add(offset as u64)),
            value,
        );
    }

    /// Pushes `value` if there is room, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] or [`TryPushError::Closed`], with the value.
    #[inline(always)]
    pub fn try_push(&mut self, value: T) -> Result<(), TryPushError<T>> {
        if self.is_closed() {
            return Err(TryPushError::Closed(value));
        }
        if !self.has_room() {
            return Err(TryPushError::Full(value));
        }
        self.write(0, &value);
        self.publish(1);
        Ok(())
    }

    /// Pushes `value`, sleeping while the ring is full, until `deadline`
    /// (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`PushTimeoutError`] with the value: closed; no live consumer holds
    /// the role while the ring is full (free, never claimed yet, or its
    /// process is gone); or the deadline passed.
    pub fn push_until(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), PushTimeoutError<T>> {
        let mut value = Some(value);
        let ring = self.ring;
        let res = block(ring.ctl.space(), &ring.ctl.consumer, deadline, || {
            let v = value.take()?;
            match self.try_push(v) {
                Ok(()) => Some(Ok(())),
                Err(TryPushError::Closed(v)) => Some(Err(v)),
                Err(TryPushError::Full(v)) => {
                    value = Some(v);
                    None
                }
            }
        });
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(v)) => Err(PushTimeoutError::Closed(v)),
            Err(Blocked::Disconnected) => Err(PushTimeoutError::Disconnected(
                value.take().unwrap_or_else(unreachable_value),
            )),
            Err(Blocked::Timeout) => Err(PushTimeoutError::Timeout(
                value.take().unwrap_or_else(unreachable_value),
            )),
        }
    }

    /// Pushes `value`, sleeping while the ring is full, for as long as a
    /// live consumer holds its role.
    ///
    /// # Errors
    ///
    /// [`PushError`] with the value: closed, or no live consumer while the
    /// ring is full.
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        self.push_until(value, None).map_err(|e| match e {
            PushTimeoutError::Closed(v) => PushError::Closed(v),
            PushTimeoutError::Disconnected(v) => PushError::Disconnected(v),
            PushTimeoutError::Timeout(_) => no_deadline_no_timeout(),
        })
    }

    /// Sleeps until at least `n` slots are free (then a
    /// [`write_chunk(n)`](Self::write_chunk) succeeds: only this producer
    /// fills slots), until `deadline`.
    ///
    /// # Errors
    ///
    /// [`PushTimeoutError`] (with `()`): closed, no live consumer while
    /// there is no room, timed out; also `Closed` at once if `n` exceeds
    /// the capacity (it could never fit).
    pub fn wait_free(
        &mut self,
        n: usize,
        deadline: Option<Instant>,
    ) -> Result<(), PushTimeoutError<()>> {
        if n > self.capacity() {
            return Err(PushTimeoutError::Closed(()));
        }
        let ring = self.ring;
        let res = block(ring.ctl.space(), &ring.ctl.consumer, deadline, || {
            if self.is_closed() {
                Some(Err(()))
            } else {
                (self.free(n) >= n).then_some(Ok(()))
            }
        });
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(PushTimeoutError::Closed(())),
            Err(Blocked::Disconnected) => Err(PushTimeoutError::Disconnected(())),
            Err(Blocked::Timeout) => Err(PushTimeoutError::Timeout(())),
        }
    }

    /// Pushes as many of `values` as fit, in order, with one publish of
    /// the tail for the whole batch. Returns how many were pushed (0 if
    /// the ring is full).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the ring was closed.
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        let n = values.len().min(self.free(values.len()));
        if n > 0 {
            self.ring.store_run(self.tail(), &values[..n]);
            self.publish(n);
        }
        Ok(n)
    }

    /// Reserves `n` slots to fill ([`WriteChunk::set`],
    /// [`WriteChunk::copy_from_slice`], [`WriteChunk::fill_from_iter`]);
    /// nothing is visible to the consumer until it is committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number free, or
    /// [`ChunkError::Closed`].
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T>, ChunkError> {
        self.by_ref().into_write_chunk(n)
    }

    /// Closes the ring from the producing side: the consumer drains what is
    /// left, then gets `Closed`. Wakes every sleeper.
    pub fn close(&self) {
        self.ring.ctl.close(CLOSED_BY_PRODUCER);
    }

    /// Whether either side closed the ring.
    pub fn is_closed_now(&self) -> bool {
        self.is_closed()
    }

    /// Whether the ring is full right now (a snapshot: the consumer may
    /// free a slot as soon as this returns).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Items in the ring right now (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.ctl.len(self.capacity())
    }

    /// Whether the ring is empty right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a, T: Pod> RawProducer<'a, T, &'a mut ProducerCursor> {
    /// [`write_chunk`](RawProducer::write_chunk) of an end built for one
    /// call (a handle's): the chunk keeps the borrow of the cursor.
    ///
    /// # Errors
    ///
    /// As [`write_chunk`](RawProducer::write_chunk).
    #[inline]
    pub fn into_write_chunk(mut self, n: usize) -> Result<WriteChunk<'a, T>, ChunkError> {
        if self.is_closed() {
            return Err(ChunkError::Closed);
        }
        let free = self.free(n);
        if free < n {
            return Err(ChunkError::TooFewSlots(free));
        }
        Ok(WriteChunk {
            producer: self,
            len: n,
        })
    }
}

#[cold]
fn unreachable_value<T>() -> T {
    unreachable!("a blocked push keeps its value until it is pushed")
}

/// Slots reserved by [`RawProducer::write_chunk`]: fill them, then
/// [`commit`](Self::commit) (or let [`fill_from_iter`](Self::fill_from_iter)
/// commit). Dropped uncommitted, nothing is published.
///
/// There is no `&mut [T]` into the slots: they live in memory another
/// process may write at any moment, so values are copied in through atomic
/// words instead (see the [module docs](self)).
///
/// # Examples
///
/// ```
/// use mmring::raw::spsc::{Control, RawConsumer, RawProducer, words_for};
/// use mmring::sync::AtomicU64;
///
/// let ctl = Control::new();
/// let words: Vec<AtomicU64> = (0..words_for::<u32>(8)).map(|_| AtomicU64::new(0)).collect();
/// let (mut p, mut c) = (RawProducer::<u32>::new(&ctl, &words), RawConsumer::<u32>::new(&ctl, &words));
///
/// let mut chunk = p.write_chunk(3)?;
/// chunk.copy_from_slice(&[10, 11]);
/// chunk.set(2, 12);
/// chunk.commit_all();
/// // Fills (and commits) as many as the iterator gives, at most the chunk's length.
/// assert_eq!(p.write_chunk(4)?.fill_from_iter([20, 21]), 2);
///
/// let mut out = [0; 5];
/// assert_eq!(c.pop_slice(&mut out), Ok(5));
/// assert_eq!(out, [10, 11, 12, 20, 21]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteChunk<'p, T> {
    producer: RawProducer<'p, T, &'p mut ProducerCursor>,
    len: usize,
}

impl<T: Pod> WriteChunk<'_, T> {
    /// Number of reserved slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot was reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the `i`-th reserved slot.
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn set(&mut self, i: usize, value: T) {
        assert!(i < self.len, "slot {i} outside a chunk of {}", self.len);
        self.producer.write(i, &value);
    }

    /// Writes `values` into the first `values.len()` reserved slots (as
    /// many word copies as values, in at most two runs).
    ///
    /// # Panics
    ///
    /// If `values.len() > len()`.
    pub fn copy_from_slice(&mut self, values: &[T]) {
        assert!(
            values.len() <= self.len,
            "{} values do not fit a chunk of {}",
            values.len(),
            self.len
        );
        self.producer.ring.store_run(self.producer.tail(), values);
    }

    /// Writes the values `iter` yields into the reserved slots, in order,
    /// until the iterator ends or the chunk is full, then commits exactly
    /// the slots written (one publish) and returns how many. Values the
    /// iterator still holds when the chunk is full are not taken from it
    /// (it is not advanced past the last value written).
    ///
    /// As rtrb's `WriteChunkUninit::fill_from_iter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmring::raw::spsc::{Control, RawProducer, words_for};
    /// use mmring::sync::AtomicU64;
    ///
    /// let ctl = Control::new();
    /// let words: Vec<AtomicU64> = (0..words_for::<u64>(4)).map(|_| AtomicU64::new(0)).collect();
    /// let mut p = RawProducer::<u64>::new(&ctl, &words);
    /// let mut values = 1..;
    /// assert_eq!(p.write_chunk(3)?.fill_from_iter(&mut values), 3);
    /// assert_eq!(values.next(), Some(4)); // not taken: the chunk was full
    /// assert_eq!(p.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fill_from_iter<I: IntoIterator<Item = T>>(self, iter: I) -> usize {
        let ring = self.producer.ring;
        let (a, b) = ring.runs(self.producer.tail(), self.len);
        let mut iter = iter.into_iter();
        let mut n = 0;
        // A value is pulled only for a free slot: a full chunk leaves the
        // iterator's next value in it.
        for slot in a
            .chunks_exact(slot_words::<T>())
            .chain(b.chunks_exact(slot_words::<T>()))
        {
            let Some(v) = iter.next() else { break };
            store(slot, &v);
            n += 1;
        }
        self.commit(n);
        n
    }

    /// Publishes the first `n` reserved slots.
    ///
    /// # Panics
    ///
    /// If `n > len()`.
    pub fn commit(mut self, n: usize) {
        assert!(n <= self.len, "cannot commit {n} of {} slots", self.len);
        if n > 0 {
            self.producer.publish(n);
        }
    }

    /// Publishes every reserved slot.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }

    /// The reserved slots' words, as at most two runs (for the byte ring,
    /// which writes a message's words directly).
    pub(crate) fn words(&self) -> (&[AtomicU64], &[AtomicU64]) {
        self.producer.ring.runs(self.producer.tail(), self.len)
    }
}

/// The last look of a consumer that found nothing and the ring closed
/// (see [`RawConsumer::try_pop`]): whether the tail, re-read after the
/// close was seen, still shows nothing (then the ring is drained).
#[cold]
#[inline(never)]
fn drained_after_close(ctl: &Control, cur: &mut ConsumerCursor, capacity: usize) -> bool {
    // Acquire: pairs with the producer's Release store of tail (its
    // stores before the close are visible after the Acquire load of
    // `closed` that brought us here).
    cur.tail_cache = ctl.tail.load(Ordering::Acquire);
    clamp(cur.tail_cache.wrapping_sub(cur.head), capacity) == 0
}

/// The consuming end of a ring in memory the caller hands in.
/// [`Consumer`](crate::spsc::Consumer) builds one per call over its mapped
/// file, lending it its cursor (see [`RawProducer`]).
pub struct RawConsumer<'a, T, C = ConsumerCursor> {
    ring: Ring<'a, T>,
    cur: C,
}

impl<'a, T: Pod> RawConsumer<'a, T> {
    /// Attaches to a ring as its consumer, continuing from the published
    /// head. Does not claim the role (see [`claim_role`]). `slots` as for
    /// [`RawProducer::new`].
    ///
    /// # Panics
    ///
    /// As [`RawProducer::new`].
    pub fn new(ctl: &'a Control, slots: &'a [AtomicU64]) -> Self {
        Self {
            ring: Ring::new(ctl, slots),
            cur: ConsumerCursor::attach(ctl),
        }
    }
}

impl<'a, T: Pod, C: BorrowMut<ConsumerCursor>> RawConsumer<'a, T, C> {
    /// A consumer over a validated ring, continuing from `cursor` (see
    /// [`RawProducer::from_parts`]). Pointer copies only.
    #[inline(always)]
    pub fn from_parts(
        ctl: &'a Control,
        slots: &'a [AtomicU64],
        capacity: usize,
        cursor: C,
    ) -> Self {
        Self {
            ring: Ring::from_parts(ctl, slots, capacity),
            cur: cursor,
        }
    }

    /// The same end, lending its cursor (what a chunk holds).
    #[inline(always)]
    fn by_ref(&mut self) -> RawConsumer<'_, T, &mut ConsumerCursor> {
        RawConsumer {
            ring: self.ring,
            cur: self.cur.borrow_mut(),
        }
    }

    #[inline(always)]
    fn head(&self) -> u64 {
        self.cur.borrow().head
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Items available, reloading the producer's position only if the
    /// cached one shows fewer than `want`.
    #[inline]
    fn available(&mut self, want: usize) -> usize {
        let cap = self.capacity();
        let cur = self.cur.borrow_mut();
        let n = clamp(cur.tail_cache.wrapping_sub(cur.head), cap);
        if n >= want {
            return n;
        }
        // Acquire: pairs with the producer's Release store of tail: the
        // slots before it are written.
        cur.tail_cache = self.ring.ctl.tail.load(Ordering::Acquire);
        clamp(cur.tail_cache.wrapping_sub(cur.head), cap)
    }

    /// Whether an item is available: [`available(1)`](Self::available)
    /// `> 0`, with one comparison on the cached path (the clamped count is
    /// 0 exactly when the cached tail equals our head).
    #[inline(always)]
    fn has_item(&mut self) -> bool {
        let cur = self.cur.borrow_mut();
        if cur.tail_cache != cur.head {
            return true;
        }
        // Acquire: as in `available`.
        cur.tail_cache = self.ring.ctl.tail.load(Ordering::Acquire);
        cur.tail_cache != cur.head
    }

    /// With nothing available: is the ring closed *and* drained? Re-reads
    /// the tail after seeing the close, so a push published before the
    /// close is never missed.
    fn closed_and_drained(&mut self) -> bool {
        // Acquire pairs with the Release `fetch_or` in `Control::close`:
        // the producer's tail stores before its close are visible.
        if self.ring.ctl.closed.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.available(1) == 0
    }

    /// Copies out the value `offset` places past our head. Callers checked
    /// with `available` that it lies before the tail we acquired: the
    /// producer wrote it before publishing and does not write it again
    /// until we publish a head past it (a peer that breaks the protocol
    /// makes us read a wrong value, never race a plain access: the words
    /// are only ever accessed atomically, and any bytes are a valid `T`).
    #[inline(always)]
    fn read(&self, offset: usize) -> T {
        load(self.ring.slot(self.head().wrapping_add(offset as u64)))
    }

    #[inline]
    fn release(&mut self, n: usize) {
        let cur = self.cur.borrow_mut();
        cur.head = cur.head.wrapping_add(n as u64);
        // Release: pairs with the producer's Acquire load of head: our
        // reads of the slots are done before it may overwrite them.
        self.ring.ctl.head.store(cur.head, Ordering::Release);
        self.ring.ctl.space().notify();
    }

    /// Pops the oldest item if there is one, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once the ring is
    /// closed and drained.
    #[inline(always)]
    pub fn try_pop(&mut self) -> Result<T, TryPopError> {
        if !self.has_item() {
            // Acquire: as in `closed_and_drained` (inline here, and the rest
            // out of line over the cursor alone, so that an empty poll, what
            // a spinning consumer does most, costs one load of a line nobody
            // writes and the hot path keeps the raw end in registers).
            if self.ring.ctl.closed.load(Ordering::Acquire) == 0 {
                return Err(TryPopError::Empty);
            }
            let cap = self.capacity();
            return Err(
                if drained_after_close(self.ring.ctl, self.cur.borrow_mut(), cap) {
                    TryPopError::Closed
                } else {
                    TryPopError::Empty
                },
            );
        }
        let v = self.read(0);
        self.release(1);
        Ok(v)
    }

    /// Pops the oldest item, sleeping while the ring is empty, until
    /// `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError`]: closed and drained; no live producer holds the
    /// role (free, never claimed yet, or its process is gone) and
    /// everything it committed was received; or the deadline passed.
    pub fn pop_until(&mut self, deadline: Option<Instant>) -> Result<T, PopTimeoutError> {
        let ring = self.ring;
        let res = block(
            ring.ctl.data(),
            &ring.ctl.producer,
            deadline,
            || match self.try_pop() {
                Ok(v) => Some(Ok(v)),
                Err(TryPopError::Closed) => Some(Err(PopTimeoutError::Closed)),
                Err(TryPopError::Empty) => None,
            },
        );
        match res {
            Ok(r) => r,
            Err(Blocked::Disconnected) => Err(PopTimeoutError::Disconnected),
            Err(Blocked::Timeout) => Err(PopTimeoutError::Timeout),
        }
    }

    /// Pops the oldest item, sleeping while the ring is empty, for as long
    /// as a live producer holds its role.
    ///
    /// # Errors
    ///
    /// [`PopError`]: closed and drained, or drained with no live producer.
    pub fn pop(&mut self) -> Result<T, PopError> {
        self.pop_until(None).map_err(|e| match e {
            PopTimeoutError::Closed => PopError::Closed,
            PopTimeoutError::Disconnected => PopError::Disconnected,
            PopTimeoutError::Timeout => no_deadline_no_timeout(),
        })
    }

    /// Sleeps until at least `n` items are available (then a
    /// [`read_chunk(n)`](Self::read_chunk) succeeds), until `deadline`.
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError`]: closed with fewer than `n` left, fewer than `n`
    /// left and no live producer, or timed out; also `Closed` at once if
    /// `n` exceeds the capacity (that many could never be there).
    pub fn wait_available(
        &mut self,
        n: usize,
        deadline: Option<Instant>,
    ) -> Result<(), PopTimeoutError> {
        if n > self.capacity() {
            return Err(PopTimeoutError::Closed);
        }
        let ring = self.ring;
        let res = block(ring.ctl.data(), &ring.ctl.producer, deadline, || {
            if self.available(n) >= n {
                return Some(Ok(()));
            }
            // Acquire pairs with `Control::close`'s Release: after it, the
            // producer's last tail is visible to the re-check.
            if ring.ctl.closed.load(Ordering::Acquire) != 0 && self.available(n) < n {
                return Some(Err(PopTimeoutError::Closed));
            }
            None
        });
        match res {
            Ok(r) => r,
            Err(Blocked::Disconnected) => Err(PopTimeoutError::Disconnected),
            Err(Blocked::Timeout) => Err(PopTimeoutError::Timeout),
        }
    }

    /// Pops up to `out.len()` items into `out`, oldest first, with one
    /// publish of the head for the whole batch. Returns how many (0 if the
    /// ring is empty).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the ring is closed and drained.
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, Closed> {
        let n = out.len().min(self.available(out.len()));
        if n == 0 {
            return if !out.is_empty() && self.closed_and_drained() {
                Err(Closed)
            } else {
                Ok(0)
            };
        }
        self.ring.load_run(self.head(), &mut out[..n]);
        self.release(n);
        Ok(n)
    }

    /// Takes hold of the `n` oldest items, to read ([`ReadChunk::get`],
    /// [`ReadChunk::iter`], [`ReadChunk::copy_to_slice`], or by value
    /// through [`IntoIterator`]); they are released to the producer only
    /// when committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number available, or
    /// [`ChunkError::Closed`] once the ring is closed and drained.
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T>, ChunkError> {
        self.by_ref().into_read_chunk(n)
    }

    /// Closes the ring from the consuming side: pushes get `Closed` from now
    /// on. Wakes every sleeper.
    pub fn close(&self) {
        self.ring.ctl.close(CLOSED_BY_CONSUMER);
    }

    /// Items in the ring right now (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.ctl.len(self.capacity())
    }

    /// Whether the ring is empty right now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring is full right now (a snapshot).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Whether either side closed the ring (items may still be left to
    /// drain). A snapshot.
    pub fn is_closed(&self) -> bool {
        self.ring.ctl.is_closed()
    }
}

impl<'a, T: Pod> RawConsumer<'a, T, &'a mut ConsumerCursor> {
    /// [`read_chunk`](RawConsumer::read_chunk) of an end built for one call
    /// (a handle's): the chunk keeps the borrow of the cursor.
    ///
    /// # Errors
    ///
    /// As [`read_chunk`](RawConsumer::read_chunk).
    #[inline]
    pub fn into_read_chunk(mut self, n: usize) -> Result<ReadChunk<'a, T>, ChunkError> {
        let avail = self.available(n);
        if avail < n {
            if avail == 0 && self.closed_and_drained() {
                return Err(ChunkError::Closed);
            }
            return Err(ChunkError::TooFewSlots(avail));
        }
        Ok(ReadChunk {
            consumer: self,
            len: n,
        })
    }
}

/// Items held by [`RawConsumer::read_chunk`]: read them (copies), then
/// [`commit`](Self::commit) what was consumed. Dropped uncommitted, nothing
/// is consumed.
///
/// There is no `&[T]` into the slots: they live in memory another process
/// may write at any moment, so values are copied out through atomic words
/// instead (see the [module docs](self)). Consuming the chunk with
/// [`into_iter`](IntoIterator::into_iter) yields the values and commits
/// exactly those yielded when the iterator is dropped, as rtrb's
/// `ReadChunkIntoIter` does.
///
/// # Examples
///
/// ```
/// use mmring::raw::spsc::{Control, RawConsumer, RawProducer, words_for};
/// use mmring::sync::AtomicU64;
///
/// let ctl = Control::new();
/// let words: Vec<AtomicU64> = (0..words_for::<u64>(4)).map(|_| AtomicU64::new(0)).collect();
/// let (mut p, mut c) = (RawProducer::<u64>::new(&ctl, &words), RawConsumer::<u64>::new(&ctl, &words));
/// p.push_slice(&[1, 2, 3, 4])?;
///
/// let chunk = c.read_chunk(3)?;
/// assert_eq!(chunk.get(0), 1);
/// assert_eq!(chunk.iter().sum::<u64>(), 6); // copies, commits nothing
/// let mut two = [0; 2];
/// chunk.copy_to_slice(&mut two);
/// assert_eq!(two, [1, 2]);
/// chunk.commit(1); // 1 consumed; 2, 3, 4 stay
///
/// // By value: what the loop yields is consumed when the iterator drops.
/// for v in c.read_chunk(3)? {
///     if v == 3 {
///         break; // 2 and 3 were yielded: consumed; 4 stays
///     }
/// }
/// assert_eq!(c.try_pop(), Ok(4));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReadChunk<'c, T> {
    consumer: RawConsumer<'c, T, &'c mut ConsumerCursor>,
    len: usize,
}

impl<'c, T: Pod> ReadChunk<'c, T> {
    /// Number of items held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of the `i`-th item (0 is the oldest).
    ///
    /// # Panics
    ///
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> T {
        assert!(i < self.len, "item {i} outside a chunk of {}", self.len);
        self.consumer.read(i)
    }

    /// The items, oldest first, by value (each a copy); commits nothing.
    pub fn iter(&self) -> ReadChunkIter<'_, T> {
        ReadChunkIter {
            ring: self.consumer.ring,
            head: self.consumer.head(),
            next: 0,
            end: self.len,
        }
    }

    /// Copies the first `out.len()` items into `out` (in at most two runs
    /// of word copies); commits nothing.
    ///
    /// # Panics
    ///
    /// If `out.len() > len()`.
    pub fn copy_to_slice(&self, out: &mut [T]) {
        assert!(
            out.len() <= self.len,
            "cannot copy {} items out of a chunk of {}",
            out.len(),
            self.len
        );
        self.consumer.ring.load_run(self.consumer.head(), out);
    }

    /// Releases the first `n` items to the producer.
    ///
    /// # Panics
    ///
    /// If `n > len()`.
    pub fn commit(mut self, n: usize) {
        assert!(n <= self.len, "cannot commit {n} of {} items", self.len);
        if n > 0 {
            self.consumer.release(n);
        }
    }

    /// Releases every item held.
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }

    /// The held items' words, as at most two runs (for the byte ring, which
    /// reads a message's words directly).
    pub(crate) fn words(&self) -> (&[AtomicU64], &[AtomicU64]) {
        self.consumer.ring.runs(self.consumer.head(), self.len)
    }
}

impl<'c, T: Pod> IntoIterator for ReadChunk<'c, T> {
    type Item = T;
    type IntoIter = ReadChunkIntoIter<'c, T>;

    /// Turns the chunk into an iterator that yields its items by value,
    /// oldest first, and commits exactly the items it yielded when it is
    /// dropped (one store of the head; none if it yielded none). Items not
    /// yielded stay in the ring, first in line for the next read. An
    /// iterator leaked with [`std::mem::forget`] commits nothing.
    fn into_iter(self) -> Self::IntoIter {
        ReadChunkIntoIter {
            chunk: self,
            iterated: 0,
        }
    }
}

impl<'r, T: Pod> IntoIterator for &'r ReadChunk<'_, T> {
    type Item = T;
    type IntoIter = ReadChunkIter<'r, T>;

    /// As [`ReadChunk::iter`]: copies, commits nothing.
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The items of a [`ReadChunk`], by value, oldest first, without
/// committing them ([`ReadChunk::iter`]).
#[derive(Clone)]
pub struct ReadChunkIter<'r, T> {
    ring: Ring<'r, T>,
    head: u64,
    /// Next offset from `head` to yield; `next..end` are left.
    next: usize,
    end: usize,
}

impl<T: Pod> Iterator for ReadChunkIter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        let v = load(self.ring.slot(self.head.wrapping_add(self.next as u64)));
        self.next += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<T: Pod> DoubleEndedIterator for ReadChunkIter<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        self.end -= 1;
        Some(load(
            self.ring.slot(self.head.wrapping_add(self.end as u64)),
        ))
    }
}

impl<T: Pod> ExactSizeIterator for ReadChunkIter<'_, T> {}
impl<T: Pod> FusedIterator for ReadChunkIter<'_, T> {}

/// A [`ReadChunk`] consumed by value ([`IntoIterator::into_iter`]): yields
/// its items oldest first, and on drop commits exactly the items it
/// yielded (one store of the head; none if it yielded none). Items not
/// yielded stay in the ring, first in line for the next read; an iterator
/// leaked with [`std::mem::forget`] commits nothing.
pub struct ReadChunkIntoIter<'c, T: Pod> {
    chunk: ReadChunk<'c, T>,
    /// Items yielded so far: what drop commits.
    iterated: usize,
}

impl<T: Pod> ReadChunkIntoIter<'_, T> {
    /// Items yielded so far (committed when the iterator is dropped).
    pub fn iterated(&self) -> usize {
        self.iterated
    }
}

impl<T: Pod> Iterator for ReadChunkIntoIter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.iterated == self.chunk.len {
            return None;
        }
        let v = self.chunk.consumer.read(self.iterated);
        self.iterated += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.chunk.len - self.iterated;
        (n, Some(n))
    }
}

impl<T: Pod> ExactSizeIterator for ReadChunkIntoIter<'_, T> {}
impl<T: Pod> FusedIterator for ReadChunkIntoIter<'_, T> {}

impl<T: Pod> Drop for ReadChunkIntoIter<'_, T> {
    fn drop(&mut self) {
        if self.iterated > 0 {
            self.chunk.consumer.release(self.iterated);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slots<T: Pod>(n: usize) -> Vec<AtomicU64> {
        (0..words_for::<T>(n)).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn push_pop_in_order_across_the_wrap() {
        let ctl = Control::new();
        let s = slots::<u64>(4);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        for i in 0..4 {
            p.try_push(i).unwrap();
        }
        assert!(matches!(p.try_push(9), Err(TryPushError::Full(9))));
        for round in 0..10u64 {
            assert_eq!(c.try_pop(), Ok(round));
            p.try_push(round + 4).unwrap();
        }
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn batches_and_chunks_wrap_and_commit_partially() {
        let ctl = Control::new();
        let s = slots::<u32>(8);
        let mut p = RawProducer::<u32>::new(&ctl, &s);
        let mut c = RawConsumer::<u32>::new(&ctl, &s);
        assert_eq!(p.push_slice(&[1, 2, 3, 4, 5, 6]), Ok(6));
        let mut out = [0; 4];
        assert_eq!(c.pop_slice(&mut out), Ok(4));
        assert_eq!(out, [1, 2, 3, 4]);
        // 2 left at positions 4,5; free 6 slots from position 6: wraps.
        assert_eq!(p.push_slice(&[7, 8, 9, 10, 11, 12, 13]), Ok(6));
        assert!(matches!(p.write_chunk(1), Err(ChunkError::TooFewSlots(0))));
        let chunk = c.read_chunk(8).unwrap();
        let mut all = [0; 8];
        chunk.copy_to_slice(&mut all);
        assert_eq!(all, [5, 6, 7, 8, 9, 10, 11, 12]);
        chunk.commit(3);
        let mut w = p.write_chunk(3).unwrap();
        w.copy_from_slice(&[99, 99, 99]);
        w.commit(2);
        assert!(matches!(c.read_chunk(9), Err(ChunkError::TooFewSlots(7))));
        let mut out = [0; 8];
        assert_eq!(c.pop_slice(&mut out), Ok(7));
        assert_eq!(out[..7], [8, 9, 10, 11, 12, 99, 99]);
        // A dropped chunk publishes nothing.
        {
            let _unpublished = p.write_chunk(2).unwrap();
        }
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
    }

    /// Pids the unit tests claim roles with: this process, and init (pid
    /// 1, always alive) for the other end.
    fn pids() -> (u32, u32) {
        (crate::pid::current(), 1)
    }

    #[test]
    fn close_by_producer_drains_then_closed() {
        let ctl = Control::new();
        let s = slots::<u64>(2);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        p.try_push(1).unwrap();
        p.close();
        assert!(matches!(p.try_push(2), Err(TryPushError::Closed(2))));
        assert_eq!(c.try_pop(), Ok(1));
        assert_eq!(c.try_pop(), Err(TryPopError::Closed));
        assert_eq!(c.pop(), Err(PopError::Closed));
        assert_eq!(c.pop_until(None), Err(PopTimeoutError::Closed));
        assert_eq!(c.pop_slice(&mut [0; 2]), Err(Closed));
    }

    #[test]
    fn close_by_consumer_refuses_pushes_with_the_value() {
        let ctl = Control::new();
        let s = slots::<u64>(2);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let c = RawConsumer::<u64>::new(&ctl, &s);
        c.close();
        assert!(matches!(p.push(5), Err(PushError::Closed(5))));
        assert_eq!(p.push_slice(&[1]), Err(Closed));
    }

    #[test]
    fn timeouts_return_the_value() {
        let ctl = Control::new();
        let (me, other) = pids();
        ctl.claim(Role::Producer, other).unwrap();
        ctl.claim(Role::Consumer, me).unwrap();
        let s = slots::<u64>(1);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(c.pop_until(soon), Err(PopTimeoutError::Timeout));
        p.try_push(1).unwrap();
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert!(matches!(
            p.push_until(2, soon),
            Err(PushTimeoutError::Timeout(2))
        ));
    }

    #[test]
    fn waiting_for_more_than_the_capacity_returns_at_once() {
        let ctl = Control::new();
        let (me, other) = pids();
        ctl.claim(Role::Producer, other).unwrap();
        ctl.claim(Role::Consumer, me).unwrap();
        let s = slots::<u64>(2);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        p.push_slice(&[1, 2]).unwrap();
        // No deadline, a live producer: this would sleep for ever.
        assert_eq!(c.wait_available(3, None), Err(PopTimeoutError::Closed));
        assert_eq!(c.wait_available(2, None), Ok(()));
        assert_eq!(p.wait_free(3, None), Err(PushTimeoutError::Closed(())));
    }

    #[test]
    fn wait_for_sleeps_until_a_live_holder_claims_the_role() {
        let ctl = Control::new();
        let soon = || Some(Instant::now() + Duration::from_millis(20));
        // Free, then held by a dead process: neither counts.
        assert!(!ctl.wait_for(Role::Producer, soon()));
        let dead = crate::pid::dead_pid();
        ctl.claim(Role::Producer, dead).unwrap();
        assert!(!ctl.wait_for(Role::Producer, soon()));
        // A claim by a live process wakes a waiter in another thread.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| ctl.wait_for(Role::Producer, None));
            // Whether the waiter is asleep yet or not, the claim ends it.
            ctl.claim(Role::Producer, crate::pid::current()).unwrap();
            assert!(waiter.join().unwrap());
        });
        assert!(ctl.wait_for(Role::Producer, Some(Instant::now())));
        // A close ends the wait for the other role, with `false`.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| ctl.wait_for(Role::Consumer, None));
            ctl.close(CLOSED_BY_PRODUCER);
            assert!(!waiter.join().unwrap());
        });
    }

    #[test]
    fn a_free_role_is_disconnected_at_once_and_a_new_holder_carries_on() {
        let ctl = Control::new();
        let (me, other) = pids();
        let s = slots::<u64>(2);
        let mut p = RawProducer::new(&ctl, &s);
        let mut c = RawConsumer::new(&ctl, &s);
        // Nobody ever attached: no wait, whatever the deadline.
        assert_eq!(c.pop(), Err(PopError::Disconnected));
        assert_eq!(c.pop_until(None), Err(PopTimeoutError::Disconnected));
        assert!(ctl.is_abandoned(Role::Producer));
        ctl.claim(Role::Producer, me).unwrap();
        assert!(!ctl.is_abandoned(Role::Producer));
        p.push(1).unwrap();
        p.push(2).unwrap();
        // Full, no consumer: the value comes back.
        assert!(matches!(p.push(3), Err(PushError::Disconnected(3))));
        assert_eq!(
            p.wait_free(1, None),
            Err(PushTimeoutError::Disconnected(()))
        );
        ctl.claim(Role::Consumer, other).unwrap();
        assert_eq!(c.pop(), Ok(1));
        p.push(3).unwrap();
        // The producer leaves: what it queued is still popped, then
        // Disconnected; the ring is not closed.
        ctl.release(Role::Producer, me);
        assert_eq!(c.pop(), Ok(2));
        assert_eq!(c.pop(), Ok(3));
        assert_eq!(c.pop(), Err(PopError::Disconnected));
        assert_eq!(
            c.wait_available(1, None),
            Err(PopTimeoutError::Disconnected)
        );
        assert!(!c.is_closed());
        // A new producer continues from the published tail; the same
        // consumer keeps working.
        ctl.claim(Role::Producer, me).unwrap();
        let mut p2 = RawProducer::new(&ctl, &s);
        p2.push(4).unwrap();
        assert_eq!(c.pop(), Ok(4));
        assert_eq!(ctl.holder(Role::Producer), me);
        // Releasing a role one does not hold changes nothing.
        ctl.release(Role::Producer, other);
        assert_eq!(ctl.holder(Role::Producer), me);
    }

    #[test]
    fn a_blocked_pop_wakes_when_the_producer_leaves() {
        let ctl = Control::new();
        let (me, _) = pids();
        ctl.claim(Role::Producer, me).unwrap();
        let s = slots::<u64>(2);
        let mut c = RawConsumer::new(&ctl, &s);
        let mut p = RawProducer::new(&ctl, &s);
        std::thread::scope(|scope| {
            let h = scope.spawn(move || (c.pop(), c.pop()));
            // Let the consumer reach its sleep (not needed for correctness).
            std::thread::sleep(Duration::from_millis(30));
            p.try_push(7).unwrap();
            ctl.release(Role::Producer, me);
            assert_eq!(h.join().unwrap(), (Ok(7), Err(PopError::Disconnected)));
        });
    }

    #[test]
    fn blocked_pop_is_woken_by_push_and_by_close() {
        let ctl = Control::new();
        ctl.claim(Role::Producer, pids().1).unwrap();
        let s = slots::<u64>(2);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        std::thread::scope(|scope| {
            let h = scope.spawn(move || {
                let first = c.pop();
                let second = c.pop();
                (first, second)
            });
            // Let the consumer reach its sleep (not needed for correctness).
            std::thread::sleep(Duration::from_millis(30));
            p.try_push(7).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            p.close();
            assert_eq!(h.join().unwrap(), (Ok(7), Err(PopError::Closed)));
        });
    }

    #[test]
    fn garbage_indices_give_wrong_data_never_a_panic() {
        let ctl = Control::new();
        let s = slots::<u64>(4);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        for (tail, head) in [(u64::MAX, 0), (3, 1_000_000), (1 << 63, 5), (7, 7)] {
            ctl.tail.store(tail, Ordering::Relaxed);
            ctl.head.store(head, Ordering::Relaxed);
            for _ in 0..10 {
                let _ = c.try_pop();
                let _ = p.try_push(1);
                let _ = c.pop_slice(&mut [0; 8]);
                let _ = p.push_slice(&[1; 8]);
                assert!(c.len() <= 4);
            }
        }
    }

    /// Every operation, on rings whose shared positions a peer set to
    /// garbage (before and while the ends are attached): wrong data or
    /// errors, never a panic (unit tests run with overflow checks on).
    fn garbage_positions<T: Pod + PartialEq + std::fmt::Debug>(v: T) {
        let garbage = [
            u64::MAX,
            u64::MAX - 1,
            0,
            1,
            3,
            1 << 63,
            (1 << 63) - 1,
            1_000_000,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
        ];
        let ctl = Control::new();
        let s = slots::<T>(4);
        let past = Some(Instant::now());
        for &tail in &garbage {
            for &head in &garbage {
                ctl.tail.store(tail, Ordering::Relaxed);
                ctl.head.store(head, Ordering::Relaxed);
                let mut p = RawProducer::<T>::new(&ctl, &s);
                let mut c = RawConsumer::<T>::new(&ctl, &s);
                for round in 0..3u64 {
                    let _ = c.try_pop();
                    let _ = p.try_push(v);
                    let _ = c.pop_slice(&mut [v; 8]);
                    let _ = p.push_slice(&[v; 8]);
                    let _ = p.wait_free(2, past);
                    let _ = c.wait_available(2, past);
                    let free = p.free(1).min(3);
                    if let Ok(mut w) = p.write_chunk(free) {
                        let n = w.len();
                        w.copy_from_slice(&vec![v; n]);
                        if n > 0 {
                            w.set(n - 1, v);
                        }
                        assert!(w.fill_from_iter(std::iter::repeat(v)) <= n);
                    }
                    let avail = c.available(1).min(3);
                    if let Ok(r) = c.read_chunk(avail) {
                        let n = r.len();
                        assert_eq!(r.iter().count(), n);
                        let mut out = vec![v; n];
                        r.copy_to_slice(&mut out);
                        if n > 0 {
                            let _ = r.get(n - 1);
                        }
                        assert!(r.into_iter().take(2).count() <= 2);
                    }
                    assert!(c.len() <= 4 && p.len() <= 4);
                    // The peer moves the positions again, mid-use.
                    ctl.tail
                        .store(tail.wrapping_add(round * 7), Ordering::Relaxed);
                    ctl.head.store(head.wrapping_mul(round), Ordering::Relaxed);
                }
            }
        }
    }

    #[test]
    fn garbage_positions_never_panic_whatever_the_slot_size() {
        garbage_positions(7u64);
        garbage_positions([1u8, 2, 3]);
        garbage_positions([9u16; 5]);
        garbage_positions(u128::MAX);
    }

    #[test]
    fn a_slot_is_the_value_rounded_up_to_whole_words() {
        assert_eq!(slot_words::<u8>(), 1);
        assert_eq!(slot_words::<[u8; 3]>(), 1);
        assert_eq!(slot_words::<u64>(), 1);
        assert_eq!(slot_words::<[u16; 5]>(), 2);
        assert_eq!(slot_words::<u128>(), 2);
        assert_eq!(slot_words::<[u64; 3]>(), 3);
        assert_eq!(words_for::<[u16; 5]>(8), 16);
        // The value's bytes in native order, the rest of the word zero.
        let ctl = Control::new();
        let s = slots::<[u8; 3]>(2);
        s[0].store(u64::MAX, Ordering::Relaxed);
        let mut p = RawProducer::<[u8; 3]>::new(&ctl, &s);
        p.try_push([1u8, 2, 3]).unwrap();
        assert_eq!(
            s[0].load(Ordering::Relaxed),
            u64::from_ne_bytes([1, 2, 3, 0, 0, 0, 0, 0])
        );
    }

    /// 16-byte values aligned to 16 (which the slots are not).
    #[derive(Clone, Copy, Debug, PartialEq, Pod, bytemuck::Zeroable)]
    #[repr(C, align(16))]
    struct Wide([u64; 2]);
    crate::payload!(Wide);

    fn round_trip<T: Pod + PartialEq + std::fmt::Debug>(make: impl Fn(u64) -> T) {
        let ctl = Control::new();
        let s = slots::<T>(4);
        let mut p = RawProducer::<T>::new(&ctl, &s);
        let mut c = RawConsumer::<T>::new(&ctl, &s);
        let mut next_in = 0;
        let mut next_out = 0;
        // Every flavour, across the wrap many times.
        for round in 0..12u64 {
            match round % 4 {
                0 => {
                    p.try_push(make(next_in)).unwrap();
                    next_in += 1;
                }
                1 => {
                    let vals: Vec<T> = (next_in..next_in + 3).map(&make).collect();
                    assert_eq!(p.push_slice(&vals), Ok(3));
                    next_in += 3;
                }
                2 => {
                    let chunk = p.write_chunk(2).unwrap();
                    assert_eq!(chunk.fill_from_iter((next_in..).map(&make)), 2);
                    next_in += 2;
                }
                _ => {
                    let mut chunk = p.write_chunk(1).unwrap();
                    chunk.set(0, make(next_in));
                    chunk.commit_all();
                    next_in += 1;
                }
            }
            while next_out < next_in {
                match (round + next_out) % 3 {
                    0 => {
                        assert_eq!(c.try_pop(), Ok(make(next_out)));
                        next_out += 1;
                    }
                    1 => {
                        let mut out = [T::zeroed(); 4];
                        let n = c.pop_slice(&mut out).unwrap();
                        for v in &out[..n] {
                            assert_eq!(*v, make(next_out));
                            next_out += 1;
                        }
                    }
                    _ => {
                        let n = c.available(4).min(4);
                        for v in c.read_chunk(n).unwrap() {
                            assert_eq!(v, make(next_out));
                            next_out += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
    }

    #[test]
    fn odd_sizes_and_wide_alignments_round_trip() {
        round_trip(|i| [i as u8, (i >> 8) as u8, 0xa5]);
        round_trip(|i| [i as u16, 1, 2, 3, u16::MAX - i as u16]);
        round_trip(|i| u128::from(i) << 64 | 0xdead_beef);
        round_trip(|i| Wide([i, !i]));
        round_trip(|i| [i, i + 1, i + 2]);
        round_trip(|i| i as u8);
    }

    #[test]
    fn into_iter_commits_exactly_what_it_yielded() {
        let ctl = Control::new();
        let s = slots::<u32>(4);
        let mut p = RawProducer::<u32>::new(&ctl, &s);
        let mut c = RawConsumer::<u32>::new(&ctl, &s);
        assert_eq!(p.push_slice(&[1, 2, 3]), Ok(3));
        assert_eq!(c.try_pop(), Ok(1));
        assert_eq!(p.push_slice(&[4, 5]), Ok(2));
        // 2, 3, 4, 5 held; 4 and 5 sit past the end of the ring (wrapped).
        let mut it = c.read_chunk(4).unwrap().into_iter();
        assert_eq!(it.len(), 4);
        assert_eq!(
            (it.next(), it.next(), it.next()),
            (Some(2), Some(3), Some(4))
        );
        assert_eq!((it.iterated(), it.len()), (3, 1));
        // Nothing is released before the iterator drops.
        assert_eq!(p.free(1), 0);
        drop(it);
        assert_eq!(p.free(3), 3);
        assert_eq!(c.len(), 1);
        // Yielding nothing commits nothing; a leaked iterator neither.
        drop(c.read_chunk(1).unwrap().into_iter());
        let mut leaked = c.read_chunk(1).unwrap().into_iter();
        assert_eq!(leaked.next(), Some(5));
        std::mem::forget(leaked);
        assert_eq!(c.len(), 1);
        // A for loop that runs to the end commits everything.
        assert_eq!(p.push_slice(&[6, 7, 8]), Ok(3));
        let mut got = Vec::new();
        for v in c.read_chunk(4).unwrap() {
            got.push(v);
        }
        assert_eq!(got, [5, 6, 7, 8]);
        assert!(c.is_empty());
        let mut it = c.read_chunk(0).unwrap().into_iter();
        assert_eq!((it.next(), it.next()), (None, None));
    }

    #[test]
    fn iter_get_and_copy_to_slice_commit_nothing() {
        let ctl = Control::new();
        let s = slots::<u16>(4);
        let mut p = RawProducer::<u16>::new(&ctl, &s);
        let mut c = RawConsumer::<u16>::new(&ctl, &s);
        assert_eq!(p.push_slice(&[0, 0, 0]), Ok(3));
        assert_eq!(c.pop_slice(&mut [0; 3]), Ok(3));
        assert_eq!(p.push_slice(&[10, 11, 12, 13]), Ok(4)); // wraps after 10
        let chunk = c.read_chunk(4).unwrap();
        assert_eq!(chunk.iter().collect::<Vec<_>>(), [10, 11, 12, 13]);
        assert_eq!(chunk.iter().rev().collect::<Vec<_>>(), [13, 12, 11, 10]);
        assert_eq!((&chunk).into_iter().len(), 4);
        let mut it = chunk.iter();
        assert_eq!(
            (it.next(), it.next_back(), it.len()),
            (Some(10), Some(13), 2)
        );
        let mut out = [0; 3];
        chunk.copy_to_slice(&mut out);
        assert_eq!(out, [10, 11, 12]);
        chunk.copy_to_slice(&mut []);
        assert_eq!(chunk.get(3), 13);
        assert_eq!(c.len(), 4);
        assert!(matches!(p.try_push(1), Err(TryPushError::Full(1))));
    }

    #[test]
    #[should_panic(expected = "cannot copy 3 items out of a chunk of 2")]
    fn copy_to_slice_refuses_more_than_the_chunk() {
        let ctl = Control::new();
        let s = slots::<u64>(4);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        p.push_slice(&[1, 2]).unwrap();
        c.read_chunk(2).unwrap().copy_to_slice(&mut [0; 3]);
    }

    #[test]
    fn fill_from_iter_commits_what_the_iterator_gave_up_to_the_chunk() {
        let ctl = Control::new();
        let s = slots::<u64>(4);
        let mut p = RawProducer::<u64>::new(&ctl, &s);
        let mut c = RawConsumer::<u64>::new(&ctl, &s);
        // Fewer values than slots: those are committed, the rest is not.
        assert_eq!(p.write_chunk(3).unwrap().fill_from_iter([1, 2]), 2);
        assert_eq!(c.len(), 2);
        // More values than slots: the chunk fills (across the wrap) and
        // the iterator keeps the values that did not fit.
        let mut values = 3..;
        assert_eq!(p.write_chunk(2).unwrap().fill_from_iter(&mut values), 2);
        assert_eq!(values.next(), Some(5), "not advanced past the chunk");
        let mut out = [0; 4];
        assert_eq!(c.pop_slice(&mut out), Ok(4));
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(p.write_chunk(4).unwrap().fill_from_iter(10..), 4);
        assert_eq!(
            c.read_chunk(4).unwrap().iter().collect::<Vec<_>>(),
            [10, 11, 12, 13]
        );
        assert_eq!(c.pop_slice(&mut out), Ok(4));
        // An empty chunk or an empty iterator commit nothing.
        assert_eq!(p.write_chunk(0).unwrap().fill_from_iter(1..), 0);
        assert_eq!(p.write_chunk(4).unwrap().fill_from_iter([]), 0);
        assert!(c.is_empty());
        // copy_from_slice fills a prefix, wrapping.
        assert_eq!(p.push_slice(&[0]), Ok(1));
        assert_eq!(c.try_pop(), Ok(0));
        let mut w = p.write_chunk(4).unwrap();
        w.copy_from_slice(&[20, 21, 22]);
        w.set(3, 23);
        w.commit(4);
        assert_eq!(c.pop_slice(&mut out), Ok(4));
        assert_eq!(out, [20, 21, 22, 23]);
    }

    #[test]
    fn a_role_has_one_live_holder() {
        let role = AtomicU32::new(0);
        let me = crate::pid::current();
        assert_eq!(claim_role(&role, me), Ok(()));
        assert_eq!(claim_role(&role, me), Err(me));
        release_role(&role, me);
        assert_eq!(claim_role(&role, me), Ok(()));
        // A dead holder is taken over.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        role.store(dead, Ordering::Relaxed);
        assert_eq!(claim_role(&role, me), Ok(()));
    }
}

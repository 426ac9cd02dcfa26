//! The single-producer, single-consumer ring over a file: what
//! `multiprocessing.Pipe` and a 1:1 `Queue` do, with no lock and no system
//! call while neither side has to wait. [`Producer`] and [`Consumer`] hold
//! the two ends of a ring of values; [`ByteProducer`] and [`ByteConsumer`]
//! those of a ring of byte messages.
//!
//! The algorithm (Lamport's ring, each side caching the other's index as in
//! rtrb) and the layout of the body are in `raw::spsc`; a handle keeps its
//! end's positions and builds the raw end over its mapping for each call.
//! Values go in and out by copy through atomic words, never through
//! references into the mapping (another process may write it at any time):
//! hence the chunks' `get`/`set`/`copy_*` methods instead of slices.
//!
//! # Roles
//!
//! Each end is a role, held by one live process at a time: its pid in the
//! role word, claimed by compare-and-swap from 0 (or from a dead holder's
//! pid) and given back by compare-and-swap to 0. A ring file can be made with no role held
//! ([`create`], [`create_bytes`]); both ends then `open` it.
//!
//! - Dropping a handle gives its role back and leaves the ring open with
//!   every queued item: a new holder (a restarted process) claims the role
//!   and continues from the published index, and the other end's handle
//!   keeps working, nothing to reopen. A holder killed with `SIGKILL` is the
//!   same: its role is taken over (its pid no longer exists) and what it
//!   published stays.
//! - A side about to wait (consumer: ring empty; producer: ring full) looks
//!   at the other role: free (given back, or never claimed yet) or held by a
//!   dead process, it returns `Disconnected` instead of sleeping — after one
//!   more look at the ring, so nothing published before the release is
//!   missed. The releaser notifies the wait point the other side sleeps on,
//!   so a sleeper wakes at once; a dead holder is noticed within
//!   [`SLICE`](crate::wait::SLICE). The `try_*` calls never look at roles.
//! - `close()` is the end of the stream, final for everyone: pushes are
//!   refused, the consumer drains then gets `Closed` (which wins over
//!   `Disconnected`), and no producer can claim the role again until the
//!   file is removed.
//!

use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::{
    ChunkError, Closed, OpenError, PopError, PopTimeoutError, PushError, PushTimeoutError,
    TryPopError, TryPushError,
};
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::{Payload, TypeInfo};
pub use crate::raw::spsc::{
    CLOSED_BY_CONSUMER, CLOSED_BY_PRODUCER, ReadChunk, ReadChunkIntoIter, ReadChunkIter, Snapshot,
    WriteChunk,
};
use crate::raw::spsc::{
    ConsumerCursor, Control, ProducerCursor, RawConsumer, RawProducer, Role, words_for,
};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;
use crate::wait::deadline;
pub use bytes::{ByteConsumer, ByteProducer, MAX_MESSAGE_LEN, create_bytes, create_bytes_with};

mod bytes;

/// A ring file of values of `T`: the control words, then the slots.
pub(crate) struct RingShape<T>(PhantomData<T>);

impl<T: Payload> Shape for RingShape<T> {
    /// The capacity in slots.
    type Spec = usize;
    /// The capacity in slots (a power of two, validated at open).
    type Geometry = usize;
    type Head = Control;
    type Elem = AtomicU64;

    fn expect(_: Option<&usize>) -> Expect {
        Expect {
            kind: Kind::Spsc,
            elem: TypeInfo::of::<T>(),
            any_size: false,
        }
    }

    fn capacity(capacity: &usize) -> u64 {
        *capacity as u64
    }

    // A fresh file is all zeros: an empty, open ring with no roles held.

    fn geometry(region: &Region) -> Result<usize, OpenError> {
        // Validated at open: a power of two of at most 2^32 slots, the body
        // sized for exactly that many (so the product below fits).
        Ok(region.descriptor().capacity as usize)
    }

    fn elems(capacity: &usize) -> usize {
        words_for::<T>(*capacity)
    }

    fn matches(found: &usize, capacity: &usize, path: &Path) -> Result<(), OpenError> {
        if found != capacity {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!("capacity {capacity} as asked"),
                found: *found as u64,
            });
        }
        Ok(())
    }
}

/// What the ends of either ring (of values, or of byte messages) stand on:
/// a control block and slot words, the capacity in slots kept at open.
pub(crate) trait RingFile:
    Shape<Head = Control, Elem = AtomicU64, Geometry = usize>
{
}

impl<S: Shape<Head = Control, Elem = AtomicU64, Geometry = usize>> RingFile for S {}

/// One end of a ring file, of either kind: the mapping, the role it holds
/// and its own positions (`C`: a [`ProducerCursor`] or a
/// [`ConsumerCursor`]), which the raw end built for each call borrows.
pub(crate) struct End<S: RingFile, C> {
    mapped: Mapped<S>,
    cursor: C,
    role: Role,
    /// The pid that claimed the role.
    me: u32,
}

impl<S: RingFile, C> End<S, C> {
    /// Claims `role` of a freshly mapped ring for this process, then takes
    /// the end's positions from the ring (after the claim, whose Acquire
    /// makes the previous holder's last index visible).
    fn attach(
        mapped: Mapped<S>,
        role: Role,
        cursor: impl Fn(&Control) -> C,
    ) -> Result<Self, OpenError> {
        let me = crate::pid::current();
        claim(mapped.head(), mapped.region(), role, me)?;
        let cursor = cursor(mapped.head());
        Ok(Self {
            mapped,
            cursor,
            role,
            me,
        })
    }

    #[inline(always)]
    fn ctl(&self) -> &Control {
        self.mapped.head()
    }

    #[inline(always)]
    fn capacity(&self) -> usize {
        self.mapped.geometry()
    }

    fn len(&self) -> usize {
        self.ctl().len(self.capacity())
    }

    fn region(&self) -> &Region {
        self.mapped.region()
    }

    /// Whether no live process holds the other end's role.
    fn is_abandoned(&self) -> bool {
        self.ctl().is_abandoned(self.role.other())
    }

    /// Waits until a live process holds the other end's role.
    fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.ctl().wait_for(self.role.other(), deadline(timeout))
    }
}

impl<S: RingFile> End<S, ProducerCursor> {
    /// The raw producer over the mapping, lending it our positions:
    /// pointer copies only (the control and slots were located and checked
    /// at open, the capacity kept then).
    #[inline(always)]
    fn raw<T: crate::pod::Pod>(&mut self) -> RawProducer<'_, T, &mut ProducerCursor> {
        RawProducer::from_parts(
            self.mapped.head(),
            self.mapped.elems(),
            self.mapped.geometry(),
            &mut self.cursor,
        )
    }
}

impl<S: RingFile> End<S, ConsumerCursor> {
    /// The raw consumer over the mapping (see the producer's).
    #[inline(always)]
    fn raw<T: crate::pod::Pod>(&mut self) -> RawConsumer<'_, T, &mut ConsumerCursor> {
        RawConsumer::from_parts(
            self.mapped.head(),
            self.mapped.elems(),
            self.mapped.geometry(),
            &mut self.cursor,
        )
    }
}

impl<S: RingFile, C> Drop for End<S, C> {
    /// Gives the role back (the ring stays open) and wakes the other end
    /// if it sleeps.
    fn drop(&mut self) {
        release(self.mapped.region(), self.mapped.head(), self.role, self.me);
    }
}

/// Attaches to a mapped ring as its producer: refused if the ring is
/// closed, else the role is claimed.
fn attach_producer<S: RingFile>(mapped: Mapped<S>) -> Result<End<S, ProducerCursor>, OpenError> {
    // Relaxed: a closed ring refuses producers; a close racing this open is
    // seen by the first push.
    if mapped.head().is_closed() {
        return Err(OpenError::Closed {
            path: mapped.region().path().to_path_buf(),
        });
    }
    End::attach(mapped, Role::Producer, ProducerCursor::attach)
}

/// Attaches to a mapped ring as its consumer (a closed ring too: what is
/// left in it can be drained).
fn attach_consumer<S: RingFile>(mapped: Mapped<S>) -> Result<End<S, ConsumerCursor>, OpenError> {
    End::attach(mapped, Role::Consumer, ConsumerCursor::attach)
}

/// Claims `role` of the ring at `path` for this process.
fn claim(ctl: &Control, region: &Region, role: Role, me: u32) -> Result<(), OpenError> {
    let key = held_key(region, role, me);
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    // Not held through a handle of this process: a role word that names
    // this pid was left by an earlier process with the same pid.
    let mine_is_stale = !held.contains(&key);
    ctl.claim_as(role, me, mine_is_stale)
        .map_err(|pid| OpenError::RoleTaken {
            path: region.path().to_path_buf(),
            role: match role {
                Role::Producer => "producer",
                Role::Consumer => "consumer",
            },
            pid,
        })?;
    held.push(key);
    Ok(())
}

/// The ring roles held by live handles of this process: file (device,
/// inode), role and the pid that claimed it (a forked child inherits the
/// list, but entries with its parent's pid are not its own). What lets
/// `claim` tell "this process already holds the role" from "an earlier
/// process with this pid held it and died".
static HELD: Mutex<Vec<(u64, u64, Role, u32)>> = Mutex::new(Vec::new());

fn held_key(region: &Region, role: Role, me: u32) -> (u64, u64, Role, u32) {
    let (dev, ino) = region.file_id();
    (dev, ino, role, me)
}

/// Gives `role` back on drop, unless this process is not the one that
/// claimed it (a forked child dropping a handle it inherited leaves its
/// parent's role alone).
fn release(region: &Region, ctl: &Control, role: Role, me: u32) {
    if crate::pid::current() == me {
        let key = held_key(region, role, me);
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = held.iter().position(|k| *k == key) {
            held.swap_remove(i);
        }
        ctl.release(role, me);
    }
}

/// Creates a ring file of `capacity` slots (a power of two) with neither
/// end held: the producer and the consumer then [`Producer::open`] and
/// [`Consumer::open`] it, in any order and from any process (a supervisor
/// makes the ring for two workers it starts later).
///
/// Until a producer attaches, a blocking [`Consumer::pop`] on the empty
/// ring returns [`PopError::Disconnected`] at once (nobody holds the role it
/// waits on), and likewise a blocking push on a full ring with no consumer:
/// call [`Consumer::wait_for_peer`] (or [`Producer::wait_for_peer`]) first
/// if that matters: it sleeps until the other end attaches.
///
/// # Errors
///
/// [`OpenError::InvalidCapacity`] for a capacity that is zero, not a
/// power of two, or absurd; [`OpenError::AlreadyExists`] if the path is
/// taken; the other [`OpenError`]s as for any create.
///
/// # Examples
///
/// ```rust
/// use mmring::spsc::{self, Consumer, Producer};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ticks");
/// spsc::create::<u64>(&path, 64)?; // no end held yet
///
/// // Later, each worker attaches by name (here both in one process).
/// let mut tx = Producer::<u64>::open(&path)?;
/// let mut rx = Consumer::<u64>::open(&path)?;
/// tx.push(7)?;
/// assert_eq!(rx.pop()?, 7);
///
/// // A producer that goes away leaves the ring open; a new one continues.
/// tx.push(8)?;
/// drop(tx);
/// assert_eq!(rx.pop()?, 8); // what it queued is kept
/// assert_eq!(rx.pop(), Err(mmring::PopError::Disconnected));
/// let mut tx = Producer::<u64>::open(&path)?;
/// tx.push(9)?;
/// assert_eq!(rx.pop()?, 9); // the same consumer carries on
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create<T: Payload>(path: impl AsRef<Path>, capacity: usize) -> Result<(), OpenError> {
    create_with::<T>(path, capacity, &CreateOptions::default())
}

/// [`create`] with a mode and label.
///
/// # Errors
///
/// As [`create`].
///
/// # Examples
///
/// ```rust
/// use mmring::CreateOptions;
/// use mmring::spsc;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ticks");
/// spsc::create_with::<u64>(&path, 64, &CreateOptions::new().mode(0o640).label("ticks"))?;
/// assert!(!spsc::Consumer::<u64>::open(&path)?.is_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_with<T: Payload>(
    path: impl AsRef<Path>,
    capacity: usize,
    opts: &CreateOptions,
) -> Result<(), OpenError> {
    Mapped::<RingShape<T>>::create(path, &capacity, opts).map(drop)
}

/// The producing end of an SPSC ring file: one per ring at a time, across
/// all processes (claimed at open with the holder's pid; a holder that died
/// is taken over).
///
/// `Send` but not `Sync`: operations take `&mut self`. Dropping it gives
/// the role back and leaves the ring open, with everything queued kept: a
/// new producer (this process or another, a restarted one) can open it and
/// continue, and the consumer's handle keeps working. Until then the
/// consumer drains what is there, then its blocking pops return
/// [`PopError::Disconnected`]. [`close`](Self::close) is the end of the
/// stream, final for everyone.
///
/// # Examples
///
/// Two processes, one ring:
///
/// ```rust,standalone_crate
/// use std::time::Duration;
/// use mmring::spsc::{Consumer, Producer};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("jobs");
/// let mut tx = Producer::<u64>::create(&path, 1024)?;
///
/// // SAFETY: this doctest is its own single-threaded process.
/// let child = unsafe { libc::fork() };
/// assert!(child >= 0);
/// if child == 0 {
///     // The consumer process: opens the same file by name.
///     let mut rx = Consumer::<u64>::open(&path).expect("open consumer");
///     let mut sum = 0;
///     while let Ok(v) = rx.pop() {
///         sum += v; // ends with Err(Closed) once the producer is done
///     }
///     // SAFETY: leave at once, with the sum as the exit code's check.
///     unsafe { libc::_exit(if sum == (1..=10_000).sum::<u64>() { 0 } else { 1 }) };
/// }
/// // Until a consumer is there, a push on the full ring returns
/// // `Disconnected` rather than wait for one that may never come: sleep
/// // until the child has opened its end.
/// assert!(tx.wait_for_peer(Duration::from_secs(60)), "no consumer came");
/// for i in 1..=10_000 {
///     tx.push(i)?; // sleeps (no CPU) while the ring is full
/// }
/// tx.close();
/// let mut status = 0;
/// // SAFETY: reaps our child; `status` is a valid out-pointer.
/// unsafe { libc::waitpid(child, &mut status, 0) };
/// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<T: Payload> {
    end: End<RingShape<T>, ProducerCursor>,
}

impl<T: Payload> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("path", &self.region().path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Producer<T> {
    fn attach(mapped: Mapped<RingShape<T>>) -> Result<Self, OpenError> {
        attach_producer(mapped).map(|end| Self { end })
    }

    /// Creates a ring file with `capacity` slots (a power of two) and
    /// becomes its producer.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for a capacity that is zero, not a
    /// power of two, or absurd; the other [`OpenError`]s as for any create.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &CreateOptions::default())
    }

    /// [`Producer::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`Producer::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Self::attach(Mapped::create(path, &capacity, opts)?)
    }

    /// Opens an existing ring file as its producer.
    ///
    /// # Errors
    ///
    /// [`OpenError::RoleTaken`] while another live process (or handle) is
    /// the producer; [`OpenError::Closed`] if the ring was closed; the
    /// validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::attach(Mapped::open(path)?)
    }

    /// Opens the ring at `path` as its producer, creating it with
    /// `capacity` slots if there is none.
    ///
    /// Opening an existing ring never resets it: `capacity` applies only
    /// when the file is created, and an existing ring is attached as it
    /// is, with the items queued in it. What is checked is its shape: the
    /// item type ([`OpenError::WrongPayload`]) and the capacity
    /// ([`OpenError::InvalidCapacity`]); a mismatch leaves the file alone.
    ///
    /// # Errors
    ///
    /// As [`Producer::open`] and [`Producer::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing ring has another
    /// capacity.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::attach(Mapped::open_or_create(
            path,
            &capacity,
            &CreateOptions::default(),
        )?)
    }

    /// Pushes `value` if there is room, never waiting (no system call).
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] or [`TryPushError::Closed`], with the value.
    #[inline(always)]
    pub fn try_push(&mut self, value: T) -> Result<(), TryPushError<T>> {
        self.end.raw().try_push(value)
    }

    /// Pushes `value`, sleeping (in a futex, after a short spin) while the
    /// ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] if the ring is closed, or
    /// [`PushError::Disconnected`] if the ring is full and no live process
    /// holds the consumer role (it dropped its handle, was killed, or none
    /// has attached yet): never waits for a consumer that may never come.
    /// The value comes back; once a consumer attaches, pushing works again.
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        self.end.raw().push(value)
    }

    /// [`Producer::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Producer::push`] (as [`PushTimeoutError::Closed`] and
    /// [`PushTimeoutError::Disconnected`]), and
    /// [`PushTimeoutError::Timeout`].
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PushTimeoutError<T>> {
        self.end.raw().push_until(value, deadline(timeout))
    }

    /// Pushes as many of `values` as fit, with one publish for the batch;
    /// returns how many.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the ring was closed.
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, Closed> {
        self.end.raw().push_slice(values)
    }

    /// Reserves `n` slots to fill, each value copied straight into its
    /// slot ([`WriteChunk::set`], [`WriteChunk::copy_from_slice`],
    /// [`WriteChunk::fill_from_iter`]); published when committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number free, or
    /// [`ChunkError::Closed`].
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T>, ChunkError> {
        self.end.raw().into_write_chunk(n)
    }

    /// Closes the ring: the consumer drains what is left, then gets
    /// `Closed`; every sleeper wakes. Idempotent, and final: no producer
    /// can open the ring again ([`OpenError::Closed`]) until the file is
    /// removed.
    pub fn close(&self) {
        self.end.ctl().close(CLOSED_BY_PRODUCER);
    }

    /// Whether either side closed the ring (a snapshot).
    pub fn is_closed(&self) -> bool {
        self.end.ctl().is_closed()
    }

    /// Whether the ring is full (out of date as soon as it returns).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Whether no live process holds the consumer role: it is free (the
    /// consumer dropped its handle, or none has attached yet) or its
    /// holder's process is gone. A snapshot: a consumer may attach as soon
    /// as this returns. While it is true, a blocking push on a full ring
    /// returns [`PushError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::spsc::{self, Consumer, Producer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("r");
    /// spsc::create::<u32>(&path, 2)?;
    /// let tx = Producer::<u32>::open(&path)?;
    /// assert!(tx.is_abandoned());
    /// let rx = Consumer::<u32>::open(&path)?;
    /// assert!(!tx.is_abandoned());
    /// drop(rx);
    /// assert!(tx.is_abandoned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_abandoned(&self) -> bool {
        self.end.is_abandoned()
    }

    /// Waits until a live process holds the consumer role: `true` at once
    /// if one does, `false` if the ring is closed or `timeout` passes
    /// first. Sleeps while it waits (a consumer's `open` wakes it). The
    /// supervisor pattern: make the ring with [`create`],
    /// start both ends, and let each wait for the other before it relies on
    /// blocking calls (which return `Disconnected` while the other role is
    /// free).
    ///
    /// # Examples
    ///
    /// ```rust
    /// use std::time::Duration;
    /// use mmring::spsc::{self, Consumer, Producer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ring");
    /// spsc::create::<u64>(&path, 8)?;
    /// let tx = Producer::<u64>::open(&path)?;
    /// assert!(!tx.wait_for_peer(Duration::from_millis(10))); // nobody yet
    /// let rx = Consumer::<u64>::open(&path)?;
    /// assert!(tx.wait_for_peer(Duration::from_secs(5)));
    /// assert!(rx.wait_for_peer(Duration::ZERO));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.end.wait_for_peer(timeout)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.end.capacity()
    }

    /// Items in the ring (out of date as soon as it returns).
    pub fn len(&self) -> usize {
        self.end.len()
    }

    /// Whether the ring is empty (out of date as soon as it returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        self.end.region()
    }
}

/// The consuming end of an SPSC ring file: one per ring at a time, across
/// all processes (claimed at open with the holder's pid; a holder that died
/// is taken over).
///
/// `Send` but not `Sync`: operations take `&mut self`. Dropping it gives
/// the role back and leaves the ring open, with everything queued kept: a
/// new consumer (a restarted process) opens it and continues from the first
/// item not yet popped. Until then the producer fills the ring, then its
/// blocking pushes return [`PushError::Disconnected`].
/// [`close`](Self::close) is the end of the stream, final for everyone.
pub struct Consumer<T: Payload> {
    end: End<RingShape<T>, ConsumerCursor>,
}

impl<T: Payload> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.region().path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Consumer<T> {
    fn attach(mapped: Mapped<RingShape<T>>) -> Result<Self, OpenError> {
        attach_consumer(mapped).map(|end| Self { end })
    }

    /// Creates a ring file with `capacity` slots (a power of two) and
    /// becomes its consumer.
    ///
    /// # Errors
    ///
    /// As [`Producer::create`].
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &CreateOptions::default())
    }

    /// [`Consumer::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`Producer::create`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::CreateOptions;
    /// use mmring::spsc::Consumer;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ticks");
    /// let rx = Consumer::<u64>::create_with(&path, 8, &CreateOptions::new().label("ticks"))?;
    /// assert_eq!(rx.region().status(mmring::Patience::DEFAULT)?.label(), "ticks");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Self::attach(Mapped::create(path, &capacity, opts)?)
    }

    /// Opens an existing ring file as its consumer (a closed ring too: what
    /// is left in it can be drained).
    ///
    /// # Errors
    ///
    /// [`OpenError::RoleTaken`] while another live process (or handle) is
    /// the consumer; the validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::attach(Mapped::open(path)?)
    }

    /// Opens the ring at `path` as its consumer, creating it with
    /// `capacity` slots if there is none.
    ///
    /// Opening an existing ring never resets it: the items queued in it
    /// are there to pop; the shape is checked as by
    /// [`Producer::open_or_create`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::open`] and [`Consumer::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing ring has another
    /// capacity.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::attach(Mapped::open_or_create(
            path,
            &capacity,
            &CreateOptions::default(),
        )?)
    }

    /// Pops the oldest item if there is one, never waiting (no system call).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once the ring is
    /// closed and drained.
    #[inline(always)]
    pub fn try_pop(&mut self) -> Result<T, TryPopError> {
        self.end.raw().try_pop()
    }

    /// Pops the oldest item, sleeping (in a futex, after a short spin) while
    /// the ring is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the ring is closed and drained;
    /// [`PopError::Disconnected`] once it is drained and no live process
    /// holds the producer role (it dropped its handle, was killed, or none
    /// has attached yet): never waits for a producer that may never come.
    /// Everything a producer committed is popped first; once a new
    /// producer attaches, popping works again.
    pub fn pop(&mut self) -> Result<T, PopError> {
        self.end.raw().pop()
    }

    /// [`Consumer::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop`] (as [`PopTimeoutError::Closed`] and
    /// [`PopTimeoutError::Disconnected`]), and [`PopTimeoutError::Timeout`].
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, PopTimeoutError> {
        self.end.raw().pop_until(deadline(timeout))
    }

    /// Pops up to `out.len()` items, with one publish for the batch;
    /// returns how many (0 if empty).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the ring is closed and drained.
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, Closed> {
        self.end.raw().pop_slice(out)
    }

    /// Takes hold of the `n` oldest items, each read by copying straight
    /// out of its slot ([`ReadChunk::get`], [`ReadChunk::iter`],
    /// [`ReadChunk::copy_to_slice`], or by value through [`IntoIterator`],
    /// which commits what it yielded); released when committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number available, or
    /// [`ChunkError::Closed`] once the ring is closed and drained.
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T>, ChunkError> {
        self.end.raw().into_read_chunk(n)
    }

    /// Closes the ring from the consuming side: pushes get `Closed`; every
    /// sleeper wakes. Idempotent, and final: no producer can open the ring
    /// again until the file is removed (a consumer still can, to drain it).
    pub fn close(&self) {
        self.end.ctl().close(CLOSED_BY_CONSUMER);
    }

    /// Whether either side closed the ring (a snapshot; items may be left
    /// to drain).
    pub fn is_closed(&self) -> bool {
        self.end.ctl().is_closed()
    }

    /// Whether the ring is full (out of date as soon as it returns).
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Whether no live process holds the producer role: it is free (the
    /// producer dropped its handle, or none has attached yet) or its
    /// holder's process is gone. A snapshot: a producer may attach as soon
    /// as this returns. While it is true, a blocking pop on an empty ring
    /// returns [`PopError::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::spsc::{self, Consumer, Producer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("r");
    /// spsc::create::<u32>(&path, 2)?;
    /// let rx = Consumer::<u32>::open(&path)?;
    /// assert!(rx.is_abandoned()); // no producer yet
    /// let tx = Producer::<u32>::open(&path)?;
    /// assert!(!rx.is_abandoned());
    /// drop(tx);
    /// assert!(rx.is_abandoned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_abandoned(&self) -> bool {
        self.end.is_abandoned()
    }

    /// Waits until a live process holds the producer role: `true` at once
    /// if one does, `false` if the ring is closed or `timeout` passes
    /// first. Sleeps while it waits (a producer's `open` wakes it). See
    /// [`Producer::wait_for_peer`].
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.end.wait_for_peer(timeout)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.end.capacity()
    }

    /// Items in the ring (out of date as soon as it returns).
    pub fn len(&self) -> usize {
        self.end.len()
    }

    /// Whether the ring is empty (out of date as soon as it returns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        self.end.region()
    }
}

/// Creates a ring file and opens both of its ends (in one process: hand one
/// to a thread, or create here and open the other end elsewhere).
///
/// # Errors
///
/// As [`Producer::create`].
pub fn channel<T: Payload>(
    path: impl AsRef<Path>,
    capacity: usize,
) -> Result<(Producer<T>, Consumer<T>), OpenError> {
    let path = crate::region::resolve(path);
    let producer = Producer::create(&path, capacity)?;
    let consumer = Consumer::open(&path)?;
    Ok((producer, consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A role word that names this process while no handle of it holds the
    /// role was left by an earlier process with the same pid (a restart
    /// that got its predecessor's pid): it is taken over. A role this
    /// process does hold through a handle is still refused.
    #[test]
    fn a_role_left_by_an_earlier_process_with_our_pid_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut tx = Producer::<u32>::create(&path, 4).unwrap();
        tx.try_push(1).unwrap();
        // Played by hand: the earlier process's handle is gone without a
        // drop (killed), its pid still in the role word, and ours is it.
        std::mem::forget(tx);
        let ring = Mapped::<RingShape<u32>>::open(&path).unwrap();
        let me = crate::pid::current();
        assert_eq!(ring.head().holder(Role::Producer), me);
        let (dev, ino) = ring.region().file_id();
        HELD.lock()
            .unwrap()
            .retain(|k| (k.0, k.1, k.2) != (dev, ino, Role::Producer));
        let mut tx = Producer::<u32>::open(&path).expect("taken over");
        assert!(matches!(
            Producer::<u32>::open(&path),
            Err(OpenError::RoleTaken { pid, .. }) if pid == me
        ));
        tx.try_push(2).unwrap();
        let mut rx = Consumer::<u32>::open(&path).unwrap();
        assert_eq!((rx.try_pop(), rx.try_pop()), (Ok(1), Ok(2)));
        drop(tx);
        // Released: the entry is gone, and a new handle claims it again.
        drop(Producer::<u32>::open(&path).unwrap());
    }

    #[test]
    fn dropped_ends_leave_the_ring_open_with_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        create::<u32>(&path, 4).unwrap();
        assert!(matches!(
            create::<u32>(&path, 4),
            Err(OpenError::AlreadyExists { .. })
        ));
        let mut tx = Producer::<u32>::open(&path).unwrap();
        assert!(tx.is_abandoned());
        for v in 0..4 {
            tx.try_push(v).unwrap();
        }
        assert!(tx.is_full());
        assert!(matches!(tx.push(9), Err(PushError::Disconnected(9))));
        assert!(matches!(
            tx.push_timeout(9, Duration::from_secs(5)),
            Err(PushTimeoutError::Disconnected(9))
        ));
        drop(tx);
        let mut rx = Consumer::<u32>::open(&path).unwrap();
        assert!(rx.is_full() && rx.is_abandoned() && !rx.is_closed());
        assert_eq!(rx.pop(), Ok(0));
        drop(rx);
        let mut rx = Consumer::<u32>::open(&path).unwrap();
        assert_eq!(rx.pop(), Ok(1));
        let mut tx = Producer::<u32>::open(&path).unwrap();
        tx.push(4).unwrap();
        drop(tx);
        for v in 2..5 {
            assert_eq!(rx.pop(), Ok(v));
        }
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert_eq!(
            rx.pop_timeout(Duration::from_secs(5)),
            Err(PopTimeoutError::Disconnected)
        );
        // close() is final: no producer attaches again.
        let tx = Producer::<u32>::open(&path).unwrap();
        tx.close();
        assert!(tx.is_closed() && rx.is_closed());
        assert_eq!(rx.pop(), Err(PopError::Closed));
        drop(tx);
        assert!(matches!(
            Producer::<u32>::open(&path),
            Err(OpenError::Closed { .. })
        ));
        drop(rx);
        assert!(Consumer::<u32>::open(&path).is_ok(), "a consumer can drain");
    }

    /// A value wider than 8 bytes with the widest alignment.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(16))]
    struct Wide([u64; 2]);
    crate::payload!(Wide);

    #[test]
    fn a_mapped_ring_of_odd_sized_values_has_word_slots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd");
        let (mut tx, mut rx) = channel::<[u16; 5]>(&path, 8).unwrap();
        let d = *tx.region().descriptor();
        assert_eq!((d.elem_size, d.slot_size), (10, 16));
        assert_eq!(
            d.body_size,
            (crate::raw::spsc::CONTROL_SIZE + 8 * 16).div_ceil(64) * 64
        );
        for i in 0..20u16 {
            tx.try_push([i; 5]).unwrap();
            assert_eq!(rx.try_pop(), Ok([i; 5]));
        }
        drop((tx, rx));
        let (mut tx, mut rx) = channel::<Wide>(dir.path().join("wide"), 2).unwrap();
        tx.try_push(Wide([1, 2])).unwrap();
        assert_eq!(rx.try_pop(), Ok(Wide([1, 2])));
    }
}

//! [`ByteProducer`] and [`ByteConsumer`]: an SPSC ring of byte messages.
//!
//! The ring is the typed SPSC ring over `u64` words, in slots of a fixed
//! `1 + ceil(max_len / 8)` words — a header word, then up to `max_len`
//! bytes — each published as a chunk (which may wrap around the end of the
//! ring). A message of up to `max_len` bytes takes one slot; a longer one,
//! up to [`MAX_MESSAGE_LEN`], travels in *pieces* of `max_len` bytes, one
//! slot each, and [`ByteProducer::push`] streams them, so a message bigger
//! than the whole ring goes through while the consumer drains it. The
//! consumer returns a message only once its last piece arrived: whole, or
//! not at all (a producer killed or dropped mid-message leaves nothing
//! half-read). The protocol is told in `raw::spsc::bytes`. The ring's
//! capacity in words is the smallest power of two that holds the number of
//! slots asked for; it may hold a few more.
//!
//! The bytes are copied straight between the caller's buffer and the
//! slots' words with relaxed atomic word accesses (the ring's positions
//! order them). A header read from the mapping is untrusted: it is checked
//! before any byte is copied, and a piece that no honest producer writes is
//! discarded with the message it belongs to.

use std::path::Path;
use std::time::Duration;

use super::{End, attach_consumer, attach_producer};
use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, OpenError, PopError, PopTimeoutError,
    PushTimeoutError, TryPopError,
};
use crate::handle::{Mapped, Shape};
use crate::layout::{Kind, bytes_type};
use crate::raw::message;
pub use crate::raw::spsc::bytes::MAX_MESSAGE_LEN;
use crate::raw::spsc::bytes::{Assembly, RawByteConsumer, RawByteProducer};
use crate::raw::spsc::{
    CLOSED_BY_CONSUMER, CLOSED_BY_PRODUCER, ConsumerCursor, Control, ProducerCursor,
};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;
use crate::wait::deadline;

/// What `create` and `open_or_create` ask for.
pub(crate) struct BytesSpec {
    messages: usize,
    max_len: usize,
}

/// A byte ring file: the typed ring's control and `u64` slot words, the
/// capacity in words.
pub(crate) struct BytesShape;

impl Shape for BytesShape {
    type Spec = BytesSpec;
    /// The capacity in words (a power of two, validated at open).
    type Geometry = usize;
    type Head = Control;
    type Elem = AtomicU64;

    fn expect(spec: Option<&BytesSpec>) -> Expect {
        let max_len = spec.map_or(0, |s| s.max_len);
        Expect {
            kind: Kind::SpscBytes,
            elem: bytes_type(u32::try_from(max_len).unwrap_or(u32::MAX)),
            // A plain open takes the file's maximum length; one that may
            // create wants exactly its own.
            any_size: spec.is_none(),
        }
    }

    fn capacity(spec: &BytesSpec) -> u64 {
        ring_words(spec.messages, spec.max_len) as u64
    }

    // A fresh file is all zeros: an empty, open ring with no roles held.

    fn geometry(region: &Region) -> Result<usize, OpenError> {
        // Validated at open: a power of two of at most 2^32 words.
        Ok(region.descriptor().capacity as usize)
    }

    fn elems(words: &usize) -> usize {
        *words
    }

    fn matches(found: &usize, spec: &BytesSpec, path: &Path) -> Result<(), OpenError> {
        let words = ring_words(spec.messages, spec.max_len);
        if *found != words {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!(
                    "{words} words ({} messages of {} bytes) as asked",
                    spec.messages, spec.max_len
                ),
                found: *found as u64,
            });
        }
        Ok(())
    }
}

/// The ring's size in words for `messages` messages of `max_len` bytes
/// (a power of two; saturates to an invalid size that create rejects).
fn ring_words(messages: usize, max_len: usize) -> usize {
    let k = message::words(max_len as u64) as usize;
    messages
        .checked_mul(k)
        .and_then(usize::checked_next_power_of_two)
        .unwrap_or(usize::MAX)
}

/// The spec of a ring for `messages` messages of `max_len` bytes, refusing
/// a ring for none.
fn spec(path: impl AsRef<Path>, messages: usize, max_len: usize) -> Result<BytesSpec, OpenError> {
    if messages == 0 {
        return Err(OpenError::InvalidCapacity {
            path: crate::region::resolve(path),
            expected: "at least 1 message".into(),
            found: 0,
        });
    }
    Ok(BytesSpec { messages, max_len })
}

fn create(
    path: impl AsRef<Path>,
    messages: usize,
    max_len: usize,
    opts: &CreateOptions,
) -> Result<Mapped<BytesShape>, OpenError> {
    let spec = spec(&path, messages, max_len)?;
    Mapped::create(path, &spec, opts)
}

fn open_or_create(
    path: impl AsRef<Path>,
    messages: usize,
    max_len: usize,
) -> Result<Mapped<BytesShape>, OpenError> {
    let spec = spec(&path, messages, max_len)?;
    Mapped::open_or_create(path, &spec, &CreateOptions::default())
}

/// Creates a byte-message ring file for at least `messages` messages of up
/// to `max_len` bytes (1 to 65536) with neither end held: the two ends then
/// [`ByteProducer::open`] and [`ByteConsumer::open`] it, in any order and
/// from any process. The role rules of [`create`](super::create) apply
/// (until a producer attaches, a blocking pop on the empty ring returns
/// [`PopError::Disconnected`]).
///
/// # Errors
///
/// As [`ByteProducer::create`].
///
/// # Examples
///
/// ```rust
/// use mmring::spsc::{self, ByteConsumer, ByteProducer};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("msgs");
/// spsc::create_bytes(&path, 16, 100)?;
/// let mut rx = ByteConsumer::open(&path)?;
/// let mut tx = ByteProducer::open(&path)?;
/// tx.push(b"hello")?;
/// drop(tx); // the ring stays open, the message stays queued
/// assert_eq!(rx.pop()?, b"hello");
/// assert_eq!(rx.pop(), Err(mmring::PopError::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_bytes(
    path: impl AsRef<Path>,
    messages: usize,
    max_len: usize,
) -> Result<(), OpenError> {
    create_bytes_with(path, messages, max_len, &CreateOptions::default())
}

/// [`create_bytes`] with a mode and label.
///
/// # Errors
///
/// As [`ByteProducer::create`].
///
/// # Examples
///
/// ```rust
/// use mmring::CreateOptions;
/// use mmring::spsc::{self, ByteProducer};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("msgs");
/// spsc::create_bytes_with(&path, 16, 100, &CreateOptions::new().label("msgs"))?;
/// assert_eq!(ByteProducer::open(&path)?.max_len(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_bytes_with(
    path: impl AsRef<Path>,
    messages: usize,
    max_len: usize,
    opts: &CreateOptions,
) -> Result<(), OpenError> {
    create(path, messages, max_len, opts).map(drop)
}

/// Words per message and the maximum length of a validated byte ring.
fn message_size(mapped: &Mapped<BytesShape>) -> (usize, usize) {
    // Validated at open: 1 to 65536 bytes.
    let max_len = mapped.region().descriptor().elem_size as usize;
    (message::words(max_len as u64) as usize, max_len)
}

/// The producing end of an SPSC byte-message ring (one per ring; the role
/// rules of [`Producer`](super::Producer) apply: dropping it gives the role back and leaves
/// the ring open, with every queued message kept).
pub struct ByteProducer {
    end: End<BytesShape, ProducerCursor>,
    /// Words per slot.
    words: usize,
    max_len: usize,
}

impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer")
            .field("path", &self.region().path())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteProducer {
    fn attach(mapped: Mapped<BytesShape>) -> Result<Self, OpenError> {
        let (words, max_len) = message_size(&mapped);
        Ok(Self {
            end: attach_producer(mapped)?,
            words,
            max_len,
        })
    }

    /// Creates a ring file for at least `messages` messages of up to
    /// `max_len` bytes (1 to 65536) and becomes its producer.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for zero or absurd sizes,
    /// [`OpenError::UnsupportedPayload`] for a bad `max_len`; the other
    /// [`OpenError`]s as for any create.
    pub fn create(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
    ) -> Result<Self, OpenError> {
        Self::create_with(path, messages, max_len, &CreateOptions::default())
    }

    /// [`ByteProducer::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::create`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::CreateOptions;
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("msgs");
    /// let opts = CreateOptions::new().mode(0o640).label("msgs");
    /// let mut tx = ByteProducer::create_with(&path, 4, 16, &opts)?;
    /// let mut rx = ByteConsumer::open(&path)?;
    /// tx.push(b"hi")?;
    /// assert_eq!(rx.pop()?, b"hi");
    /// assert_eq!(rx.region().status(mmring::Patience::DEFAULT)?.label(), "msgs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Self::attach(create(path, messages, max_len, opts)?)
    }

    /// Opens an existing byte ring as its producer.
    ///
    /// # Errors
    ///
    /// As [`Producer::open`](super::Producer::open).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::attach(Mapped::open(path)?)
    }

    /// Opens the byte ring at `path` as its producer, creating it (for at
    /// least `messages` messages of up to `max_len` bytes) if there is none.
    ///
    /// Opening an existing ring never resets it: it is attached as it is,
    /// with the messages queued in it. What is checked is its shape:
    /// `max_len` ([`OpenError::WrongPayload`], naming both) and its size
    /// ([`OpenError::InvalidCapacity`]); a mismatch leaves the file alone.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::open`] and [`ByteProducer::create`];
    /// [`OpenError::WrongPayload`] if an existing ring has another
    /// `max_len`, [`OpenError::InvalidCapacity`] if it has another size.
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("msgs");
    /// let mut rx = ByteConsumer::open_or_create(&path, 8, 32)?; // creates
    /// let mut tx = ByteProducer::open_or_create(&path, 8, 32)?; // opens
    /// tx.push(b"hi")?;
    /// assert_eq!(rx.pop()?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
    ) -> Result<Self, OpenError> {
        Self::attach(open_or_create(path, messages, max_len)?)
    }

    /// The longest piece: the bytes one slot holds. A message of up to
    /// this many bytes takes one slot, a longer one one slot per
    /// `max_len` bytes (see [`push`](Self::push)).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The raw producer over the mapping, lending it our positions.
    fn raw(&mut self) -> RawByteProducer<'_, &mut ProducerCursor> {
        RawByteProducer::from_ring(self.end.raw::<u64>(), self.max_len)
    }

    /// Pushes the whole of `msg` if all of it fits now, never waiting: a
    /// message of up to [`max_len`](Self::max_len) bytes needs one free
    /// slot, a longer one a slot per `max_len` bytes, all published at
    /// once.
    ///
    /// # Errors
    ///
    /// [`ByteTryPushError::TooLong`] if `msg` needs more slots than the
    /// whole ring has (its `max` is [`capacity`](Self::capacity) ×
    /// `max_len`; [`push`](Self::push) streams such a message),
    /// [`ByteTryPushError::Full`] if it does not fit now, or
    /// [`ByteTryPushError::Closed`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::ByteTryPushError;
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("msgs");
    /// let mut tx = ByteProducer::create(&path, 4, 8)?; // 4 slots of 8 bytes
    /// let mut rx = ByteConsumer::open(&path)?;
    /// tx.try_push(b"twenty bytes, three pieces")?; // 26 bytes: 4 slots
    /// assert_eq!(tx.try_push(b"x"), Err(ByteTryPushError::Full));
    /// assert_eq!(rx.pop()?, b"twenty bytes, three pieces");
    /// assert_eq!(
    ///     tx.try_push(&[0; 33]),
    ///     Err(ByteTryPushError::TooLong { len: 33, max: 32 })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        self.raw().try_push(msg)
    }

    /// Pushes `msg`, of any length up to [`MAX_MESSAGE_LEN`], sleeping
    /// while the ring is full, for as long as a live consumer holds its
    /// role. A message longer than [`max_len`](Self::max_len) goes out in
    /// pieces as room frees up, so one bigger than the whole ring streams
    /// through while the consumer drains it; the consumer gets it only
    /// whole.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`] over [`MAX_MESSAGE_LEN`],
    /// [`BytePushError::Closed`], or [`BytePushError::Disconnected`] if
    /// there is no room and no live process holds the consumer role
    /// (dropped, killed, or never attached). If the push fails after some
    /// pieces went out, the consumer discards them: it never sees a part of
    /// a message.
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("pipe");
    /// // A ring of 4 slots of 64 bytes, and a 100 KB message.
    /// let mut tx = ByteProducer::create(&path, 4, 64)?;
    /// let mut rx = ByteConsumer::open(&path)?;
    /// let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    /// let reader = std::thread::spawn(move || rx.pop());
    /// tx.push(&big)?;
    /// assert_eq!(reader.join().unwrap()?, big);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&mut self, msg: &[u8]) -> Result<(), BytePushError> {
        self.raw().push(msg)
    }

    /// [`ByteProducer::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::push`], and [`BytePushTimeoutError::Timeout`]
    /// (pieces already out are discarded by the consumer).
    pub fn push_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), BytePushTimeoutError> {
        self.raw().push_until(msg, deadline(timeout))
    }

    /// [`ByteProducer::push_timeout`] that can be resumed: pushes `msg`
    /// from piece `*sent` on (0: from its start) and counts in `*sent` the
    /// pieces that are out. After a `Timeout`, a call with the same `msg`
    /// and `*sent` carries on with the same message, which the consumer
    /// keeps gathering; so a caller can wait for a long message in short
    /// slices (a binding that checks for signals between them) without
    /// starting it over. Any other push in between starts a new message,
    /// and the consumer discards the unfinished one.
    ///
    /// After `Closed` or `Disconnected`, start over from `*sent = 0`: a new
    /// consumer skips the rest of a message whose start it never saw.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::push_timeout`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use std::time::Duration;
    /// use mmring::BytePushTimeoutError;
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("pipe");
    /// let mut tx = ByteProducer::create(&path, 2, 8)?; // 2 slots of 8 bytes
    /// let mut rx = ByteConsumer::open(&path)?;
    /// let msg = [7u8; 40]; // 5 pieces
    /// let mut sent = 0;
    /// let slice = Duration::from_millis(1);
    /// assert_eq!(tx.push_from(&msg, &mut sent, slice), Err(BytePushTimeoutError::Timeout));
    /// assert_eq!(sent, 2);
    /// while rx.try_pop().is_err() {
    ///     // The consumer takes the pieces as they come; the push goes on.
    ///     let _ = tx.push_from(&msg, &mut sent, slice);
    /// }
    /// assert_eq!(sent, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_from(
        &mut self,
        msg: &[u8],
        sent: &mut usize,
        timeout: Duration,
    ) -> Result<(), BytePushTimeoutError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(BytePushTimeoutError::TooLong {
                len: msg.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let deadline = deadline(timeout);
        loop {
            match self.raw().try_push_part(msg, sent) {
                Ok(true) => return Ok(()),
                Ok(false) | Err(ByteTryPushError::Full) => {}
                // try_push_part never says TooLong.
                Err(ByteTryPushError::Closed | ByteTryPushError::TooLong { .. }) => {
                    return Err(BytePushTimeoutError::Closed);
                }
            }
            let words = self.words;
            self.end
                .raw::<u64>()
                .wait_free(words, deadline)
                .map_err(|e| match e {
                    PushTimeoutError::Closed(()) => BytePushTimeoutError::Closed,
                    PushTimeoutError::Disconnected(()) => BytePushTimeoutError::Disconnected,
                    PushTimeoutError::Timeout(()) => BytePushTimeoutError::Timeout,
                })?;
        }
    }

    /// The pid in the consumer's role word, 0 while the role is free: a
    /// snapshot, one relaxed load, no system call (unlike
    /// [`is_abandoned`](Self::is_abandoned), it does not ask whether that
    /// process is still alive).
    pub fn consumer_pid(&self) -> u32 {
        self.end.ctl().holder(self.end.role.other())
    }

    /// Closes the ring (the consumer drains, then gets `Closed`). Final:
    /// no producer can open it again until the file is removed.
    pub fn close(&self) {
        self.end.ctl().close(CLOSED_BY_PRODUCER);
    }

    /// Whether either side closed the ring (a snapshot).
    pub fn is_closed(&self) -> bool {
        self.end.ctl().is_closed()
    }

    /// Whether no live process holds the consumer role (see
    /// [`Producer::is_abandoned`](super::Producer::is_abandoned)).
    pub fn is_abandoned(&self) -> bool {
        self.end.is_abandoned()
    }

    /// Waits until a live process holds the consumer role (see
    /// [`Producer::wait_for_peer`](super::Producer::wait_for_peer)): `false` if the ring is closed or
    /// `timeout` passes first.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.end.wait_for_peer(timeout)
    }

    /// Whether there is no free slot (a snapshot).
    pub fn is_full(&self) -> bool {
        self.end.capacity() - self.end.len() < self.words
    }

    /// Slots in use (a snapshot): one per message of up to
    /// [`max_len`](Self::max_len) bytes, one per piece of a longer one.
    pub fn len(&self) -> usize {
        self.end.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.end.len() == 0
    }

    /// Slots of the ring: the messages of up to
    /// [`max_len`](Self::max_len) bytes it holds when full.
    pub fn capacity(&self) -> usize {
        self.end.capacity() / self.words
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.end.region()
    }
}

/// The consuming end of an SPSC byte-message ring (one per ring; the role
/// rules of [`Consumer`](super::Consumer) apply: dropping it gives the role back and leaves
/// the ring open, with every queued message kept).
pub struct ByteConsumer {
    end: End<BytesShape, ConsumerCursor>,
    /// The partial message being gathered (see
    /// [`pop`](ByteConsumer::pop)).
    asm: Assembly,
    /// Words per slot.
    words: usize,
    max_len: usize,
}

impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("path", &self.region().path())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteConsumer {
    fn attach(mapped: Mapped<BytesShape>) -> Result<Self, OpenError> {
        let (words, max_len) = message_size(&mapped);
        Ok(Self {
            end: attach_consumer(mapped)?,
            asm: Assembly::new(),
            words,
            max_len,
        })
    }

    /// Creates a ring file for at least `messages` messages of up to
    /// `max_len` bytes and becomes its consumer.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::create`].
    pub fn create(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
    ) -> Result<Self, OpenError> {
        Self::create_with(path, messages, max_len, &CreateOptions::default())
    }

    /// [`ByteConsumer::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::create`].
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::CreateOptions;
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("msgs");
    /// let mut rx = ByteConsumer::create_with(&path, 4, 16, &CreateOptions::new().label("in"))?;
    /// ByteProducer::open(&path)?.push(b"hello")?;
    /// assert_eq!(rx.pop()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Self::attach(create(path, messages, max_len, opts)?)
    }

    /// Opens an existing byte ring as its consumer.
    ///
    /// # Errors
    ///
    /// As [`Consumer::open`](super::Consumer::open).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::attach(Mapped::open(path)?)
    }

    /// Opens the byte ring at `path` as its consumer, creating it (for at
    /// least `messages` messages of up to `max_len` bytes) if there is none.
    ///
    /// Opening an existing ring never resets it: the messages queued in it
    /// are there to pop; the shape is checked as by
    /// [`ByteProducer::open_or_create`].
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::open_or_create`].
    ///
    /// # Examples
    ///
    /// See [`ByteProducer::open_or_create`].
    pub fn open_or_create(
        path: impl AsRef<Path>,
        messages: usize,
        max_len: usize,
    ) -> Result<Self, OpenError> {
        Self::attach(open_or_create(path, messages, max_len)?)
    }

    /// The longest piece: the bytes one slot holds (see
    /// [`ByteProducer::max_len`]).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The raw consumer over the mapping, lending it our positions and our
    /// partial message.
    fn raw(&mut self) -> RawByteConsumer<'_, &mut ConsumerCursor, &mut Assembly> {
        RawByteConsumer::from_ring(self.end.raw::<u64>(), &mut self.asm, self.max_len)
    }

    /// Pops the oldest message into `out`, never waiting; its length (a
    /// message longer than `out` is cut: [`try_pop`](Self::try_pop) never
    /// cuts). A message in pieces is returned once its last piece came:
    /// until then, pieces already there are taken into this handle (making
    /// room for the producer) and the call says `Empty`.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_into(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        self.raw().try_pop_into(out)
    }

    /// Pops the oldest message whole, never waiting (see
    /// [`try_pop_into`](Self::try_pop_into)).
    ///
    /// # Errors
    ///
    /// As [`try_pop_into`](Self::try_pop_into).
    ///
    /// # Examples
    ///
    /// ```rust
    /// use mmring::TryPopError;
    /// use mmring::spsc::{ByteConsumer, ByteProducer};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("msgs");
    /// let mut rx = ByteConsumer::create(&path, 4, 8)?;
    /// let mut tx = ByteProducer::open(&path)?;
    /// assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
    /// tx.try_push(b"longer than one slot")?;
    /// assert_eq!(rx.try_pop()?, b"longer than one slot");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_pop(&mut self) -> Result<Vec<u8>, TryPopError> {
        self.raw().try_pop()
    }

    /// Pops the oldest message into `out`, sleeping while there is none;
    /// its length (cut to `out`, as [`try_pop_into`](Self::try_pop_into)).
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop`].
    pub fn pop_into(&mut self, out: &mut [u8]) -> Result<usize, PopError> {
        self.raw()
            .pop_into_until(out, None)
            .map_err(|e| match e {
                PopTimeoutError::Closed => PopError::Closed,
                PopTimeoutError::Disconnected => PopError::Disconnected,
                PopTimeoutError::Timeout => {
                    unreachable!("a wait without a deadline cannot time out")
                }
            })
    }

    /// Pops the oldest message whole, sleeping while there is none. A
    /// message sent in pieces is returned only once its last piece came;
    /// one that can no longer be finished — its producer was killed or
    /// dropped mid-message, gave up on a timeout, or the ring was closed —
    /// is discarded, never returned in part.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained,
    /// [`PopError::Disconnected`] once drained with no live process holding
    /// the producer role (dropped, killed, or never attached).
    pub fn pop(&mut self) -> Result<Vec<u8>, PopError> {
        self.raw().pop()
    }

    /// [`ByteConsumer::pop`], giving up after `timeout` (a partial message
    /// is kept: the next call goes on gathering it).
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop`] (as [`PopTimeoutError::Closed`] and
    /// [`PopTimeoutError::Disconnected`]), and [`PopTimeoutError::Timeout`].
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, PopTimeoutError> {
        self.raw().pop_until(deadline(timeout))
    }

    /// Closes the ring from the consuming side (pushes get `Closed`).
    /// Final: no producer can open it again until the file is removed.
    pub fn close(&self) {
        self.end.ctl().close(CLOSED_BY_CONSUMER);
    }

    /// Whether either side closed the ring (a snapshot; messages may be
    /// left to drain).
    pub fn is_closed(&self) -> bool {
        self.end.ctl().is_closed()
    }

    /// Whether no live process holds the producer role (see
    /// [`Consumer::is_abandoned`](super::Consumer::is_abandoned)).
    pub fn is_abandoned(&self) -> bool {
        self.end.is_abandoned()
    }

    /// Waits until a live process holds the producer role (see
    /// [`Consumer::wait_for_peer`](super::Consumer::wait_for_peer)): `false` if the ring is closed or
    /// `timeout` passes first.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.end.wait_for_peer(timeout)
    }

    /// Whether there is no free slot (a snapshot).
    pub fn is_full(&self) -> bool {
        self.end.capacity() - self.end.len() < self.words
    }

    /// Slots in use (a snapshot): one per message of up to
    /// [`max_len`](Self::max_len) bytes, one per piece of a longer one.
    pub fn len(&self) -> usize {
        self.end.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.end.len() == 0
    }

    /// Slots of the ring: the messages of up to
    /// [`max_len`](Self::max_len) bytes it holds when full.
    pub fn capacity(&self) -> usize {
        self.end.capacity() / self.words
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.end.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Ordering;

    #[test]
    fn every_length_round_trips_across_the_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let mut tx = ByteProducer::create(&path, 3, 20).unwrap();
        let mut rx = ByteConsumer::open(&path).unwrap();
        assert_eq!(tx.max_len(), 20);
        // 4 words a message, 3 messages: a 16-word ring, so messages wrap.
        // Up to 80 bytes (4 slots of 20) go in pieces, all at once.
        assert_eq!(tx.capacity(), 4);
        for round in 0..5 {
            for len in 0..=80usize {
                let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len + round) as u8).collect();
                tx.try_push(&msg).unwrap();
                assert_eq!(rx.pop_timeout(Duration::from_secs(5)).unwrap(), msg);
            }
        }
        // More slots than the ring has: try_push can never take it.
        assert_eq!(
            tx.try_push(&[0; 81]),
            Err(ByteTryPushError::TooLong { len: 81, max: 80 })
        );
        // Past the limit of every message: refused before anything is
        // written (the pages of the zeroed vector are never touched).
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        let too_long = |max| (MAX_MESSAGE_LEN + 1, max);
        assert!(matches!(
            tx.push(&huge),
            Err(BytePushError::TooLong { len, max }) if (len, max) == too_long(MAX_MESSAGE_LEN)
        ));
        assert!(matches!(
            tx.push_timeout(&huge, Duration::ZERO),
            Err(BytePushTimeoutError::TooLong { len, max }) if (len, max) == too_long(MAX_MESSAGE_LEN)
        ));
        drop(huge);
        assert!(tx.is_empty());
        let mut n = 0;
        while tx.try_push(b"x").is_ok() {
            n += 1;
        }
        assert_eq!(n, tx.capacity());
        assert!(n >= 3);
        let mut small = [0u8; 0];
        assert_eq!(rx.try_pop_into(&mut small), Ok(0), "cut to the buffer");
        tx.close();
        let mut buf = [0u8; 20];
        for _ in 1..n {
            assert_eq!(rx.try_pop_into(&mut buf), Ok(1));
        }
        assert_eq!(rx.try_pop_into(&mut buf), Err(TryPopError::Closed));
        assert_eq!(rx.pop(), Err(PopError::Closed));
    }

    #[test]
    fn ends_detach_and_reattach_keeping_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        create_bytes(&path, 2, 8).unwrap();
        let mut rx = ByteConsumer::open_or_create(&path, 2, 8).unwrap();
        assert!(rx.is_abandoned(), "no producer yet");
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        let mut tx = ByteProducer::open_or_create(&path, 2, 8).unwrap();
        assert!(!rx.is_abandoned() && !tx.is_abandoned());
        tx.push(b"one").unwrap();
        tx.push(b"two").unwrap();
        assert!(tx.is_full() && rx.is_full());
        assert_eq!(tx.try_push(b"x"), Err(ByteTryPushError::Full));
        drop(rx);
        assert!(tx.is_abandoned());
        assert_eq!(tx.push(b"three"), Err(BytePushError::Disconnected));
        assert_eq!(
            tx.push_timeout(b"three", Duration::from_secs(5)),
            Err(BytePushTimeoutError::Disconnected)
        );
        let mut rx = ByteConsumer::open(&path).unwrap();
        assert_eq!(rx.pop().unwrap(), b"one");
        tx.push(b"three").unwrap();
        drop(tx);
        assert!(!rx.is_closed());
        assert_eq!(rx.pop().unwrap(), b"two");
        assert_eq!(rx.pop_timeout(Duration::from_secs(5)).unwrap(), b"three");
        assert_eq!(
            rx.pop_timeout(Duration::from_secs(5)),
            Err(PopTimeoutError::Disconnected)
        );
        let tx = ByteProducer::open(&path).unwrap();
        tx.close();
        assert!(rx.is_closed());
        assert_eq!(rx.pop(), Err(PopError::Closed));
        drop(tx);
        assert!(matches!(
            ByteProducer::open(&path),
            Err(OpenError::Closed { .. })
        ));
        // Another size or max_len is refused by open_or_create.
        assert!(matches!(
            ByteConsumer::open_or_create(&path, 2, 9),
            Err(OpenError::WrongPayload { .. })
        ));
        assert!(matches!(
            ByteConsumer::open_or_create(&path, 64, 8),
            Err(OpenError::InvalidCapacity { .. })
        ));
    }

    #[test]
    fn garbage_lengths_and_positions_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let mut tx = ByteProducer::create(&path, 4, 20).unwrap();
        let mut rx = ByteConsumer::open(&path).unwrap();
        // A peer's view of the body: the control block (tail at word 0,
        // head at word 16), then the slot words.
        let peer = Mapped::<BytesShape>::open(&path).unwrap();
        let body = peer
            .region()
            .body::<AtomicU64>(0, peer.region().descriptor().body_size as usize / 8);
        let (ctl, slots) = body.split_at(crate::raw::spsc::SLOTS_OFFSET / 8);
        let garbage = [
            u64::MAX,
            u64::MAX - 7,
            1 << 63,
            21,
            20,
            3,
            0,
            u64::from(u32::MAX) + 1,
        ];
        let mut buf = [0u8; 20];
        let mut small = [0u8; 5];
        for (i, &g) in garbage.iter().enumerate() {
            let _ = tx.try_push(b"hello, world");
            let _ = tx.try_push(&[7; 20]);
            // A peer scribbles every word (length words included), then
            // the positions.
            for w in slots {
                w.store(g.rotate_left(i as u32), Ordering::Relaxed);
            }
            for _ in 0..3 {
                if let Ok(n) = rx.try_pop_into(&mut buf) {
                    assert!(n <= 20);
                }
                if let Ok(n) = rx.try_pop_into(&mut small) {
                    assert!(n <= 5);
                }
                let _ = rx.pop_timeout(Duration::ZERO);
                let _ = tx.push_timeout(b"x", Duration::ZERO);
                assert!(rx.len() <= 8 && tx.len() <= 8);
            }
            ctl[0].store(g, Ordering::Relaxed);
            ctl[16].store(g.wrapping_mul(3), Ordering::Relaxed);
            let _ = rx.try_pop_into(&mut buf);
            let _ = tx.try_push(b"again");
            let _ = rx.pop_timeout(Duration::ZERO);
        }
    }

    #[test]
    fn a_message_bigger_than_the_ring_streams_through_and_a_cut_one_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let mut tx = ByteProducer::create(&path, 4, 16).unwrap();
        let mut rx = ByteConsumer::open(&path).unwrap();
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        // 3 words a slot, 16 words: 5 slots of 16 bytes. The message
        // streams through while a thread pops.
        assert_eq!(tx.capacity(), 5);
        let reader = std::thread::spawn(move || {
            let first = rx.pop();
            let mut buf = vec![0u8; 20_000];
            let second = rx.pop_into(&mut buf).map(|n| buf[..n].to_vec());
            (rx, first, second)
        });
        tx.push(&big).unwrap();
        tx.push(&big[..5000]).unwrap();
        let (mut rx, first, second) = reader.join().unwrap();
        assert_eq!(first.unwrap(), big);
        assert_eq!(second.unwrap(), big[..5000]);

        // A push that times out half-way: the consumer takes what came and
        // waits for the rest; the next message discards it.
        assert_eq!(
            tx.push_timeout(&big, Duration::ZERO),
            Err(BytePushTimeoutError::Timeout)
        );
        assert!(tx.is_full());
        assert_eq!(
            rx.pop_timeout(Duration::from_millis(20)),
            Err(PopTimeoutError::Timeout)
        );
        assert_eq!(rx.asm.gathered(), 80, "the pieces that came are held");
        tx.push(b"next, in two pieces").unwrap();
        assert_eq!(rx.pop().unwrap(), b"next, in two pieces");
        assert_eq!(rx.asm.discarded(), 1);

        // The producer dropped mid-message: Disconnected, nothing in part;
        // a new producer's message arrives whole.
        assert_eq!(
            tx.push_timeout(&big, Duration::ZERO),
            Err(BytePushTimeoutError::Timeout)
        );
        drop(tx);
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert_eq!(rx.asm.discarded(), 2);
        assert!(!rx.asm.is_gathering());
        let mut tx = ByteProducer::open(&path).unwrap();
        tx.try_push(b"a whole one of 40 bytes, in 3 pieces...").unwrap();
        assert_eq!(
            rx.try_pop().unwrap(),
            b"a whole one of 40 bytes, in 3 pieces..."
        );
        // Closed mid-message: Closed, nothing in part.
        let _ = tx.push_timeout(&big, Duration::ZERO);
        tx.close();
        assert_eq!(rx.pop(), Err(PopError::Closed));
        assert_eq!(rx.asm.discarded(), 3);
    }

    #[test]
    fn a_push_resumed_in_slices_arrives_whole_and_one_started_over_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let mut tx = ByteProducer::create(&path, 4, 16).unwrap();
        let mut rx = ByteConsumer::open(&path).unwrap();
        assert_eq!(tx.consumer_pid(), crate::pid::current());
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        // Resumed slice after slice while a thread pops: one message, whole.
        let reader = std::thread::spawn(move || {
            let got = rx.pop();
            (rx, got)
        });
        let mut sent = 0;
        let mut slices = 0;
        loop {
            slices += 1;
            match tx.push_from(&big, &mut sent, Duration::from_micros(50)) {
                Ok(()) => break,
                Err(BytePushTimeoutError::Timeout) => assert!(sent < 625),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(sent, 625, "10 000 bytes in pieces of 16");
        let (mut rx, got) = reader.join().unwrap();
        assert_eq!(got.unwrap(), big);
        assert!(slices >= 1);
        // Cut off, then started over from 0: the first attempt is discarded.
        let mut sent = 0;
        assert_eq!(
            tx.push_from(&big, &mut sent, Duration::ZERO),
            Err(BytePushTimeoutError::Timeout)
        );
        assert_eq!(sent, 5);
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
        let mut sent = 0;
        tx.push_from(b"short", &mut sent, Duration::ZERO).unwrap();
        assert_eq!(rx.try_pop().unwrap(), b"short");
        assert_eq!(rx.asm.discarded(), 1);
        // Refused over the limit, as push.
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert!(matches!(
            tx.push_from(&huge, &mut 0, Duration::ZERO),
            Err(BytePushTimeoutError::TooLong { .. })
        ));
        drop(rx);
        assert_eq!(tx.consumer_pid(), 0);
    }

    #[test]
    fn inspect_shows_the_slots_and_the_next_piece() {
        use crate::inspect::{Body, inspect};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let mut tx = ByteProducer::create(&path, 4, 16).unwrap();
        let mut rx = ByteConsumer::open(&path).unwrap();
        let pieces = |path: &Path| match inspect(path).unwrap().body {
            Body::Ring {
                pieces: Some(p), ..
            } => p,
            other => panic!("not a byte ring: {other:?}"),
        };
        let p = pieces(&path);
        assert_eq!((p.max_len, p.slot_words, p.next_header), (16, 3, None));
        assert!(inspect(&path).unwrap().to_string().contains("next piece:  none queued"));
        tx.try_push(&[7; 40]).unwrap();
        let next = pieces(&path).next().unwrap();
        assert_eq!((next.len, next.first, next.last), (16, true, false));
        let shown = inspect(&path).unwrap().to_string();
        assert!(shown.contains("ring:        9 of 16 words used: 3 of 5 slots"), "{shown}");
        assert!(shown.contains("pieces:      up to 16 bytes a slot (3 words)"), "{shown}");
        assert!(
            shown.contains("next piece:  16 bytes, first of a message, more to follow"),
            "{shown}"
        );
        // A peer's garbage header is shown as such.
        let words = tx.end.mapped.elems();
        words[0].store(u64::MAX, crate::sync::Ordering::Relaxed);
        assert!(
            inspect(&path)
                .unwrap()
                .to_string()
                .contains("next piece:  corrupt header 0xffffffffffffffff")
        );
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty), "the message is lost");
    }

    #[test]
    fn bad_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        assert!(matches!(
            ByteProducer::create(&p, 0, 8),
            Err(OpenError::InvalidCapacity { .. })
        ));
        assert!(matches!(
            ByteProducer::create(&p, 4, 0),
            Err(OpenError::UnsupportedPayload { .. })
        ));
        assert!(matches!(
            ByteProducer::create(&p, 4, 1 << 20),
            Err(OpenError::UnsupportedPayload { .. })
        ));
        assert!(matches!(
            ByteProducer::create(&p, usize::MAX, 8),
            Err(OpenError::InvalidCapacity { .. })
        ));
    }
}

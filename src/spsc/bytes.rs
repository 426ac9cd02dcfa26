//! [`ByteProducer`] and [`ByteConsumer`]: an SPSC ring of byte messages.
//!
//! The ring is the typed SPSC ring over `u64` words. A message takes a fixed
//! `1 + ceil(max_len / 8)` words — its length, then its bytes — reserved and
//! published as one chunk (which may wrap around the end of the ring), so
//! the consumer only ever sees whole messages. The ring's capacity in words
//! is the smallest power of two that holds the number of messages asked
//! for; it may hold a few more.
//!
//! The bytes are copied straight between the caller's buffer and the
//! chunk's words with relaxed atomic word accesses (the ring's positions
//! order them), in at most two runs. The stored length is untrusted: it is
//! clamped to `max_len` and to the caller's buffer before any byte is
//! copied.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{End, attach_consumer, attach_producer};
use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, ChunkError, OpenError, PopError,
    PopTimeoutError, PushTimeoutError, TryPopError,
};
use crate::handle::{Mapped, Shape};
use crate::layout::{Kind, bytes_type};
use crate::raw::message;
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

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn check(&self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        message::check_len(msg, self.max_len)
            .map_err(|(len, max)| ByteTryPushError::TooLong { len, max })
    }

    fn write(&mut self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        let chunk = self
            .end
            .raw::<u64>()
            .into_write_chunk(self.words)
            .map_err(|e| match e {
                ChunkError::TooFewSlots(_) => ByteTryPushError::Full,
                ChunkError::Closed => ByteTryPushError::Closed,
            })?;
        let (a, b) = chunk.words();
        message::write_split(a, b, msg);
        chunk.commit_all();
        Ok(())
    }

    /// Pushes `msg` if there is room, never waiting.
    ///
    /// # Errors
    ///
    /// [`ByteTryPushError::TooLong`], [`ByteTryPushError::Full`] or
    /// [`ByteTryPushError::Closed`].
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        self.check(msg)?;
        self.write(msg)
    }

    fn push_until(
        &mut self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), BytePushTimeoutError> {
        let too_long = |len, max| BytePushTimeoutError::TooLong { len, max };
        self.check(msg).map_err(|e| match e {
            ByteTryPushError::TooLong { len, max } => too_long(len, max),
            ByteTryPushError::Full | ByteTryPushError::Closed => BytePushTimeoutError::Closed,
        })?;
        loop {
            self.end
                .raw::<u64>()
                .wait_free(self.words, deadline)
                .map_err(|e| match e {
                    PushTimeoutError::Closed(()) => BytePushTimeoutError::Closed,
                    PushTimeoutError::Disconnected(()) => BytePushTimeoutError::Disconnected,
                    PushTimeoutError::Timeout(()) => BytePushTimeoutError::Timeout,
                })?;
            match self.write(msg) {
                Ok(()) => return Ok(()),
                Err(ByteTryPushError::Closed) => return Err(BytePushTimeoutError::Closed),
                Err(ByteTryPushError::TooLong { len, max }) => return Err(too_long(len, max)),
                // `wait_free` saw room for a whole message and only this
                // producer takes room: not reached (wait again if it is).
                Err(ByteTryPushError::Full) => {}
            }
        }
    }

    /// Pushes `msg`, sleeping while the ring is full, for as long as a
    /// live consumer holds its role.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`], [`BytePushError::Closed`], or
    /// [`BytePushError::Disconnected`] if there is no room and no live
    /// process holds the consumer role (dropped, killed, or never
    /// attached).
    pub fn push(&mut self, msg: &[u8]) -> Result<(), BytePushError> {
        self.push_until(msg, None).map_err(|e| match e {
            BytePushTimeoutError::TooLong { len, max } => BytePushError::TooLong { len, max },
            BytePushTimeoutError::Closed => BytePushError::Closed,
            BytePushTimeoutError::Disconnected => BytePushError::Disconnected,
            BytePushTimeoutError::Timeout => {
                unreachable!("a wait without a deadline cannot time out")
            }
        })
    }

    /// [`ByteProducer::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::push`], and [`BytePushTimeoutError::Timeout`].
    pub fn push_timeout(
        &mut self,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<(), BytePushTimeoutError> {
        self.push_until(msg, deadline(timeout))
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

    /// Whether there is no room for one more message (a snapshot).
    pub fn is_full(&self) -> bool {
        self.end.capacity() - self.end.len() < self.words
    }

    /// Messages in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.end.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.end.len() == 0
    }

    /// Messages the ring holds when full.
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

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn read(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        let chunk = self
            .end
            .raw::<u64>()
            .into_read_chunk(self.words)
            .map_err(|e| match e {
                ChunkError::TooFewSlots(_) => TryPopError::Empty,
                ChunkError::Closed => TryPopError::Closed,
            })?;
        let (a, b) = chunk.words();
        let len = message::read_split(a, b, self.max_len, out);
        chunk.commit_all();
        Ok(len)
    }

    /// Pops the oldest message into `out`, never waiting; its length (a
    /// message longer than `out` is cut: size `out` to
    /// [`max_len`](Self::max_len) to never cut).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_into(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        self.read(out)
    }

    fn pop_into_until(
        &mut self,
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, PopTimeoutError> {
        loop {
            self.end.raw::<u64>().wait_available(self.words, deadline)?;
            match self.read(out) {
                Ok(len) => return Ok(len),
                Err(TryPopError::Closed) => return Err(PopTimeoutError::Closed),
                // A whole message was available and only this consumer
                // takes messages: not reached (wait again if it is).
                Err(TryPopError::Empty) => {}
            }
        }
    }

    fn pop_into_blocking(&mut self, out: &mut [u8]) -> Result<usize, PopError> {
        self.pop_into_until(out, None).map_err(|e| match e {
            PopTimeoutError::Closed => PopError::Closed,
            PopTimeoutError::Disconnected => PopError::Disconnected,
            PopTimeoutError::Timeout => unreachable!("a wait without a deadline cannot time out"),
        })
    }

    /// Pops the oldest message into `out`, sleeping while the ring is empty;
    /// its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained,
    /// [`PopError::Disconnected`] once drained with no live process holding
    /// the producer role (dropped, killed, or never attached).
    pub fn pop_into(&mut self, out: &mut [u8]) -> Result<usize, PopError> {
        self.pop_into_blocking(out)
    }

    /// Pops the oldest message, sleeping while the ring is empty.
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop_into`].
    pub fn pop(&mut self) -> Result<Vec<u8>, PopError> {
        let mut buf = vec![0u8; self.max_len];
        let len = self.pop_into_blocking(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// [`ByteConsumer::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop`] (as [`PopTimeoutError::Closed`] and
    /// [`PopTimeoutError::Disconnected`]), and [`PopTimeoutError::Timeout`].
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, PopTimeoutError> {
        let mut buf = vec![0u8; self.max_len];
        let len = self.pop_into_until(&mut buf, deadline(timeout))?;
        buf.truncate(len);
        Ok(buf)
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

    /// Whether there is no room for one more message (a snapshot).
    pub fn is_full(&self) -> bool {
        self.end.capacity() - self.end.len() < self.words
    }

    /// Messages in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.end.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.end.len() == 0
    }

    /// Messages the ring holds when full.
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
        for round in 0..5 {
            for len in 0..=20usize {
                let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len + round) as u8).collect();
                tx.try_push(&msg).unwrap();
                assert_eq!(rx.pop_timeout(Duration::from_secs(5)).unwrap(), msg);
            }
        }
        assert!(matches!(
            tx.try_push(&[0; 21]),
            Err(ByteTryPushError::TooLong { len: 21, max: 20 })
        ));
        assert_eq!(
            tx.push(&[0; 21]),
            Err(BytePushError::TooLong { len: 21, max: 20 })
        );
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

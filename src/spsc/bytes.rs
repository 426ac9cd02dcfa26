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

use super::mapped::{Consumer, Producer, create_region_for};
use super::message_words as spsc_message_words;
use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, ChunkError, OpenError, PopError,
    PopTimeoutError, PushTimeoutError, TryPopError,
};
use crate::layout::{Kind, bytes_type};
use crate::raw::message;
use crate::region::{self, CreateOptions, Expect, Region};
use crate::wait::deadline;

fn expect(max_len: usize) -> Expect {
    Expect {
        kind: Kind::SpscBytes,
        elem: bytes_type(u32::try_from(max_len).unwrap_or(u32::MAX)),
        any_size: true,
    }
}

/// What `open_or_create` expects: this exact `max_len`.
fn expect_exactly(max_len: usize) -> Expect {
    Expect {
        any_size: false,
        ..expect(max_len)
    }
}

fn words_per_message(region: &Region) -> usize {
    spsc_message_words(u64::from(region.descriptor().elem_size)) as usize
}

/// The ring's size in words for `messages` messages of `max_len` bytes
/// (a power of two; saturates to an invalid size that create rejects).
fn ring_words(messages: usize, max_len: usize) -> usize {
    let k = spsc_message_words(max_len as u64) as usize;
    messages
        .checked_mul(k)
        .and_then(usize::checked_next_power_of_two)
        .unwrap_or(usize::MAX)
}

fn create(
    path: &Path,
    messages: usize,
    max_len: usize,
    opts: &CreateOptions,
) -> Result<Region, OpenError> {
    if messages == 0 {
        return Err(OpenError::InvalidCapacity {
            path: path.to_path_buf(),
            expected: "at least 1 message".into(),
            found: 0,
        });
    }
    create_region_for(path, expect(max_len), ring_words(messages, max_len), opts)
}

fn open_or_create(path: &Path, messages: usize, max_len: usize) -> Result<Region, OpenError> {
    let opts = CreateOptions::default();
    let region = match Region::open(path, expect_exactly(max_len)) {
        Err(OpenError::NotFound { .. }) => match create(path, messages, max_len, &opts) {
            Err(OpenError::AlreadyExists { .. }) => Region::open(path, expect_exactly(max_len))?,
            other => other?,
        },
        other => other?,
    };
    let words = ring_words(messages, max_len) as u64;
    let found = region.descriptor().capacity;
    if found != words {
        return Err(OpenError::InvalidCapacity {
            path: path.to_path_buf(),
            expected: format!("{words} words ({messages} messages of {max_len} bytes) as asked"),
            found,
        });
    }
    Ok(region)
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
    let path = region::resolve(path);
    create(&path, messages, max_len, opts).map(drop)
}

/// The producing end of an SPSC byte-message ring (one per ring; the role
/// rules of [`Producer`] apply: dropping it gives the role back and leaves
/// the ring open, with every queued message kept).
pub struct ByteProducer {
    inner: Producer<u64>,
    words: usize,
    max_len: usize,
}

impl std::fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteProducer")
            .field("path", &self.inner.region().path())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteProducer {
    fn attach(region: Region) -> Result<Self, OpenError> {
        let words = words_per_message(&region);
        let max_len = region.descriptor().elem_size as usize;
        Ok(Self {
            inner: Producer::attach(region)?,
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
        let path = region::resolve(path);
        Self::attach(create(&path, messages, max_len, &CreateOptions::default())?)
    }

    /// Opens an existing byte ring as its producer.
    ///
    /// # Errors
    ///
    /// As [`Producer::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(Region::open(&path, expect(0))?)
    }

    /// Opens the byte ring at `path` as its producer, creating it (for at
    /// least `messages` messages of up to `max_len` bytes) if there is none.
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
        let path = region::resolve(path);
        Self::attach(open_or_create(&path, messages, max_len)?)
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
            .inner
            .raw
            .write_chunk(self.words)
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
            self.inner
                .raw
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
            BytePushTimeoutError::Timeout => super::no_deadline_no_timeout(),
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
        self.inner.close();
    }

    /// Whether either side closed the ring (a snapshot).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether no live process holds the consumer role (see
    /// [`Producer::is_abandoned`]).
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// Waits until a live process holds the consumer role (see
    /// [`Producer::wait_for_peer`]): `false` if the ring is closed or
    /// `timeout` passes first.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.inner.wait_for_peer(timeout)
    }

    /// Whether there is no room for one more message (a snapshot).
    pub fn is_full(&self) -> bool {
        self.inner.capacity() - self.inner.len() < self.words
    }

    /// Messages in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.inner.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Messages the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.inner.capacity() / self.words
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.inner.region()
    }
}

/// The consuming end of an SPSC byte-message ring (one per ring; the role
/// rules of [`Consumer`] apply: dropping it gives the role back and leaves
/// the ring open, with every queued message kept).
pub struct ByteConsumer {
    inner: Consumer<u64>,
    words: usize,
    max_len: usize,
}

impl std::fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("path", &self.inner.region().path())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteConsumer {
    fn attach(region: Region) -> Result<Self, OpenError> {
        let words = words_per_message(&region);
        let max_len = region.descriptor().elem_size as usize;
        Ok(Self {
            inner: Consumer::attach(region)?,
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
        let path = region::resolve(path);
        Self::attach(create(&path, messages, max_len, &CreateOptions::default())?)
    }

    /// Opens an existing byte ring as its consumer.
    ///
    /// # Errors
    ///
    /// As [`Consumer::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(Region::open(&path, expect(0))?)
    }

    /// Opens the byte ring at `path` as its consumer, creating it (for at
    /// least `messages` messages of up to `max_len` bytes) if there is none.
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
        let path = region::resolve(path);
        Self::attach(open_or_create(&path, messages, max_len)?)
    }

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn read(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        let chunk = self.inner.raw.read_chunk(self.words).map_err(|e| match e {
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
            self.inner.raw.wait_available(self.words, deadline)?;
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
            PopTimeoutError::Timeout => super::no_deadline_no_timeout(),
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
        self.inner.close();
    }

    /// Whether either side closed the ring (a snapshot; messages may be
    /// left to drain).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether no live process holds the producer role (see
    /// [`Consumer::is_abandoned`]).
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// Waits until a live process holds the producer role (see
    /// [`Consumer::wait_for_peer`]): `false` if the ring is closed or
    /// `timeout` passes first.
    pub fn wait_for_peer(&self, timeout: Duration) -> bool {
        self.inner.wait_for_peer(timeout)
    }

    /// Whether there is no room for one more message (a snapshot).
    pub fn is_full(&self) -> bool {
        self.inner.capacity() - self.inner.len() < self.words
    }

    /// Messages in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.inner.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Messages the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.inner.capacity() / self.words
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.inner.region()
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
        let ring = rx.inner.raw.ring;
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
            for w in ring.words {
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
            ring.ctl.tail.store(g, Ordering::Relaxed);
            ring.ctl.head.store(g.wrapping_mul(3), Ordering::Relaxed);
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

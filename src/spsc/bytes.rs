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
use crate::error::{BytePushError, OpenError, PopError, PushError, TryPopError};
use crate::layout::{Kind, bytes_type, spsc_message_words};
use crate::region::{self, CreateOptions, Expect, Region};
use crate::seqlock::{copy_in, copy_out};
use crate::sync::{AtomicU64, Ordering};

fn expect(max_len: usize) -> Expect {
    Expect {
        kind: Kind::SpscBytes,
        elem: bytes_type(u32::try_from(max_len).unwrap_or(u32::MAX)),
        any_size: true,
    }
}

fn words_per_message(region: &Region) -> usize {
    spsc_message_words(u64::from(region.descriptor().elem_size)) as usize
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
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

/// Splits a message's two runs of words into its length word and the two
/// runs of data words after it (`None` if there are no words at all).
fn split_len<'w>(
    a: &'w [AtomicU64],
    b: &'w [AtomicU64],
) -> Option<(&'w AtomicU64, &'w [AtomicU64], &'w [AtomicU64])> {
    match a.split_first() {
        Some((len, rest)) => Some((len, rest, b)),
        None => b.split_first().map(|(len, rest)| (len, a, rest)),
    }
}

/// Writes a message into a chunk's two runs of words: its length, then its
/// bytes (words past the message are left as they were).
fn encode(msg: &[u8], a: &[AtomicU64], b: &[AtomicU64]) {
    let Some((len, a, b)) = split_len(a, b) else {
        return;
    };
    // Relaxed: published by the ring's Release store of its tail.
    len.store(msg.len() as u64, Ordering::Relaxed);
    let (ma, mb) = msg.split_at(msg.len().min(a.len().saturating_mul(8)));
    copy_in(a, ma);
    copy_in(b, mb);
}

/// Reads a message from a chunk's two runs of words into `out`: the stored
/// length is clamped to `max_len` and to `out`, never trusted. Returns the
/// length.
fn decode(a: &[AtomicU64], b: &[AtomicU64], max_len: usize, out: &mut [u8]) -> usize {
    let Some((len, a, b)) = split_len(a, b) else {
        return 0;
    };
    // Relaxed: ordered by the ring's Acquire load of the tail.
    let stored = len.load(Ordering::Relaxed);
    let len = usize::try_from(stored)
        .unwrap_or(usize::MAX)
        .min(max_len)
        .min(out.len());
    let out = &mut out[..len];
    let (oa, ob) = out.split_at_mut(len.min(a.len().saturating_mul(8)));
    copy_out(a, oa);
    copy_out(b, ob);
    len
}

/// The producing end of an SPSC byte-message ring (one per ring; the role
/// rules of [`Producer`] apply).
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

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn check(&self, msg: &[u8]) -> Result<(), BytePushError> {
        if msg.len() > self.max_len {
            return Err(BytePushError::TooLong {
                len: msg.len(),
                max: self.max_len,
            });
        }
        Ok(())
    }

    fn write(&mut self, msg: &[u8]) -> Result<(), BytePushError> {
        let chunk = self
            .inner
            .raw
            .write_chunk(self.words)
            .map_err(|e| match e {
                crate::error::ChunkError::TooFewSlots(_) => BytePushError::Full,
                crate::error::ChunkError::Closed => BytePushError::Closed,
            })?;
        let (a, b) = chunk.words();
        encode(msg, a, b);
        chunk.commit_all();
        Ok(())
    }

    /// Pushes `msg` if there is room, never waiting.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`], [`BytePushError::Full`] or
    /// [`BytePushError::Closed`].
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), BytePushError> {
        self.check(msg)?;
        self.write(msg)
    }

    fn push_until(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), BytePushError> {
        self.check(msg)?;
        self.inner
            .raw
            .wait_free(self.words, deadline)
            .map_err(|e| match e {
                PushError::Timeout(()) => BytePushError::Timeout,
                PushError::Closed(()) | PushError::Disconnected(()) => BytePushError::Closed,
            })?;
        self.write(msg)
    }

    /// Pushes `msg`, sleeping while the ring is full.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`], or [`BytePushError::Closed`] (closed, or
    /// the consumer's process died while the ring was full).
    pub fn push(&mut self, msg: &[u8]) -> Result<(), BytePushError> {
        self.push_until(msg, None)
    }

    /// [`ByteProducer::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::push`], and [`BytePushError::Timeout`].
    pub fn push_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), BytePushError> {
        self.push_until(msg, deadline(timeout))
    }

    /// Closes the ring (the consumer drains, then gets `Closed`).
    pub fn close(&self) {
        self.inner.close();
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
/// rules of [`Consumer`] apply).
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

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn read(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        let chunk = self.inner.raw.read_chunk(self.words).map_err(|e| match e {
            crate::error::ChunkError::TooFewSlots(_) => TryPopError::Empty,
            crate::error::ChunkError::Closed => TryPopError::Closed,
        })?;
        let (a, b) = chunk.words();
        let len = decode(a, b, self.max_len, out);
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
    ) -> Result<usize, PopError> {
        self.inner.raw.wait_available(self.words, deadline)?;
        self.read(out).map_err(|e| match e {
            TryPopError::Closed => PopError::Closed,
            // A whole message was available; only a peer scribbling on the
            // indices can take it away.
            TryPopError::Empty => PopError::Timeout,
        })
    }

    /// Pops the oldest message into `out`, sleeping while the ring is empty;
    /// its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained,
    /// [`PopError::Disconnected`] if the producer died without closing.
    pub fn pop_into(&mut self, out: &mut [u8]) -> Result<usize, PopError> {
        self.pop_into_until(out, None)
    }

    /// Pops the oldest message, sleeping while the ring is empty.
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop_into`].
    pub fn pop(&mut self) -> Result<Vec<u8>, PopError> {
        let mut buf = vec![0u8; self.max_len];
        let len = self.pop_into_until(&mut buf, None)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// [`ByteConsumer::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::pop`], and [`PopError::Timeout`].
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, PopError> {
        let mut buf = vec![0u8; self.max_len];
        let len = self.pop_into_until(&mut buf, deadline(timeout))?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Closes the ring from the consuming side (pushes get `Closed`).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Messages in the ring (a snapshot).
    pub fn len(&self) -> usize {
        self.inner.len() / self.words
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The mapped file.
    pub fn region(&self) -> &Region {
        self.inner.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(BytePushError::TooLong { len: 21, max: 20 })
        ));
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

    fn words(values: &[u64]) -> Vec<AtomicU64> {
        values.iter().map(|&v| AtomicU64::new(v)).collect()
    }

    #[test]
    fn a_garbage_length_is_clamped() {
        let mut out = [0u8; 16];
        let a = words(&[u64::MAX, u64::from_ne_bytes(*b"abcdefgh")]);
        let b = words(&[u64::from_ne_bytes(*b"ijklmnop")]);
        assert_eq!(decode(&a, &b, 12, &mut out), 12);
        assert_eq!(&out[..12], b"abcdefghijkl");
        // The length word itself may be the one that wrapped.
        let b = words(&[5, u64::from_ne_bytes(*b"qrstuvwx")]);
        assert_eq!(decode(&[], &b, 12, &mut out), 5);
        assert_eq!(&out[..5], b"qrstu");
        assert_eq!(decode(&[], &[], 12, &mut out), 0);
        for garbage in [u64::MAX, 1 << 63, u64::from(u32::MAX) + 1, 17, 9] {
            let a = words(&[garbage, 1]);
            let b = words(&[2]);
            // Clamped to max_len (16: two data words), then to `out`.
            assert!(decode(&a, &b, 16, &mut out) <= 16);
            assert!(decode(&a, &b, 16, &mut [0u8; 3]) <= 3);
        }
    }

    #[test]
    fn encode_splits_a_message_across_the_wrap() {
        let a = words(&[0, 0]);
        let b = words(&[0, 0, 7]);
        encode(b"abcdefghijk", &a, &b);
        let mut out = [0u8; 32];
        assert_eq!(decode(&a, &b, 24, &mut out), 11);
        assert_eq!(&out[..11], b"abcdefghijk");
        assert_eq!(
            b[2].load(Ordering::Relaxed),
            7,
            "words past the message kept"
        );
        // Length word alone in the first run.
        let a = words(&[0]);
        encode(b"xyz", &a, &b);
        assert_eq!(decode(&a, &b, 24, &mut out), 3);
        assert_eq!(&out[..3], b"xyz");
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

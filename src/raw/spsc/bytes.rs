//! The SPSC byte ring: byte messages over the ring of `u64` words, a
//! message of any length up to [`MAX_MESSAGE_LEN`] carried in *pieces*.
//!
//! A piece takes one fixed run of `k = 1 + ceil(max_len / 8)` words (its
//! *slot*; it may wrap around the end of the ring): a header word, then up
//! to `max_len` bytes ([`message::Piece`] tells the header's bits). A
//! message of `n` bytes is `max(1, ceil(n / max_len))` pieces, all full but
//! the last; the first has `PIECE_CONT` clear, every one but the last has
//! `PIECE_MORE` set. A message that fits one piece has both clear: its
//! words are exactly those of a plain single-slot message.
//!
//! # Producer
//!
//! [`RawByteProducer::try_push`] writes every piece of a message in one
//! chunk and publishes them with one Release store of the tail, or writes
//! nothing: the message fits the free room now, or it is `Full` (or, if it
//! is more pieces than the whole ring, `TooLong`).
//! [`RawByteProducer::push_until`] streams: it publishes as many pieces as
//! fit, waits for room, and goes on, so a message bigger than the ring goes
//! through while the consumer drains it. A push that fails half-way
//! (closed, no consumer, timed out) leaves its first pieces in the ring;
//! the consumer discards them (below), so the next message starts clean:
//! every message begins with a first piece, whoever writes it. That is also
//! what makes a *new* producer start cleanly after one killed mid-message:
//! no epoch is needed, because the ring is FIFO and only the role holder
//! writes.
//!
//! # Consumer: whole or not at all
//!
//! The consumer reads pieces in order into its [`Assembly`] (kept between
//! calls by whoever holds the end) and returns a message only when its last
//! piece arrived. The pieces it has read are released to the producer at
//! once (that is what lets a message bigger than the ring stream through),
//! so the assembly, not the ring, holds a partial message. A partial
//! message is *discarded*, never returned:
//!
//! - when a first piece arrives while gathering (the message before it was
//!   cut off: its producer died, was dropped, or gave up on a deadline);
//! - when the ring is drained and the producer role is free or held by a
//!   dead process (the blocking and timed pops' `Disconnected`), or the
//!   ring is closed (`Closed`): nothing can complete it any more;
//! - when a header is not one an honest producer writes ([`Piece::parse`]:
//!   reserved bits, a length above `max_len`, a short piece with more to
//!   come), or the message would grow past [`MAX_MESSAGE_LEN`].
//!
//! A continuation piece with no message being gathered (the rest of a
//! discarded message, or of one whose start a previous consumer took) is
//! skipped. A dropped consumer loses the partial message it held; the next
//! one skips the rest of it.
//!
//! Memory is the ring's: the piece words are only ever copied with relaxed
//! atomic loads and stores, ordered by the ring's Release store and Acquire
//! load of the positions (see [`super`]). Nothing here adds an ordering.
//!
//! Hostile input: a header is parsed before any byte is copied, a piece is
//! copied only up to its (checked) length, the assembly never grows past
//! [`MAX_MESSAGE_LEN`] (and only by bytes a peer really wrote through the
//! ring), and one non-blocking call reads at most one ring's worth of
//! pieces, so garbage positions cannot keep it going.

use std::borrow::BorrowMut;
use std::time::Instant;

use super::{ConsumerCursor, Control, ProducerCursor, RawConsumer, RawProducer};
use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, ChunkError, PopError, PopTimeoutError,
    TryPopError,
};
use crate::raw::message::{self, Piece, StoredPiece};
use crate::sync::AtomicU64;

/// The longest message a byte ring carries: 1 GiB (2^30 bytes). A push of
/// a longer one is refused (`TooLong`); a consumer never assembles more
/// (a peer's longer stream is discarded), so this also bounds what a
/// consumer allocates for one message.
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// A partial message kept above this capacity is freed, not kept for the
/// next one, once it is delivered into a caller's buffer or discarded.
const KEEP_CAPACITY: usize = 1 << 20;

/// Words of a piece slot for pieces of at most `max_len` bytes.
fn piece_words(max_len: usize) -> usize {
    message::words(max_len as u64) as usize
}

/// The `len` words from `start` of the two runs `a` then `b` (a chunk that
/// may wrap), as two runs. Callers stay inside `a.len() + b.len()`; past
/// it the runs come back short, never a panic.
fn sub<'w>(
    a: &'w [AtomicU64],
    b: &'w [AtomicU64],
    start: usize,
    len: usize,
) -> (&'w [AtomicU64], &'w [AtomicU64]) {
    let end = start.saturating_add(len);
    if start >= a.len() {
        let (s, e) = (start - a.len(), end - a.len());
        (b.get(s..e.min(b.len())).unwrap_or(&[]), &[])
    } else if end <= a.len() {
        (&a[start..end], &[])
    } else {
        (&a[start..], &b[..(end - a.len()).min(b.len())])
    }
}

/// The producing end of a byte ring (see the [module docs](self)).
pub struct RawByteProducer<'a, C = ProducerCursor> {
    ring: RawProducer<'a, u64, C>,
    /// Words per piece slot.
    words: usize,
    /// Bytes per piece (full pieces).
    max_len: usize,
}

impl<'a> RawByteProducer<'a> {
    /// Attaches to a byte ring of pieces of up to `max_len` bytes as its
    /// producer (not claiming the role), continuing from the published
    /// tail. `slots` is a power of two of words, at least one piece's.
    ///
    /// # Panics
    ///
    /// If `max_len` is 0, or `slots` is not a power of two of at least
    /// `1 + ceil(max_len / 8)` words.
    ///
    /// # Examples
    ///
    /// ```
    /// use mmring::raw::spsc::Control;
    /// use mmring::raw::spsc::bytes::{RawByteConsumer, RawByteProducer};
    /// use mmring::sync::AtomicU64;
    ///
    /// let ctl = Control::new();
    /// // 8 words: two pieces of up to 16 bytes (3 words each).
    /// let words: Vec<AtomicU64> = (0..8).map(|_| AtomicU64::new(0)).collect();
    /// let mut tx = RawByteProducer::new(&ctl, &words, 16);
    /// let mut rx = RawByteConsumer::new(&ctl, &words, 16);
    /// tx.try_push(b"twenty-four bytes, whole")?; // two pieces
    /// assert_eq!(rx.try_pop()?, b"twenty-four bytes, whole");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(ctl: &'a Control, slots: &'a [AtomicU64], max_len: usize) -> Self {
        assert!(max_len > 0, "pieces of at least one byte");
        assert!(
            slots.len() >= piece_words(max_len),
            "a ring of {} words holds no piece of {max_len} bytes",
            slots.len()
        );
        Self::from_ring(RawProducer::new(ctl, slots), max_len)
    }
}

impl<'a, C: BorrowMut<ProducerCursor>> RawByteProducer<'a, C> {
    /// A byte producer over a ring of words validated by the caller (at
    /// least one piece of `max_len` bytes, `max_len` at least 1).
    #[inline]
    pub fn from_ring(ring: RawProducer<'a, u64, C>, max_len: usize) -> Self {
        Self {
            ring,
            words: piece_words(max_len),
            max_len,
        }
    }

    /// Bytes a piece holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Piece slots the ring holds.
    pub fn capacity(&self) -> usize {
        self.ring.capacity() / self.words
    }

    /// Piece slots in use (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.len() / self.words
    }

    /// Whether no piece is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether there is no room for one more piece (a snapshot).
    pub fn is_full(&self) -> bool {
        self.ring.capacity() - self.ring.len() < self.words
    }

    /// The pieces a message of `len` bytes travels in.
    pub fn pieces(&self, len: usize) -> usize {
        len.div_ceil(self.max_len).max(1)
    }

    /// Writes pieces `first .. first + n` of `msg` in one chunk and
    /// publishes them (one Release store of the tail, in `commit_all`).
    fn write(&mut self, msg: &[u8], first: usize, n: usize) -> Result<(), ChunkError> {
        let total = self.pieces(msg.len());
        let (k, max) = (self.words, self.max_len);
        let chunk = self.ring.write_chunk(n.saturating_mul(k))?;
        let (a, b) = chunk.words();
        for i in 0..n {
            let j = first + i;
            let start = j.saturating_mul(max).min(msg.len());
            let bytes = &msg[start..start.saturating_add(max).min(msg.len())];
            let piece = Piece {
                len: bytes.len(),
                first: j == 0,
                last: j + 1 == total,
            };
            let (pa, pb) = sub(a, b, i * k, k);
            message::write_piece_split(pa, pb, piece, bytes);
        }
        chunk.commit_all();
        Ok(())
    }

    /// Pushes the whole of `msg` if every piece of it fits now, never
    /// waiting; all its pieces become visible to the consumer at once.
    ///
    /// # Errors
    ///
    /// [`ByteTryPushError::TooLong`] if `msg` is more pieces than the ring
    /// holds (its `max` is [`capacity`](Self::capacity) times
    /// [`max_len`](Self::max_len): such a message only goes through a
    /// streaming push), [`ByteTryPushError::Full`] if it does not fit now,
    /// [`ByteTryPushError::Closed`].
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        let total = self.pieces(msg.len());
        let cap = self.capacity();
        if total > cap {
            return Err(ByteTryPushError::TooLong {
                len: msg.len(),
                max: cap.saturating_mul(self.max_len),
            });
        }
        self.write(msg, 0, total).map_err(|e| match e {
            ChunkError::TooFewSlots(_) => ByteTryPushError::Full,
            ChunkError::Closed => ByteTryPushError::Closed,
        })
    }

    /// Publishes the next pieces of `msg` that fit now, from piece `*next`
    /// (0: the first), never waiting, and advances `*next` past them.
    /// Returns whether the last piece is out. A message left unfinished is
    /// discarded by the consumer when the next message begins.
    ///
    /// # Errors
    ///
    /// [`ByteTryPushError::Full`] if not one piece fits,
    /// [`ByteTryPushError::Closed`].
    pub fn try_push_part(
        &mut self,
        msg: &[u8],
        next: &mut usize,
    ) -> Result<bool, ByteTryPushError> {
        let total = self.pieces(msg.len());
        let left = total.saturating_sub(*next);
        if left == 0 {
            return Ok(true);
        }
        let n = match self.write(msg, *next, left) {
            Ok(()) => left,
            Err(ChunkError::Closed) => return Err(ByteTryPushError::Closed),
            Err(ChunkError::TooFewSlots(free)) => {
                let n = free / self.words;
                if n == 0 {
                    return Err(ByteTryPushError::Full);
                }
                // Only this producer takes room: the n pieces still fit.
                self.write(msg, *next, n).map_err(|e| match e {
                    ChunkError::TooFewSlots(_) => ByteTryPushError::Full,
                    ChunkError::Closed => ByteTryPushError::Closed,
                })?;
                n
            }
        };
        *next += n;
        Ok(*next == total)
    }

    /// Pushes `msg`, streaming its pieces as room frees up, until
    /// `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`BytePushTimeoutError::TooLong`] for a message over
    /// [`MAX_MESSAGE_LEN`]; `Closed`; `Disconnected` when there is no room
    /// and no live consumer holds the role; `Timeout`. After any of them
    /// the pieces already out are discarded by the consumer: it never sees
    /// a part of a message.
    pub fn push_until(
        &mut self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), BytePushTimeoutError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(BytePushTimeoutError::TooLong {
                len: msg.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut next = 0;
        loop {
            match self.try_push_part(msg, &mut next) {
                Ok(true) => return Ok(()),
                Ok(false) | Err(ByteTryPushError::Full) => {}
                // try_push_part never says TooLong.
                Err(ByteTryPushError::Closed | ByteTryPushError::TooLong { .. }) => {
                    return Err(BytePushTimeoutError::Closed);
                }
            }
            self.ring
                .wait_free(self.words, deadline)
                .map_err(|e| match e {
                    crate::error::PushTimeoutError::Closed(()) => BytePushTimeoutError::Closed,
                    crate::error::PushTimeoutError::Disconnected(()) => {
                        BytePushTimeoutError::Disconnected
                    }
                    crate::error::PushTimeoutError::Timeout(()) => BytePushTimeoutError::Timeout,
                })?;
        }
    }

    /// [`push_until`](Self::push_until) with no deadline.
    ///
    /// # Errors
    ///
    /// As [`push_until`](Self::push_until), but never `Timeout`.
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

    /// Closes the ring from the producing side.
    pub fn close(&self) {
        self.ring.close();
    }
}

/// The consumer's partial message, kept between calls by whoever holds the
/// consuming end (a handle keeps one; a [`RawByteConsumer::new`] owns one).
#[derive(Debug, Default)]
pub struct Assembly {
    /// The bytes of the pieces gathered so far.
    buf: Vec<u8>,
    /// Whether a message's first piece was read and its last not yet.
    gathering: bool,
    /// Partial messages discarded so far.
    discarded: u64,
}

impl Assembly {
    /// An empty assembly.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a message is partly read (its first piece, not its last).
    pub fn is_gathering(&self) -> bool {
        self.gathering
    }

    /// Bytes of the partial message read so far (0 if none).
    pub fn gathered(&self) -> usize {
        if self.gathering { self.buf.len() } else { 0 }
    }

    /// Partial messages discarded so far (cut off, corrupt or too long;
    /// see the [module docs](self)).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Drops the partial message, if any.
    fn discard(&mut self) {
        if self.gathering {
            self.discarded += 1;
            self.gathering = false;
        }
        self.reset();
    }

    /// Empties the buffer, freeing it if it grew big.
    fn reset(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// Appends a piece's `len` bytes.
    fn append(&mut self, stored: &StoredPiece<'_>, len: usize) {
        let old = self.buf.len();
        self.buf.resize(old + len, 0);
        stored.copy_to(&mut self.buf[old..]);
    }
}

/// Where a popped message goes.
enum Out<'o> {
    /// A caller's buffer: the message is cut to it.
    Slice(&'o mut [u8]),
    /// A vector, replaced by the whole message.
    Vec(&'o mut Vec<u8>),
}

impl Out<'_> {
    /// Delivers a one-piece message straight from the ring.
    fn deliver_piece(&mut self, stored: &StoredPiece<'_>, len: usize) -> usize {
        match self {
            Out::Slice(s) => {
                let n = len.min(s.len());
                stored.copy_to(&mut s[..n]);
                n
            }
            Out::Vec(v) => {
                v.clear();
                v.resize(len, 0);
                stored.copy_to(v);
                len
            }
        }
    }

    /// Delivers the assembled message.
    fn deliver_assembly(&mut self, asm: &mut Assembly) -> usize {
        asm.gathering = false;
        match self {
            Out::Slice(s) => {
                let n = asm.buf.len().min(s.len());
                s[..n].copy_from_slice(&asm.buf[..n]);
                asm.reset();
                n
            }
            Out::Vec(v) => {
                **v = std::mem::take(&mut asm.buf);
                v.len()
            }
        }
    }
}

/// The consuming end of a byte ring (see the [module docs](self)).
pub struct RawByteConsumer<'a, C = ConsumerCursor, A = Assembly> {
    ring: RawConsumer<'a, u64, C>,
    asm: A,
    /// Words per piece slot.
    words: usize,
    /// Bytes per piece (full pieces).
    max_len: usize,
}

impl<'a> RawByteConsumer<'a> {
    /// Attaches to a byte ring as its consumer (not claiming the role),
    /// continuing from the published head, with an empty assembly.
    ///
    /// # Panics
    ///
    /// As [`RawByteProducer::new`].
    pub fn new(ctl: &'a Control, slots: &'a [AtomicU64], max_len: usize) -> Self {
        assert!(max_len > 0, "pieces of at least one byte");
        assert!(
            slots.len() >= piece_words(max_len),
            "a ring of {} words holds no piece of {max_len} bytes",
            slots.len()
        );
        Self::from_ring(RawConsumer::new(ctl, slots), Assembly::new(), max_len)
    }
}

impl<'a, C: BorrowMut<ConsumerCursor>, A: BorrowMut<Assembly>> RawByteConsumer<'a, C, A> {
    /// A byte consumer over a ring of words validated by the caller (see
    /// [`RawByteProducer::from_ring`]), gathering into `asm`.
    #[inline]
    pub fn from_ring(ring: RawConsumer<'a, u64, C>, asm: A, max_len: usize) -> Self {
        Self {
            ring,
            asm,
            words: piece_words(max_len),
            max_len,
        }
    }

    /// The assembly (what is gathered of a partial message).
    pub fn assembly(&self) -> &Assembly {
        self.asm.borrow()
    }

    /// Piece slots the ring holds.
    pub fn capacity(&self) -> usize {
        self.ring.capacity() / self.words
    }

    /// Piece slots in use (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.len() / self.words
    }

    /// Whether no piece is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether there is no room for one more piece (a snapshot).
    pub fn is_full(&self) -> bool {
        self.ring.capacity() - self.ring.len() < self.words
    }

    /// Reads the pieces that are there, at most one ring's worth, until a
    /// message is whole; releases every piece read.
    fn take(&mut self, out: &mut Out<'_>) -> Result<usize, TryPopError> {
        let Self {
            ring,
            asm,
            words: k,
            max_len,
        } = self;
        let (k, max_len) = (*k, *max_len);
        let asm = asm.borrow_mut();
        // A bound on the work of one call: a peer that scribbled the tail
        // far ahead cannot keep it reading garbage.
        let budget = (ring.capacity() / k).max(1);
        let mut seen = 0;
        while seen < budget {
            let want = budget - seen;
            let n = match ring.read_chunk(want * k) {
                Ok(_) => want,
                Err(ChunkError::TooFewSlots(avail)) => avail / k,
                Err(ChunkError::Closed) => {
                    // Closed and drained: nothing can finish a partial one.
                    asm.discard();
                    return Err(TryPopError::Closed);
                }
            };
            if n == 0 {
                return Err(TryPopError::Empty);
            }
            // Only this consumer takes items: the n pieces are still there
            // (unless a peer moved the tail back: then there is nothing).
            let Ok(chunk) = ring.read_chunk(n * k) else {
                return Err(TryPopError::Empty);
            };
            let (a, b) = chunk.words();
            let mut used = n;
            let mut delivered = None;
            for i in 0..n {
                let (pa, pb) = sub(a, b, i * k, k);
                // k >= 2 words: never None.
                let Some(stored) = message::read_piece_split(pa, pb, max_len) else {
                    continue;
                };
                if let Some(len) = assemble(asm, &stored, out) {
                    used = i + 1;
                    delivered = Some(len);
                    break;
                }
            }
            chunk.commit(used * k);
            seen += used;
            if let Some(len) = delivered {
                return Ok(len);
            }
        }
        // A ring's worth read, no message whole: closed and now drained is
        // still told as such.
        if let Err(ChunkError::Closed) = ring.read_chunk(k) {
            asm.discard();
            return Err(TryPopError::Closed);
        }
        Err(TryPopError::Empty)
    }

    /// Pops the oldest whole message into `out`, never waiting; its length
    /// (cut to `out`). Pieces of a message not yet whole are taken into the
    /// assembly (`Empty` until its last piece comes).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained (a partial message is discarded then).
    pub fn try_pop_into(&mut self, out: &mut [u8]) -> Result<usize, TryPopError> {
        self.take(&mut Out::Slice(out))
    }

    /// [`try_pop_into`](Self::try_pop_into), the message whole in a vector.
    ///
    /// # Errors
    ///
    /// As [`try_pop_into`](Self::try_pop_into).
    pub fn try_pop(&mut self) -> Result<Vec<u8>, TryPopError> {
        let mut v = Vec::new();
        self.take(&mut Out::Vec(&mut v))?;
        Ok(v)
    }

    fn take_until(
        &mut self,
        out: &mut Out<'_>,
        deadline: Option<Instant>,
    ) -> Result<usize, PopTimeoutError> {
        let mut round = 0u32;
        loop {
            match self.take(out) {
                Ok(len) => return Ok(len),
                Err(TryPopError::Closed) => return Err(PopTimeoutError::Closed),
                Err(TryPopError::Empty) => {}
            }
            // After a wait that found pieces but no whole message: the
            // deadline is looked at here (the wait returns at once while
            // pieces are there).
            if round > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PopTimeoutError::Timeout);
            }
            round = round.saturating_add(1);
            match self.ring.wait_available(self.words, deadline) {
                Ok(()) => {}
                Err(e @ (PopTimeoutError::Closed | PopTimeoutError::Disconnected)) => {
                    // Drained (no whole piece left) and nobody can finish
                    // the partial message.
                    self.asm.borrow_mut().discard();
                    return Err(e);
                }
                // The partial message stays: its producer may go on.
                Err(PopTimeoutError::Timeout) => return Err(PopTimeoutError::Timeout),
            }
        }
    }

    /// Pops the oldest whole message into `out`, sleeping while there is
    /// none, until `deadline` (`None`: no limit); its length (cut to
    /// `out`).
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError`]: closed and drained, or drained with no live
    /// producer (either discards a partial message), or the deadline
    /// passed (a partial message is kept for the next call).
    pub fn pop_into_until(
        &mut self,
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, PopTimeoutError> {
        self.take_until(&mut Out::Slice(out), deadline)
    }

    /// [`pop_into_until`](Self::pop_into_until), the message whole in a
    /// vector.
    ///
    /// # Errors
    ///
    /// As [`pop_into_until`](Self::pop_into_until).
    pub fn pop_until(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, PopTimeoutError> {
        let mut v = Vec::new();
        self.take_until(&mut Out::Vec(&mut v), deadline)?;
        Ok(v)
    }

    /// [`pop_until`](Self::pop_until) with no deadline.
    ///
    /// # Errors
    ///
    /// [`PopError`]: closed and drained, or drained with no live producer.
    pub fn pop(&mut self) -> Result<Vec<u8>, PopError> {
        self.pop_until(None).map_err(|e| match e {
            PopTimeoutError::Closed => PopError::Closed,
            PopTimeoutError::Disconnected => PopError::Disconnected,
            PopTimeoutError::Timeout => unreachable!("a wait without a deadline cannot time out"),
        })
    }

    /// Closes the ring from the consuming side.
    pub fn close(&self) {
        self.ring.close();
    }
}

/// Takes one piece into the assembly; the message's length once it is
/// whole (delivered into `out`).
fn assemble(asm: &mut Assembly, stored: &StoredPiece<'_>, out: &mut Out<'_>) -> Option<usize> {
    let Some(piece) = stored.piece else {
        // Not a header an honest producer writes: the message it belongs
        // to is lost (its other pieces are skipped as orphans).
        asm.discard();
        return None;
    };
    if piece.first {
        // A message begins: one being gathered was cut off.
        asm.discard();
        if piece.last {
            return Some(out.deliver_piece(stored, piece.len));
        }
        asm.gathering = true;
        asm.append(stored, piece.len);
        return None;
    }
    if !asm.gathering {
        // The rest of a message already discarded (or begun before this
        // consumer): skipped.
        return None;
    }
    if asm.buf.len().saturating_add(piece.len) > MAX_MESSAGE_LEN {
        asm.discard();
        return None;
    }
    asm.append(stored, piece.len);
    piece.last.then(|| out.deliver_assembly(asm))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::raw::message::{PIECE_CONT, PIECE_MORE};
    use crate::sync::Ordering;

    fn ring(words: usize) -> (Control, Vec<AtomicU64>) {
        (
            Control::new(),
            (0..words).map(|_| AtomicU64::new(0)).collect(),
        )
    }

    fn msg(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn every_length_goes_through_in_pieces_across_the_wrap() {
        // Pieces of 8 bytes (2 words) in a ring of 8 words: 4 slots.
        let (ctl, words) = ring(8);
        let mut tx = RawByteProducer::new(&ctl, &words, 8);
        let mut rx = RawByteConsumer::new(&ctl, &words, 8);
        assert_eq!((tx.capacity(), rx.capacity()), (4, 4));
        for len in 0..=32 {
            let m = msg(len, len as u8);
            tx.try_push(&m).unwrap();
            assert_eq!(rx.try_pop().unwrap(), m, "length {len}");
            // Odd counts of pieces move the wrap point around.
            tx.try_push(b"x").unwrap();
            let mut one = [0u8; 1];
            assert_eq!(rx.try_pop_into(&mut one), Ok(1));
        }
        assert_eq!(
            tx.try_push(&[0; 33]),
            Err(ByteTryPushError::TooLong { len: 33, max: 32 })
        );
    }

    #[test]
    fn a_message_bigger_than_the_ring_streams_through_whole() {
        let (ctl, words) = ring(8);
        let mut tx = RawByteProducer::new(&ctl, &words, 8);
        let mut rx = RawByteConsumer::new(&ctl, &words, 8);
        let m = msg(1000, 7);
        let mut next = 0;
        let mut got = None;
        // Alternate: push what fits, pop what is there.
        while got.is_none() {
            match tx.try_push_part(&m, &mut next) {
                Ok(_) | Err(ByteTryPushError::Full) => {}
                Err(e) => panic!("{e:?}"),
            }
            match rx.try_pop() {
                Ok(v) => got = Some(v),
                Err(TryPopError::Empty) => assert!(rx.assembly().is_gathering()),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(got.unwrap(), m);
        assert_eq!(next, 125);
        assert_eq!(rx.assembly().discarded(), 0);
        assert!(rx.is_empty());
    }

    #[test]
    fn a_cut_off_message_is_discarded_and_the_next_arrives_whole() {
        let (ctl, words) = ring(16);
        let mut tx = RawByteProducer::new(&ctl, &words, 8);
        let mut rx = RawByteConsumer::new(&ctl, &words, 8);
        // Two of a message's four pieces, then the producer gives up.
        let mut next = 0;
        let big = msg(100, 1);
        assert_eq!(tx.try_push_part(&big[..], &mut next), Ok(false));
        assert_eq!(next, 8, "the ring took 8 pieces of 13");
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
        assert_eq!(rx.assembly().gathered(), 64);
        // A new message (a new producer's, or this one's next) discards it.
        let mut tx = RawByteProducer::new(&ctl, &words, 8);
        tx.try_push(b"fresh start, 20 byte").unwrap();
        assert_eq!(rx.try_pop().unwrap(), b"fresh start, 20 byte");
        assert_eq!(rx.assembly().discarded(), 1);
        // Closed and drained: a partial message is discarded.
        let mut next = 0;
        assert_eq!(tx.try_push_part(&big, &mut next), Ok(false));
        tx.close();
        // A full ring's worth read, then found closed and drained.
        assert_eq!(rx.try_pop(), Err(TryPopError::Closed));
        assert_eq!(rx.assembly().discarded(), 2);
        assert!(!rx.assembly().is_gathering());
    }

    #[test]
    fn orphan_and_corrupt_pieces_are_skipped() {
        let (ctl, words) = ring(16);
        let mut rx = RawByteConsumer::new(&ctl, &words, 8);
        // The tail of a message whose start another consumer took.
        let mut p = RawProducer::<u64>::new(&ctl, &words);
        p.push_slice(&[8 | PIECE_CONT | PIECE_MORE, 1, 3 | PIECE_CONT, 2])
            .unwrap();
        let mut tx = RawByteProducer::from_ring(RawProducer::new(&ctl, &words), 8);
        tx.try_push(b"ok").unwrap();
        assert_eq!(rx.try_pop().unwrap(), b"ok");
        assert_eq!(rx.assembly().discarded(), 0, "orphans are not counted");
        // Corrupt headers in the middle of a message: the message is lost.
        for garbage in [u64::MAX, 9, 7 | PIECE_MORE | PIECE_CONT, 1 << 40] {
            let mut next = 0;
            let m = msg(20, 3);
            assert_eq!(tx.try_push_part(&m, &mut next), Ok(true));
            // Its second piece's header: the words after the first slot.
            let second = (ctl.snapshot().tail as usize - 4) % 16;
            words[second].store(garbage, Ordering::Relaxed);
            assert_eq!(rx.try_pop(), Err(TryPopError::Empty), "{garbage:#x}");
            assert!(!rx.assembly().is_gathering());
            tx.try_push(b"next").unwrap();
            assert_eq!(rx.try_pop().unwrap(), b"next");
        }
    }

    #[test]
    fn garbage_words_and_positions_never_panic_or_run_away() {
        let (ctl, words) = ring(32);
        let mut tx = RawByteProducer::new(&ctl, &words, 20);
        let mut rx = RawByteConsumer::new(&ctl, &words, 20);
        let garbage = [
            u64::MAX,
            PIECE_CONT,
            PIECE_MORE | 20,
            PIECE_MORE | PIECE_CONT | 20,
            20,
            0,
            1 << 63 | 1 << 62 | 21,
        ];
        for (i, &g) in garbage.iter().enumerate() {
            let _ = tx.try_push(&msg(50, i as u8));
            for w in &words {
                w.store(g.rotate_left(i as u32 * 7), Ordering::Relaxed);
            }
            // The tail far ahead, as a peer would store it: one call
            // reads at most a ring's worth of garbage.
            ctl.tail.store(u64::MAX / 3, Ordering::Relaxed);
            for _ in 0..3 {
                if let Ok(m) = rx.try_pop() {
                    assert!(m.len() <= MAX_MESSAGE_LEN);
                }
                let mut out = [0u8; 7];
                if let Ok(n) = rx.try_pop_into(&mut out) {
                    assert!(n <= 7);
                }
                let _ = rx.pop_until(Some(Instant::now()));
            }
            assert!(rx.assembly().gathered() <= 32 * 8 * 3);
        }
    }
}

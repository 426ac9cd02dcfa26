//! `spsc_ops`: operation sequences on an SPSC ring (`Producer<u32>`,
//! `Consumer<u32>`: try, timeout, batch, chunk, close, drop and reopen of
//! either end) checked step by step against a `VecDeque`: same values, same
//! order, same errors. A dropped end leaves the ring open with its items;
//! while an end is away, the other's blocking calls that would wait return
//! `Disconnected`; only `close` ends the stream.
//!
//! With bit 7 of the first byte set, the same for a byte ring
//! (`ByteProducer`, `ByteConsumer`) with messages of up to four slots,
//! checked against a model of its pieces: what `try_push` and a zero-timeout
//! `push_timeout` leave in the ring (all of a message, or as many pieces as
//! fit), and what the consumer makes of them (whole messages only; a cut
//! one discarded when the next begins, or at `Disconnected`/`Closed`).

use std::collections::VecDeque;
use std::time::Duration;

use mmring::spsc::{ByteConsumer, ByteProducer, Consumer, Producer};
use mmring::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, ChunkError, Closed, OpenError, PopError,
    PopTimeoutError, PushError, PushTimeoutError, TryPopError, TryPushError,
};

use super::{Reader, Scratch, Writer};

pub const OPS: u8 = 15;

struct Model {
    items: VecDeque<u32>,
    cap: usize,
    closed: bool,
    next: u32,
}

impl Model {
    fn free(&self) -> usize {
        self.cap - self.items.len()
    }
}

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let path = dir.path("ring");
    let first = r.u8();
    if first & 0x80 != 0 {
        return bytes(&mut r, &path, first);
    }
    let cap = 1usize << (first % 5);
    let mut tx = Some(Producer::<u32>::create(&path, cap).expect("create ring"));
    let mut rx = Some(Consumer::<u32>::open(&path).expect("open consumer"));
    let mut m = Model {
        items: VecDeque::new(),
        cap,
        closed: false,
        next: 0,
    };
    // Values are numbered so that a lost or repeated one shows.
    let value = |m: &mut Model| {
        m.next = m.next.wrapping_add(1);
        m.next
    };

    while !r.is_empty() {
        let op = r.u8() % OPS;
        match op {
            0 | 1 => {
                let Some(p) = tx.as_mut() else { continue };
                let v = value(&mut m);
                if op == 0 {
                    let got = p.try_push(v);
                    if m.closed {
                        assert!(matches!(got, Err(TryPushError::Closed(x)) if x == v));
                    } else if m.free() == 0 {
                        assert!(matches!(got, Err(TryPushError::Full(x)) if x == v));
                    } else {
                        assert!(got.is_ok());
                        m.items.push_back(v);
                    }
                } else {
                    let got = p.push_timeout(v, Duration::ZERO);
                    if m.closed {
                        assert!(matches!(got, Err(PushTimeoutError::Closed(x)) if x == v));
                    } else if m.free() == 0 && rx.is_none() {
                        assert!(matches!(got, Err(PushTimeoutError::Disconnected(x)) if x == v));
                    } else if m.free() == 0 {
                        assert!(matches!(got, Err(PushTimeoutError::Timeout(x)) if x == v));
                    } else {
                        assert!(got.is_ok());
                        m.items.push_back(v);
                    }
                }
            }
            2 => {
                let Some(p) = tx.as_mut() else { continue };
                let n = usize::from(r.u8() % 20);
                let vals: Vec<u32> = (0..n).map(|_| value(&mut m)).collect();
                let got = p.push_slice(&vals);
                if m.closed {
                    assert_eq!(got, Err(Closed));
                } else {
                    let k = n.min(m.free());
                    assert_eq!(got, Ok(k));
                    m.items.extend(&vals[..k]);
                }
            }
            3 => {
                let Some(p) = tx.as_mut() else { continue };
                let n = usize::from(r.u8() % 20);
                let commit = usize::from(r.u8()) % (n + 1);
                let vals: Vec<u32> = (0..n).map(|_| value(&mut m)).collect();
                let free = m.free();
                match p.write_chunk(n) {
                    Ok(mut chunk) => {
                        assert!(!m.closed && n <= free);
                        assert_eq!(chunk.len(), n);
                        match commit % 3 {
                            0 => {
                                for (i, v) in vals.iter().enumerate() {
                                    chunk.set(i, *v);
                                }
                                chunk.commit(commit);
                            }
                            1 => {
                                chunk.copy_from_slice(&vals);
                                chunk.commit(commit);
                            }
                            _ if commit == n => {
                                // More values than slots: the chunk takes
                                // what fits and commits it.
                                let more = vals.iter().copied().chain(std::iter::repeat(0));
                                assert_eq!(chunk.fill_from_iter(more), n);
                            }
                            _ => {
                                let fewer = vals[..commit].iter().copied();
                                assert_eq!(chunk.fill_from_iter(fewer), commit);
                            }
                        }
                        m.items.extend(&vals[..commit]);
                    }
                    Err(ChunkError::Closed) => assert!(m.closed),
                    Err(ChunkError::TooFewSlots(k)) => {
                        assert!(!m.closed && n > free);
                        assert_eq!(k, free);
                    }
                }
            }
            4 | 5 => {
                let Some(c) = rx.as_mut() else { continue };
                if op == 4 {
                    let want = match m.items.pop_front() {
                        Some(v) => Ok(v),
                        None if m.closed => Err(TryPopError::Closed),
                        None => Err(TryPopError::Empty),
                    };
                    assert_eq!(c.try_pop(), want);
                } else {
                    let want = match m.items.pop_front() {
                        Some(v) => Ok(v),
                        None if m.closed => Err(PopTimeoutError::Closed),
                        None if tx.is_none() => Err(PopTimeoutError::Disconnected),
                        None => Err(PopTimeoutError::Timeout),
                    };
                    assert_eq!(c.pop_timeout(Duration::ZERO), want);
                }
            }
            6 => {
                let Some(c) = rx.as_mut() else { continue };
                let n = usize::from(r.u8() % 20);
                let mut out = vec![0u32; n];
                let got = c.pop_slice(&mut out);
                let k = n.min(m.items.len());
                if k > 0 {
                    assert_eq!(got, Ok(k));
                    let want: Vec<u32> = m.items.drain(..k).collect();
                    assert_eq!(out[..k], want[..]);
                } else if n > 0 && m.closed {
                    assert_eq!(got, Err(Closed));
                } else {
                    assert_eq!(got, Ok(0));
                }
            }
            7 => {
                let Some(c) = rx.as_mut() else { continue };
                let n = usize::from(r.u8() % 20);
                let commit = usize::from(r.u8()) % (n + 1);
                let avail = m.items.len();
                match c.read_chunk(n) {
                    Ok(chunk) => {
                        assert!(n <= avail);
                        assert_eq!(chunk.len(), n);
                        let want: Vec<u32> = m.items.iter().take(n).copied().collect();
                        assert_eq!(chunk.iter().collect::<Vec<_>>(), want);
                        assert_eq!(chunk.iter().rev().collect::<Vec<_>>().len(), n);
                        let mut seen = vec![0; n];
                        chunk.copy_to_slice(&mut seen);
                        assert_eq!(seen, want);
                        for (i, w) in want.iter().enumerate() {
                            assert_eq!(chunk.get(i), *w);
                        }
                        if commit % 2 == 0 {
                            chunk.commit(commit);
                        } else {
                            // By value: what was yielded is committed when
                            // the iterator drops.
                            let mut it = chunk.into_iter();
                            for w in &want[..commit] {
                                assert_eq!(it.next(), Some(*w));
                            }
                            assert_eq!(it.len(), n - commit);
                        }
                        m.items.drain(..commit);
                    }
                    Err(ChunkError::Closed) => assert!(m.closed && avail == 0 && n > 0),
                    Err(ChunkError::TooFewSlots(k)) => {
                        assert!(n > avail && !(m.closed && avail == 0));
                        assert_eq!(k, avail);
                    }
                }
            }
            8 => {
                let full = m.free() == 0;
                if let Some(p) = &tx {
                    assert_eq!((p.len(), p.is_empty()), (m.items.len(), m.items.is_empty()));
                    assert_eq!(p.capacity(), cap);
                    assert_eq!((p.is_full(), p.is_closed()), (full, m.closed));
                    assert_eq!(p.is_abandoned(), rx.is_none());
                }
                if let Some(c) = &rx {
                    assert_eq!((c.len(), c.is_empty()), (m.items.len(), m.items.is_empty()));
                    assert_eq!(c.capacity(), cap);
                    assert_eq!((c.is_full(), c.is_closed()), (full, m.closed));
                    assert_eq!(c.is_abandoned(), tx.is_none());
                }
            }
            9 => {
                if let Some(p) = &tx {
                    p.close();
                    m.closed = true;
                }
            }
            10 => {
                if let Some(c) = &rx {
                    c.close();
                    m.closed = true;
                }
            }
            11 => {
                // Dropping the producer leaves the ring open with its
                // items; a new producer continues, unless it was closed.
                if tx.take().is_none() {
                    match Producer::<u32>::open(&path) {
                        Ok(p) => {
                            assert!(!m.closed, "a producer opened a closed ring");
                            tx = Some(p);
                        }
                        Err(e) => assert!(m.closed && matches!(e, OpenError::Closed { .. })),
                    }
                }
            }
            12 => {
                // The same for the consumer, which can also open a closed
                // ring (to drain it).
                if rx.take().is_none() {
                    rx = Some(Consumer::open(&path).expect("reopen consumer"));
                }
            }
            13 => {
                // Roles are exclusive, also within one process.
                if rx.is_some() {
                    assert!(matches!(
                        Consumer::<u32>::open(&path),
                        Err(OpenError::RoleTaken { .. })
                    ));
                }
                if tx.is_some() && !m.closed {
                    assert!(matches!(
                        Producer::<u32>::open(&path),
                        Err(OpenError::RoleTaken { .. })
                    ));
                }
                assert!(matches!(
                    Consumer::<u64>::open(&path),
                    Err(OpenError::WrongPayload { .. })
                ));
            }
            _ => {
                // Blocking calls with something to do, or no peer to wait
                // for, return at once.
                if let (Some(p), false) = (tx.as_mut(), m.closed) {
                    if m.free() > 0 {
                        let v = value(&mut m);
                        assert!(p.push(v).is_ok());
                        m.items.push_back(v);
                    } else if rx.is_none() {
                        let v = value(&mut m);
                        assert!(matches!(p.push(v), Err(PushError::Disconnected(x)) if x == v));
                    }
                }
                if let Some(c) = rx.as_mut() {
                    if let Some(v) = m.items.pop_front() {
                        assert_eq!(c.pop(), Ok(v));
                    } else if m.closed {
                        assert_eq!(c.pop(), Err(PopError::Closed));
                    } else if tx.is_none() {
                        assert_eq!(c.pop(), Err(PopError::Disconnected));
                    }
                }
            }
        }
    }
    // Whatever is left drains in order.
    if let Some(c) = rx.as_mut() {
        while let Some(v) = m.items.pop_front() {
            assert_eq!(c.try_pop(), Ok(v));
        }
        assert!(c.try_pop().is_err());
    }
}

/// One piece in the byte ring's model.
struct PieceM {
    first: bool,
    last: bool,
    bytes: Vec<u8>,
}

/// The byte ring as the model sees it: the pieces queued, and what the
/// consumer handle gathered of a message.
struct BytesModel {
    ring: VecDeque<PieceM>,
    slots: usize,
    max_len: usize,
    closed: bool,
    gathering: Option<Vec<u8>>,
}

impl BytesModel {
    fn pieces(&self, msg: &[u8]) -> Vec<PieceM> {
        let n = msg.len().div_ceil(self.max_len).max(1);
        (0..n)
            .map(|i| PieceM {
                first: i == 0,
                last: i + 1 == n,
                bytes: msg
                    [(i * self.max_len).min(msg.len())..((i + 1) * self.max_len).min(msg.len())]
                    .to_vec(),
            })
            .collect()
    }

    fn free(&self) -> usize {
        self.slots - self.ring.len()
    }

    /// Pushes the pieces that fit; whether all did.
    fn push_some(&mut self, msg: &[u8]) -> bool {
        let pieces = self.pieces(msg);
        let all = pieces.len() <= self.free();
        let n = pieces.len().min(self.free());
        self.ring.extend(pieces.into_iter().take(n));
        all
    }

    /// Takes pieces until a message is whole (`Some`) or none is left.
    fn take(&mut self) -> Option<Vec<u8>> {
        while let Some(p) = self.ring.pop_front() {
            if p.first {
                if p.last {
                    self.gathering = None;
                    return Some(p.bytes);
                }
                self.gathering = Some(p.bytes);
            } else if let Some(g) = self.gathering.as_mut() {
                g.extend_from_slice(&p.bytes);
                if p.last {
                    return self.gathering.take();
                }
            }
        }
        None
    }

    /// Whether a whole message is queued (or completes the one gathered).
    fn has_whole(&self) -> bool {
        let mut gathering = self.gathering.is_some();
        for p in &self.ring {
            if p.first {
                gathering = true;
            }
            if gathering && p.last {
                return true;
            }
        }
        false
    }
}

fn bytes(r: &mut Reader<'_>, path: &std::path::Path, first: u8) {
    let messages = usize::from(first % 4) + 1;
    let max_len = usize::from(r.u8() % 24) + 1;
    let mut tx = Some(ByteProducer::create(path, messages, max_len).expect("create byte ring"));
    let mut rx = Some(ByteConsumer::open(path).expect("open byte consumer"));
    let slots = tx.as_ref().map_or(0, ByteProducer::capacity);
    assert!(slots >= messages);
    let mut m = BytesModel {
        ring: VecDeque::new(),
        slots,
        max_len,
        closed: false,
        gathering: None,
    };
    let mut next = 0u8;
    while !r.is_empty() {
        // Messages are numbered in their bytes, so a mix-up shows.
        let len = usize::from(r.u8()) % (4 * max_len + 1);
        next = next.wrapping_add(1);
        let msg: Vec<u8> = (0..len).map(|i| next ^ (i as u8)).collect();
        match r.u8() % 12 {
            0 => {
                let Some(p) = tx.as_mut() else { continue };
                let got = p.try_push(&msg);
                let pieces = m.pieces(&msg).len();
                if pieces > slots {
                    let max = slots * max_len;
                    assert_eq!(got, Err(ByteTryPushError::TooLong { len, max }));
                } else if m.closed {
                    assert_eq!(got, Err(ByteTryPushError::Closed));
                } else if pieces > m.free() {
                    assert_eq!(got, Err(ByteTryPushError::Full));
                } else {
                    assert_eq!(got, Ok(()));
                    assert!(m.push_some(&msg));
                }
            }
            1 => {
                let Some(p) = tx.as_mut() else { continue };
                let got = p.push_timeout(&msg, Duration::ZERO);
                if m.closed {
                    assert_eq!(got, Err(BytePushTimeoutError::Closed));
                } else if m.push_some(&msg) {
                    assert_eq!(got, Ok(()));
                } else if rx.is_none() {
                    assert_eq!(got, Err(BytePushTimeoutError::Disconnected));
                } else {
                    assert_eq!(got, Err(BytePushTimeoutError::Timeout));
                }
            }
            2 => {
                // A blocking push that cannot have to wait for a consumer.
                let Some(p) = tx.as_mut() else { continue };
                let fits = m.pieces(&msg).len() <= m.free();
                if m.closed {
                    assert_eq!(p.push(&msg), Err(BytePushError::Closed));
                } else if fits || rx.is_none() {
                    let got = p.push(&msg);
                    if m.push_some(&msg) {
                        assert_eq!(got, Ok(()));
                    } else {
                        assert_eq!(got, Err(BytePushError::Disconnected));
                    }
                }
            }
            3 | 4 => {
                let Some(c) = rx.as_mut() else { continue };
                let want = m.take();
                if r.u8() % 2 == 0 {
                    let mut out = vec![0u8; usize::from(r.u8()) % (4 * max_len + 8)];
                    let got = c.try_pop_into(&mut out);
                    match want {
                        Some(w) => {
                            let n = w.len().min(out.len());
                            assert_eq!(got, Ok(n));
                            assert_eq!(out[..n], w[..n]);
                        }
                        None if m.closed => {
                            m.gathering = None;
                            assert_eq!(got, Err(TryPopError::Closed));
                        }
                        None => assert_eq!(got, Err(TryPopError::Empty)),
                    }
                } else {
                    let got = c.try_pop();
                    match want {
                        Some(w) => assert_eq!(got, Ok(w)),
                        None if m.closed => {
                            m.gathering = None;
                            assert_eq!(got, Err(TryPopError::Closed));
                        }
                        None => assert_eq!(got, Err(TryPopError::Empty)),
                    }
                }
            }
            5 => {
                let Some(c) = rx.as_mut() else { continue };
                let want = m.take();
                let got = c.pop_timeout(Duration::ZERO);
                match want {
                    Some(w) => assert_eq!(got, Ok(w)),
                    None if m.closed => {
                        m.gathering = None;
                        assert_eq!(got, Err(PopTimeoutError::Closed));
                    }
                    None if tx.is_none() => {
                        m.gathering = None;
                        assert_eq!(got, Err(PopTimeoutError::Disconnected));
                    }
                    None => assert_eq!(got, Err(PopTimeoutError::Timeout)),
                }
            }
            6 => {
                // A blocking pop that cannot have to wait for a producer.
                let Some(c) = rx.as_mut() else { continue };
                if m.has_whole() || m.closed || tx.is_none() {
                    let want = m.take();
                    let got = c.pop();
                    match want {
                        Some(w) => assert_eq!(got, Ok(w)),
                        None => {
                            m.gathering = None;
                            let e = if m.closed {
                                PopError::Closed
                            } else {
                                PopError::Disconnected
                            };
                            assert_eq!(got, Err(e));
                        }
                    }
                }
            }
            7 => {
                let used = m.ring.len();
                for (len, empty, full, cap, closed) in [
                    tx.as_ref().map(|p| {
                        (
                            p.len(),
                            p.is_empty(),
                            p.is_full(),
                            p.capacity(),
                            p.is_closed(),
                        )
                    }),
                    rx.as_ref().map(|c| {
                        (
                            c.len(),
                            c.is_empty(),
                            c.is_full(),
                            c.capacity(),
                            c.is_closed(),
                        )
                    }),
                ]
                .into_iter()
                .flatten()
                {
                    assert_eq!((len, empty, full), (used, used == 0, used == slots));
                    assert_eq!((cap, closed), (slots, m.closed));
                }
                if let Some(p) = &tx {
                    assert_eq!(p.max_len(), max_len);
                    assert_eq!(p.is_abandoned(), rx.is_none());
                }
                if let Some(c) = &rx {
                    assert_eq!(c.is_abandoned(), tx.is_none());
                }
            }
            8 => {
                if let Some(p) = &tx {
                    p.close();
                    m.closed = true;
                }
            }
            9 => {
                if let Some(c) = &rx {
                    c.close();
                    m.closed = true;
                }
            }
            10 => {
                if tx.take().is_none() {
                    match ByteProducer::open(path) {
                        Ok(p) => tx = Some(p),
                        Err(e) => assert!(m.closed && matches!(e, OpenError::Closed { .. })),
                    }
                }
            }
            _ => {
                // A dropped consumer loses what it gathered; the next one
                // skips the rest of that message.
                if rx.take().is_none() {
                    rx = Some(ByteConsumer::open(path).expect("reopen byte consumer"));
                } else {
                    m.gathering = None;
                }
            }
        }
    }
    // Whatever is left comes out whole, in order.
    if let Some(c) = rx.as_mut() {
        while let Some(w) = m.take() {
            assert_eq!(c.try_pop(), Ok(w));
        }
        assert!(c.try_pop().is_err());
    }
}

/// Seeds: every operation at each capacity; fill, wrap and drain with
/// batches and chunks; close from either side; drop and reopen.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for cap_log in [0u8, 2, 4] {
        let mut w = Writer::default();
        w.u8(cap_log);
        for op in 0..OPS {
            w.u8(op).u8(op + 3).u8(op);
        }
        out.push((
            ["every_op_cap1", "every_op_cap4", "every_op_cap16"][usize::from(cap_log / 2)],
            w.0,
        ));
    }
    let mut wrap = Writer::default();
    wrap.u8(2);
    for _ in 0..6 {
        wrap.u8(2)
            .u8(3)
            .u8(6)
            .u8(2)
            .u8(3)
            .u8(5)
            .u8(2)
            .u8(7)
            .u8(3)
            .u8(1)
            .u8(8);
    }
    wrap.u8(9).u8(4).u8(6).u8(9).u8(7).u8(2).u8(0);
    out.push(("batches_and_chunks_wrap", wrap.0));
    let mut consumer_close = Writer::default();
    consumer_close
        .u8(1)
        .u8(0)
        .u8(0)
        .u8(10)
        .u8(0)
        .u8(1)
        .u8(2)
        .u8(4)
        .u8(4)
        .u8(4)
        .u8(12)
        .u8(12)
        .u8(4);
    out.push(("consumer_closes_then_reopens", consumer_close.0));
    let mut drop_tx = Writer::default();
    drop_tx
        .u8(3)
        .u8(2)
        .u8(5)
        .u8(11)
        .u8(13)
        .u8(6)
        .u8(3)
        .u8(4)
        .u8(14)
        .u8(5);
    out.push(("producer_dropped_drains", drop_tx.0));
    // The byte ring: 2 slots of 8 bytes; every operation with messages of
    // 0 to 32 bytes (up to four pieces), then cut messages, a dropped
    // producer and consumer, and a close.
    let mut bytes = Writer::default();
    bytes.u8(0x81).u8(7);
    for op in 0..12u8 {
        bytes.u8(op * 3).u8(op).u8(op % 2).u8(op * 5);
    }
    for (len, op) in [
        (20u8, 1u8),
        (5, 3),
        (9, 0),
        (30, 1),
        (2, 4),
        (0, 5),
        (17, 0),
    ] {
        bytes.u8(len).u8(op).u8(1).u8(40);
    }
    bytes.u8(20).u8(1).u8(0).u8(10).u8(0).u8(5).u8(0).u8(6);
    bytes.u8(12).u8(2).u8(0).u8(11).u8(0).u8(11).u8(8).u8(0);
    bytes
        .u8(0)
        .u8(3)
        .u8(0)
        .u8(9)
        .u8(0)
        .u8(8)
        .u8(0)
        .u8(6)
        .u8(0)
        .u8(7);
    out.push(("bytes_pieces_every_op", bytes.0));
    out
}

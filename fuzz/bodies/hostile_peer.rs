//! `hostile_peer`: between the operations on a ring, queue or cell, a
//! "peer" writes arbitrary bytes into the shared file (through `pwrite` on
//! the file, which the kernel shows in every mapping of it): the header,
//! the indices, the closed and role words, sequence numbers, claim words,
//! lengths and slots. Operations may then return wrong data or errors, but
//! must never panic inside the library, never touch memory outside the
//! mapping, and never loop forever (only non-blocking calls and zero
//! timeouts are used, so a hang is a library bug).
//!
//! Not scribbled on: the status block's sequence word (file offset 256). An
//! odd one is a status writer inside, which every open and close waits out
//! for a bounded 1 s by design (`ATTACH_PATIENCE`); that is not a hang,
//! but it would stall the fuzzer.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use mmring::map::{ByteMap, Map};
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};
use mmring::spsc::{ByteConsumer, ByteProducer, Consumer, MAX_MESSAGE_LEN, Producer};
use mmring::{Patience, SeqCell};

use super::{Reader, Scratch, Writer};

pub const KINDS: u8 = 5;

/// How long an MPMC `try_*` call here waits out a peer in flight. A
/// scribbled claim that names a live process (this one) and is never
/// published is waited out for the whole patience by design (1 s by
/// default: the peer might be a thread of ours, preempted); at 1 s a call,
/// an input of a few dozen such calls would stall the fuzzer. A short
/// patience runs the same code.
const IN_FLIGHT: Duration = Duration::from_millis(1);
pub const OPS: u8 = 12;

/// Where a scribble lands, as a file offset: chosen among the words that
/// matter (indices, control words, slot headers) or anywhere.
fn target(r: &mut Reader<'_>, len: u64) -> u64 {
    const BODY: u64 = 4096;
    let sel = r.u8();
    let off = match sel % 4 {
        // The control words of a ring: tail, head, pids, closed, wait words,
        // an MPMC queue's bound.
        0 => {
            BODY + [0u64, 128, 256, 260, 264, 268, 272, 276, 280, 284, 304]
                [usize::from(r.u8() % 11)]
        }
        // A word of the slots.
        1 => BODY + 384 + u64::from(r.u16()) * 8,
        // Any byte of the header (descriptor included).
        2 => u64::from(r.u16()) % 4096,
        _ => u64::from(r.u32()),
    };
    let off = off % len.max(1);
    if off == 256 { 264 } else { off }
}

/// A value worth writing: small, boundary, or raw.
fn value(r: &mut Reader<'_>) -> u64 {
    match r.u8() % 8 {
        0 => 0,
        1 => u64::MAX,
        2 => 1 << 63,
        3 => u64::from(r.u8()),
        4 => u64::MAX - u64::from(r.u8()),
        5 => u64::from(std::process::id()),
        _ => r.u64(),
    }
}

struct Peer {
    file: std::fs::File,
    len: u64,
}

impl Peer {
    fn new(path: &std::path::Path) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("peer open");
        let len = file.metadata().expect("peer stat").len();
        Self { file, len }
    }

    fn scribble(&self, r: &mut Reader<'_>) {
        let off = target(r, self.len);
        let v = value(r).to_ne_bytes();
        let width = [1usize, 4, 8][usize::from(r.u8() % 3)];
        let width = width.min((self.len - off) as usize);
        // Never grows the file: the write ends inside it.
        self.file
            .write_all_at(&v[..width], off)
            .expect("peer write");
    }
}

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let path = dir.path("shared");
    let kind = r.u8() % KINDS;
    let cap_byte = r.u8();
    let cap = 1usize << (cap_byte % 4 + 1);
    match kind {
        0 => spsc(&mut r, &path, cap),
        // Bit 7: a one-slot queue.
        1 => {
            let cap = if cap_byte & 0x80 != 0 { 1 } else { cap };
            mpmc(&mut r, &path, cap, bound(cap_byte, cap));
        }
        2 => bytes(&mut r, &path, cap, bound(cap_byte, cap)),
        3 => cell(&mut r, &path),
        _ => map(&mut r, &path, cap),
    }
}

fn spsc(r: &mut Reader<'_>, path: &std::path::Path, cap: usize) {
    let (tx, rx) = mmring::spsc::channel::<u64>(path, cap).expect("channel");
    let (mut tx, mut rx) = (Some(tx), Some(rx));
    let peer = Peer::new(path);
    while !r.is_empty() {
        match r.u8() % OPS {
            0 | 1 => peer.scribble(r),
            2 => {
                if let Some(p) = tx.as_mut() {
                    let _ = p.try_push(r.u64());
                }
            }
            3 => {
                if let Some(p) = tx.as_mut() {
                    let vals: Vec<u64> = (0..r.u8() % 20).map(u64::from).collect();
                    let _ = p.push_slice(&vals);
                }
            }
            4 => {
                if let Some(p) = tx.as_mut() {
                    if let Ok(mut c) = p.write_chunk(usize::from(r.u8() % 20)) {
                        let n = c.len();
                        c.copy_from_slice(&vec![3; n]);
                        if n > 0 {
                            c.set(n - 1, 4);
                        }
                        if n % 2 == 0 {
                            c.commit(n / 2);
                        } else {
                            assert_eq!(c.fill_from_iter(std::iter::repeat(5)), n);
                        }
                    }
                }
            }
            5 => {
                if let Some(p) = tx.as_mut() {
                    let _ = p.push_timeout(1, Duration::ZERO);
                    let _ = (p.len(), p.is_empty(), p.is_full(), p.is_closed());
                    // A role word scribbled to any pid: a probe, no panic.
                    let _ = p.is_abandoned();
                }
            }
            6 => {
                if let Some(c) = rx.as_mut() {
                    let _ = c.try_pop();
                    let _ = c.pop_timeout(Duration::ZERO);
                }
            }
            7 => {
                if let Some(c) = rx.as_mut() {
                    let mut out = vec![0; usize::from(r.u8() % 20)];
                    if let Ok(n) = c.pop_slice(&mut out) {
                        assert!(n <= out.len());
                    }
                }
            }
            8 => {
                if let Some(c) = rx.as_mut() {
                    let n = usize::from(r.u8() % 20);
                    if let Ok(chunk) = c.read_chunk(n) {
                        assert_eq!(chunk.iter().count(), n);
                        let mut out = vec![0; n];
                        chunk.copy_to_slice(&mut out);
                        if n % 2 == 0 {
                            chunk.commit_all();
                        } else {
                            assert_eq!(chunk.into_iter().take(n / 2).count(), n / 2);
                        }
                    }
                    let _ = (c.len(), c.is_empty(), c.is_full(), c.is_closed());
                    let _ = c.is_abandoned();
                }
            }
            9 => {
                if tx.take().is_none() {
                    tx = Producer::open(path).ok();
                }
            }
            10 => {
                if rx.take().is_none() {
                    rx = Consumer::open(path).ok();
                }
            }
            _ => {
                if let Some(p) = &tx {
                    p.close();
                }
            }
        }
    }
}

/// The bound of an MPMC queue of `cap` slots: with bit 6 of the capacity
/// byte, 1 to `cap` from its bits 2 to 5; else `cap`.
fn bound(cap_byte: u8, cap: usize) -> usize {
    if cap_byte & 0x40 != 0 {
        1 + usize::from(cap_byte >> 2 & 0xf) % cap
    } else {
        cap
    }
}

fn mpmc(r: &mut Reader<'_>, path: &std::path::Path, cap: usize, bound: usize) {
    let opts = QueueOptions::new().joinable(r.u8() % 2 == 0).bound(bound);
    let mut first = Queue::<u64>::create_with(path, cap, &opts).expect("create");
    first.set_in_flight_patience(IN_FLIGHT);
    let mut qs = vec![first];
    let peer = Peer::new(path);
    while !r.is_empty() {
        let q = &qs[usize::from(r.u8()) % qs.len()];
        match r.u8() % OPS {
            0 | 1 => peer.scribble(r),
            2 => drop(q.try_push(r.u64())),
            3 => {
                let vals: Vec<u64> = (0..r.u8() % 80).map(u64::from).collect();
                if let Ok(n) = q.push_slice(&vals) {
                    assert!(n <= vals.len());
                }
            }
            4 => drop(q.push_timeout(1, Duration::ZERO)),
            5 => drop(q.try_pop()),
            6 => drop(q.pop_timeout(Duration::ZERO)),
            7 => {
                let mut out = vec![0; usize::from(r.u8() % 80)];
                if let Ok(n) = q.pop_slice(&mut out) {
                    assert!(n <= out.len());
                }
            }
            8 => {
                let _ = (
                    q.task_done(),
                    q.join_timeout(Duration::ZERO),
                    q.unfinished(),
                );
                let _ = (q.len(), q.is_empty(), q.is_full(), q.is_closed());
                assert!(q.len() <= q.capacity());
                // Read once, at open, and checked: whatever the peer wrote
                // since, the first handle keeps the bound it was made with.
                assert!((1..=q.capacity()).contains(&q.bound()));
                assert_eq!(qs[0].bound(), bound);
            }
            9 => q.close(),
            10 => {
                if qs.len() < 3 {
                    // A bound scribbled outside 1 ..= capacity is refused.
                    if let Ok(mut q) = Queue::<u64>::open(path) {
                        assert!((1..=q.capacity()).contains(&q.bound()));
                        q.set_in_flight_patience(IN_FLIGHT);
                        qs.push(q);
                    }
                } else {
                    qs.pop();
                }
            }
            _ => {
                let _ = (q.try_push(5), q.try_pop(), q.try_pop());
            }
        }
    }
}

fn bytes(r: &mut Reader<'_>, path: &std::path::Path, cap: usize, bound: usize) {
    let max_len = usize::from(r.u8() % 40) + 1;
    let opts = QueueOptions::new().bound(bound);
    let mut q = ByteQueue::create(path, cap, max_len, &opts).expect("create");
    q.set_in_flight_patience(IN_FLIGHT);
    let spath = path.with_extension("spsc");
    let mut tx = ByteProducer::create(&spath, cap, max_len).expect("create spsc");
    let mut rx = ByteConsumer::open(&spath).expect("open spsc");
    let peer = Peer::new(path);
    let speer = Peer::new(&spath);
    while !r.is_empty() {
        // Up to four slots: the SPSC ring carries the longer ones in pieces.
        let msg = vec![r.u8(); usize::from(r.u8()) % (4 * max_len + 1)];
        match r.u8() % OPS {
            0 | 1 => peer.scribble(r),
            2 | 3 => speer.scribble(r),
            4 => drop(q.try_push(&msg)),
            5 => drop(q.push_timeout(&msg, Duration::ZERO)),
            6 => {
                let mut out = vec![0; usize::from(r.u8()) % (max_len + 8)];
                if let Ok(n) = q.try_pop_into(&mut out) {
                    assert!(n <= out.len().min(max_len));
                }
            }
            7 => {
                if let Ok(m) = q.pop_timeout(Duration::ZERO) {
                    assert!(m.len() <= max_len);
                }
            }
            8 => drop(tx.try_push(&msg)),
            9 => drop(tx.push_timeout(&msg, Duration::ZERO)),
            10 => {
                let mut out = vec![0; usize::from(r.u8()) % (4 * max_len + 8)];
                if let Ok(n) = rx.try_pop_into(&mut out) {
                    assert!(n <= out.len());
                }
                if let Ok(m) = rx.try_pop() {
                    assert!(m.len() <= MAX_MESSAGE_LEN);
                }
            }
            _ => {
                if let Ok(m) = rx.pop_timeout(Duration::ZERO) {
                    assert!(m.len() <= MAX_MESSAGE_LEN);
                }
                let _ = (rx.len(), tx.len(), q.len(), q.is_full());
                let _ = (rx.is_full(), tx.is_full(), rx.is_closed(), tx.is_closed());
                let _ = (rx.is_abandoned(), tx.is_abandoned());
            }
        }
    }
}

fn cell(r: &mut Reader<'_>, path: &std::path::Path) {
    let mut cell = SeqCell::create(path, [0u64; 5]).expect("create");
    let short = Patience::timeout(Duration::from_millis(1));
    cell.set_patience(short);
    let peer = Peer::new(path);
    while !r.is_empty() {
        match r.u8() % 6 {
            0 | 1 => peer.scribble(r),
            2 => drop(cell.load()),
            3 => drop(cell.store([r.u64(); 5])),
            4 => drop(cell.update(|mut v| {
                v[1] = v[1].wrapping_add(1);
                v
            })),
            _ => {
                let _ = (cell.try_load(), cell.version());
                let _ = cell.region().status(short);
            }
        }
    }
}

/// A byte map and a typed map (`u64` values) over the same entries' code:
/// states, key and value lengths, sequences and the entries' reach words
/// scribbled on between inserts, updates, removes (entries reused) and
/// reads. A stored value length is clamped, a reach too (a walk never
/// leaves the table); a garbage state reads as another key.
fn map(r: &mut Reader<'_>, path: &std::path::Path, cap: usize) {
    let max_len = usize::from(r.u8() % 40) + 1;
    let short = Patience::timeout(Duration::from_millis(1));
    let mut m = ByteMap::<str>::create(path, cap, max_len).expect("create");
    m.set_patience(short);
    let tpath = path.with_extension("typed");
    let mut t = Map::<u64, u64>::create(&tpath, cap).expect("create typed");
    t.set_patience(short);
    let peer = Peer::new(path);
    let tpeer = Peer::new(&tpath);
    // Where entry `i`'s reach word is: the first word of the entry, after
    // the body's 128 bytes of control words.
    let slot = m.region().descriptor().slot_size;
    let reach_at = |i: u8| mmring::layout::HEADER_SIZE + 128 + u64::from(i) % cap as u64 * slot;
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    while !r.is_empty() {
        let key = keys[usize::from(r.u8()) % keys.len()];
        let tkey = u64::from(r.u8() % 12);
        match r.u8() % OPS {
            0 => peer.scribble(r),
            1 => {
                let at = reach_at(r.u8());
                peer.file
                    .write_all_at(&value(r).to_ne_bytes(), at)
                    .expect("peer write");
            }
            2 => tpeer.scribble(r),
            3 => {
                let v = vec![r.u8(); usize::from(r.u8()) % (max_len + 2)];
                let _ = m.insert(key, &v);
            }
            4 => {
                if let Ok(Some(v)) = m.get(key) {
                    assert!(v.len() <= max_len);
                }
            }
            5 => {
                let mut out = vec![0; usize::from(r.u8()) % (max_len + 8)];
                if let Ok(Some(n)) = m.get_into(key, &mut out) {
                    assert!(n <= max_len);
                }
            }
            6 => {
                let grow = usize::from(r.u8() % 4);
                let _ = m.update(key, |v| v.extend_from_slice(&[7; 3][..grow.min(3)]));
            }
            7 => drop(m.remove(key)),
            8 => {
                if let Ok(all) = m.snapshot() {
                    assert!(all.iter().all(|(_, v)| v.len() <= max_len));
                }
                let _ = (m.len(), m.insert_if_absent(key, b"x"));
            }
            9 => drop(t.insert(&tkey, r.u64())),
            10 => drop(t.update_or_insert(&tkey, 1, |v| v.wrapping_add(1))),
            _ => {
                let _ = (t.get(&tkey), t.remove(&tkey), t.snapshot(), t.len());
            }
        }
    }
}

/// Seeds: each kind with its indices, closed word, a slot's sequence and
/// claim, a message length and a cell's sequence scribbled on between
/// ordinary operations.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    // spsc: fill, then the tail jumps far ahead, the head behind it, pop.
    let mut w = Writer::default();
    w.u8(0).u8(1);
    w.u8(3).u8(10).u8(0).u8(0).u8(0).u8(1).u32(0).u32(1000); // tail = 1000 (raw)
    w.u8(6).u8(7).u8(15).u8(8).u8(4);
    w.u8(0).u8(0).u8(1).u8(1).u8(2); // head = u64::MAX
    w.u8(6)
        .u8(8)
        .u8(3)
        .u8(9)
        .u8(9)
        .u8(10)
        .u8(10)
        .u8(2)
        .u64(5)
        .u8(6);
    w.u8(1).u8(0).u8(4).u8(2).u8(2).u8(2); // closed = 1 << 63 (its low 4 bytes: 0)
    w.u8(11).u8(6);
    out.push(("spsc_indices_scribbled", w.0));
    // mpmc: push, the first slot's sequence and claim made garbage, pop.
    let mut w = Writer::default();
    w.u8(1).u8(1).u8(0);
    w.u8(0).u8(3).u8(10).u8(0).u8(2).u8(5);
    w.u8(0).u8(0).u8(1).u16(0).u8(6).u64(77).u8(2); // slot 0 sequence = 77
    w.u8(0).u8(1).u8(1).u16(1).u8(1).u8(2); // slot 0 claim = u64::MAX (a hole mark, far ahead)
    w.u8(0).u8(5).u8(0).u8(7).u8(30).u8(0).u8(10).u8(1).u8(5);
    w.u8(0).u8(0).u8(0).u8(0).u8(2).u8(2); // tail = 1 << 63 (closed)
    w.u8(0).u8(8).u8(0).u8(3).u8(70).u8(0).u8(9).u8(0).u8(11);
    out.push(("mpmc_slots_scribbled", w.0));
    // mpmc, 4 slots bounded at 3 (capacity byte 0x49): fill, the bound word
    // made 9 (an open refuses it), then 2 (an open takes it), pushes and
    // pops through both handles.
    let mut w = Writer::default();
    w.u8(1).u8(0x49).u8(1);
    for v in 1..=4 {
        w.u8(0).u8(2).u64(v); // try_push: the 4th is Full
    }
    w.u8(0).u8(0).u8(0).u8(10).u8(3).u8(9).u8(2); // bound = 9
    w.u8(0).u8(10); // open: refused
    w.u8(0).u8(0).u8(0).u8(10).u8(3).u8(2).u8(2); // bound = 2
    w.u8(0).u8(10); // open: bound 2
    w.u8(1).u8(5).u8(1).u8(2).u64(7).u8(0).u8(8);
    w.u8(1).u8(3).u8(3).u8(0).u8(7).u8(9).u8(1).u8(8);
    out.push(("mpmc_bound_scribbled", w.0));
    // bytes: a message's stored length made huge, then popped; then a
    // message in two pieces whose second header is scribbled on.
    let mut w = Writer::default();
    w.u8(2).u8(0).u8(20);
    w.u8(9).u8(5).u8(4).u8(9).u8(5).u8(8);
    w.u8(1).u8(1).u8(0).u8(1).u16(2).u8(1).u8(2); // mpmc slot 0 length word
    w.u8(1).u8(1).u8(2).u8(1).u16(1).u8(1).u8(2); // spsc first word (length)
    w.u8(0)
        .u8(0)
        .u8(6)
        .u8(30)
        .u8(0)
        .u8(0)
        .u8(10)
        .u8(30)
        .u8(0)
        .u8(0)
        .u8(7)
        .u8(0)
        .u8(0)
        .u8(11);
    // A 30-byte message (two pieces of at most 21) into the SPSC ring,
    // its second header (slot word 4) made 1 << 63, then popped; another.
    w.u8(5).u8(30).u8(8);
    w.u8(0).u8(0).u8(2).u8(1).u16(4).u8(2).u8(2);
    w.u8(0).u8(0).u8(10).u8(60);
    w.u8(6).u8(30).u8(8).u8(0).u8(0).u8(11);
    out.push(("byte_lengths_scribbled", w.0));
    // cell: sequence made odd with no writer, then loads and a store.
    let mut w = Writer::default();
    w.u8(3).u8(0);
    w.u8(3).u64(9).u8(0).u8(0).u8(0).u8(3).u8(1).u8(1); // seq = 1
    w.u8(2).u8(5).u8(3).u64(1).u8(4);
    w.u8(1).u8(0).u8(0).u8(1).u8(4).u8(2).u8(2).u8(5);
    out.push(("cell_sequence_scribbled", w.0));
    // map: two reach words made garbage, an insert, then the first
    // entries' words scribbled (states, key and value lengths), then every
    // operation.
    let mut w = Writer::default();
    w.u8(4).u8(1).u8(20);
    w.u8(0).u8(0).u8(1).u8(0).u8(1); // entry 0's reach = u64::MAX
    w.u8(0).u8(0).u8(1).u8(1).u8(3).u8(200); // entry 1's reach = 200 (past the table)
    w.u8(0).u8(3).u8(9).u8(5);
    w.u8(1).u8(4).u8(0).u8(1).u16(0).u8(1).u8(2); // a word of the entries = u64::MAX
    w.u8(2).u8(4).u8(0).u8(4).u8(10).u8(0).u8(2).u8(2); // typed: a state = 2
    for op in 3..12u8 {
        w.u8(op % 9).u8(0).u8(op).u8(3).u8(9);
    }
    out.push(("map_entries_scribbled", w.0));
    out
}

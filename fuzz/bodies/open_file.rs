//! `open_file`: arbitrary bytes written as a file, opened as every object
//! kind (and inspected): each open is a typed error or a valid object, and
//! a valid object survives a few operations. Never a panic, an abort or an
//! out-of-bounds access.
//!
//! Input: one flags byte, then the file's bytes. Flag bit 0 rewrites the
//! descriptor's checksum (bytes 248..256) to match bytes 0..248 (the
//! payload name at 128..192 included), so that
//! mutations reach the checks behind it; bit 1 pads (or cuts) the file to
//! the `total_size` its descriptor claims (at most 4 MiB), so a seed need
//! not carry a body of zeros; bit 2 clears the low bit of the status
//! block's sequence (byte 256): an odd one is a status writer inside, which
//! every open waits out for its bounded patience (1 s) by design — correct,
//! but slow enough to stall the fuzzer.

use std::time::Duration;

use mmring::map::{ByteMap, Map};
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};
use mmring::spsc::{ByteConsumer, ByteProducer, Consumer, Producer};
use mmring::{AtomicArray, Barrier, Counter, Event, Patience, Region, Semaphore, SeqCell};

use super::Scratch;

pub const FIX_CHECKSUM: u8 = 1;
pub const PAD_TO_SIZE: u8 = 2;
pub const EVEN_STATUS: u8 = 4;

const MAX_PADDED: u64 = 4 << 20;

/// Bytes of the descriptor, and where its checksum is (docs/FORMAT.md).
const DESCRIPTOR: usize = 256;
const CHECKSUM_AT: usize = 248;

/// A user type with a declared name, as another program would declare it.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Quote {
    pub bid: f64,
    pub ask: f64,
}
// By hand: the fuzz crate has no bytemuck of its own for the derives.
// SAFETY: two f64 fields, `repr(C)`, no padding; all zeros is a valid value.
unsafe impl mmring::Zeroable for Quote {}
// SAFETY: as above, and every bit pattern of two f64 is a valid Quote.
unsafe impl mmring::Pod for Quote {}
mmring::payload!(Quote = "market.Quote");

/// FNV-1a 64, as docs/FORMAT.md defines the checksum.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The file an input describes.
pub fn file_bytes(data: &[u8]) -> Vec<u8> {
    let Some((&flags, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut file = rest.to_vec();
    if flags & PAD_TO_SIZE != 0 && file.len() >= 24 {
        let total = u64::from_ne_bytes(file[16..24].try_into().expect("8 bytes"));
        if total <= MAX_PADDED {
            file.resize(total as usize, 0);
        }
    }
    if flags & FIX_CHECKSUM != 0 && file.len() >= DESCRIPTOR {
        let sum = fnv1a(&file[..CHECKSUM_AT]);
        file[CHECKSUM_AT..DESCRIPTOR].copy_from_slice(&sum.to_ne_bytes());
    }
    if flags & EVEN_STATUS != 0 && file.len() > 256 {
        file[256] &= !1;
    }
    file
}

pub fn run(data: &[u8]) {
    let dir = Scratch::new();
    let path = dir.path("object");
    let file = file_bytes(data);
    std::fs::write(&path, &file).expect("write the input file");
    let short = Patience::timeout(Duration::from_millis(1));
    let zero = Duration::ZERO;

    if let Ok(report) = mmring::inspect::inspect(&path) {
        let _ = report.to_string();
    }
    if let Ok(region) = Region::open_any(&path) {
        let _ = region.status(short);
        let d = region.descriptor();
        // Validated at open: the stored name is a valid one.
        let name = d
            .payload_name()
            .expect("an opened file's payload name is valid");
        assert_eq!(name, d.type_info().name());
        let _ = d.type_info().to_string();
    }
    if let Ok(c) = Counter::open(&path) {
        c.fetch_add(c.load());
    }
    if let Ok(a) = AtomicArray::<u32>::open(&path) {
        let _ = a.snapshot();
        if let Some(e) = a.last() {
            e.fetch_add(1);
        }
    }
    if let Ok(a) = AtomicArray::<i32>::open(&path) {
        let _ = a.snapshot();
    }
    if let Ok(a) = AtomicArray::<u64>::open(&path) {
        let _ = a.snapshot();
    }
    if let Ok(a) = AtomicArray::<i64>::open(&path) {
        let _ = a.snapshot();
    }
    if let Ok(a) = AtomicArray::<f64>::open(&path) {
        if let Some(e) = a.first() {
            e.fetch_add(0.5);
        }
    }
    if let Ok(a) = AtomicArray::<u8>::open(&path) {
        let _ = a.snapshot();
        if let Some(e) = a.last() {
            e.fetch_add(1);
        }
    }
    if let Ok(a) = AtomicArray::<i8>::open(&path) {
        let _ = a.snapshot();
    }
    if let Ok(a) = AtomicArray::<u16>::open(&path) {
        let _ = a.snapshot();
    }
    if let Ok(a) = AtomicArray::<i16>::open(&path) {
        if let Some(e) = a.last() {
            e.fetch_sub(1);
        }
    }
    if let Ok(a) = AtomicArray::<f32>::open(&path) {
        let _ = a.snapshot();
        if let Some(e) = a.last() {
            e.fetch_max(0.5);
        }
    }
    if let Ok(mut cell) = SeqCell::<u64>::open(&path) {
        cell.set_patience(short);
        let _ = cell.try_load();
        let _ = cell.update(|v| v.wrapping_add(1));
        let _ = cell.version();
    }
    if let Ok(mut cell) = SeqCell::<[u64; 3]>::open(&path) {
        cell.set_patience(short);
        let _ = cell.load();
        let _ = cell.store([1, 2, 3]);
    }
    if let Ok(mut cell) = SeqCell::<Quote>::open(&path) {
        cell.set_patience(short);
        let _ = cell.load();
        let _ = cell.store(Quote { bid: 1.0, ask: 2.0 });
    }
    if let Ok(mut cell) = SeqCell::<[u8; 16]>::open(&path) {
        cell.set_patience(short);
        let _ = cell.update(|mut v| {
            v[15] ^= 1;
            v
        });
    }
    if let Ok(mut c) = Consumer::<u64>::open(&path) {
        let _ = (c.try_pop(), c.len(), c.pop_slice(&mut [0; 3]));
        if let Ok(chunk) = c.read_chunk(1) {
            let _ = (chunk.get(0), chunk.iter().count());
            let _ = chunk.into_iter().next();
        }
    }
    if let Ok(mut p) = Producer::<u64>::open(&path) {
        let _ = (p.try_push(7), p.push_slice(&[1, 2]), p.len());
        let _ = p.push_timeout(8, zero);
    }
    if let Ok(mut c) = ByteConsumer::open(&path) {
        let mut buf = vec![0; c.max_len().min(1 << 16)];
        let _ = c.try_pop_into(&mut buf);
        let _ = c.try_pop();
        let _ = c.pop_timeout(zero);
    }
    if let Ok(mut p) = ByteProducer::open(&path) {
        let _ = p.try_push(b"hello");
        let _ = p.push_timeout(&[], zero);
        // Longer than a slot: in pieces (as many as fit, then a timeout).
        let long = vec![3u8; p.max_len().min(1 << 16) * 2 + 1];
        let _ = p.try_push(&long);
        let _ = p.push_timeout(&long, zero);
    }
    if let Ok(q) = Queue::<u64>::open(&path) {
        // The bound was checked at open.
        assert!((1..=q.capacity()).contains(&q.bound()));
        let _ = (q.try_pop(), q.try_push(9), q.len(), q.unfinished());
        let _ = q.pop_slice(&mut [0; 5]);
        let _ = q.push_slice(&[1, 2, 3]);
        let _ = q.pop_timeout(zero);
        let _ = q.task_done();
        let _ = q.join_timeout(zero);
    }
    if let Ok(q) = ByteQueue::open(&path) {
        assert!((1..=q.capacity()).contains(&q.bound()));
        let _ = (q.try_push(b"hi"), q.is_full());
        let mut buf = vec![0; q.max_len().min(1 << 16)];
        let _ = q.try_pop_into(&mut buf);
        let _ = q.pop_timeout(zero);
    }
    if let Ok(mut m) = Map::<u64, u64>::open(&path) {
        m.set_patience(short);
        let _ = (m.get(&1), m.insert(&2, 3), m.remove(&4), m.len());
        let _ = m.snapshot();
    }
    if let Ok(mut m) = Map::<str, u64>::open(&path) {
        m.set_patience(short);
        let _ = (
            m.get("a"),
            m.insert("key", 1),
            m.update("key", |v| v.wrapping_add(1)),
        );
        let _ = m.snapshot();
    }
    if let Ok(mut m) = ByteMap::<str>::open(&path) {
        m.set_patience(short);
        let mut buf = vec![0; m.max_value_len().min(1 << 13)];
        let _ = (
            m.get("a"),
            m.get_into("key", &mut buf),
            m.insert("key", b"v"),
        );
        let _ = m.update("key", |v| v.push(1));
        let _ = (m.remove("a"), m.len(), m.snapshot());
    }
    if let Ok(mut m) = ByteMap::<u64>::open(&path) {
        m.set_patience(short);
        let _ = (m.get(&1), m.update_or_insert(&2, b"xy", |v| v.truncate(1)));
        let _ = m.snapshot();
    }
    if let Ok(e) = Event::open(&path) {
        let _ = e.is_set();
        e.set();
        let _ = e.wait_timeout(zero);
        e.clear();
    }
    if let Ok(s) = Semaphore::open(&path) {
        if s.try_acquire() {
            let _ = s.release();
        }
        let _ = (s.available(), s.recover_dead_holders());
        if s.acquire_timeout(zero) {
            let _ = s.release();
        }
        let _ = s.words().holders();
    }
    if let Ok(b) = Barrier::open(&path) {
        let _ = b.parties();
        let _ = b.words().state();
        let _ = b.wait_timeout(zero);
    }
    // The file exists: open_or_create only opens it, and checks its shape
    // against the one asked for.
    let _ = Semaphore::open_or_create(&path, 1);
    let _ = Semaphore::open_or_create_bounded(&path, 2);
    let _ = Barrier::open_or_create(&path, 2);
    let _ = Event::open_or_create(&path);
    let _ = Map::<str, u64>::open_or_create(&path, 2, &Default::default());
    let _ = ByteMap::<str>::open_or_create(&path, 2, 24, &Default::default());
    let _ = Counter::open_or_create(&path, 1);
    let _ = AtomicArray::<u32>::open_or_create(&path, 5);
    let _ = AtomicArray::<u8>::open_or_create(&path, 10);
    let _ = SeqCell::<u64>::open_or_create(&path, 7);
    let _ = Queue::<u64>::open_or_create(&path, 4, &Default::default());
    let _ = ByteQueue::open_or_create(&path, 4, 16, &Default::default());
    let bounded = QueueOptions::new().bound(3);
    let _ = Queue::<u64>::open_or_create(&path, 4, &bounded);
    let _ = ByteQueue::open_or_create(&path, 4, 12, &bounded);
    if let Ok(mut tx) = Producer::<u32>::open_or_create(&path, 4) {
        let _ = (tx.try_push(1), tx.is_abandoned(), tx.wait_for_peer(zero));
    }
    if let Ok(mut rx) = Consumer::<u32>::open_or_create(&path, 4) {
        let _ = (rx.try_pop(), rx.is_abandoned(), rx.wait_for_peer(zero));
    }
    let _ = ByteProducer::open_or_create(&path, 4, 16);
    let _ = ByteConsumer::open_or_create(&path, 4, 16);
}

/// Seeds: a real file of every kind (trailing zeros cut: the pad flag puts
/// them back), each also cut short after its descriptor.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = Scratch::new();
    let mut files: Vec<(&str, std::path::PathBuf)> = Vec::new();
    let mut add = |name: &'static str, make: &dyn Fn(&std::path::Path)| {
        let p = dir.path(name);
        make(&p);
        files.push((name, p));
    };
    add("counter", &|p| drop(Counter::create(p, 42)));
    add("array_u32", &|p| drop(AtomicArray::<u32>::create(p, 5)));
    add("array_f64", &|p| drop(AtomicArray::<f64>::create(p, 2)));
    add("array_u8", &|p| drop(AtomicArray::<u8>::create(p, 10)));
    add("array_i16", &|p| drop(AtomicArray::<i16>::create(p, 40)));
    add("array_f32", &|p| drop(AtomicArray::<f32>::create(p, 3)));
    add("cell_u64", &|p| drop(SeqCell::create(p, 7u64)));
    add("cell_3xu64", &|p| drop(SeqCell::create(p, [1u64, 2, 3])));
    add("cell_16xu8", &|p| drop(SeqCell::create(p, [9u8; 16])));
    add("cell_named", &|p| {
        drop(SeqCell::create(p, Quote { bid: 1.5, ask: 2.5 }))
    });
    add("spsc_u64", &|p| {
        let (mut tx, rx) = mmring::spsc::channel::<u64>(p, 4).expect("spsc");
        tx.try_push(5).expect("push");
        std::mem::forget(rx);
        std::mem::forget(tx);
    });
    add("spsc_bytes", &|p| drop(ByteProducer::create(p, 4, 10)));
    add("spsc_bytes_pieces", &|p| {
        // A message in three pieces queued, another cut after two.
        let mut tx = ByteProducer::create(p, 8, 10).expect("spsc bytes");
        tx.try_push(b"twenty-five bytes, three.").expect("push");
        let _ = tx.push_timeout(&[9; 100], Duration::ZERO);
        std::mem::forget(tx);
    });
    add("mpmc_u64", &|p| {
        let q = Queue::<u64>::create(p, 4).expect("mpmc");
        q.try_push(6).expect("push");
    });
    add("mpmc_bytes", &|p| {
        let q = ByteQueue::create(p, 2, 12, &Default::default()).expect("bytes");
        q.try_push(b"abc").expect("push");
    });
    add("mpmc_bounded", &|p| {
        let q = Queue::<u64>::create_bounded(p, 3).expect("bounded");
        q.try_push(6).expect("push");
    });
    add("mpmc_bytes_bounded", &|p| {
        let q = ByteQueue::create(p, 4, 12, &QueueOptions::new().bound(3)).expect("bytes");
        q.try_push(b"abc").expect("push");
    });
    add("map_u64", &|p| {
        let m = Map::<u64, u64>::create(p, 4).expect("map");
        m.insert(&1, 2).expect("insert");
    });
    add("map_str", &|p| drop(Map::<str, u64>::create(p, 2)));
    add("map_bytes", &|p| {
        let m = ByteMap::<str>::create(p, 4, 24).expect("byte map");
        m.insert("a", b"hello").expect("insert");
        m.insert("b", b"").expect("insert");
        m.remove("b").expect("remove");
    });
    add("event", &|p| drop(Event::create(p)));
    add("semaphore", &|p| drop(Semaphore::create(p, 2)));
    add("barrier", &|p| drop(Barrier::create(p, 3)));
    let mut out = Vec::new();
    for (name, p) in files {
        let mut bytes = std::fs::read(&p).expect("read seed file");
        // Pids and clocks of this run are noise: zero the status block's
        // value (seq 0, no writer, nothing attached).
        bytes[256..384].fill(0);
        if name.starts_with("spsc") {
            // The role pids (body offset 256..264) and closed bits: free
            // roles, an open ring.
            bytes[4096 + 256..4096 + 272].fill(0);
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        let mut padded = vec![PAD_TO_SIZE | EVEN_STATUS];
        padded.extend_from_slice(&bytes);
        out.push((name.to_string(), padded));
        // The whole descriptor and part of the status block: truncated.
        let mut cut = vec![FIX_CHECKSUM];
        cut.extend_from_slice(&bytes[..bytes.len().min(300)]);
        out.push((format!("{name}_truncated"), cut));
    }
    out.push(("empty".into(), vec![0]));
    let mut magic_only = vec![0];
    magic_only.extend_from_slice(b"MMRING\0\x1a");
    out.push(("magic_only".into(), magic_only));
    out
}

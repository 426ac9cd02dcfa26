//! `open_or_create` never resets: for every kind that has it, a file that
//! exists is attached as it is, whatever initial value or contents the
//! call passes (they apply only to a file it creates), and a file of
//! another shape is refused with a typed error that leaves it unchanged.
//!
//! Each test creates the object with `open_or_create`, changes its state,
//! opens it again with `open_or_create` and *different* initial values (the
//! state is as it was), then asks for another shape (the typed error, and
//! the file's descriptor and body byte for byte as before; the status
//! block, whose attached list and sequence any open may touch, is left out
//! of the comparison).

use std::path::Path;

use mmring::map::{Map, MapOptions};
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};
use mmring::spsc::{ByteConsumer, ByteProducer, Consumer, Producer};
use mmring::{AtomicArray, Barrier, Counter, CreateOptions, Event, OpenError, Semaphore, SeqCell};

/// Bytes of the descriptor (the start of the header page) and where the
/// body starts (docs/FORMAT.md).
const DESCRIPTOR: usize = 256;
const BODY: usize = 4096;

/// The descriptor and the body: what a refused `open_or_create` must not
/// change.
fn shape_and_state(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read the object's file");
    assert!(bytes.len() > BODY, "an mmring file has a body");
    [&bytes[..DESCRIPTOR], &bytes[BODY..]].concat()
}

/// Runs `refuse` (an `open_or_create` asking for another shape) and
/// checks that it fails as `is_expected` says and leaves the file as it
/// was.
fn refused<T: std::fmt::Debug>(
    path: &Path,
    refuse: impl FnOnce() -> Result<T, OpenError>,
    is_expected: impl FnOnce(&OpenError) -> bool,
) {
    let before = shape_and_state(path);
    match refuse() {
        Ok(h) => panic!("another shape was opened: {h:?}"),
        Err(e) => assert!(is_expected(&e), "unexpected error: {e:?}"),
    }
    assert!(
        shape_and_state(path) == before,
        "a refused open_or_create changed the file"
    );
}

#[test]
fn counter_keeps_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("counter");
    let c = Counter::open_or_create(&p, 5).unwrap();
    assert_eq!(c.load(), 5, "created with the initial value");
    c.fetch_add(10);
    let again = Counter::open_or_create(&p, 99).unwrap();
    assert_eq!(again.load(), 15, "attached as it was, not reset to 99");
    // A counter has one shape: another kind at the path is the mismatch.
    refused(
        &p,
        || AtomicArray::<i64>::open_or_create(&p, 1),
        |e| matches!(e, OpenError::WrongKind { .. }),
    );
    assert_eq!(c.load(), 15);
}

#[test]
fn atomic_array_keeps_its_elements() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("array");
    let opts = CreateOptions::default();
    let a = AtomicArray::<u8>::open_or_create_with(&p, 4, 1, &opts).unwrap();
    assert_eq!(a.snapshot(), [1, 1, 1, 1], "created with the initial value");
    a[0].store(200);
    a[3].fetch_add(6);
    let again = AtomicArray::<u8>::open_or_create_with(&p, 4, 9, &opts).unwrap();
    assert_eq!(again.snapshot(), [200, 1, 1, 7], "not reset to 9s");
    let zeros = AtomicArray::<u8>::open_or_create(&p, 4).unwrap();
    assert_eq!(zeros.snapshot(), [200, 1, 1, 7], "not reset to zeros");
    refused(
        &p,
        || AtomicArray::<u8>::open_or_create(&p, 5),
        |e| matches!(e, OpenError::InvalidCapacity { found: 4, .. }),
    );
    refused(
        &p,
        || AtomicArray::<i8>::open_or_create_with(&p, 4, -1, &opts),
        |e| matches!(e, OpenError::WrongPayload { .. }) && e.to_string().contains("found u8"),
    );
    refused(
        &p,
        || AtomicArray::<f32>::open_or_create(&p, 1),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    assert_eq!(a.snapshot(), [200, 1, 1, 7]);
}

#[test]
fn seq_cell_keeps_its_value_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cell");
    let c = SeqCell::open_or_create(&p, [1u32, 2]).unwrap();
    assert_eq!(c.load().unwrap(), [1, 2], "created with the initial value");
    c.store([3, 4]).unwrap();
    let version = c.version();
    let again = SeqCell::open_or_create(&p, [7u32, 7]).unwrap();
    assert_eq!(again.load().unwrap(), [3, 4], "not reset to [7, 7]");
    assert_eq!(again.version(), version, "the version is kept");
    refused(
        &p,
        || SeqCell::open_or_create(&p, 0u64),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    assert_eq!(c.load().unwrap(), [3, 4]);
}

#[test]
fn spsc_ring_keeps_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ring");
    {
        let mut tx = Producer::<u64>::open_or_create(&p, 4).unwrap();
        tx.try_push(11).unwrap();
        tx.try_push(12).unwrap();
    }
    // The producer again (its role given back), then the consumer, each
    // through open_or_create: the queued items are still there.
    let mut tx = Producer::<u64>::open_or_create(&p, 4).unwrap();
    assert_eq!(tx.len(), 2, "not emptied");
    tx.try_push(13).unwrap();
    refused(
        &p,
        || Consumer::<u64>::open_or_create(&p, 8),
        |e| matches!(e, OpenError::InvalidCapacity { found: 4, .. }),
    );
    refused(
        &p,
        || Consumer::<u32>::open_or_create(&p, 4),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    let mut rx = Consumer::<u64>::open_or_create(&p, 4).unwrap();
    assert_eq!(rx.try_pop(), Ok(11));
    assert_eq!(rx.try_pop(), Ok(12));
    assert_eq!(rx.try_pop(), Ok(13));
    assert!(rx.try_pop().is_err());
}

#[test]
fn spsc_byte_ring_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bytes");
    {
        let mut tx = ByteProducer::open_or_create(&p, 4, 16).unwrap();
        tx.try_push(b"first").unwrap();
        tx.try_push(b"second").unwrap();
    }
    let tx = ByteProducer::open_or_create(&p, 4, 16).unwrap();
    assert!(!tx.is_empty(), "not emptied");
    let capacity = tx.capacity();
    drop(tx);
    refused(
        &p,
        || ByteConsumer::open_or_create(&p, 4, 32),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    refused(
        &p,
        || ByteConsumer::open_or_create(&p, 64, 16),
        |e| matches!(e, OpenError::InvalidCapacity { .. }),
    );
    let mut rx = ByteConsumer::open_or_create(&p, 4, 16).unwrap();
    assert_eq!(rx.capacity(), capacity);
    assert_eq!(rx.pop().unwrap(), b"first");
    assert_eq!(rx.pop().unwrap(), b"second");
    assert!(rx.is_empty());
}

#[test]
fn mpmc_queue_keeps_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("queue");
    let opts = QueueOptions::new();
    let q = Queue::<u32>::open_or_create(&p, 4, &opts).unwrap();
    q.try_push(1).unwrap();
    q.try_push(2).unwrap();
    let again = Queue::<u32>::open_or_create(&p, 4, &opts).unwrap();
    assert_eq!(again.len(), 2, "not emptied");
    refused(
        &p,
        || Queue::<u32>::open_or_create(&p, 8, &opts),
        |e| matches!(e, OpenError::InvalidCapacity { found: 4, .. }),
    );
    refused(
        &p,
        || Queue::<u32>::open_or_create(&p, 4, &QueueOptions::new().joinable(true)),
        |e| matches!(e, OpenError::InvalidOption { .. }),
    );
    refused(
        &p,
        || Queue::<i32>::open_or_create(&p, 4, &opts),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    assert_eq!(again.try_pop(), Ok(1));
    assert_eq!(q.try_pop(), Ok(2));
    assert!(q.is_empty());
}

#[test]
fn mpmc_byte_queue_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("byte-queue");
    let opts = QueueOptions::new();
    let q = ByteQueue::open_or_create(&p, 4, 8, &opts).unwrap();
    q.try_push(b"one").unwrap();
    q.try_push(b"two").unwrap();
    let again = ByteQueue::open_or_create(&p, 4, 8, &opts).unwrap();
    assert_eq!(again.len(), 2, "not emptied");
    refused(
        &p,
        || ByteQueue::open_or_create(&p, 4, 9, &opts),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    refused(
        &p,
        || ByteQueue::open_or_create(&p, 2, 8, &opts),
        |e| matches!(e, OpenError::InvalidCapacity { found: 4, .. }),
    );
    assert_eq!(again.pop().unwrap(), b"one");
    assert_eq!(q.pop().unwrap(), b"two");
}

#[test]
fn map_keeps_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("map");
    let opts = MapOptions::new();
    let m = Map::<str, u64>::open_or_create(&p, 16, &opts).unwrap();
    m.insert("a", 1).unwrap();
    m.insert("b", 2).unwrap();
    let again = Map::<str, u64>::open_or_create(&p, 16, &opts).unwrap();
    assert_eq!(again.len(), 2, "not emptied");
    assert_eq!(again.get("a").unwrap(), Some(1));
    assert_eq!(again.get("b").unwrap(), Some(2));
    refused(
        &p,
        || Map::<str, u64>::open_or_create(&p, 32, &opts),
        |e| matches!(e, OpenError::InvalidCapacity { found: 16, .. }),
    );
    refused(
        &p,
        || Map::<str, u64>::open_or_create(&p, 16, &MapOptions::new().max_key_len(100)),
        |e| matches!(e, OpenError::InvalidOption { .. }),
    );
    refused(
        &p,
        || Map::<str, i64>::open_or_create(&p, 16, &opts),
        |e| matches!(e, OpenError::WrongPayload { .. }),
    );
    assert_eq!(m.get("a").unwrap(), Some(1));
}

#[test]
fn event_stays_set() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("event");
    let e = Event::open_or_create(&p).unwrap();
    assert!(!e.is_set(), "created clear");
    e.set();
    assert!(Event::open_or_create(&p).unwrap().is_set(), "not cleared");
    // An event has one shape: another kind at the path is the mismatch.
    refused(
        &p,
        || Semaphore::open_or_create(&p, 1),
        |e| matches!(e, OpenError::WrongKind { .. }),
    );
    assert!(e.is_set());
}

#[test]
fn semaphore_keeps_its_taken_permits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("semaphore");
    let s = Semaphore::open_or_create(&p, 3).unwrap();
    assert!(s.try_acquire());
    assert!(s.try_acquire());
    let again = Semaphore::open_or_create(&p, 10).unwrap();
    assert_eq!(again.available(), 1, "not reset to 3 or 10 permits");
    refused(
        &p,
        || Semaphore::open_or_create_bounded(&p, 3),
        |e| matches!(e, OpenError::InvalidCapacity { .. }),
    );
    assert_eq!(s.available(), 1);

    let p = dir.path().join("bounded");
    let b = Semaphore::open_or_create_bounded(&p, 2).unwrap();
    assert!(b.try_acquire());
    assert_eq!(
        Semaphore::open_or_create_bounded(&p, 2)
            .unwrap()
            .available(),
        1
    );
    refused(
        &p,
        || Semaphore::open_or_create_bounded(&p, 5),
        |e| matches!(e, OpenError::InvalidCapacity { found: 2, .. }),
    );
    refused(
        &p,
        || Semaphore::open_or_create(&p, 2),
        |e| matches!(e, OpenError::InvalidCapacity { .. }),
    );
    assert_eq!(b.available(), 1);
}

#[test]
fn barrier_keeps_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("barrier");
    let b = Barrier::open_or_create(&p, 1).unwrap();
    assert_eq!(b.words().state().0, 0, "created at generation 0");
    b.wait().unwrap();
    b.wait().unwrap();
    let again = Barrier::open_or_create(&p, 1).unwrap();
    assert_eq!(again.words().state().0, 2, "the generation is kept");
    refused(
        &p,
        || Barrier::open_or_create(&p, 2),
        |e| matches!(e, OpenError::InvalidCapacity { found: 1, .. }),
    );
    assert_eq!(b.words().state().0, 2);
}

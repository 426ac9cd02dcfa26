//! `mpmc_ops`: operation sequences on an MPMC `Queue<u32>` through several
//! handles (optionally joinable), and on a `ByteQueue`, both optionally
//! bounded below their capacity, checked step by step against a
//! `VecDeque`: same values, same order, same errors, the same count of
//! unfinished tasks. The queue is linearizable, so a model that knows every
//! completed push predicts every `Empty` and `Full` exactly (`Full` at the
//! bound, not at the ring's size).

use std::collections::VecDeque;
use std::time::Duration;

use mmring::mpmc::{BATCH_MAX, ByteQueue, JoinTimeoutError, Queue, QueueOptions, TaskError};
use mmring::{
    BytePushTimeoutError, ByteTryPushError, Closed, OpenError, PopError, PopTimeoutError,
    PushTimeoutError, TryPopError, TryPushError,
};

use super::{Reader, Scratch, Writer};

pub const OPS: u8 = 16;

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let path = dir.path("queue");
    let bpath = dir.path("bytes");
    let flags = r.u8();
    // Bit 6: one slot (a hand-off); else 2 to 32 slots.
    let cap = if flags & 0x40 != 0 {
        1
    } else {
        2usize << (flags % 5)
    };
    let joinable = flags & 0x80 != 0;
    let len_byte = r.u8();
    let max_len = usize::from(len_byte % 40) + 1;
    // Bit 5: both queues hold at most `bound` items (1 to the capacity,
    // from the length byte's high bits); else the capacity.
    let bound = if flags & 0x20 != 0 {
        1 + usize::from(len_byte >> 3) % cap
    } else {
        cap
    };
    let opts = QueueOptions::new().joinable(joinable).bound(bound);
    let mut qs = vec![Queue::<u32>::create_with(&path, cap, &opts).expect("create queue")];
    let bq = ByteQueue::create(&bpath, cap, max_len, &QueueOptions::new().bound(bound))
        .expect("create bytes");
    let bq2 = ByteQueue::open(&bpath).expect("open bytes");
    let mut items: VecDeque<u32> = VecDeque::new();
    let mut msgs: VecDeque<Vec<u8>> = VecDeque::new();
    let mut closed = false;
    let mut bclosed = false;
    let mut unfinished = 0u64;
    let mut next = 0u32;

    while !r.is_empty() {
        let op = r.u8() % OPS;
        let q = &qs[usize::from(r.u8()) % qs.len()];
        match op {
            0 | 1 => {
                next = next.wrapping_add(1);
                let v = next;
                let full = items.len() == bound;
                if op == 0 {
                    let got = q.try_push(v);
                    if closed {
                        assert!(matches!(got, Err(TryPushError::Closed(x)) if x == v));
                    } else if full {
                        assert!(matches!(got, Err(TryPushError::Full(x)) if x == v));
                    } else {
                        assert!(got.is_ok());
                    }
                } else {
                    let got = q.push_timeout(v, Duration::ZERO);
                    if closed {
                        assert!(matches!(got, Err(PushTimeoutError::Closed(x)) if x == v));
                    } else if full {
                        assert!(matches!(got, Err(PushTimeoutError::Timeout(x)) if x == v));
                    } else {
                        assert!(got.is_ok());
                    }
                }
                if !closed && !full {
                    items.push_back(v);
                    unfinished += u64::from(joinable);
                }
            }
            2 => {
                let n = usize::from(r.u8() % 80);
                let vals: Vec<u32> = (0..n)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                let got = q.push_slice(&vals);
                if closed {
                    assert_eq!(got, Err(Closed));
                } else {
                    let k = n.min(bound - items.len()).min(BATCH_MAX);
                    assert_eq!(got, Ok(k));
                    items.extend(&vals[..k]);
                    unfinished += if joinable { k as u64 } else { 0 };
                }
            }
            3 => {
                let want = match items.pop_front() {
                    Some(v) => Ok(v),
                    None if closed => Err(TryPopError::Closed),
                    None => Err(TryPopError::Empty),
                };
                assert_eq!(q.try_pop(), want);
            }
            4 => {
                let want = match items.pop_front() {
                    Some(v) => Ok(v),
                    None if closed => Err(PopTimeoutError::Closed),
                    None => Err(PopTimeoutError::Timeout),
                };
                assert_eq!(q.pop_timeout(Duration::ZERO), want);
            }
            5 => {
                let n = usize::from(r.u8() % 80);
                let mut out = vec![0u32; n];
                let got = q.pop_slice(&mut out);
                let k = n.min(items.len()).min(BATCH_MAX);
                if k > 0 {
                    assert_eq!(got, Ok(k));
                    let want: Vec<u32> = items.drain(..k).collect();
                    assert_eq!(out[..k], want[..]);
                } else if closed && items.is_empty() {
                    assert_eq!(got, Err(Closed));
                } else {
                    assert_eq!(got, Ok(0));
                }
            }
            6 => {
                q.close();
                closed = true;
            }
            7 => {
                assert_eq!(q.len(), items.len());
                assert_eq!(q.is_empty(), items.is_empty());
                assert_eq!(q.is_full(), items.len() == bound);
                assert_eq!(q.is_closed(), closed);
                assert_eq!((q.capacity(), q.bound()), (cap, bound));
                assert_eq!(q.unfinished(), unfinished);
            }
            8 => {
                let got = q.task_done();
                if !joinable {
                    assert_eq!(got, Err(TaskError::NotJoinable));
                } else if unfinished == 0 {
                    assert_eq!(got, Err(TaskError::TooManyDone));
                } else {
                    assert_eq!(got, Ok(()));
                    unfinished -= 1;
                }
            }
            9 => {
                let got = q.join_timeout(Duration::ZERO);
                if !joinable {
                    assert_eq!(got, Err(JoinTimeoutError::NotJoinable));
                } else if unfinished == 0 {
                    assert_eq!(got, Ok(()));
                } else {
                    assert_eq!(got, Err(JoinTimeoutError::Timeout(unfinished)));
                }
            }
            10 => {
                if qs.len() < 4 {
                    qs.push(Queue::open(&path).expect("open queue"));
                } else {
                    qs.swap_remove(0);
                }
                assert!(matches!(
                    Queue::<u64>::open(&path),
                    Err(OpenError::WrongPayload { .. })
                ));
            }
            11 => {
                // Blocking calls with something to do return at once.
                if !closed && items.len() < bound {
                    next = next.wrapping_add(1);
                    assert!(q.push(next).is_ok());
                    items.push_back(next);
                    unfinished += u64::from(joinable);
                }
                if let Some(v) = items.pop_front() {
                    assert_eq!(q.pop(), Ok(v));
                } else if closed {
                    assert_eq!(q.pop(), Err(PopError::Closed));
                }
            }
            12 => {
                let len = usize::from(r.u8() % 48);
                let fill = r.u8();
                let msg: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let b = if r.u8() % 2 == 0 { &bq } else { &bq2 };
                let max = max_len;
                let ok = if r.u8() % 2 == 0 {
                    let got = b.try_push(&msg);
                    if len > max {
                        assert_eq!(got, Err(ByteTryPushError::TooLong { len, max }));
                    } else if bclosed {
                        assert_eq!(got, Err(ByteTryPushError::Closed));
                    } else if msgs.len() == bound {
                        assert_eq!(got, Err(ByteTryPushError::Full));
                    }
                    got.is_ok()
                } else {
                    let got = b.push_timeout(&msg, Duration::ZERO);
                    if len > max {
                        assert_eq!(got, Err(BytePushTimeoutError::TooLong { len, max }));
                    } else if bclosed {
                        assert_eq!(got, Err(BytePushTimeoutError::Closed));
                    } else if msgs.len() == bound {
                        assert_eq!(got, Err(BytePushTimeoutError::Timeout));
                    }
                    got.is_ok()
                };
                assert_eq!(ok, len <= max && !bclosed && msgs.len() < bound);
                if ok {
                    msgs.push_back(msg);
                }
                assert_eq!(b.is_full(), msgs.len() == bound);
            }
            13 => {
                let b = if r.u8() % 2 == 0 { &bq } else { &bq2 };
                let mut buf = vec![0u8; max_len];
                let got = b.try_pop_into(&mut buf);
                match msgs.pop_front() {
                    Some(m) => {
                        assert_eq!(got, Ok(m.len()));
                        assert_eq!(buf[..m.len()], m[..]);
                    }
                    None if bclosed => assert_eq!(got, Err(TryPopError::Closed)),
                    None => assert_eq!(got, Err(TryPopError::Empty)),
                }
            }
            14 => {
                let b = if r.u8() % 2 == 0 { &bq } else { &bq2 };
                let got = b.pop_timeout(Duration::ZERO);
                match msgs.pop_front() {
                    Some(m) => assert_eq!(got, Ok(m)),
                    None if bclosed => assert_eq!(got, Err(PopTimeoutError::Closed)),
                    None => assert_eq!(got, Err(PopTimeoutError::Timeout)),
                }
                assert_eq!(bq.len(), msgs.len());
                assert_eq!((bq2.max_len(), bq2.bound()), (max_len, bound));
            }
            _ => {
                bq2.close();
                bclosed = true;
            }
        }
    }
    // Whatever is left drains in order, then the queue reports closed.
    qs[0].close();
    for v in items {
        assert_eq!(qs[0].try_pop(), Ok(v));
    }
    assert_eq!(qs[0].try_pop(), Err(TryPopError::Closed));
}

/// Seeds: every operation, joinable and not, at capacities 1, 2 and 32, and
/// bounded below the capacity (8 slots bounded at 6, 2 bounded at 1); fill,
/// wrap and drain with batches; a close that consumers drain through.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, flags, len_byte) in [
        ("every_op_cap2", 0u8, 7u8),
        ("every_op_cap32_joinable", 0x84, 7),
        ("every_op_cap1_joinable", 0xc0, 7),
        // 8 slots (0x20 % 5 == 2) bounded at 1 + (0x2f >> 3) % 8 = 6.
        ("every_op_cap8_bound6", 0x20, 0x2f),
        // 2 slots (0xa5 % 5 == 0) bounded at 1, joinable.
        ("every_op_cap2_bound1_joinable", 0xa5, 0x07),
    ] {
        let mut w = Writer::default();
        w.u8(flags).u8(len_byte);
        for op in 0..OPS {
            w.u8(op).u8(op).u8(op * 5).u8(op).u8(op).u8(op);
        }
        out.push((name, w.0));
    }
    let mut wrap = Writer::default();
    wrap.u8(0x82).u8(3);
    for i in 0..8u8 {
        wrap.u8(2)
            .u8(i)
            .u8(5)
            .u8(5)
            .u8(i + 1)
            .u8(3)
            .u8(3)
            .u8(i)
            .u8(8)
            .u8(i)
            .u8(9)
            .u8(0);
        wrap.u8(12)
            .u8(i)
            .u8(i % 6)
            .u8(i)
            .u8(i)
            .u8(i)
            .u8(13)
            .u8(0)
            .u8(i);
    }
    wrap.u8(10)
        .u8(0)
        .u8(10)
        .u8(0)
        .u8(6)
        .u8(2)
        .u8(5)
        .u8(1)
        .u8(79)
        .u8(3)
        .u8(2)
        .u8(15)
        .u8(0);
    wrap.u8(14).u8(0).u8(1).u8(7).u8(3);
    out.push(("batches_wrap_and_join", wrap.0));
    let mut closing = Writer::default();
    closing.u8(1).u8(40);
    closing
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(1)
        .u8(6)
        .u8(0)
        .u8(0)
        .u8(1)
        .u8(4)
        .u8(1)
        .u8(3)
        .u8(0)
        .u8(3)
        .u8(1);
    closing
        .u8(5)
        .u8(0)
        .u8(4)
        .u8(11)
        .u8(1)
        .u8(12)
        .u8(0)
        .u8(40)
        .u8(1)
        .u8(0)
        .u8(0);
    out.push(("close_then_drain", closing.0));
    out
}

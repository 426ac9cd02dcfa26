//! `counter`: operation sequences on a `Counter` and an `AtomicArray<u32>`
//! (through several handles on the same files), checked against plain
//! integers: every operation returns what the model says and leaves the
//! value the model holds.

use mmring::{AtomicArray, Counter, OpenError};

use super::{Reader, Scratch, Writer};

pub const OPS: u8 = 14;

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let dir = Scratch::new();
    let cpath = dir.path("counter");
    let apath = dir.path("array");
    let initial = r.u64() as i64;
    let len = usize::from(r.u8() % 8) + 1;
    let mut counters = vec![Counter::create(&cpath, initial).expect("create counter")];
    let mut arrays = vec![AtomicArray::<u32>::create(&apath, len).expect("create array")];
    let mut model = initial;
    let mut amodel = vec![0u32; len];

    while !r.is_empty() {
        let op = r.u8() % OPS;
        let c = &counters[usize::from(r.u8()) % counters.len()];
        match op {
            0 => assert_eq!(c.load(), model),
            1 => {
                let v = r.u64() as i64;
                c.store(v);
                model = v;
            }
            2 => {
                let v = r.u64() as i64;
                assert_eq!(c.swap(v), model);
                model = v;
            }
            3 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_add(v), model);
                model = model.wrapping_add(v);
            }
            4 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_sub(v), model);
                model = model.wrapping_sub(v);
            }
            5 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_max(v), model);
                model = model.max(v);
            }
            6 => {
                let v = r.u64() as i64;
                assert_eq!(c.fetch_min(v), model);
                model = model.min(v);
            }
            7 => {
                // Compare-exchange against the right value or a wrong one.
                let right = r.u8() % 2 == 0;
                let current = if right { model } else { r.u64() as i64 };
                let new = r.u64() as i64;
                let got = c.compare_exchange(current, new);
                if current == model {
                    assert_eq!(got, Ok(model));
                    model = new;
                } else {
                    assert_eq!(got, Err(model));
                }
            }
            8 => {
                // "Take a ticket if any are left" and a checked add.
                let take = r.u8() % 2 == 0;
                let v = r.u64() as i64;
                let f = |n: i64| {
                    if take {
                        (n > 0).then(|| n - 1)
                    } else {
                        n.checked_add(v)
                    }
                };
                let want = f(model);
                let got = c.fetch_update(f);
                match want {
                    Some(next) => {
                        assert_eq!(got, Ok(model));
                        model = next;
                    }
                    None => assert_eq!(got, Err(model)),
                }
            }
            9 => {
                if counters.len() < 4 {
                    counters.push(Counter::open(&cpath).expect("open counter"));
                } else {
                    counters.remove(0);
                }
            }
            10 => {
                // A second create, and opening as the wrong kind, are typed
                // errors that leave the value alone.
                assert!(matches!(
                    Counter::create(&cpath, 0),
                    Err(OpenError::AlreadyExists { .. })
                ));
                assert!(matches!(
                    AtomicArray::<i64>::open(&cpath),
                    Err(OpenError::WrongKind { .. })
                ));
                assert!(matches!(
                    AtomicArray::<u64>::open(&apath),
                    Err(OpenError::WrongPayload { .. })
                ));
                assert!(matches!(
                    AtomicArray::<u32>::open_or_create(&apath, len + 1),
                    Err(OpenError::InvalidCapacity { .. })
                ));
            }
            11 => {
                let a = &arrays[usize::from(r.u8()) % arrays.len()];
                let i = usize::from(r.u8() % 10);
                let v = r.u32();
                assert_eq!(a.len(), len);
                match (a.get(i), amodel.get_mut(i)) {
                    (Some(e), Some(m)) => {
                        assert_eq!(e.fetch_add(v), *m);
                        *m = m.wrapping_add(v);
                    }
                    (None, None) => {}
                    _ => panic!("array length differs from the model"),
                }
            }
            12 => {
                let a = &arrays[usize::from(r.u8()) % arrays.len()];
                let i = usize::from(r.u8()) % len;
                let (cur, new) = (r.u32(), r.u32());
                let cur = if r.u8() % 2 == 0 { amodel[i] } else { cur };
                let got = a[i].compare_exchange(cur, new);
                if cur == amodel[i] {
                    assert_eq!(got, Ok(cur));
                    amodel[i] = new;
                } else {
                    assert_eq!(got, Err(amodel[i]));
                }
                assert_eq!(a.snapshot(), amodel);
            }
            _ => {
                if arrays.len() < 3 {
                    arrays.push(AtomicArray::<u32>::open(&apath).expect("open array"));
                } else {
                    arrays.remove(0);
                }
            }
        }
    }
    assert_eq!(counters[0].load(), model);
    assert_eq!(arrays[0].snapshot(), amodel);
}

/// Seeds: each operation once, tickets sold out, a wrong compare-exchange.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut all = Writer::default();
    all.u64(3).u8(3);
    for op in 0..OPS {
        all.u8(op).u8(op).u64(0x8000_0000_0000_0001 ^ u64::from(op));
        all.u64(u64::from(op) * 7);
    }
    let mut tickets = Writer::default();
    tickets.u64(3).u8(0);
    for _ in 0..5 {
        tickets.u8(8).u8(0).u8(0).u64(0);
    }
    tickets.u8(0).u8(0);
    let mut overflow = Writer::default();
    overflow.u64(i64::MAX as u64).u8(7);
    overflow
        .u8(3)
        .u8(0)
        .u64(1)
        .u8(8)
        .u8(0)
        .u8(1)
        .u64(i64::MAX as u64);
    overflow.u8(5).u8(0).u64(0).u8(6).u8(0).u64(i64::MIN as u64);
    overflow
        .u8(9)
        .u8(0)
        .u8(11)
        .u8(1)
        .u8(7)
        .u32(u32::MAX)
        .u8(11)
        .u8(1)
        .u8(7)
        .u32(2);
    overflow.u8(13).u8(0).u8(12).u8(1).u8(2).u32(0).u32(9).u8(1);
    overflow.u8(7).u8(1).u8(1).u64(5).u64(6).u8(10).u8(0);
    vec![
        ("every_op", all.0),
        ("tickets_sold_out", tickets.0),
        ("overflow_and_handles", overflow.0),
    ]
}

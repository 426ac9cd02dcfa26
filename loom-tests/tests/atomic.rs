//! Loom models of `mmring::raw::atomic::Atomic`: the compare-and-swap loops
//! (`fetch_update`, `f64` arithmetic, `fetch_max`/`fetch_min`) under
//! contention, plain read-modify-writes, and the Acquire/Release orderings
//! the module documents.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's preemption bound;
//! `MMRING_LOOM_VERBOSE=1` prints executions and outcomes per model).
//!
//! Each model also lists the outcomes it must have explored (see
//! `common::check`), so that it cannot pass by exploring too little.

#![cfg(loom)]

mod common;

use std::cell::Cell;

use common::check;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use mmring::raw::atomic::Atomic;

/// Takes one ticket if any are left, with the closure of the issue:
/// `(n > 0).then(|| n - 1)`. Also checks that no call ever observes a
/// negative stock, and returns how many times the closure ran (more than
/// once: a compare-and-swap lost a race and the loop retried).
fn take_ticket(stock: &Atomic<i64>) -> (Result<i64, i64>, u32) {
    let calls = Cell::new(0);
    let result = stock.fetch_update(|n| {
        calls.set(calls.get() + 1);
        assert!(n >= 0, "stock went negative: {n}");
        (n > 0).then(|| n - 1)
    });
    (result, calls.get())
}

/// `threads` threads each try to take one ticket from `stock`: exactly
/// `min(stock, threads)` succeed, each success took a distinct ticket,
/// each failure saw 0, and the final stock is what is left. Every thread
/// must win in some execution, and some execution must retry the CAS.
fn tickets(bound: usize, stock: i64, threads: usize) {
    let mut expect: Vec<String> = (0..threads).map(|i| format!("t{i} won")).collect();
    expect.push("retried".into());
    if stock < threads as i64 {
        expect.extend((0..threads).map(|i| format!("t{i} sold out")));
    }
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    check(bound, &expect, move |seen| {
        let counter = Arc::new(Atomic::new(stock));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let counter = counter.clone();
                thread::spawn(move || take_ticket(&counter))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

        for (i, (result, calls)) in results.iter().enumerate() {
            match result {
                Ok(_) => seen.note(format!("t{i} won")),
                Err(left) => {
                    assert_eq!(*left, 0, "declined with stock left: {results:?}");
                    seen.note(format!("t{i} sold out"));
                }
            }
            if *calls > 1 {
                seen.note("retried");
            }
        }
        let mut taken: Vec<i64> = results.iter().filter_map(|(r, _)| r.ok()).collect();
        taken.sort_unstable();
        let sold = stock.min(threads as i64);
        let expected: Vec<i64> = (stock - sold + 1..=stock).collect();
        assert_eq!(taken, expected, "oversold or double-sold: {results:?}");
        assert_eq!(counter.load(), stock - sold);
    });
}

/// The last ticket, two buyers.
#[test]
fn fetch_update_last_ticket_two_threads() {
    tickets(3, 1, 2);
}

/// The last ticket, three buyers.
#[test]
fn fetch_update_last_ticket_three_threads() {
    tickets(3, 1, 3);
}

/// Two tickets, three buyers.
#[test]
fn fetch_update_two_tickets_three_threads() {
    tickets(3, 2, 3);
}

/// `fetch_add` from two threads: the sum is right and each saw a distinct
/// previous value.
#[test]
fn fetch_add_from_two_threads_sums() {
    check(3, &["a first", "b first"], |seen| {
        let counter = Arc::new(Atomic::new(100i64));
        let add = |v: i64| {
            let counter = counter.clone();
            thread::spawn(move || counter.fetch_add(v))
        };
        let a = add(1);
        let b = add(10);
        match (a.join().unwrap(), b.join().unwrap()) {
            (100, 101) => seen.note("a first"),
            (110, 100) => seen.note("b first"),
            other => panic!("impossible previous values {other:?}"),
        }
        assert_eq!(counter.load(), 111);
    });
}

/// `fetch_sub` and `fetch_add` on a `u32` from two threads, wrapping below
/// zero in one order: nothing lost either way.
#[test]
fn fetch_add_and_sub_u32_wrap() {
    check(3, &["sub first", "add first"], |seen| {
        let counter = Arc::new(Atomic::new(1u32));
        let sub = {
            let counter = counter.clone();
            thread::spawn(move || counter.fetch_sub(3))
        };
        let add = {
            let counter = counter.clone();
            thread::spawn(move || counter.fetch_add(5))
        };
        match (sub.join().unwrap(), add.join().unwrap()) {
            (1, p) if p == 1u32.wrapping_sub(3) => seen.note("sub first"),
            (6, 1) => seen.note("add first"),
            other => panic!("impossible previous values {other:?}"),
        }
        assert_eq!(counter.load(), 3);
    });
}

/// `f64::fetch_add` is a compare-and-swap loop: two threads adding at once
/// lose neither addition (the values are exact in binary).
#[test]
fn f64_fetch_add_from_two_threads() {
    check(3, &["a first", "b first"], |seen| {
        let x = Arc::new(Atomic::new(0.5f64));
        let add = |v: f64| {
            let x = x.clone();
            thread::spawn(move || x.fetch_add(v))
        };
        let a = add(1.0);
        let b = add(2.25);
        match (a.join().unwrap(), b.join().unwrap()) {
            (0.5, 1.5) => seen.note("a first"),
            (2.75, 0.5) => seen.note("b first"),
            other => panic!("lost update: previous values {other:?}"),
        }
        assert_eq!(x.load(), 3.75);
    });
}

/// `f64::fetch_max` and `fetch_min` (CAS loops) racing: the result is the
/// same as in one of the two sequential orders.
#[test]
fn f64_fetch_max_and_min_race() {
    check(3, &["max first", "min first"], |seen| {
        let x = Arc::new(Atomic::new(5.0f64));
        let max = {
            let x = x.clone();
            thread::spawn(move || x.fetch_max(8.0))
        };
        let min = {
            let x = x.clone();
            thread::spawn(move || x.fetch_min(2.0))
        };
        // max first: 5 -> 8 -> 2; min first: 5 -> 2 -> 8.
        match (max.join().unwrap(), min.join().unwrap()) {
            (5.0, 8.0) => {
                assert_eq!(x.load(), 2.0);
                seen.note("max first");
            }
            (2.0, 5.0) => {
                assert_eq!(x.load(), 8.0);
                seen.note("min first");
            }
            other => panic!("impossible previous values {other:?}"),
        }
    });
}

/// Integer `fetch_max` and `fetch_min` racing on an `i32` (including a
/// negative value): the result is the same as in one of the two
/// sequential orders.
#[test]
fn int_fetch_max_and_min_race() {
    check(3, &["max first", "min first"], |seen| {
        let x = Arc::new(Atomic::new(5i32));
        let max = {
            let x = x.clone();
            thread::spawn(move || x.fetch_max(8))
        };
        let min = {
            let x = x.clone();
            thread::spawn(move || x.fetch_min(-2))
        };
        // max first: 5 -> 8 -> -2; min first: 5 -> -2 -> 8.
        match (max.join().unwrap(), min.join().unwrap()) {
            (5, 8) => {
                assert_eq!(x.load(), -2);
                seen.note("max first");
            }
            (-2, 5) => {
                assert_eq!(x.load(), 8);
                seen.note("min first");
            }
            other => panic!("impossible previous values {other:?}"),
        }
    });
}

/// `compare_exchange` from two threads on the same expected value: exactly
/// one wins, the loser is told the winner's value.
#[test]
fn compare_exchange_has_one_winner() {
    check(3, &["a won", "b won"], |seen| {
        let x = Arc::new(Atomic::new(0u64));
        let cas = |v: u64| {
            let x = x.clone();
            thread::spawn(move || x.compare_exchange(0, v))
        };
        let a = cas(1);
        let b = cas(2);
        match (a.join().unwrap(), b.join().unwrap()) {
            (Ok(0), Err(1)) => {
                assert_eq!(x.load(), 1);
                seen.note("a won");
            }
            (Err(2), Ok(0)) => {
                assert_eq!(x.load(), 2);
                seen.note("b won");
            }
            other => panic!("impossible outcome {other:?}"),
        }
    });
}

/// The documented orderings: a value published with `store` (Release), or
/// with a read-modify-write (`fetch_add`, `fetch_update`: AcqRel), makes
/// the publisher's earlier writes visible to whoever `load`s it (Acquire).
/// The side data is written Relaxed, so only the `Atomic`'s own ordering
/// can make it visible.
#[test]
fn store_and_rmw_publish_earlier_writes() {
    check(
        3,
        &["store seen", "fetch_add seen", "fetch_update seen"],
        |seen| {
            let data = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
            let flag = Arc::new(Atomic::new(0u32));
            let hits = Arc::new(Atomic::new(0i64));
            let ticket = Arc::new(Atomic::new(1i64));

            let observer = {
                let (data, flag, hits, ticket) =
                    (data.clone(), flag.clone(), hits.clone(), ticket.clone());
                let seen = seen.clone();
                thread::spawn(move || {
                    if flag.load() == 1 {
                        assert_eq!(data[0].load(Ordering::Relaxed), 1, "store did not release");
                        seen.note("store seen");
                    }
                    if hits.load() == 1 {
                        let d = data[1].load(Ordering::Relaxed);
                        assert_eq!(d, 1, "fetch_add did not release");
                        seen.note("fetch_add seen");
                    }
                    if ticket.load() == 0 {
                        let d = data[2].load(Ordering::Relaxed);
                        assert_eq!(d, 1, "fetch_update did not release");
                        seen.note("fetch_update seen");
                    }
                })
            };

            data[0].store(1, Ordering::Relaxed);
            flag.store(1);
            data[1].store(1, Ordering::Relaxed);
            hits.fetch_add(1);
            data[2].store(1, Ordering::Relaxed);
            assert_eq!(take_ticket(&ticket).0, Ok(1));

            observer.join().unwrap();
        },
    );
}

/// Adjacent `u8` elements (packed in one word in a file) each taken by one
/// thread, and one `f32` (a compare-and-swap loop over `AtomicU32` bits)
/// shared by both (`fetch_add` in one thread, `fetch_update` counting its
/// closure's runs in the other): each byte ends exactly as its own thread
/// left it (wrapping), and neither float addition is lost, in either order
/// or when a compare-and-swap loses and retries.
#[test]
fn narrow_elements_and_f32_from_two_threads() {
    check(3, &["a first", "b first", "b retried"], |seen| {
        let bytes = Arc::new([Atomic::new(100u8), Atomic::new(250u8)]);
        let x = Arc::new(Atomic::new(0.5f32));
        let a = {
            let (bytes, x) = (bytes.clone(), x.clone());
            thread::spawn(move || {
                assert_eq!(bytes[0].fetch_add(200), 100);
                x.fetch_add(1.0)
            })
        };
        let b = {
            let (bytes, x) = (bytes.clone(), x.clone());
            thread::spawn(move || {
                assert_eq!(bytes[1].fetch_add(10), 250);
                let calls = Cell::new(0);
                let prev = x.fetch_update(|v| {
                    calls.set(calls.get() + 1);
                    Some(v + 2.25)
                });
                (prev.expect("the closure never declines"), calls.get())
            })
        };
        let (a, (b, calls)) = (a.join().unwrap(), b.join().unwrap());
        if calls > 1 {
            seen.note("b retried");
        }
        match (a, b) {
            (0.5, 1.5) => seen.note("a first"),
            (2.75, 0.5) => seen.note("b first"),
            other => panic!("lost f32 update: previous values {other:?}"),
        }
        assert_eq!(bytes[0].load(), 44, "100 + 200 wraps to 44");
        assert_eq!(bytes[1].load(), 4, "250 + 10 wraps to 4");
        assert_eq!(x.load(), 3.75);
    });
}

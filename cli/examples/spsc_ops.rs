//! A profiling driver for the SPSC hot path, one thread, no contention:
//! instruction counts per operation under `valgrind --tool=callgrind`
//! (or `perf record`), mmring's ring over a real mapping against rtrb.
//!
//! ```text
//! cargo build --release -p mmring-cli --example spsc_ops
//! valgrind --tool=callgrind target/release/examples/spsc_ops mmring-pair 1000000
//! ```
//!
//! Workloads (`N` operations each):
//!
//! * `*-pair`: `try_push` then `try_pop`, one item in flight: every pop
//!   finds its cached tail used up and reloads it (the round-trip path);
//! * `*-burst`: 512 pushes then 512 pops: mostly the cached path (the
//!   throughput path);
//! * `*-empty`: `try_pop` on an empty ring (a consumer polling);
//! * `*-batch`: `push_slice` then `pop_slice` of 32 (rtrb:
//!   `push_partial_slice`/`pop_partial_slice`), `N` messages in all;
//! * `mmring-asleep`, `mmring-spin`: round trips with a forked echo
//!   process through two rings, blocking (`push`/`pop`, with 100 us of
//!   sleep before each, so that the echo is asleep when the message comes)
//!   or spinning (`try_push`/`try_pop`); prints p50 and p99 (for
//!   `strace -f -c` and `perf`, not for figures: `mmring bench spsc` has
//!   the baselines);
//! * `mmring-tput`, `rtrb-tput`: `N` u64 from a producer (a forked
//!   process; rtrb: a thread) to a consumer that checks them, spinning
//!   when full or empty; prints messages per second; `mmring-tputthreads`:
//!   mmring's ring with the producer in a thread, as rtrb's;
//! * `floor-spin`: one word of a shared mapping bounced between the same
//!   two processes (the floor of a spinning round trip), for a ratio made
//!   in the same run.

use std::hint::black_box;

use mmring::spsc::channel;

const CAPACITY: usize = 1024;
const BURST: u64 = 512;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("mmring-pair", String::as_str);
    let n: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let (lib, load) = which.split_once('-').unwrap_or((which, "pair"));
    if load == "tput" || load == "tputthreads" {
        throughput(
            if load == "tput" {
                lib
            } else {
                "mmring-threads"
            },
            n,
        );
        return;
    }
    if which == "floor-spin" {
        floor(n);
        return;
    }
    if lib == "mmring" && (load == "asleep" || load == "spin") {
        round_trips(load == "asleep", n);
        return;
    }
    if load == "batch" {
        println!("{which} {n}: {}", batches(lib, n));
        return;
    }
    let sum = match lib {
        "mmring" => {
            let dir = std::env::temp_dir().join(format!("spsc_ops-{}", std::process::id()));
            let (mut p, mut c) = channel::<u64>(&dir, CAPACITY).expect("create the ring");
            std::fs::remove_file(&dir).expect("remove the ring's name");
            run(load, n, |v| p.try_push(v).is_ok(), || c.try_pop().ok())
        }
        "rtrb" => {
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            run(load, n, |v| p.push(v).is_ok(), || c.pop().ok())
        }
        _ => panic!("unknown driver {which}: mmring-* or rtrb-*"),
    };
    println!("{which} {n}: {sum}");
}

fn run(
    load: &str,
    n: u64,
    mut push: impl FnMut(u64) -> bool,
    mut pop: impl FnMut() -> Option<u64>,
) -> u64 {
    let mut sum = 0u64;
    match load {
        "pair" => {
            for i in 0..n {
                assert!(push(black_box(i)));
                sum = sum.wrapping_add(pop().expect("an item"));
            }
        }
        "burst" => {
            for r in 0..n / BURST {
                for i in 0..BURST {
                    assert!(push(black_box(r * BURST + i)));
                }
                for _ in 0..BURST {
                    sum = sum.wrapping_add(pop().expect("an item"));
                }
            }
        }
        "empty" => {
            for _ in 0..n {
                sum = sum.wrapping_add(black_box(pop()).unwrap_or(1));
            }
        }
        _ => panic!("unknown workload {load}: pair, burst or empty"),
    }
    sum
}

/// `n` round trips through two rings with a forked echo (see the module
/// docs).
fn round_trips(asleep: bool, n: u64) {
    let dir = std::env::temp_dir();
    let (a, b) = (
        dir.join(format!("spsc_ops-a-{}", std::process::id())),
        dir.join(format!("spsc_ops-b-{}", std::process::id())),
    );
    let (mut ping_tx, mut ping_rx) = channel::<u64>(&a, CAPACITY).expect("create a ring");
    let (mut pong_tx, mut pong_rx) = channel::<u64>(&b, CAPACITY).expect("create a ring");
    std::fs::remove_file(&a).expect("remove the ring's name");
    std::fs::remove_file(&b).expect("remove the ring's name");
    // SAFETY: this process is single-threaded; the child only uses the
    // ring handles it inherited and exits with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        loop {
            let v = if asleep {
                ping_rx.pop().expect("a ping")
            } else {
                loop {
                    if let Ok(v) = ping_rx.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                }
            };
            if asleep {
                pong_tx.push(v).expect("room for the pong");
            } else {
                pong_tx.try_push(v).expect("room for the pong");
            }
            if v == u64::MAX {
                // SAFETY: ends the child at once, nothing to unwind.
                unsafe { libc::_exit(0) };
            }
        }
    }
    let mut nanos = Vec::with_capacity(n as usize);
    for i in 0..n + 1000 {
        if asleep {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        let start = std::time::Instant::now();
        if asleep {
            ping_tx.push(i).expect("room for the ping");
            assert_eq!(pong_rx.pop(), Ok(i));
        } else {
            ping_tx.try_push(i).expect("room for the ping");
            loop {
                if let Ok(v) = pong_rx.try_pop() {
                    assert_eq!(v, i);
                    break;
                }
                std::hint::spin_loop();
            }
        }
        if i >= 1000 {
            nanos.push(start.elapsed().as_nanos() as u64);
        }
    }
    ping_tx.push(u64::MAX).expect("room for the stop");
    let mut status = 0;
    // SAFETY: reaps our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(child, &mut status, 0) };
    report(if asleep { "asleep" } else { "spinning" }, nanos);
}

/// Prints the p50 and p99 of `nanos`.
fn report(what: &str, mut nanos: Vec<u64>) {
    nanos.sort_unstable();
    let at = |p: f64| nanos[((nanos.len() as f64 * p) as usize).min(nanos.len() - 1)];
    println!(
        "{what} round trips: p50 {} ns, p99 {} ns",
        at(0.5),
        at(0.99)
    );
}

/// `n` round trips of one word of a shared anonymous mapping between this
/// process and a forked child: odd out, even back.
fn floor(n: u64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    // SAFETY: a fresh shared anonymous mapping of one page, checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap");
    // SAFETY: page-aligned, zeroed, mapped for the rest of the program.
    let word: &AtomicU64 = unsafe { &*page.cast::<AtomicU64>() };
    // SAFETY: this process is single-threaded; the child only spins on the
    // word and exits with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        let mut last = 0;
        loop {
            let v = word.load(Ordering::Acquire);
            if v % 2 == 1 && v != last {
                if v == u64::MAX {
                    // SAFETY: ends the child at once.
                    unsafe { libc::_exit(0) };
                }
                last = v;
                word.store(v + 1, Ordering::Release);
            }
            std::hint::spin_loop();
        }
    }
    let mut nanos = Vec::with_capacity(n as usize);
    for i in 0..n + 1000 {
        let start = std::time::Instant::now();
        let out = 2 * i + 1;
        word.store(out, Ordering::Release);
        while word.load(Ordering::Acquire) != out + 1 {
            std::hint::spin_loop();
        }
        if i >= 1000 {
            nanos.push(start.elapsed().as_nanos() as u64);
        }
    }
    word.store(u64::MAX, Ordering::Release);
    let mut status = 0;
    // SAFETY: reaps our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(child, &mut status, 0) };
    report("floor", nanos);
}

/// The `batch` workload (see the module docs).
fn batches(lib: &str, n: u64) -> u64 {
    const BATCH: usize = 32;
    let mut sum = 0u64;
    let mut out = [0u64; BATCH];
    let mut msgs = [0u64; BATCH];
    match lib {
        "mmring" => {
            let dir = std::env::temp_dir().join(format!("spsc_ops-{}", std::process::id()));
            let (mut p, mut c) = channel::<u64>(&dir, CAPACITY).expect("create the ring");
            std::fs::remove_file(&dir).expect("remove the ring's name");
            for r in 0..n / BATCH as u64 {
                msgs.fill(r);
                assert_eq!(p.push_slice(black_box(&msgs)), Ok(BATCH));
                assert_eq!(c.pop_slice(&mut out), Ok(BATCH));
                sum = sum.wrapping_add(black_box(&out)[BATCH - 1]);
            }
        }
        "rtrb" => {
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            for r in 0..n / BATCH as u64 {
                msgs.fill(r);
                assert_eq!(p.push_partial_slice(black_box(&msgs)).0.len(), BATCH);
                assert_eq!(c.pop_partial_slice(&mut out).0.len(), BATCH);
                sum = sum.wrapping_add(black_box(&out)[BATCH - 1]);
            }
        }
        _ => panic!("unknown driver {lib}: mmring-* or rtrb-*"),
    }
    sum
}

/// The `tput` workload (see the module docs).
fn throughput(lib: &str, n: u64) {
    let start;
    match lib {
        "mmring" => {
            let dir = std::env::temp_dir().join(format!("spsc_ops-{}", std::process::id()));
            let (mut p, mut c) = channel::<u64>(&dir, CAPACITY).expect("create the ring");
            std::fs::remove_file(&dir).expect("remove the ring's name");
            // SAFETY: this process is single-threaded; the child only
            // pushes through the handle it inherited and exits with _exit.
            let child = unsafe { libc::fork() };
            assert!(child >= 0, "fork");
            if child == 0 {
                for i in 0..n {
                    while p.try_push(i).is_err() {
                        std::hint::spin_loop();
                    }
                }
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(0) };
            }
            start = std::time::Instant::now();
            for i in 0..n {
                let v = loop {
                    if let Ok(v) = c.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                assert_eq!(v, i);
            }
            let mut status = 0;
            // SAFETY: reaps our own child; `status` is a valid out-pointer.
            unsafe { libc::waitpid(child, &mut status, 0) };
        }
        "mmring-threads" => {
            let dir = std::env::temp_dir().join(format!("spsc_ops-{}", std::process::id()));
            let (mut p, mut c) = channel::<u64>(&dir, CAPACITY).expect("create the ring");
            std::fs::remove_file(&dir).expect("remove the ring's name");
            let t = std::thread::spawn(move || {
                for i in 0..n {
                    while p.try_push(i).is_err() {
                        std::hint::spin_loop();
                    }
                }
            });
            start = std::time::Instant::now();
            for i in 0..n {
                let v = loop {
                    if let Ok(v) = c.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                assert_eq!(v, i);
            }
            t.join().expect("the producer thread");
        }
        "rtrb" => {
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            let t = std::thread::spawn(move || {
                for i in 0..n {
                    while p.push(i).is_err() {
                        std::hint::spin_loop();
                    }
                }
            });
            start = std::time::Instant::now();
            for i in 0..n {
                let v = loop {
                    if let Ok(v) = c.pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                assert_eq!(v, i);
            }
            t.join().expect("the producer thread");
        }
        _ => panic!("unknown driver {lib}: mmring-* or rtrb-*"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{lib} throughput: {:.1} M/s", n as f64 / secs / 1e6);
}

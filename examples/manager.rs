//! The classic `multiprocessing.Manager().dict()` walkthrough, done with a
//! shared [`Map`] instead: no manager server process, no proxy round trip,
//! no lock.
//!
//! 1. A count down: `d['count'] = 20000`, then 20 processes each do
//!    `d['count'] -= 1` a thousand times. In Python that is a read and a
//!    write through the proxy, and updates are lost without a lock; here
//!    `update` is one atomic read-modify-write of the entry. (The lossy way,
//!    `get` then `insert`, is run first for contrast.)
//! 2. A pool of 4 worker processes filling a dict: `d[i] = i * i` for `i`
//!    in `0..1000`, the keys handed out in chunks from a shared counter.
//! 3. The nested-dict pitfall: `d['test'] = {}`, then process `i` does
//!    `d['test'][i] = ...` — silently lost in Python. Here the value is a
//!    struct updated in place.
//! 4. A dict of variable-length values ([`ByteMap`]): each process stores a
//!    record of its own length under its name, appends to a shared string
//!    (`d['log'] += ...`, lossy through a proxy; one atomic update here),
//!    and churns through 1,000 short-lived keys in a 16-entry dict (removed
//!    keys free their entries for new ones).
//!
//! ```text
//! cargo run --release --example manager
//! ```
//!
//! Every process is a real one: this program starts itself again with a
//! `worker` argument. The files live in a fresh directory under `/dev/shm`
//! (or the system temporary directory), removed at the end. The exit status
//! is non-zero if any result is wrong.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use mmring::map::{ByteMap, Map};
use mmring::{Counter, Pod, Zeroable};

/// Processes counting down, and decrements each.
const COUNTERS: usize = 20;
const DECREMENTS: i64 = 1000;
const START: i64 = COUNTERS as i64 * DECREMENTS;

/// Pool workers, keys they fill, and keys per chunk.
const WORKERS: usize = 4;
const KEYS: u64 = 1000;
const CHUNK: i64 = 25;

/// Processes sharing the nested value, and updates each makes.
const NESTED: usize = 4;
const NESTED_UPDATES: u64 = 1000;

/// Processes of the variable-length scene, appends each makes to the
/// shared log, and short-lived keys each churns through.
const TEXTS: usize = 4;
const APPENDS: usize = 25;
const TEMP_KEYS: usize = 1000;

/// The record process `i` stores under its name: a length of its own.
fn record(i: usize) -> String {
    format!("worker {i}: {}", "*".repeat(10 * i + 3))
}

/// The value under `d['test']`: what Python keeps as a nested dict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Test {
    /// `d['test'][i]`: process `i` sets it to `1000 + i`, once.
    field: [u64; NESTED],
    /// How many updates process `i` made (every update adds 1).
    updates: [u64; NESTED],
}
mmring::payload!(Test);

mod common;

use common::{scratch_dir, wait_all};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "worker" {
        let Ok(index) = args[4].parse() else {
            eprintln!("worker: bad index {:?}", args[4]);
            return ExitCode::FAILURE;
        };
        return match worker(&args[2], Path::new(&args[3]), index) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker {} ({} {index}): {e}", std::process::id(), args[2]);
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("manager: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One worker process of scene `scene`, working on the files in `dir`.
fn worker(scene: &str, dir: &Path, index: usize) -> Res<()> {
    let ready = Counter::open(dir.join("ready"))?;
    let parties = match scene {
        "racy" | "count" => COUNTERS,
        "pool" => WORKERS,
        "nested" => NESTED,
        "texts" => TEXTS,
        other => return Err(format!("unknown scene {other}").into()),
    };
    start_line(&ready, parties)?;
    match scene {
        "racy" => {
            let d = Map::<str, i64>::open(dir.join("dict"))?;
            for _ in 0..DECREMENTS {
                // Python's `d['count'] -= 1` through a proxy: read, then
                // write back. A process descheduled in between (the yield
                // makes it likely) overwrites what others wrote meanwhile.
                let v = d.get("count")?.ok_or("no count")?;
                std::thread::yield_now();
                d.insert("count", v - 1)?;
            }
        }
        "count" => {
            let d = Map::<str, i64>::open(dir.join("dict"))?;
            for _ in 0..DECREMENTS {
                d.update("count", |v| v - 1)?.ok_or("no count")?;
            }
        }
        "pool" => {
            let d = Map::<u64, u64>::open(dir.join("dict"))?;
            let next = Counter::open(dir.join("next"))?;
            let done = Counter::open(dir.join(format!("done-{index}")))?;
            loop {
                let start = next.fetch_add(CHUNK) as u64;
                if start >= KEYS {
                    break;
                }
                for i in start..(start + CHUNK as u64).min(KEYS) {
                    d.insert(&i, i * i)?;
                    done.fetch_add(1);
                }
            }
        }
        "nested" => {
            let d = Map::<str, Test>::open(dir.join("dict"))?;
            for n in 0..NESTED_UPDATES {
                d.update("test", |mut t| {
                    if n == index as u64 * 100 {
                        t.field[index] = 1000 + index as u64;
                    }
                    t.updates[index] += 1;
                    t
                })?
                .ok_or("no test")?;
            }
        }
        "texts" => {
            let d = ByteMap::<str>::open(dir.join("dict"))?;
            d.insert(&format!("name-{index}"), record(index).as_bytes())?;
            for n in 0..TEMP_KEYS {
                // Short-lived keys: far more over time than the dict has
                // entries, a few at once.
                let key = format!("tmp-{index}-{n}");
                d.insert(&key, format!("scratch {n}").as_bytes())?;
                if n % (TEMP_KEYS / APPENDS) == 0 {
                    // `d['log'] += f'{i};'`, atomically.
                    d.update("log", |log| {
                        log.extend_from_slice(format!("{index};").as_bytes())
                    })?
                    .ok_or("no log")?;
                }
                d.remove(&key)?.ok_or("a temporary key vanished")?;
            }
        }
        _ => unreachable!("checked above"),
    }
    Ok(())
}

/// Counts this process in and waits (yielding) until all `n` are there,
/// so that they really run at the same time.
fn start_line(ready: &Counter, n: usize) -> Res<()> {
    ready.fetch_add(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load() < n as i64 {
        if Instant::now() > deadline {
            return Err("the other workers never came".into());
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// Makes the directory of one scene, with its start-line counter.
fn scene_dir(dir: &Path, scene: &str) -> Res<(PathBuf, Counter)> {
    let sub = dir.join(scene);
    std::fs::create_dir(&sub)?;
    let ready = Counter::create(sub.join("ready"), 0)?;
    Ok((sub, ready))
}

/// Runs `n` workers of `scene` on `sub` and waits for them.
fn run_workers(scene: &str, sub: &Path, n: usize) -> Res<()> {
    let exe = std::env::current_exe()?;
    let children = (0..n)
        .map(|i| {
            Command::new(&exe)
                .arg("worker")
                .arg(scene)
                .arg(sub)
                .arg(i.to_string())
                .spawn()
        })
        .collect::<Result<Vec<Child>, _>>()?;
    wait_all(children)
}

/// Scene 1 in `mode` ("racy" or "count"): the final count.
fn count_down(dir: &Path, mode: &str) -> Res<i64> {
    let (sub, _ready) = scene_dir(dir, mode)?;
    let d = Map::<str, i64>::create(sub.join("dict"), 16)?;
    d.insert("count", START)?;
    run_workers(mode, &sub, COUNTERS)?;
    Ok(d.get("count")?.ok_or("the count is gone")?)
}

fn scene_count(dir: &Path) -> Res<bool> {
    println!(
        "1. count down: d['count'] = {START}; {COUNTERS} processes each do d['count'] -= 1, {DECREMENTS} times"
    );
    let racy = count_down(dir, "racy")?;
    println!(
        "   get, then insert (Python's proxy read and write, no lock): d['count'] = {racy:>5}  ({racy} updates lost)"
    );
    let count = count_down(dir, "count")?;
    println!(
        "   d.update(\"count\", |v| v - 1), no lock:                   d['count'] = {count:>5}"
    );
    let ok = count == 0;
    if !ok {
        println!("   WRONG: expected 0");
    }
    Ok(ok)
}

fn scene_pool(dir: &Path) -> Res<bool> {
    println!(
        "2. pool: {WORKERS} worker processes fill d[i] = i * i for i in 0..{KEYS} (chunks of {CHUNK})"
    );
    let (sub, _ready) = scene_dir(dir, "pool")?;
    let d = Map::<u64, u64>::create(sub.join("dict"), 1024)?;
    let _next = Counter::create(sub.join("next"), 0)?;
    let done = (0..WORKERS)
        .map(|i| Counter::create(sub.join(format!("done-{i}")), 0))
        .collect::<Result<Vec<_>, _>>()?;
    run_workers("pool", &sub, WORKERS)?;

    let mut items = d.snapshot()?;
    items.sort_unstable();
    let shown: Vec<String> = items
        .iter()
        .take(5)
        .map(|(k, v)| format!("{k}: {v}"))
        .chain(std::iter::once("...".into()))
        .chain(items.last().map(|(k, v)| format!("{k}: {v}")))
        .collect();
    println!("   d = {{{}}}", shown.join(", "));
    let per_worker: Vec<i64> = done.iter().map(|c| c.load()).collect();
    println!(
        "   len(d) = {}; keys written per worker: {per_worker:?}",
        d.len()
    );
    let wrong = items.iter().filter(|&&(k, v)| v != k * k).count();
    let keys_ok = items.iter().map(|&(k, _)| k).eq(0..KEYS);
    let ok = wrong == 0
        && keys_ok
        && d.len() == KEYS as usize
        && per_worker.iter().sum::<i64>() == KEYS as i64;
    if !ok {
        println!(
            "   WRONG: {} entries, {wrong} wrong values, keys 0..{KEYS} exactly: {keys_ok}",
            items.len()
        );
    }
    Ok(ok)
}

fn scene_nested(dir: &Path) -> Res<bool> {
    println!(
        "3. nested: d['test'] = {{}}; process i sets d['test'][i] = 1000 + i \
         ({NESTED} processes, each also counting {NESTED_UPDATES} updates of its own)"
    );
    let (sub, _ready) = scene_dir(dir, "nested")?;
    let d = Map::<str, Test>::create(sub.join("dict"), 8)?;
    d.insert("test", Test::zeroed())?;
    run_workers("nested", &sub, NESTED)?;

    let t = d.get("test")?.ok_or("d['test'] is gone")?;
    let fields: Vec<String> = t
        .field
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{i}: {f}"))
        .collect();
    println!("   d['test'] = {{{}}}", fields.join(", "));
    println!("   updates per process: {:?}", t.updates);
    println!(
        "   why: in Python, d['test'] hands back a pickled copy of the inner dict from the manager \
         process,\n        so d['test'][i] = ... changes that copy and is silently lost;\n        \
         here d.update(\"test\", ..) changes the stored struct itself, in one atomic \
         read-modify-write,\n        so no field and no count is lost"
    );
    let expected = Test {
        field: std::array::from_fn(|i| 1000 + i as u64),
        updates: [NESTED_UPDATES; NESTED],
    };
    let ok = t == expected;
    if !ok {
        println!("   WRONG: expected {expected:?}");
    }
    Ok(ok)
}

fn scene_texts(dir: &Path) -> Res<bool> {
    println!(
        "4. variable-length values: d[name] = a record of its own length; d['log'] += 'i;' \
         ({TEXTS} processes x {APPENDS}); {TEMP_KEYS} short-lived keys each, in 16 entries"
    );
    let (sub, _ready) = scene_dir(dir, "texts")?;
    let d = ByteMap::<str>::create(sub.join("dict"), 16, 512)?;
    d.insert("log", b"")?;
    run_workers("texts", &sub, TEXTS)?;

    let mut ok = true;
    for i in 0..TEXTS {
        let got = d.get(&format!("name-{i}"))?.unwrap_or_default();
        println!(
            "   d['name-{i}'] = {:?} ({} bytes)",
            String::from_utf8_lossy(&got),
            got.len()
        );
        ok &= got == record(i).as_bytes();
    }
    let log = String::from_utf8(d.get("log")?.ok_or("d['log'] is gone")?)?;
    let counts: Vec<usize> = (0..TEXTS)
        .map(|i| log.split(';').filter(|t| *t == i.to_string()).count())
        .collect();
    println!(
        "   d['log']: {} bytes, appends per process {counts:?}",
        log.len()
    );
    println!(
        "   keys now: {} (the {} temporary keys came and went through 16 entries)",
        d.len(),
        TEXTS * TEMP_KEYS
    );
    ok &= counts.iter().all(|&n| n == APPENDS) && d.len() == TEXTS + 1;
    if !ok {
        println!("   WRONG: a record, an append or a key is off");
    }
    Ok(ok)
}

fn run() -> Res<bool> {
    let dir = scratch_dir("manager")?;
    println!(
        "Manager().dict() scenarios with mmring::map::Map: real processes, no server, no lock"
    );
    println!("(files in {}, removed at the end)\n", dir.path().display());
    let count = scene_count(dir.path())?;
    println!();
    let pool = scene_pool(dir.path())?;
    println!();
    let nested = scene_nested(dir.path())?;
    println!();
    let texts = scene_texts(dir.path())?;
    println!();
    let ok = count && pool && nested && texts;
    if ok {
        println!("ok: every result is exact");
    } else {
        println!("FAILED: a result is wrong (see above)");
    }
    Ok(ok)
}

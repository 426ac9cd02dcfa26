//! `open_or_create` called by several processes at the same moment, for
//! every kind: exactly one file wins the name, and every process ends up
//! attached to that one (a process left holding a private, unpublished
//! object would lose its update, and the final count would come up short;
//! a barrier's parties would never all meet).

mod common;

use std::time::Duration;

use common::{Children, Sample, wait_until};
use mmring::map::{Map, MapOptions};
use mmring::{AtomicArray, Barrier, Counter, Event, Semaphore, SeqCell};

const RACERS: usize = 8;
/// Separate names raced for, one after another, by the same processes.
const ROUNDS: usize = 10;
const INITIAL: i64 = 100;
const ARRAY_LEN: usize = 4;
const MAP_CAPACITY: usize = 16;
/// How long a racer waits at a round's barrier before it fails: within the
/// children's 60 s watchdog, so a failure says what hung (racers that share
/// the barrier meet within milliseconds).
const BARRIER_PATIENCE: Duration = Duration::from_secs(45);
/// The kinds raced for in each round: file name prefixes, sorted.
const PREFIXES: [&str; 8] = [
    "array", "barrier", "bsem", "cell", "counter", "event", "map", "sem",
];

#[test]
fn racing_open_or_create_gives_everyone_the_same_object() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let objects = d.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let ready = Counter::create(d.join("ready"), 0).unwrap();
    let go = Counter::create(d.join("go"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..RACERS {
        kids.spawn("child_open_or_create", i, d, "");
    }
    // Release them together, once every one is waiting at the line.
    wait_until("every racer at the start line", || {
        ready.load() == RACERS as i64
    });
    go.store(1);
    kids.wait_all_ok();

    let n = RACERS as i64;
    for r in 0..ROUNDS {
        let count = Counter::open(objects.join(format!("counter{r}"))).unwrap();
        assert_eq!(count.load(), INITIAL + n, "round {r}: counter");
        let cell = SeqCell::<Sample>::open(objects.join(format!("cell{r}"))).unwrap();
        let (value, version) = cell.load_versioned().unwrap();
        assert_eq!(value, Sample::splat(n as u64), "round {r}: cell");
        assert_eq!(version, n as u64, "round {r}: cell version");
        let array = AtomicArray::<u64>::open(objects.join(format!("array{r}"))).unwrap();
        assert_eq!(
            array.snapshot(),
            vec![0, n as u64, 0, 0],
            "round {r}: array"
        );
        let sem = Semaphore::open(objects.join(format!("sem{r}"))).unwrap();
        assert_eq!(sem.available(), INITIAL as u64 + n as u64, "round {r}: sem");
        // Every racer took one of the RACERS permits (and exited holding
        // it): one semaphore, none left.
        let bounded = Semaphore::open(objects.join(format!("bsem{r}"))).unwrap();
        assert_eq!(bounded.available(), 0, "round {r}: bounded sem");
        assert_eq!(bounded.words().max(), n as u64, "round {r}: bound");
        let barrier = Barrier::open(objects.join(format!("barrier{r}"))).unwrap();
        assert_eq!(
            barrier.words().state(),
            (1, 0),
            "round {r}: one round passed"
        );
        assert!(
            Event::open(objects.join(format!("event{r}")))
                .unwrap()
                .is_set()
        );
        let map = Map::<str, u64>::open(objects.join(format!("map{r}"))).unwrap();
        assert_eq!(map.get("count").unwrap(), Some(n as u64), "round {r}: map");
    }
    // Exactly the objects, and no temporary file left by a losing creator.
    let mut names: Vec<String> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..ROUNDS)
        .flat_map(|r| PREFIXES.map(|p| format!("{p}{r}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

common::child_entry!(
    #[started_by(racing_open_or_create_gives_everyone_the_same_object)]
    fn child_open_or_create(ctx: ChildCtx) {
        let ready = Counter::open(ctx.path.join("ready")).unwrap();
        let go = Counter::open(ctx.path.join("go")).unwrap();
        let objects = ctx.path.join("objects");
        ready.fetch_add(1);
        wait_until("the start signal", || go.load() != 0);
        for r in 0..ROUNDS {
            let count =
                Counter::open_or_create(objects.join(format!("counter{r}")), INITIAL).unwrap();
            count.fetch_add(1);
            let cell = SeqCell::open_or_create(objects.join(format!("cell{r}")), Sample::splat(0))
                .unwrap();
            cell.update(|s| Sample::splat(s.a + 1)).unwrap();
            let array =
                AtomicArray::<u64>::open_or_create(objects.join(format!("array{r}")), ARRAY_LEN)
                    .unwrap();
            assert_eq!(array.len(), ARRAY_LEN);
            array[1].fetch_add(1);
            let sem =
                Semaphore::open_or_create(objects.join(format!("sem{r}")), INITIAL as u64).unwrap();
            sem.release().unwrap();
            let bounded =
                Semaphore::open_or_create_bounded(objects.join(format!("bsem{r}")), RACERS as u64)
                    .unwrap();
            assert!(bounded.try_acquire(), "round {r}: a permit for each racer");
            let event = Event::open_or_create(objects.join(format!("event{r}"))).unwrap();
            event.set();
            let map = Map::<str, u64>::open_or_create(
                objects.join(format!("map{r}")),
                MAP_CAPACITY,
                &MapOptions::new(),
            )
            .unwrap();
            map.update_or_insert("count", 0, |v| v + 1).unwrap();
            // Last: every racer meets every other here, which only happens if
            // they all hold the same barrier.
            let barrier =
                Barrier::open_or_create(objects.join(format!("barrier{r}")), RACERS as u32)
                    .unwrap();
            barrier.wait_timeout(BARRIER_PATIENCE).unwrap();
        }
    }
);

//! `open_or_create` called by several processes at the same moment: exactly
//! one file wins the name, and every process ends up attached to that one
//! (a process left holding a private, unpublished object would lose its
//! update, and the final count would come up short).

mod common;

use common::{Children, Sample, wait_until};
use mmring::{AtomicArray, Counter, SeqCell};

const RACERS: usize = 8;
/// Separate names raced for, one after another, by the same processes.
const ROUNDS: usize = 10;
const INITIAL: i64 = 100;
const ARRAY_LEN: usize = 4;

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
    }
    // Exactly the objects, and no temporary file left by a losing creator.
    let mut names: Vec<String> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..ROUNDS)
        .flat_map(|r| {
            [
                format!("array{r}"),
                format!("cell{r}"),
                format!("counter{r}"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn child_open_or_create() {
    let Some(ctx) = common::child("child_open_or_create") else {
        return;
    };
    let ready = Counter::open(ctx.path.join("ready")).unwrap();
    let go = Counter::open(ctx.path.join("go")).unwrap();
    let objects = ctx.path.join("objects");
    ready.fetch_add(1);
    wait_until("the start signal", || go.load() != 0);
    for r in 0..ROUNDS {
        let count = Counter::open_or_create(objects.join(format!("counter{r}")), INITIAL).unwrap();
        count.fetch_add(1);
        let cell =
            SeqCell::open_or_create(objects.join(format!("cell{r}")), Sample::splat(0)).unwrap();
        cell.update(|s| Sample::splat(s.a + 1)).unwrap();
        let array =
            AtomicArray::<u64>::open_or_create(objects.join(format!("array{r}")), ARRAY_LEN)
                .unwrap();
        assert_eq!(array.len(), ARRAY_LEN);
        array[1].fetch_add(1);
    }
}

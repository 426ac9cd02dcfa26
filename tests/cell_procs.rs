//! `SeqCell` shared by real, separate processes: readers never see a torn
//! value while a writer stores, versions only move forward, and concurrent
//! `update`s from several processes serialize.

mod common;

use common::{Children, Sample, barrier};
use mmring::{Counter, SeqCell};

const READERS: usize = 3;
const READS: usize = 20_000;
/// Each reader keeps reading until it has seen at least this many versions.
const MIN_VERSIONS_SEEN: u64 = 2_000;

/// One writer stores `Sample::splat(i)` for i = 1, 2, 3 ... for as long as
/// any reader is still reading, so every read overlaps writes; three readers
/// each load the cell at least 20,000 times and until they have seen 2,000
/// different versions. A reader fails (exits non-zero) if it
/// ever sees a value whose fields disagree, a value that is not the one its
/// version says (store number i holds i), or a version smaller than one it
/// saw before.
#[test]
fn readers_never_see_a_torn_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cell = SeqCell::create(d.join("cell"), Sample::splat(0)).unwrap();
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();
    let last = Counter::create(d.join("last"), -1).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_cell_writer", 0, d, "");
    for i in 0..READERS {
        kids.spawn("child_cell_reader", i, d, "");
    }
    kids.wait_all_ok();

    assert_eq!(done.load(), READERS as i64);
    let stores = last.load();
    assert!(stores >= 1, "the writer stored nothing");
    let (value, version) = cell.load_versioned().unwrap();
    assert_eq!(version, stores as u64);
    assert_eq!(value, Sample::splat(stores as u64));
    assert_eq!(cell.version(), stores as u64);
    println!("the writer made {stores} stores while the readers read");
}

common::child_entry!(
    #[started_by(readers_never_see_a_torn_value)]
    fn child_cell_writer(ctx: ChildCtx) {
        let cell = SeqCell::<Sample>::open(ctx.path.join("cell")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        let done = Counter::open(ctx.path.join("done")).unwrap();
        let last = Counter::open(ctx.path.join("last")).unwrap();
        barrier(&arrived, READERS + 1);
        let mut i = 0u64;
        let deadline = std::time::Instant::now() + common::WATCHDOG;
        while done.load() < READERS as i64 {
            i += 1;
            let version = cell.store(Sample::splat(i)).unwrap();
            assert_eq!(version, i, "store number {i} made version {version}");
            if i % 16 == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "watchdog: readers never finished"
                );
                // A writer that never pauses starves seqlock readers (on two
                // cores, four processes): pause as a real writer would.
                std::thread::yield_now();
            }
        }
        last.store(i as i64);
    }
);

common::child_entry!(
    #[started_by(readers_never_see_a_torn_value)]
    fn child_cell_reader(ctx: ChildCtx) {
        let cell = SeqCell::<Sample>::open(ctx.path.join("cell")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        let done = Counter::open(ctx.path.join("done")).unwrap();
        barrier(&arrived, READERS + 1);
        let mut prev = 0u64;
        let mut distinct = 0u64;
        let mut busy = 0u64;
        let mut reads = 0usize;
        let deadline = std::time::Instant::now() + common::WATCHDOG;
        // Read until both enough loads were made and enough stores were seen to
        // land in between: a count of events, not of time, so every reader
        // overlaps the writer however the processes are scheduled.
        while reads < READS || distinct < MIN_VERSIONS_SEEN {
            reads += 1;
            if reads % 256 == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "watchdog: the writer stopped"
                );
                // Two cores, four processes: let the writer run.
                std::thread::yield_now();
            }
            // Mostly blocking loads; every fourth one a single attempt.
            let (value, version) = if reads % 4 == 3 {
                match cell.try_load() {
                    Some(got) => got,
                    None => {
                        busy += 1;
                        continue;
                    }
                }
            } else {
                cell.load_versioned().unwrap()
            };
            assert!(
                value.is_whole(),
                "torn read at version {version}: {value:?}"
            );
            assert_eq!(value.a, version, "value of another version than reported");
            assert!(
                version >= prev,
                "version went back from {prev} to {version}"
            );
            distinct += u64::from(version != prev);
            prev = version;
        }
        done.fetch_add(1);
        println!(
            "reader {}: {reads} reads, {distinct} versions seen, {busy} busy try_loads, last {prev}",
            ctx.index
        );
    }
);

const UPDATERS: usize = 4;
const UPDATES: u64 = 500;

/// Four processes each `update` the cell 500 times (+1 to every field):
/// updates are atomic read-modify-writes of the whole value, so none is
/// lost, and the version counts every one.
#[test]
fn updates_from_several_processes_serialize() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cell = SeqCell::create(d.join("cell"), Sample::splat(0)).unwrap();
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..UPDATERS {
        kids.spawn("child_cell_updater", i, d, "");
    }
    kids.wait_all_ok();

    let total = UPDATERS as u64 * UPDATES;
    let (value, version) = cell.load_versioned().unwrap();
    assert_eq!(value, Sample::splat(total));
    assert_eq!(version, total);
}

common::child_entry!(
    #[started_by(updates_from_several_processes_serialize)]
    fn child_cell_updater(ctx: ChildCtx) {
        let cell = SeqCell::<Sample>::open(ctx.path.join("cell")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, UPDATERS);
        for _ in 0..UPDATES {
            let new = cell
                .update(|old| {
                    assert!(old.is_whole(), "update saw a torn value: {old:?}");
                    Sample::splat(old.a + 1)
                })
                .unwrap();
            assert!(new.is_whole());
        }
    }
);

/// A writer process killed with `SIGKILL` while it holds the cell's write
/// lock (inside an `update` closure) leaves the sequence odd with its pid:
/// readers go on reading the last published value without noticing, and
/// the next writer takes the lock over and publishes the next version.
#[test]
fn a_writer_killed_inside_its_write_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cell = SeqCell::create(d.join("cell"), Sample::splat(7)).unwrap();
    cell.store(Sample::splat(8)).unwrap();
    let inside = Counter::create(d.join("inside"), 0).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_cell_stuck_writer", 0, d, "");
    kids.wait_for("the writer to be inside its update", || inside.load() == 1);
    kids.kill(0);

    assert_eq!(cell.load_versioned().unwrap(), (Sample::splat(8), 1));
    let new = cell.update(|old| Sample::splat(old.a + 1)).unwrap();
    assert_eq!(new, Sample::splat(9));
    assert_eq!(cell.load_versioned().unwrap(), (Sample::splat(9), 2));
    let other = SeqCell::<Sample>::open(d.join("cell")).unwrap();
    other.store(Sample::splat(10)).unwrap();
    assert_eq!(cell.load_versioned().unwrap(), (Sample::splat(10), 3));
}

common::child_entry!(
    #[started_by(a_writer_killed_inside_its_write_is_taken_over)]
    fn child_cell_stuck_writer(ctx: ChildCtx) {
        let cell = SeqCell::<Sample>::open(ctx.path.join("cell")).unwrap();
        let inside = Counter::open(ctx.path.join("inside")).unwrap();
        let _ = cell.update(|old| {
            inside.store(1);
            // Held here until the parent kills this process.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let _ = old;
            }
        });
    }
);

/// What a writer killed half way through filling the spare copy leaves
/// (written into the file's bytes: sequence odd, a dead pid, garbage in the
/// copy being written): the published value reads whole, and the next store
/// replaces the garbage.
#[test]
fn a_torn_spare_copy_left_by_a_dead_writer_is_never_read() {
    use std::os::unix::fs::FileExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cell");
    let cell = SeqCell::create(&path, Sample::splat(7)).unwrap();
    cell.store(Sample::splat(8)).unwrap();

    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();

    // Version 1 is copy 1; a writer locked at version 1 (sequence 3) fills
    // copy 0, which starts right after the sequence and writer words.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let body = mmring::layout::HEADER_SIZE;
    file.write_all_at(&3u64.to_ne_bytes(), body).unwrap();
    file.write_all_at(&u64::from(pid).to_ne_bytes(), body + 8)
        .unwrap();
    file.write_all_at(&[0xab; 12], body + 16).unwrap();

    let reader = SeqCell::<Sample>::open(&path).unwrap();
    assert_eq!(reader.load_versioned().unwrap(), (Sample::splat(8), 1));
    cell.store(Sample::splat(9)).unwrap();
    assert_eq!(reader.load_versioned().unwrap(), (Sample::splat(9), 2));
}

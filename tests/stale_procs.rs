//! Stale files: once every process that used a file has died (SIGKILL, no
//! cleanup at all), a new process opens it — or creates it with
//! `open_or_create`, which must open the old file — and takes it over
//! without any manual cleanup, for every kind. The collector (`gc`) sees
//! such files as stale and a held file as in use; a temporary file left by
//! a creator never blocks a later create.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Children, wait_until};
use mmring::gc::{Verdict, gc};
use mmring::map::Map;
use mmring::mpmc::{ByteQueue, Queue, QueueOptions};
use mmring::spsc::{ByteConsumer, ByteProducer, Consumer, Producer};
use mmring::{AtomicArray, Barrier, Counter, Event, Semaphore, SeqCell};

/// Names of the objects the holder makes in the objects directory.
const NAMES: [&str; 13] = [
    "array", "barrier", "bqueue", "bring", "cell", "counter", "event", "map", "queue", "ring",
    "sem", "sem_open", "spare",
];

/// Opens (or creates) one object of every kind in `dir` and uses it the
/// way a live program would: roles taken, items queued, permits held, a
/// barrier joined.
fn hold_everything(dir: &Path) -> Vec<Box<dyn std::any::Any>> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    let c = Counter::open_or_create(dir.join("counter"), 10).unwrap();
    c.fetch_add(1);
    held.push(Box::new(c));
    let a = AtomicArray::<u64>::open_or_create(dir.join("array"), 4).unwrap();
    a[2].store(7);
    held.push(Box::new(a));
    let cell = SeqCell::open_or_create(dir.join("cell"), 0u64).unwrap();
    cell.store(99).unwrap();
    held.push(Box::new(cell));
    let mut p = Producer::<u64>::open_or_create(dir.join("ring"), 8).unwrap();
    let cons = Consumer::<u64>::open(dir.join("ring")).unwrap();
    p.try_push(1).unwrap();
    p.try_push(2).unwrap();
    held.push(Box::new(p));
    held.push(Box::new(cons));
    let mut bp = ByteProducer::create(dir.join("bring"), 4, 16).unwrap();
    let bc = ByteConsumer::open(dir.join("bring")).unwrap();
    bp.try_push(b"hello").unwrap();
    held.push(Box::new(bp));
    held.push(Box::new(bc));
    let q = Queue::<u64>::open_or_create(dir.join("queue"), 8, &QueueOptions::new()).unwrap();
    q.try_push(5).unwrap();
    q.try_push(6).unwrap();
    held.push(Box::new(q));
    let bq = ByteQueue::create(dir.join("bqueue"), 4, 16, &QueueOptions::new()).unwrap();
    bq.try_push(b"world").unwrap();
    held.push(Box::new(bq));
    let m = Map::<u64, u64>::open_or_create(dir.join("map"), 8, &Default::default()).unwrap();
    m.insert(&3, 30).unwrap();
    held.push(Box::new(m));
    let e = Event::open_or_create(dir.join("event")).unwrap();
    e.set();
    held.push(Box::new(e));
    let s = Semaphore::create_bounded(dir.join("sem"), 2).unwrap();
    assert!(s.try_acquire());
    assert!(s.try_acquire());
    held.push(Box::new(s));
    // A semaphore opened (not created) by the dead process, permits held.
    let s2 = Semaphore::open(dir.join("sem_open")).unwrap();
    assert!(s2.try_acquire());
    held.push(Box::new(s2));
    let b = Barrier::create(dir.join("barrier"), 2).unwrap();
    held.push(Box::new(b));
    held
}

/// Takes over everything `hold_everything` made, after its process died.
fn take_over_everything(dir: &Path) {
    let c = Counter::open_or_create(dir.join("counter"), 0).unwrap();
    assert_eq!(c.load(), 11, "open_or_create opened the stale counter");
    let a = AtomicArray::<u64>::open(dir.join("array")).unwrap();
    assert_eq!(a.snapshot(), [0, 0, 7, 0]);
    let cell = SeqCell::<u64>::open_or_create(dir.join("cell"), 0).unwrap();
    assert_eq!(cell.load().unwrap(), 99);
    // Both roles were held by the dead process: both are taken over.
    let mut cons = Consumer::<u64>::open(dir.join("ring")).unwrap();
    let mut p = Producer::<u64>::open_or_create(dir.join("ring"), 8).unwrap();
    assert_eq!(cons.try_pop().unwrap(), 1);
    assert_eq!(cons.try_pop().unwrap(), 2);
    p.try_push(3).unwrap();
    assert_eq!(cons.try_pop().unwrap(), 3);
    let mut bc = ByteConsumer::open(dir.join("bring")).unwrap();
    let mut bp = ByteProducer::open(dir.join("bring")).unwrap();
    let mut buf = [0u8; 16];
    let n = bc.try_pop_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    bp.try_push(b"again").unwrap();
    let n = bc.try_pop_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
    let q = Queue::<u64>::open_or_create(dir.join("queue"), 8, &QueueOptions::new()).unwrap();
    assert_eq!(q.try_pop().unwrap(), 5);
    assert_eq!(q.try_pop().unwrap(), 6);
    q.try_push(7).unwrap();
    assert_eq!(q.try_pop().unwrap(), 7);
    let bq = ByteQueue::open(dir.join("bqueue")).unwrap();
    assert_eq!(bq.pop_timeout(Duration::from_secs(10)).unwrap(), b"world");
    let m = Map::<u64, u64>::open_or_create(dir.join("map"), 8, &Default::default()).unwrap();
    assert_eq!(m.get(&3).unwrap(), Some(30));
    m.insert(&4, 40).unwrap();
    let e = Event::open_or_create(dir.join("event")).unwrap();
    assert!(e.is_set());
    assert!(e.wait_timeout(Duration::from_secs(10)));
    // The dead holder's permits come back.
    let s = Semaphore::open(dir.join("sem")).unwrap();
    assert!(s.acquire_timeout(Duration::from_secs(10)));
    assert!(s.acquire_timeout(Duration::from_secs(10)));
    s.release().unwrap();
    s.release().unwrap();
    let s2 = Semaphore::open(dir.join("sem_open")).unwrap();
    assert!(s2.acquire_timeout(Duration::from_secs(10)));
    s2.release().unwrap();
    let spare = Counter::open(dir.join("spare")).unwrap();
    assert_eq!(spare.load(), 0);
}

#[test]
fn every_kind_is_taken_over_after_its_processes_are_killed() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let objects = d.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let ready = Counter::create(d.join("ready"), 0).unwrap();
    // Made here and closed at once: the dead process opened, not created it.
    drop(Semaphore::create_bounded(objects.join("sem_open"), 1).unwrap());
    drop(Counter::create(objects.join("spare"), 0).unwrap());

    let mut kids = Children::new();
    kids.spawn("child_hold_and_wait", 0, d, "");
    kids.wait_for("the holder to open everything", || ready.load() == 1);
    // Held: every file is in use, and nothing is removed.
    let r = gc(&objects, true).unwrap();
    assert_eq!(r.entries.len(), NAMES.len(), "{r}");
    for e in &r.entries {
        let name = e.path.file_name().unwrap().to_str().unwrap();
        if name == "spare" {
            assert_eq!(e.verdict, Verdict::Removed, "{e}");
        } else {
            assert_eq!(e.verdict, Verdict::InUse, "{e}");
        }
    }
    drop(Counter::create(objects.join("spare"), 0).unwrap());

    kids.kill(0);
    // Dead: every file is stale (listed, not removed: they are taken over
    // below).
    let r = gc(&objects, false).unwrap();
    assert_eq!(r.entries.len(), NAMES.len(), "{r}");
    for e in &r.entries {
        assert_eq!(e.verdict, Verdict::Stale, "{e}");
    }
    let mut names: Vec<_> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, NAMES);

    // A new process takes everything over (two, for the barrier's parties).
    kids.spawn("child_take_over", 0, d, "");
    kids.spawn("child_join_barrier", 1, d, "");
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(every_kind_is_taken_over_after_its_processes_are_killed)]
    fn child_hold_and_wait(ctx: ChildCtx) {
        let _held = hold_everything(&ctx.path.join("objects"));
        let ready = Counter::open(ctx.path.join("ready")).unwrap();
        ready.fetch_add(1);
        // Killed here by the parent.
        std::thread::sleep(common::WATCHDOG);
        panic!("the holder was not killed");
    }
);

common::child_entry!(
    #[started_by(every_kind_is_taken_over_after_its_processes_are_killed)]
    fn child_take_over(ctx: ChildCtx) {
        let objects = ctx.path.join("objects");
        take_over_everything(&objects);
        let b = Barrier::open(objects.join("barrier")).unwrap();
        b.wait_timeout(Duration::from_secs(30)).unwrap();
    }
);

common::child_entry!(
    #[started_by(every_kind_is_taken_over_after_its_processes_are_killed)]
    fn child_join_barrier(ctx: ChildCtx) {
        let b = Barrier::open(ctx.path.join("objects").join("barrier")).unwrap();
        b.wait_timeout(Duration::from_secs(30)).unwrap();
    }
);

/// A creator killed in the middle of a create leaves `.mmring-tmp.PID-SEQ`
/// behind; a later creator whose pid is the same number (pids are reused)
/// and whose sequence numbers collide must not fail, and the collector
/// removes the leftover once its pid is dead.
#[test]
fn a_leftover_temporary_file_never_blocks_a_create() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let objects = d.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let go = Counter::create(d.join("go"), 0).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_create_when_told", 0, d, "");
    let pid = kids.pid(0);
    // The leftovers a dead process with the child's pid would have left
    // (a half-written file: no magic yet, or a whole one not yet linked).
    let leftovers: Vec<_> = (0..3)
        .map(|seq| objects.join(format!(".mmring-tmp.{pid}-{seq}")))
        .collect();
    std::fs::write(&leftovers[0], b"").unwrap();
    std::fs::write(&leftovers[1], b"half").unwrap();
    drop(Counter::create(d.join("whole"), 0).unwrap());
    std::fs::rename(d.join("whole"), &leftovers[2]).unwrap();
    // While the pid lives, they are not touched.
    let r = gc(&objects, true).unwrap();
    assert_eq!(r.count(Verdict::InUse), 3, "{r}");
    go.store(1);
    kids.wait_all_ok();
    assert_eq!(Counter::open(objects.join("made")).unwrap().load(), 5);
    for l in &leftovers {
        assert!(l.exists(), "{} was removed by the creator", l.display());
    }
    // Its pid is dead now: the leftovers are stale, the object is not
    // (this process holds it open now).
    let made = Counter::open(objects.join("made")).unwrap();
    let r = gc(&objects, true).unwrap();
    assert_eq!(r.count(Verdict::Removed), 3, "{r}");
    assert_eq!(r.count(Verdict::InUse), 1, "{r}");
    for e in &r.entries {
        if e.verdict == Verdict::Removed {
            assert_eq!(e.kind, "temporary file", "{e}");
        }
    }
    for l in &leftovers {
        assert!(!l.exists());
    }
    assert_eq!(made.load(), 5);
}

common::child_entry!(
    #[started_by(a_leftover_temporary_file_never_blocks_a_create)]
    fn child_create_when_told(ctx: ChildCtx) {
        let go = Counter::open(ctx.path.join("go")).unwrap();
        wait_until("the go signal", || go.load() != 0);
        let c = Counter::create(ctx.path.join("objects").join("made"), 5).unwrap();
        drop(c);
        // And an open_or_create of a new name, for good measure.
        drop(Counter::open_or_create(ctx.path.join("objects").join("made"), 0).unwrap());
    }
);

/// Creators really killed at random moments, most of them in the middle
/// of a create (reserving and initializing a large file): whatever they
/// left behind — temporary files, finished files — is stale once they are
/// dead, `gc` removes it all, and the same names can be created afresh.
#[test]
fn creators_killed_mid_create_leave_nothing_that_blocks() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let objects = d.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let started = Counter::create(d.join("started"), 0).unwrap();
    let mut kids = Children::new();
    let mut temps_seen = 0;
    for round in 0..6 {
        started.store(0);
        kids.spawn("child_create_forever", round, d, "");
        kids.wait_for("the creator to start creating", || started.load() > 0);
        // A moment into its loop of creates, varying from round to round.
        std::thread::sleep(Duration::from_micros(300 * round as u64));
        kids.kill(round);
        let r = gc(&objects, false).unwrap();
        temps_seen += r
            .entries
            .iter()
            .filter(|e| e.kind == "temporary file")
            .count();
        for e in &r.entries {
            assert_eq!(e.verdict, Verdict::Stale, "{e}");
        }
        let r = gc(&objects, true).unwrap();
        assert_eq!(r.count(Verdict::InUse), 0, "{r}");
        assert_eq!(std::fs::read_dir(&objects).unwrap().count(), 0, "{r}");
    }
    // The names are free again.
    let a = AtomicArray::<u64>::create(objects.join("big"), 1 << 16).unwrap();
    a[0].store(1);
    println!("temporary files left by killed creators: {temps_seen}");
}

common::child_entry!(
    #[started_by(creators_killed_mid_create_leave_nothing_that_blocks)]
    fn child_create_forever(ctx: ChildCtx) {
        let started = Counter::open(ctx.path.join("started")).unwrap();
        let objects = ctx.path.join("objects");
        for i in 0u64.. {
            started.store(1);
            let p = objects.join("big");
            // 8 MiB reserved and zeroed per create: most of the time goes there.
            let a = AtomicArray::<u64>::open_or_create(&p, 1 << 20).unwrap();
            a[0].store(i);
            drop(a);
            if i % 2 == 0 {
                mmring::remove(&p).unwrap();
            }
        }
    }
);

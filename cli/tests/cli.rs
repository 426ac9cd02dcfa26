//! The `mmring` command line, run as a real process: `mmring inspect` on a
//! valid file prints what it holds and succeeds; on a bad or missing file it
//! prints one clear error line and exits non-zero. `mmring gc DIR` lists the
//! stale mmring files (and removes them with `--remove`), never a file held
//! open by a live process, never a file that is not mmring's.

// The library's helpers for tests that start real processes, shared with
// its own integration tests.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use mmring::{AtomicArray, Counter, CreateOptions, SeqCell};

fn mmring(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(args)
        .output()
        .expect("run the mmring binary")
}

fn inspect(path: &Path) -> (Output, String, String) {
    let out = mmring(&["inspect".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

#[test]
fn inspect_prints_a_counter() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hits");
    let c = Counter::create_with(&p, 41, &CreateOptions::new().label("page hits")).unwrap();
    c.fetch_add(1);
    let (out, stdout, stderr) = inspect(&p);
    assert!(
        out.status.success(),
        "status {}, stderr: {stderr}",
        out.status
    );
    for needle in [
        &format!("path:        {}", p.display()) as &str,
        "kind:        counter",
        "payload:     i64 (8 B, align 8)",
        "label:       \"page hits\"",
        "value:       42",
        "state:       open",
        &format!("attached:    {} (alive)", std::process::id()),
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    assert!(stderr.is_empty(), "{stderr}");
    // The binary only reads: the value and the attached list are unchanged.
    assert_eq!(c.load(), 42);
    let status = c.region().status(mmring::Patience::DEFAULT).unwrap();
    assert_eq!(
        status.attached_pids().collect::<Vec<_>>(),
        [std::process::id()]
    );
}

#[test]
fn inspect_prints_an_array_and_a_cell() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("hist");
    let arr = AtomicArray::<u64>::create(&a, 3).unwrap();
    arr[1].store(7);
    let (out, stdout, _) = inspect(&a);
    assert!(out.status.success());
    assert!(stdout.contains("kind:        atomic array"), "{stdout}");
    assert!(stdout.contains("elements:    3 x u64"), "{stdout}");
    assert!(
        stdout.contains("payload:     u64 (8 B, align 8)"),
        "{stdout}"
    );
    assert!(stdout.contains("values:      [0, 7, 0]"), "{stdout}");

    let s = dir.path().join("cell");
    let cell = SeqCell::create(&s, 0u32).unwrap();
    cell.store(0x0403_0201).unwrap();
    let (out, stdout, _) = inspect(&s);
    assert!(out.status.success());
    assert!(stdout.contains("kind:        seqlock cell"), "{stdout}");
    assert!(stdout.contains("cell version: 1"), "{stdout}");
    assert!(
        stdout.contains("payload:     u32 (4 B, align 4)"),
        "{stdout}"
    );
    let bytes = 0x0403_0201u32
        .to_ne_bytes()
        .map(|b| format!("{b:02x}"))
        .join(" ");
    assert!(
        stdout.contains(&format!("value bytes: {bytes}")),
        "{stdout}"
    );
}

#[test]
fn inspect_refuses_a_file_that_is_not_mmring() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "just some text, long enough to hold a magic\n").unwrap();
    let (out, stdout, stderr) = inspect(&p);
    assert!(
        !out.status.success(),
        "inspect of a text file succeeded:\n{stdout}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one error line expected:\n{stderr}"
    );
    assert!(
        stderr.starts_with(&format!(
            "mmring inspect: {}: not an mmring file (expected magic",
            p.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("found"), "{stderr}");
    // It was not modified.
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "just some text, long enough to hold a magic\n"
    );
}

#[test]
fn inspect_refuses_missing_empty_and_truncated_files() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let (out, _, stderr) = inspect(&missing);
    assert!(!out.status.success());
    assert!(stderr.contains("no such file"), "{stderr}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (out, _, stderr) = inspect(&empty);
    assert!(!out.status.success());
    assert!(stderr.contains("empty file"), "{stderr}");

    let cut = dir.path().join("cut");
    drop(Counter::create(&cut, 1).unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(4100)
        .unwrap();
    let (out, _, stderr) = inspect(&cut);
    assert!(!out.status.success());
    assert!(
        stderr.contains("truncated file (expected 4160 bytes, found 4100)"),
        "{stderr}"
    );
}

#[test]
fn bad_usage_is_an_error() {
    let _serial = common::serial();
    let out = mmring(&["inspect".as_ref()]);
    assert!(!out.status.success(), "inspect without a path succeeded");
    let out = mmring(&["no-such-command".as_ref()]);
    assert!(!out.status.success());
    let out = mmring(&["--help".as_ref()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("inspect"));
}

fn gc(dir: &Path, remove: bool) -> (Output, String, String) {
    let mut args = vec!["gc".as_ref(), dir.as_os_str()];
    if remove {
        args.push("--remove".as_ref());
    }
    let out = mmring(&args);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        out.status.success(),
        "gc: status {}, stderr: {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "{stderr}");
    (out, stdout, stderr)
}

/// The line `gc` printed for `path`.
fn line_for<'a>(stdout: &'a str, path: &Path) -> &'a str {
    let start = format!("{}  ", path.display());
    stdout
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no line for {}:\n{stdout}", path.display()))
}

/// Foreign entries `gc` must leave alone, with a way to check they were.
fn foreign_entries(dir: &Path) -> impl Fn() {
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not mmring\n").unwrap();
    let sub = dir.join("subdir");
    std::fs::create_dir(&sub).unwrap();
    // A stale mmring file inside a subdirectory: not looked at (not
    // recursive).
    drop(Counter::create(sub.join("inner"), 0).unwrap());
    let link = dir.join("link");
    std::os::unix::fs::symlink(&text, &link).unwrap();
    let odd = dir.join(".mmring-tmp.not-a-pid");
    std::fs::write(&odd, "odd").unwrap();
    move || {
        assert_eq!(std::fs::read_to_string(&text).unwrap(), "not mmring\n");
        assert!(sub.join("inner").exists());
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&odd).unwrap(), "odd");
    }
}

#[test]
fn gc_lists_a_stale_file_and_removes_it_with_the_flag() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let untouched = foreign_entries(d);
    let stale = d.join("old");
    drop(Counter::create_with(&stale, 3, &CreateOptions::new().label("old")).unwrap());
    let held = d.join("held");
    let h = Counter::create(&held, 1).unwrap();

    let (_, stdout, _) = gc(d, false);
    let line = line_for(&stdout, &stale);
    assert!(line.contains("  counter  stale: "), "{line}");
    assert!(line.contains("no process has it open"), "{line}");
    let line = line_for(&stdout, &held);
    assert!(line.contains("  counter  in use: "), "{line}");
    assert!(
        line.contains(&format!("attached: {} (alive)", std::process::id())),
        "{line}"
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout
            .ends_with("2 mmring file(s): 1 in use, 1 stale, 0 removed; 4 other entries ignored\n"),
        "{stdout}"
    );
    assert!(stale.exists(), "listed without --remove, yet removed");

    let (_, stdout, _) = gc(d, true);
    let line = line_for(&stdout, &stale);
    assert!(line.contains("  counter  removed: "), "{line}");
    assert!(line_for(&stdout, &held).contains("in use"), "{stdout}");
    assert!(stdout.contains("1 in use, 1 stale, 1 removed"), "{stdout}");
    assert!(!stale.exists());
    assert!(held.exists());
    assert_eq!(h.fetch_add(1), 1);
    untouched();

    // Nothing left to collect but the held file; once closed, it goes too.
    drop(h);
    let (_, stdout, _) = gc(d, true);
    assert!(line_for(&stdout, &held).contains("removed"), "{stdout}");
    assert!(!held.exists());
    untouched();
}

#[test]
fn gc_never_removes_a_file_held_by_a_live_child_whatever_its_attached_list() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let control = dir.path().join("control");
    std::fs::create_dir(&control).unwrap();
    let ready = Counter::create(control.join("ready"), 0).unwrap();
    let go = Counter::create(control.join("go"), 0).unwrap();
    let path = objects.join("jobs");
    drop(mmring::mpmc::Queue::<u64>::create(&path, 4).unwrap());

    let mut kids = common::Children::new();
    kids.spawn("child_hold_until_told", 0, &control, path.to_str().unwrap());
    let pid = kids.pid(0);
    kids.wait_for("the child to open the queue", || ready.load() == 1);
    let (_, stdout, _) = gc(&objects, true);
    let line = line_for(&stdout, &path);
    assert!(line.contains("  mpmc queue  in use: "), "{line}");
    assert!(line.contains(&format!("{pid} (alive)")), "{line}");
    assert!(path.exists());

    // The attached list is advisory: emptied (as if it had overflowed, or
    // the child had not attached yet), the file is still in use.
    {
        let w = mmring::mpmc::Queue::<u64>::open(&path).unwrap();
        let lock = w.region().status_lock();
        let (mut s, _) = lock
            .read::<mmring::layout::Status>(mmring::Patience::DEFAULT)
            .unwrap();
        s.attached = [0; mmring::layout::MAX_ATTACHED];
        lock.write(&s, mmring::Patience::DEFAULT).unwrap();
        // Closed here (its lock released); its detach finds itself no
        // longer listed and leaves the list empty.
    }
    let (_, stdout, _) = gc(&objects, true);
    let line = line_for(&stdout, &path);
    assert!(line.contains("in use: "), "{line}");
    assert!(line.contains("attached: none"), "{line}");
    assert!(path.exists());

    go.store(1);
    kids.wait_all_ok();
    // The child closed it: now it goes.
    let (_, stdout, _) = gc(&objects, true);
    assert!(line_for(&stdout, &path).contains("removed"), "{stdout}");
    assert!(!path.exists());
}

common::child_entry!(
    /// Holds the queue open until the parent says go.
    #[started_by(gc_never_removes_a_file_held_by_a_live_child_whatever_its_attached_list)]
    fn child_hold_until_told(ctx: ChildCtx) {
        let q = mmring::mpmc::Queue::<u64>::open(&ctx.arg).unwrap();
        q.try_push(1).unwrap();
        let ready = Counter::open(ctx.path.join("ready")).unwrap();
        let go = Counter::open(ctx.path.join("go")).unwrap();
        ready.store(1);
        common::wait_until("the go signal", || go.load() != 0);
        drop(q);
    }
);

#[test]
fn gc_removes_the_file_of_a_killed_process_and_its_leftover_temporary_file() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let control = dir.path().join("control");
    std::fs::create_dir(&control).unwrap();
    let ready = Counter::create(control.join("ready"), 0).unwrap();
    let path = objects.join("jobs");
    drop(mmring::mpmc::Queue::<u64>::create(&path, 4).unwrap());
    let mut kids = common::Children::new();
    kids.spawn(
        "child_hold_until_killed",
        0,
        &control,
        path.to_str().unwrap(),
    );
    let pid = kids.pid(0);
    kids.wait_for("the child to open the queue", || ready.load() == 1);
    // What a creator killed in the middle of a create leaves behind.
    let tmp = objects.join(format!(".mmring-tmp.{pid}-0"));
    std::fs::write(&tmp, b"half a header").unwrap();
    let (_, stdout, _) = gc(&objects, true);
    assert!(line_for(&stdout, &path).contains("in use"), "{stdout}");
    let line = line_for(&stdout, &tmp);
    assert!(
        line.contains(&format!(
            "  temporary file  in use: creator pid {pid} is alive"
        )),
        "{line}"
    );
    kids.kill(0);

    let (_, stdout, _) = gc(&objects, false);
    let line = line_for(&stdout, &path);
    assert!(line.contains("  mpmc queue  stale: "), "{line}");
    assert!(line.contains(&format!("{pid} (dead)")), "{line}");
    let line = line_for(&stdout, &tmp);
    assert!(
        line.contains(&format!(
            "  temporary file  stale: creator pid {pid} is dead"
        )),
        "{line}"
    );
    let (_, stdout, _) = gc(&objects, true);
    assert!(stdout.contains("0 in use, 2 stale, 2 removed"), "{stdout}");
    assert!(!path.exists());
    assert!(!tmp.exists());
}

common::child_entry!(
    /// Holds the queue open until the parent kills it.
    #[started_by(gc_removes_the_file_of_a_killed_process_and_its_leftover_temporary_file)]
    fn child_hold_until_killed(ctx: ChildCtx) {
        let q = mmring::mpmc::Queue::<u64>::open(&ctx.arg).unwrap();
        q.try_push(1).unwrap();
        Counter::open(ctx.path.join("ready")).unwrap().store(1);
        std::thread::sleep(common::WATCHDOG);
        panic!("the holder was not killed");
    }
);

#[test]
fn gc_of_a_missing_directory_or_a_file_is_a_clear_error() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = mmring(&["gc".as_ref(), missing.as_os_str()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!("mmring gc: {}: no such directory\n", missing.display())
    );
    assert!(out.stdout.is_empty());

    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = mmring(&["gc".as_ref(), file.as_os_str(), "--remove".as_ref()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!("mmring gc: {}: not a directory\n", file.display())
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");

    let out = mmring(&["gc".as_ref()]);
    assert!(!out.status.success(), "gc without a directory succeeded");
}

/// The curves a latency picture must hold, by a part of their label.
fn mechanisms(wakeup: bool) -> Vec<&'static str> {
    let mut m = if wakeup {
        vec![
            "pthread mutex+condvar ring, echo side asleep",
            "Unix pipe, echo side asleep",
            "mmring spsc push/pop_timeout, echo side asleep",
        ]
    } else {
        vec![
            "pthread mutex+condvar ring (PROCESS_SHARED)",
            "Unix pipe, 1 message per write/read",
            "mmring spsc try_push/try_pop (spinning)",
            "mmring spsc push/pop_timeout (blocking)",
            "one cache line bounced (the floor)",
        ]
    };
    if cfg!(feature = "iceoryx2") {
        if wakeup {
            m.push("iceoryx2 event notify/wait, echo side asleep");
        } else {
            m.extend([
                "iceoryx2 publish/subscribe (busy poll)",
                "iceoryx2 publish/subscribe, 64 B round trips",
                "iceoryx2 event notify/wait (blocking)",
            ]);
        }
    }
    m
}

#[test]
fn bench_plot_draws_the_bars_and_a_curve_per_mechanism() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let plots = dir.path().join("plots");
    let out = mmring(&[
        "bench".as_ref(),
        "spsc".as_ref(),
        "--quick".as_ref(),
        "--rounds".as_ref(),
        "1".as_ref(),
        "--window-ms".as_ref(),
        "5".as_ref(),
        "--plot".as_ref(),
        plots.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 3 SVG files"), "{stderr}");
    let svg = |name: &str| {
        let text =
            std::fs::read_to_string(plots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.starts_with("<svg"), "{name} is not an SVG");
        text
    };
    for (name, wakeup) in [("spsc-latency.svg", false), ("spsc-wakeup.svg", true)] {
        let text = svg(name);
        let mechanisms = mechanisms(wakeup);
        for m in &mechanisms {
            assert!(text.contains(m), "{name} has no curve for {m}");
        }
        // A line per curve, and one more in the legend.
        let lines = text.matches("<polyline").count();
        assert!(lines >= 2 * mechanisms.len(), "{name}: {lines} lines");
    }
    let bars = svg("spsc-throughput.svg");
    for m in [
        "mmring spsc try_push/try_pop (spinning)",
        "rtrb push/pop, 2 threads",
    ] {
        assert!(bars.contains(m), "no bar for {m}");
    }
    assert!(bars.matches("<rect").count() >= 10);
}

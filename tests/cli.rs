//! The `mmring` command line, run as a real process: `mmring inspect` on a
//! valid file prints what it holds and succeeds; on a bad or missing file it
//! prints one clear error line and exits non-zero.

#![cfg(feature = "cli")]

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
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("hist");
    let arr = AtomicArray::<u64>::create(&a, 3).unwrap();
    arr[1].store(7);
    let (out, stdout, _) = inspect(&a);
    assert!(out.status.success());
    assert!(stdout.contains("kind:        atomic array"), "{stdout}");
    assert!(stdout.contains("elements:    3 x u64"), "{stdout}");
    assert!(stdout.contains("values:      [0, 7, 0]"), "{stdout}");

    let s = dir.path().join("cell");
    let cell = SeqCell::create(&s, 0u32).unwrap();
    cell.store(0x0403_0201).unwrap();
    let (out, stdout, _) = inspect(&s);
    assert!(out.status.success());
    assert!(stdout.contains("kind:        seqlock cell"), "{stdout}");
    assert!(stdout.contains("cell version: 1"), "{stdout}");
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
    let out = mmring(&["inspect".as_ref()]);
    assert!(!out.status.success(), "inspect without a path succeeded");
    let out = mmring(&["no-such-command".as_ref()]);
    assert!(!out.status.success());
    let out = mmring(&["--help".as_ref()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("inspect"));
}

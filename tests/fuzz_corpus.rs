//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) through the
//! fuzz targets' bodies on stable Rust, without libFuzzer: every seed and
//! every regression input found by fuzzing runs on each `cargo test`.
//!
//! The seeds are generated, not hand-edited: after changing an input
//! format, rewrite them with
//! `MMRING_WRITE_SEEDS=1 cargo test --test fuzz_corpus -- --ignored write_seeds`
//! (files the fuzzer added, such as regressions, are left alone).

#[path = "../fuzz/bodies/mod.rs"]
mod bodies;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every file of the target's corpus (sorted, so that a failure names
/// the same file every time).
fn replay(target: &str, body: fn(&[u8])) {
    let dir = corpus(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("read dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus under {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(run.is_ok(), "{target}: input {} failed", file.display());
    }
}

#[test]
fn open_file() {
    replay("open_file", bodies::open_file::run);
}

#[test]
fn spsc_ops() {
    replay("spsc_ops", bodies::spsc_ops::run);
}

#[test]
fn mpmc_ops() {
    replay("mpmc_ops", bodies::mpmc_ops::run);
}

#[test]
fn hostile_peer() {
    replay("hostile_peer", bodies::hostile_peer::run);
}

#[test]
fn seqcell() {
    replay("seqcell", bodies::seqcell::run);
}

#[test]
fn counter() {
    replay("counter", bodies::counter::run);
}

/// Every generated seed is also run straight from the generator, so a seed
/// that no longer decodes to what it meant fails here.
#[test]
fn generated_seeds_run() {
    for (target, name, data) in bodies::seeds::all() {
        let body: fn(&[u8]) = match target {
            "open_file" => bodies::open_file::run,
            "spsc_ops" => bodies::spsc_ops::run,
            "mpmc_ops" => bodies::mpmc_ops::run,
            "hostile_peer" => bodies::hostile_peer::run,
            "seqcell" => bodies::seqcell::run,
            _ => bodies::counter::run,
        };
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(run.is_ok(), "{target}: seed {name} failed");
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand with MMRING_WRITE_SEEDS=1"]
fn write_seeds() {
    if std::env::var_os("MMRING_WRITE_SEEDS").is_none() {
        return;
    }
    for (target, name, data) in bodies::seeds::all() {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).expect("make corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
    }
}

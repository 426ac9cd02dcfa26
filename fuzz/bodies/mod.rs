//! The fuzz targets' bodies: plain functions over a byte string, called by
//! the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the corpus
//! replay test (`tests/fuzz_corpus.rs`), which runs every file under
//! `fuzz/corpus/<target>/` through them on stable Rust.
//!
//! Inputs are decoded with a small hand-written reader rather than
//! `arbitrary`: each operation is an opcode byte and its arguments, so the
//! committed seeds keep their meaning whatever version of a derive crate
//! is around, and `seeds.rs` can write meaningful sequences directly.
//!
//! A body panics (a fuzzer "crash") when the library panics, or when a
//! model check fails (wrong value, wrong order, wrong error).

#![allow(dead_code)]

pub mod counter;
pub mod hostile_peer;
pub mod mpmc_ops;
pub mod open_file;
pub mod seeds;
pub mod seqcell;
pub mod spsc_ops;

use std::path::PathBuf;

/// Reads the input front to back; past its end every read is zero, so any
/// byte string decodes to something.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// Appends the encoding of an operation for `Reader` (the seeds' writer).
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// A fresh directory for one run's files (in `/dev/shm` when there is one:
/// no disk traffic), removed when dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("mmring-fuzz")
                .tempdir_in(shm)
                .or_else(|_| tempfile::tempdir())
        } else {
            tempfile::tempdir()
        }
        .expect("make a scratch directory");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

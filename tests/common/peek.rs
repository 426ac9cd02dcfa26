//! The words of an MPMC queue file, read with `pread` as `docs/FORMAT.md`
//! lays them out (control words at the start of the body, then slots of
//! `[sequence, claim, payload...]`): how the process tests look at a queue
//! while the process that could change it is stopped.

use std::os::unix::fs::FileExt;

use mmring::Payload;
use mmring::mpmc::Queue;

/// The claim word's roles (bits 63-62; pid in 61-40, position in 39-0).
pub const ROLE_PRODUCER: u64 = 1;
pub const ROLE_CONSUMER: u64 = 2;

/// A read-only view of a queue file's words.
pub struct Peek {
    file: std::fs::File,
    body: u64,
    pub capacity: u64,
    slot_size: u64,
}

impl Peek {
    pub fn new<T: Payload>(q: &Queue<T>) -> Self {
        let d = *q.region().descriptor();
        Self {
            file: std::fs::File::open(q.region().path()).unwrap(),
            body: d.body_offset,
            capacity: d.capacity,
            slot_size: d.slot_size,
        }
    }

    fn word(&self, offset: u64) -> u64 {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, offset).unwrap();
        u64::from_ne_bytes(b)
    }

    /// The tail's position (bit 63 is the closed mark).
    pub fn tail(&self) -> u64 {
        self.word(self.body) & !(1 << 63)
    }

    pub fn head(&self) -> u64 {
        self.word(self.body + 128)
    }

    /// Slots recovered from dead processes so far.
    pub fn recovered(&self) -> u64 {
        self.word(self.body + 296)
    }

    /// Slot word `i` of position `pos` (0 sequence, 1 claim, 2.. payload).
    pub fn slot_word(&self, pos: u64, i: u64) -> u64 {
        let slot = pos & (self.capacity - 1);
        self.word(self.body + 384 + slot * self.slot_size + i * 8)
    }

    /// The sequence and claim of the slot of position `pos`.
    pub fn slot(&self, pos: u64) -> (u64, u64) {
        (self.slot_word(pos, 0), self.slot_word(pos, 1))
    }
}

//! The bytes of an mmring file: the header page (descriptor + status block)
//! and where the body starts. `docs/FORMAT.md` describes the same bytes for
//! readers in other languages; the assertions below pin every offset it names.
//!
//! ```text
//! 0      Descriptor (256 B)   written once before the file is published; read
//!                             with pread(2) and validated at every open; the
//!                             payload name at 128..192
//! 256    status seqlock       seq, writer pid, then two copies of the Status words
//! 496    reserved (zero)
//! 4096   body                 the object: counter, array, cell, ring ...
//! ```

use std::fmt;
use std::mem::offset_of;

use bytemuck::{Pod, Zeroable};
use static_assertions::{const_assert, const_assert_eq};

pub use crate::error::LayoutError;
use crate::pod::{MAX_NAME_LEN, NameError, TypeInfo, fnv1a, validate_name};

/// The first eight bytes of every mmring file.
pub const MAGIC: [u8; 8] = *b"MMRING\0\x1a";

/// The format version this build writes and reads.
pub const VERSION: u32 = 5;

/// Size of the header page; the body starts here.
pub const HEADER_SIZE: u64 = 4096;

/// Offset of the status seqlock in the header page.
pub const STATUS_OFFSET: usize = 256;

/// Most attached pids the status block records.
pub const MAX_ATTACHED: usize = 16;

/// Bytes of the user label (UTF-8, NUL-padded).
pub const LABEL_LEN: usize = 32;

/// Largest body any file may declare (1 TiB): a bound that rejects absurd
/// sizes before any arithmetic on them can overflow.
pub const MAX_BODY: u64 = 1 << 40;

/// What object a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Kind {
    /// A single `i64` [`Counter`](crate::Counter).
    Counter = 1,
    /// An [`AtomicArray`](crate::AtomicArray) of `capacity` elements.
    AtomicArray = 2,
    /// A [`SeqCell`](crate::SeqCell) holding one value.
    SeqCell = 3,
    /// A single-producer single-consumer ring ([`spsc`](crate::spsc)).
    Spsc = 4,
    /// A multi-producer multi-consumer queue of typed values
    /// ([`mpmc::Queue`](crate::mpmc::Queue)).
    Mpmc = 5,
    /// A multi-producer multi-consumer queue of byte messages
    /// ([`mpmc::ByteQueue`](crate::mpmc::ByteQueue)).
    MpmcBytes = 6,
    /// A single-producer single-consumer ring of byte messages
    /// ([`spsc::ByteProducer`](crate::spsc::ByteProducer)).
    SpscBytes = 7,
    /// A shared hash map ([`Map`](crate::map::Map)).
    Map = 8,
    /// An [`Event`](crate::Event).
    Event = 9,
    /// A [`Semaphore`](crate::Semaphore).
    Semaphore = 10,
    /// A [`Barrier`](crate::Barrier).
    Barrier = 11,
}

impl Kind {
    /// The kind stored as `raw`, if this build knows it.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Counter,
            2 => Self::AtomicArray,
            3 => Self::SeqCell,
            4 => Self::Spsc,
            5 => Self::Mpmc,
            6 => Self::MpmcBytes,
            7 => Self::SpscBytes,
            8 => Self::Map,
            9 => Self::Event,
            10 => Self::Semaphore,
            11 => Self::Barrier,
            _ => return None,
        })
    }

    /// The lowercase name used in errors and by `mmring inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::AtomicArray => "atomic array",
            Self::SeqCell => "seqlock cell",
            Self::Spsc => "spsc ring",
            Self::Mpmc => "mpmc queue",
            Self::MpmcBytes => "mpmc byte queue",
            Self::SpscBytes => "spsc byte ring",
            Self::Map => "map",
            Self::Event => "event",
            Self::Semaphore => "semaphore",
            Self::Barrier => "barrier",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The descriptor: written once, before the file gets its name, never again.
///
/// All integers are native endian (the file is shared by processes on one
/// machine, never moved between machines of different endianness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Descriptor {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// [`Kind`] as `u32`.
    pub kind: u32,
    /// Length of the whole file in bytes.
    pub total_size: u64,
    /// Where the body starts ([`HEADER_SIZE`]).
    pub body_offset: u64,
    /// Length of the body in bytes.
    pub body_size: u64,
    /// Payload element size in bytes (0 for untyped kinds).
    pub elem_size: u32,
    /// Payload element alignment (0 for untyped kinds).
    pub elem_align: u32,
    /// Bytes of the payload name in [`name`](Self::name) (1 to
    /// [`MAX_NAME_LEN`]).
    pub name_len: u32,
    /// Zero.
    pub reserved0: u32,
    /// Number of elements (array length, ring slots; 1 for single values).
    pub capacity: u64,
    /// Bytes per slot (the element size, or the slot of a byte ring).
    pub slot_size: u64,
    /// Creation flags; none defined yet, must be 0.
    pub flags: u64,
    /// Zero.
    pub reserved: [u64; 6],
    /// The payload's stable name (see [`TypeInfo`]): `name_len` bytes of
    /// UTF-8 without NUL, then zeros.
    pub name: [u8; MAX_NAME_LEN],
    /// Zero.
    pub reserved_tail: [u64; 7],
    /// FNV-1a of bytes 0..248 (the name included).
    pub checksum: u64,
}

const_assert_eq!(size_of::<Descriptor>(), 256);
const_assert_eq!(offset_of!(Descriptor, magic), 0);
const_assert_eq!(offset_of!(Descriptor, version), 8);
const_assert_eq!(offset_of!(Descriptor, kind), 12);
const_assert_eq!(offset_of!(Descriptor, total_size), 16);
const_assert_eq!(offset_of!(Descriptor, body_offset), 24);
const_assert_eq!(offset_of!(Descriptor, body_size), 32);
const_assert_eq!(offset_of!(Descriptor, elem_size), 40);
const_assert_eq!(offset_of!(Descriptor, elem_align), 44);
const_assert_eq!(offset_of!(Descriptor, name_len), 48);
const_assert_eq!(offset_of!(Descriptor, reserved0), 52);
const_assert_eq!(offset_of!(Descriptor, capacity), 56);
const_assert_eq!(offset_of!(Descriptor, slot_size), 64);
const_assert_eq!(offset_of!(Descriptor, flags), 72);
const_assert_eq!(offset_of!(Descriptor, reserved), 80);
const_assert_eq!(offset_of!(Descriptor, name), 128);
const_assert_eq!(MAX_NAME_LEN, 64);
const_assert_eq!(offset_of!(Descriptor, reserved_tail), 192);
const_assert_eq!(offset_of!(Descriptor, checksum), 248);

impl Descriptor {
    /// A sealed descriptor (checksum filled in) for a new file. `elem`'s
    /// name must fit ([`TypeInfo::check_name`]); a longer one is cut.
    pub fn new(kind: Kind, elem: TypeInfo, capacity: u64, slot_size: u64, body_size: u64) -> Self {
        let mut d = Self {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u32,
            total_size: HEADER_SIZE + body_size,
            body_offset: HEADER_SIZE,
            body_size,
            elem_size: elem.size,
            elem_align: elem.align,
            name_len: elem.name().len() as u32,
            reserved0: 0,
            capacity,
            slot_size,
            flags: 0,
            reserved: [0; 6],
            name: elem.name_bytes(),
            reserved_tail: [0; 7],
            checksum: 0,
        };
        d.checksum = d.compute_checksum();
        d
    }

    /// FNV-1a over every byte before the checksum field.
    pub fn compute_checksum(&self) -> u64 {
        fnv1a(&bytemuck::bytes_of(self)[..offset_of!(Descriptor, checksum)])
    }

    /// The payload name, checked: `name_len` within 1..=[`MAX_NAME_LEN`],
    /// UTF-8 without NUL, zeros after it.
    ///
    /// # Errors
    ///
    /// What is wrong with the stored bytes (they are untrusted).
    pub fn payload_name(&self) -> Result<&str, NameError> {
        let len = self.name_len as usize;
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                len,
                max: MAX_NAME_LEN,
            });
        }
        let name = validate_name(&self.name[..len])?;
        if self.name[len..].iter().any(|&b| b != 0) {
            return Err(NameError::Padding { len });
        }
        Ok(name)
    }

    /// The payload type recorded here (its name as stored: see
    /// [`Descriptor::payload_name`] for the checked one).
    pub fn type_info(&self) -> TypeInfo {
        TypeInfo::from_raw(self.elem_size, self.elem_align, self.name_len, self.name)
    }

    /// The kind recorded here, if this build knows it.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_raw(self.kind)
    }
}

/// `Status::state`: the object is in use.
pub const STATE_OPEN: u32 = 1;
/// `Status::state`: the object was closed (rings: no more pushes).
pub const STATE_CLOSED: u32 = 2;

/// The status block: mutable facts about the object, kept under the header's
/// seqlock so that anyone can read them whole without blocking a writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Status {
    /// [`STATE_OPEN`] or [`STATE_CLOSED`].
    pub state: u32,
    /// Pid of the process that created the file.
    pub creator_pid: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// A short user label, UTF-8, NUL-padded.
    pub label: [u8; LABEL_LEN],
    /// Pids of the processes that have the file open (0 = free entry).
    /// Advisory: a process killed before it could detach stays listed until
    /// someone notices it is dead.
    pub attached: [u32; MAX_ATTACHED],
}

const_assert_eq!(size_of::<Status>(), 112);
const_assert_eq!(offset_of!(Status, state), 0);
const_assert_eq!(offset_of!(Status, creator_pid), 4);
const_assert_eq!(offset_of!(Status, created_unix_ns), 8);
const_assert_eq!(offset_of!(Status, label), 16);
const_assert_eq!(offset_of!(Status, attached), 48);

/// Words of the status seqlock: sequence, writer pid, then two copies of
/// the status (`raw::seqlock::words_for::<Status>()`, pinned there).
pub const STATUS_WORDS: usize = 2 + 2 * size_of::<Status>().div_ceil(8);
const_assert_eq!(STATUS_WORDS, 30);
const_assert!(STATUS_OFFSET >= size_of::<Descriptor>());
const_assert!(STATUS_OFFSET % 64 == 0);
const_assert!(STATUS_OFFSET + STATUS_WORDS * 8 <= HEADER_SIZE as usize);

impl Status {
    /// The label as text (up to the first NUL; invalid UTF-8 is replaced).
    pub fn label(&self) -> String {
        let end = self.label.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        String::from_utf8_lossy(&self.label[..end]).into_owned()
    }

    /// The attached pids (non-zero entries).
    pub fn attached_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.attached.iter().copied().filter(|&p| p != 0)
    }
}

/// Where a kind's bytes go: bytes per slot and the body's length.
///
/// Each kind computes its own in its `raw` module (the sizes of its words
/// are its business); [`crate::raw`]'s dispatch picks the kind's function
/// when a file is made or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLayout {
    /// Bytes per slot.
    pub slot_size: u64,
    /// Bytes of the body (a multiple of 64, so the body ends on a cache line).
    pub body_size: u64,
}

/// `bytes` rounded up to whole 64-byte cache lines (every body ends on a
/// line). `bytes` is bounded by [`MAX_BODY`] plus a control block, so the
/// rounding cannot overflow.
pub(crate) const fn whole_lines(bytes: u64) -> u64 {
    bytes.div_ceil(64) * 64
}

/// Largest value a [`SeqCell`](crate::SeqCell) holds (64 KiB).
pub const MAX_CELL_SIZE: u64 = 64 * 1024;

/// Largest ring slot (64 KiB).
pub const MAX_SLOT_SIZE: u64 = 64 * 1024;

/// Most slots a ring may have (2^32).
pub const MAX_RING_CAPACITY: u64 = 1 << 32;

/// The payload identity of byte-message queues and rings
/// ([`TypeInfo::bytes`]): named `"bytes"`, `size` the maximum message length
/// chosen at creation, alignment 1.
pub fn bytes_type(max_len: u32) -> TypeInfo {
    TypeInfo::bytes(max_len)
}

/// Atomic types that may be laid over mapped memory.
///
/// # Safety
///
/// Implementors have the size and alignment of their integer (or are
/// `repr(C)` structs of such atomics and plain integers) and accept every
/// bit pattern: true of the `std` atomics, which is why this trait exists
/// only without loom.
#[cfg(not(loom))]
pub(crate) unsafe trait MappedAtomic {}

#[cfg(not(loom))]
mod mapped_atomics {
    use super::MappedAtomic;
    use crate::sync::{AtomicI32, AtomicI64, AtomicU32, AtomicU64};

    // SAFETY: the switch module's atomics are `repr(transparent)` over std's
    // atomic integers, which have the same in-memory representation as the
    // underlying integer (documented on each type), so any bytes are valid.
    unsafe impl MappedAtomic for AtomicU64 {}
    // SAFETY: as above.
    unsafe impl MappedAtomic for AtomicI64 {}
    // SAFETY: as above.
    unsafe impl MappedAtomic for AtomicU32 {}
    // SAFETY: as above.
    unsafe impl MappedAtomic for AtomicI32 {}
    // SAFETY: an array of such types has their alignment, no padding
    // between elements, and accepts every bit pattern as each element does
    // (`[A; 0]` is the empty head of kinds whose body is all elements).
    unsafe impl<A: MappedAtomic, const N: usize> MappedAtomic for [A; N] {}
}

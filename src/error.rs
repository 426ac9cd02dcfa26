//! Error types. One enum per kind of operation; `Display` is lowercase and
//! names what was expected and what was found.

use std::io;
use std::path::PathBuf;

use crate::pod::TypeInfo;

/// Why `create`, `open` or `open_or_create` of a shared object failed.
///
/// Each way a file can be wrong has its own variant, so a caller can tell a
/// missing file from a foreign one from one of another type. No file content,
/// however corrupt, makes an open panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// `open`: nothing exists at the path.
    #[error("{}: no such file", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// `create`: something already exists at the path.
    #[error("{}: already exists", path.display())]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },
    /// The file is empty (zero bytes).
    #[error("{}: empty file (expected at least a {expected}-byte header)", path.display())]
    Empty {
        /// The path.
        path: PathBuf,
        /// The header size expected.
        expected: u64,
    },
    /// The file does not start with the mmring magic.
    #[error("{}: not an mmring file (expected magic {expected:02x?}, found {found:02x?})", path.display())]
    NotMmring {
        /// The path.
        path: PathBuf,
        /// The magic this build writes.
        expected: [u8; 8],
        /// The first bytes of the file (fewer if it is shorter).
        found: Vec<u8>,
    },
    /// The file was written by another version of the format.
    #[error("{}: unsupported format version (expected {expected}, found {found})", path.display())]
    UnsupportedVersion {
        /// The path.
        path: PathBuf,
        /// The version this build reads.
        expected: u32,
        /// The version in the file.
        found: u32,
    },
    /// The descriptor's checksum does not match its bytes, or a field is
    /// impossible: the header was damaged.
    #[error("{}: corrupt header: {what}", path.display())]
    CorruptHeader {
        /// The path.
        path: PathBuf,
        /// What is wrong, with the values found.
        what: String,
    },
    /// The file holds another kind of object (e.g. `wrong object kind
    /// (expected mpmc queue of u64 (8 B, align 8), found mpmc byte queue of
    /// bytes (4096 B, align 1))`).
    #[error("{}: wrong object kind (expected {expected}, found {found})", path.display())]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// The kind asked for, and its payload type (`"counter of i64 (8 B,
        /// align 8)"`) when a typed open asked for one.
        expected: String,
        /// The kind in the file and its payload type (`"mpmc queue of u64
        /// (8 B, align 8)"`), or its number if this build does not know it.
        found: String,
    },
    /// The file holds another payload type: another name, size or
    /// alignment (e.g. `wrong payload type (expected [u8; 16] (16 B, align
    /// 1), found u64 (8 B, align 8))`).
    #[error("{}: wrong payload type (expected {expected}, found {found})", path.display())]
    WrongPayload {
        /// The path.
        path: PathBuf,
        /// The type asked for (boxed: a [`TypeInfo`] holds its name inline).
        expected: Box<TypeInfo>,
        /// The type recorded in the file.
        found: Box<TypeInfo>,
    },
    /// The payload type's name cannot be stored in a file: empty, longer
    /// than [`MAX_NAME_LEN`](crate::pod::MAX_NAME_LEN) bytes, or with a NUL
    /// (see [`Payload`](crate::Payload)). Refused by `create`, and by
    /// `open`, since no file can hold such a type.
    #[error("{}: invalid payload type name {name:?}: the name {error}", path.display())]
    InvalidPayloadName {
        /// The path.
        path: PathBuf,
        /// The name (its first bytes if it is too long).
        name: String,
        /// What is wrong with it.
        error: NameError,
    },
    /// The file is shorter than its header says, or than any header.
    #[error("{}: truncated file (expected {expected} bytes, found {found})", path.display())]
    Truncated {
        /// The path.
        path: PathBuf,
        /// The size expected.
        expected: u64,
        /// The real size.
        found: u64,
    },
    /// The file is longer than its header says.
    #[error("{}: oversized file (expected {expected} bytes, found {found})", path.display())]
    Oversized {
        /// The path.
        path: PathBuf,
        /// The size expected.
        expected: u64,
        /// The real size.
        found: u64,
    },
    /// A capacity (asked for at create, or found in a file) is out of range.
    #[error("{}: invalid capacity {found} ({expected})", path.display())]
    InvalidCapacity {
        /// The path.
        path: PathBuf,
        /// What a valid capacity is.
        expected: String,
        /// The capacity given or found.
        found: u64,
    },
    /// The path is a symbolic link (never followed).
    #[error("{}: is a symbolic link (links are never followed)", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is a directory.
    #[error("{}: is a directory (expected a regular file)", path.display())]
    Directory {
        /// The path.
        path: PathBuf,
    },
    /// The path is a device, socket, pipe ... (expected a regular file).
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// The caller may not open or create the file.
    #[error("{}: permission denied", path.display())]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },
    /// The file system has no room for the file (`/dev/shm` full).
    #[error("{}: no space left for {needed} bytes", path.display())]
    NoSpace {
        /// The path.
        path: PathBuf,
        /// Bytes that could not be reserved.
        needed: u64,
    },
    /// `create`: the payload type cannot be held by this kind (a zero-sized
    /// type, or a cell value over 64 KiB).
    #[error("{}: unsupported payload type ({what})", path.display())]
    UnsupportedPayload {
        /// The path.
        path: PathBuf,
        /// What the kind can hold, and what was given.
        what: String,
    },
    /// A ring role (producer or consumer) is held by a live process.
    #[error("{}: the {role} role is taken by live pid {pid}", path.display())]
    RoleTaken {
        /// The path.
        path: PathBuf,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// The holder.
        pid: u32,
    },
    /// The ring was closed (by either end): no producer can attach again
    /// (a consumer can still open it and drain what is left).
    #[error("{}: the ring is closed", path.display())]
    Closed {
        /// The path.
        path: PathBuf,
    },
    /// The creation options are invalid (a label too long, say).
    #[error("{}: invalid option: {what}", path.display())]
    InvalidOption {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The header's status block stayed locked by a writer.
    #[error("{}: status block: {source}", path.display())]
    Status {
        /// The path.
        path: PathBuf,
        /// What the seqlock said.
        source: SeqLockError,
    },
    /// Any other system error, with the call that failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The system call or step.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl OpenError {
    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::NotFound { path }
            | Self::AlreadyExists { path }
            | Self::Empty { path, .. }
            | Self::NotMmring { path, .. }
            | Self::UnsupportedVersion { path, .. }
            | Self::CorruptHeader { path, .. }
            | Self::WrongKind { path, .. }
            | Self::WrongPayload { path, .. }
            | Self::InvalidPayloadName { path, .. }
            | Self::Truncated { path, .. }
            | Self::Oversized { path, .. }
            | Self::InvalidCapacity { path, .. }
            | Self::Symlink { path }
            | Self::Directory { path }
            | Self::NotRegularFile { path }
            | Self::PermissionDenied { path }
            | Self::NoSpace { path, .. }
            | Self::UnsupportedPayload { path, .. }
            | Self::RoleTaken { path, .. }
            | Self::Closed { path }
            | Self::InvalidOption { path, .. }
            | Self::Status { path, .. }
            | Self::Io { path, .. } => path,
        }
    }
}

/// Why [`remove`](crate::remove) failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: remove: {source}", path.display())]
pub struct RemoveError {
    /// The path.
    pub path: PathBuf,
    /// The error from `unlink(2)`.
    #[source]
    pub source: io::Error,
}

/// An index past the end of an [`AtomicArray`](crate::AtomicArray).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("index {index} out of bounds (length {len})")]
pub struct OutOfBounds {
    /// The index asked for.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// Why [`try_push`](crate::spsc::Producer::try_push) did not push; the value
/// comes back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryPushError<T> {
    /// The ring is full.
    #[error("ring full")]
    Full(T),
    /// The ring was closed (by either side).
    #[error("ring closed")]
    Closed(T),
}

/// Why a blocking [`push`](crate::spsc::Producer::push) did not push; the
/// value comes back. A blocking call has no deadline, so it cannot time out
/// (see [`PushTimeoutError`] for the timed call).
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError<T> {
    /// The ring was closed (by either side).
    #[error("ring closed")]
    Closed(T),
    /// The consumer is gone (an SPSC ring's consumer role is free or its
    /// process died) while the ring was full. Never from an MPMC queue.
    #[error("consumer disconnected")]
    Disconnected(T),
}

/// Why a timed [`push_timeout`](crate::spsc::Producer::push_timeout) did
/// not push; the value comes back.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushTimeoutError<T> {
    /// The ring was closed (by either side).
    #[error("ring closed")]
    Closed(T),
    /// The consumer is gone (its process died or it released its role)
    /// while the ring was full.
    #[error("consumer disconnected")]
    Disconnected(T),
    /// The timeout passed with the ring still full.
    #[error("timed out with the ring full")]
    Timeout(T),
}

impl<T> From<PushError<T>> for PushTimeoutError<T> {
    fn from(e: PushError<T>) -> Self {
        match e {
            PushError::Closed(v) => Self::Closed(v),
            PushError::Disconnected(v) => Self::Disconnected(v),
        }
    }
}

/// Why [`try_pop`](crate::spsc::Consumer::try_pop) returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryPopError {
    /// The ring is empty (for now).
    #[error("ring empty")]
    Empty,
    /// The ring is empty and closed: nothing more will come.
    #[error("ring closed")]
    Closed,
}

/// Why a blocking [`pop`](crate::spsc::Consumer::pop) returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The ring is empty and closed: nothing more will come.
    #[error("ring closed")]
    Closed,
    /// The ring is empty and no producer holds it (an SPSC ring's producer
    /// role is free or its process died) without closing it: everything it
    /// committed has been received. Never from an MPMC queue.
    #[error("producer disconnected")]
    Disconnected,
}

/// Why a timed [`pop_timeout`](crate::spsc::Consumer::pop_timeout)
/// returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopTimeoutError {
    /// The ring is empty and closed: nothing more will come.
    #[error("ring closed")]
    Closed,
    /// The ring is empty and no producer holds it (its process died or it
    /// released its role): everything it committed has been received.
    #[error("producer disconnected")]
    Disconnected,
    /// The timeout passed with the ring still empty.
    #[error("timed out with the ring empty")]
    Timeout,
}

impl From<PopError> for PopTimeoutError {
    fn from(e: PopError) -> Self {
        match e {
            PopError::Closed => Self::Closed,
            PopError::Disconnected => Self::Disconnected,
        }
    }
}

/// Why a read or write chunk could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Fewer slots (to write) or items (to read) than asked are available;
    /// this many are.
    #[error("only {0} available")]
    TooFewSlots(usize),
    /// The ring was closed (for reads: closed and drained).
    #[error("ring closed")]
    Closed,
}

macro_rules! into_inner_and_debug {
    ($name:ident { $($variant:ident),* }) => {
        impl<T> $name<T> {
            /// The value that was not pushed.
            pub fn into_inner(self) -> T {
                match self { $(Self::$variant(v) => v),* }
            }
        }

        // No `T: Debug` bound: payloads need not be printable.
        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self { $(Self::$variant(_) => f.write_str(concat!(stringify!($variant), "(..)"))),* }
            }
        }
    };
}

into_inner_and_debug!(TryPushError { Full, Closed });
into_inner_and_debug!(PushError {
    Closed,
    Disconnected
});
into_inner_and_debug!(PushTimeoutError {
    Closed,
    Disconnected,
    Timeout
});

/// The ring was closed (for reads: closed and drained).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ring closed")]
pub struct Closed;

/// Why a blocking byte-message push (`push`) did not push (a blocking call
/// has no deadline: see [`BytePushTimeoutError`] for the timed one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BytePushError {
    /// The message is longer than the maximum: a byte queue's slot, or an
    /// SPSC byte ring's [`MAX_MESSAGE_LEN`](crate::spsc::MAX_MESSAGE_LEN).
    #[error("message of {len} bytes is longer than the {max}-byte maximum")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The queue's maximum.
        max: usize,
    },
    /// The queue was closed.
    #[error("queue closed")]
    Closed,
    /// The reading side is gone (an SPSC byte ring's consumer role is free
    /// or its process died) while there was no room.
    #[error("consumer disconnected")]
    Disconnected,
}

/// Why a non-blocking byte-message push (`try_push`) did not push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ByteTryPushError {
    /// The message is longer than the maximum: a byte queue's slot; for an
    /// SPSC byte ring, what the whole ring holds (`try_push`, all or
    /// nothing) or [`MAX_MESSAGE_LEN`](crate::spsc::MAX_MESSAGE_LEN) (the
    /// streaming calls).
    #[error("message of {len} bytes is longer than the {max}-byte maximum")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// No room for the message now.
    #[error("queue full")]
    Full,
    /// The ring or queue was closed.
    #[error("queue closed")]
    Closed,
}

/// Why a timed byte-message push (`push_timeout`) did not push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BytePushTimeoutError {
    /// The message is longer than the maximum: a byte queue's slot; for an
    /// SPSC byte ring, what the whole ring holds (`try_push`, all or
    /// nothing) or [`MAX_MESSAGE_LEN`](crate::spsc::MAX_MESSAGE_LEN) (the
    /// streaming calls).
    #[error("message of {len} bytes is longer than the {max}-byte maximum")]
    TooLong {
        /// The message's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The ring or queue was closed.
    #[error("queue closed")]
    Closed,
    /// The reading side is gone (its process died or it released its
    /// role) while there was no room.
    #[error("consumer disconnected")]
    Disconnected,
    /// The timeout passed with no room for the message.
    #[error("timed out with the queue full")]
    Timeout,
}

/// Why [`gc`](crate::gc::gc) could not look at a directory (problems with
/// single files are reported per file, never as an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// Nothing exists at the path.
    #[error("{}: no such directory", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Any other system error, with the call that failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The system call or step.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Why `task_done` refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// More `task_done` calls than items pushed.
    #[error("task_done called more times than items were pushed")]
    TooManyDone,
    /// The queue was not created joinable.
    #[error("the queue does not track tasks (create it joinable)")]
    NotJoinable,
}

/// Why a blocking [`join`](crate::mpmc::Queue::join) returned without
/// every task done (it has no deadline: see [`JoinTimeoutError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The queue was not created joinable.
    #[error("the queue does not track tasks (create it joinable)")]
    NotJoinable,
}

/// Why a timed [`join_timeout`](crate::mpmc::Queue::join_timeout) returned
/// without every task done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinTimeoutError {
    /// The timeout passed with this many tasks unfinished.
    #[error("timed out with {0} tasks unfinished")]
    Timeout(u64),
    /// The queue was not created joinable.
    #[error("the queue does not track tasks (create it joinable)")]
    NotJoinable,
}

impl From<JoinError> for JoinTimeoutError {
    fn from(e: JoinError) -> Self {
        match e {
            JoinError::NotJoinable => Self::NotJoinable,
        }
    }
}

/// Why a map operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// No entry is free for a new key: every entry held a key at once.
    #[error("map full: all {capacity} entries hold keys")]
    Full {
        /// The table's capacity.
        capacity: usize,
    },
    /// The key is longer than the map's maximum.
    #[error("key of {len} bytes is longer than the {max}-byte maximum")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The map's maximum.
        max: usize,
    },
    /// A byte value is longer than the map's maximum (nothing changed).
    #[error("value of {len} bytes is longer than the {max}-byte maximum")]
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The map's maximum.
        max: usize,
    },
    /// An entry stayed locked by a writer that died or stalled.
    #[error("entry busy: {0}")]
    Busy(#[from] SeqLockError),
}

/// `release` on a bounded semaphore already at its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("released too many times: the bounded semaphore is already at its limit of {max}")]
pub struct ReleaseError {
    /// The bound.
    pub max: u64,
}

/// Why a blocking barrier [`wait`](crate::Barrier::wait) did not complete
/// (it has no deadline: see [`BarrierTimeoutError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// A registered party died without arriving: the round cannot complete.
    #[error("broken barrier: party pid {pid} died without arriving")]
    Broken {
        /// The dead party.
        pid: u32,
    },
    /// The round was broken (a party gave up, died or aborted) or reset;
    /// a broken barrier refuses arrivals until it is reset.
    #[error("broken barrier: the round was aborted or reset")]
    Aborted,
}

/// Why a timed barrier [`wait_timeout`](crate::Barrier::wait_timeout) did
/// not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BarrierTimeoutError {
    /// The timeout passed before every party arrived (this party's arrival
    /// was withdrawn).
    #[error("timed out waiting for the other parties")]
    Timeout,
    /// A registered party died without arriving: the round cannot complete.
    #[error("broken barrier: party pid {pid} died without arriving")]
    Broken {
        /// The dead party.
        pid: u32,
    },
    /// The round was broken (a party gave up, died or aborted) or reset;
    /// a broken barrier refuses arrivals until it is reset.
    #[error("broken barrier: the round was aborted or reset")]
    Aborted,
}

impl From<BarrierError> for BarrierTimeoutError {
    fn from(e: BarrierError) -> Self {
        match e {
            BarrierError::Broken { pid } => Self::Broken { pid },
            BarrierError::Aborted => Self::Aborted,
        }
    }
}

/// Why a payload name cannot be stored or was not read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name has no bytes.
    #[error("is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`](crate::pod::MAX_NAME_LEN) bytes.
    #[error("is {len} bytes long (at most {max})")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_NAME_LEN`](crate::pod::MAX_NAME_LEN).
        max: usize,
    },
    /// The name contains a NUL byte.
    #[error("contains a NUL byte")]
    Nul,
    /// A file's name field has non-zero bytes after the name's length.
    #[error("has non-zero bytes after its {len} bytes")]
    Padding {
        /// The stored length.
        len: usize,
    },
    /// The bytes are not UTF-8 (only ever read from a file).
    #[error("is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// How many leading bytes are valid UTF-8.
        valid_up_to: usize,
    },
}

/// Why a seqlock read or write gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqLockError {
    /// The writer that holds the lock (sequence odd) is a process that no
    /// longer exists: it died half way through a write. [`SeqLock::lock`](crate::raw::seqlock::SeqLock::lock)
    /// takes such a lock over instead of returning this; it is what a
    /// caller of the lower-level retry loop sees.
    #[error("seqlock writer (pid {pid}) died mid-write; sequence stuck at {seq}")]
    WriterDied {
        /// The dead writer's pid.
        pid: u32,
        /// The odd sequence it left behind.
        seq: u64,
    },
    /// The lock stayed busy for the whole patience, with a writer that is
    /// (as far as we can tell) alive, or unknown.
    #[error("seqlock busy for {waited:?} (sequence {seq}, writer pid {pid})")]
    Timeout {
        /// The last sequence seen.
        seq: u64,
        /// The pid recorded by the writer inside, 0 if none was recorded.
        pid: u32,
        /// How long we waited.
        waited: std::time::Duration,
    },
    /// Under loom (or with [`Patience::attempts`](crate::raw::seqlock::Patience::attempts)): the retry budget ran out.
    #[error("seqlock busy after {attempts} attempts (sequence {seq})")]
    Exhausted {
        /// The last sequence seen.
        seq: u64,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// Why [`body_layout`](crate::raw::body_layout) refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The capacity is out of range; the text says what is in range.
    #[error("invalid capacity: {0}")]
    Capacity(String),
    /// The payload type cannot be held by this kind.
    #[error("unsupported payload: {0}")]
    Payload(String),
}

//! # mmring — lock-free inter-process communication over memory-mapped files
//!
//! Processes that share state today often do it through a server process
//! and locks (Python's `multiprocessing.Manager`, `Value` + `get_lock()`,
//! `Queue`). mmring does the same jobs with atomics and compare-and-swap on
//! a file-backed shared mapping: no server, no system call on the fast path,
//! and no lock that a dead process can hold.
//!
//! Each shared object lives in its own file (a bare name goes under
//! `/dev/shm`; any path works, and a file on a disk survives restarts):
//!
//! | type | replaces | operations |
//! |---|---|---|
//! | [`Counter`] (`i64`) | `Value('i')` + `get_lock()` | load, store, fetch_add/sub, compare_exchange, fetch_update, fetch_max/min |
//! | [`AtomicArray<T>`] (`u8` .. `u64`, `i8` .. `i64`, `f32`, `f64`) | `Array` | the same, per element |
//! | [`SeqCell<T>`] (any [`Payload`] `T`) | `Manager().Namespace` read whole | load (never torn, never blocks the writer), store, update, version |
//! | [`spsc::Producer<T>`] / [`spsc::Consumer<T>`] | `Pipe`, a 1:1 `Queue` | try_push/try_pop, blocking push/pop (futex, no CPU while idle), timeouts, push_slice/pop_slice, read/write chunks (values copied straight to and from the slots), close |
//! | [`mpmc::Queue<T>`] | `Queue`, `JoinableQueue` | the same from any number of processes, plus task_done/join; one `close()` stops every consumer; an optional bound below the power-of-two ring (`maxsize`) |
//! | [`spsc::ByteProducer`] / [`mpmc::ByteQueue`] | `Pipe`, pickled objects in a `Queue` | byte messages: the queue's up to a maximum length chosen at creation; the ring's of any length up to [`spsc::MAX_MESSAGE_LEN`] (1 GiB), carried in pieces, read whole or not at all |
//! | [`map::Map<K, V>`], [`map::ByteMap<K>`] | `Manager().dict()` | get (never torn), insert, update (atomic read-modify-write), remove, snapshot; typed values or byte strings; capacity bounds the keys present at once (removed entries are reused) |
//! | [`Event`], [`Semaphore`], [`Barrier`] | `Manager().Event()`, `Semaphore`, `BoundedSemaphore`, `Barrier` | set/wait, acquire/release (dead holders' permits recovered), reusable N-party barrier |
//!
//! Every kind has `create`, `open` and `open_or_create`. Opening checks the
//! whole header first (magic, version, checksum, kind, payload type, sizes)
//! and answers a bad file with a typed [`OpenError`] that names what was
//! expected and what was found; no file content makes the library panic.
//! The bytes are documented in `docs/FORMAT.md`.
//!
//! # Payload types
//!
//! A type stored in a file is a [`Payload`]: plain old data ([`Pod`]) with
//! a stable name that the file records with its size and alignment. The
//! primitives (`u64`, `f64` ...) and arrays of payloads (`[u8; 16]`) are
//! payloads already; declare your own with [`payload!`]:
//!
//! ```
//! use mmring::{Pod, SeqCell, Zeroable};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[repr(C)]
//! struct Quote {
//!     bid: f64,
//!     ask: f64,
//! }
//! mmring::payload!(Quote); // named "Quote", wherever the type lives
//! // or: mmring::payload!(Quote = "market.Quote");
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("quote");
//! let quote = SeqCell::create(&path, Quote { bid: 99.5, ask: 100.5 })?;
//! // Opened as another type: the error names both sides.
//! let err = SeqCell::<[u8; 16]>::open(&path).unwrap_err();
//! assert!(err.to_string().ends_with(
//!     "wrong payload type (expected [u8; 16] (16 B, align 1), found Quote (16 B, align 8))"
//! ));
//! # drop(quote);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The name never comes from [`std::any::type_name`], so a compiler
//! upgrade, a crate rename or a move to another module keeps files
//! openable; see [`pod`] for the naming rules.
//!
//! # Example: two processes, one counter
//!
//! ```rust,standalone_crate
//! use mmring::Counter;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("hits");
//! let hits = Counter::create(&path, 0)?;
//!
//! // SAFETY: this doctest is its own single-threaded process, so the child
//! // may do anything the parent could.
//! let child = unsafe { libc::fork() };
//! assert!(child >= 0, "fork failed");
//! if child == 0 {
//!     // The child opens the same file by name and counts too.
//!     let hits = Counter::open(&path).expect("open in child");
//!     for _ in 0..10_000 {
//!         hits.fetch_add(1);
//!     }
//!     // SAFETY: leave at once, without running the parent's destructors.
//!     unsafe { libc::_exit(0) };
//! }
//! for _ in 0..10_000 {
//!     hits.fetch_add(1);
//! }
//! let mut status = 0;
//! // SAFETY: `child` is our child's pid; `status` is a valid out-pointer.
//! assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
//! assert_eq!(hits.load(), 20_000); // no lost update, no lock
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! Each layer imports only from the ones above it:
//!
//! 1. basics: [`sync`] (the one switch between `std` atomics and loom's),
//!    [`pid`], [`pod`], [`error`], [`layout`] (the header page: descriptor,
//!    status, kinds, generic limits) and [`wait`] (cross-process sleep and
//!    wake-up on a futex eventcount, and the one sliced wait every blocking
//!    call uses);
//! 2. `raw`: the algorithms over memory they are handed (seqlock, atomic
//!    elements, rings, map, event, semaphore, barrier), so the same code
//!    runs in a mapping, on the heap and under loom; each kind's file there
//!    also owns its body layout. Hidden and unstable: it is public only for
//!    the loom models and the fuzzers;
//! 3. [`region`], the only module that touches files, and the handle
//!    scaffold every kind is built on (open, validate, map, own);
//! 4. the handles users hold: [`Counter`], [`AtomicArray`], [`SeqCell`],
//!    [`spsc`], [`mpmc`], [`map`], [`Event`], [`Semaphore`], [`Barrier`];
//! 5. the tools' library side: [`inspect`](mod@inspect) and [`gc`](mod@gc),
//!    which finds and removes stale files under the lock rule that
//!    [`region`] documents.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// The README's example, compiled as a doc test so that it cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Items compiled only without loom: the file layer, the handle scaffold,
/// the handles and the tools. Under loom the atomics have another layout
/// than the integers they wrap, so nothing may lay them over a mapping;
/// the algorithms (`raw`) and the basics are all that loom builds.
macro_rules! without_loom {
    ($($item:item)*) => {
        $(
            #[cfg(not(loom))]
            $item
        )*
    };
}

pub mod error;
pub mod layout;
pub mod pid;
pub mod pod;
#[doc(hidden)]
pub mod raw;
pub mod sync;
pub mod wait;

without_loom! {
    pub mod region;
    mod handle;

    pub mod barrier;
    pub mod cell;
    pub mod counter;
    pub mod event;
    pub mod map;
    pub mod mpmc;
    pub mod semaphore;
    pub mod spsc;

    mod tools;

    pub use barrier::Barrier;
    pub use cell::SeqCell;
    pub use counter::{AtomicArray, Counter};
    pub use event::Event;
    pub use region::{CreateOptions, Region, remove};
    pub use semaphore::Semaphore;
    pub use tools::{gc, inspect};
}

pub use error::{
    BarrierError, BarrierTimeoutError, BytePushError, BytePushTimeoutError, ByteTryPushError,
    ChunkError, Closed, GcError, JoinError, JoinTimeoutError, LayoutError, MapError, NameError,
    OpenError, OutOfBounds, PopError, PopTimeoutError, PushError, PushTimeoutError, ReleaseError,
    RemoveError, SeqLockError, TaskError, TryPopError, TryPushError,
};
pub use pod::{Payload, Pod, TypeInfo, Zeroable};
pub use raw::atomic::{Atomic, Element};
pub use raw::seqlock::Patience;

//! The multi-producer, multi-consumer queue: the job of
//! `multiprocessing.Queue` and `JoinableQueue`, for any number of processes
//! at once, with no lock.
//!
//! [`Queue<T>`] holds typed values, [`ByteQueue`] byte messages up to a
//! maximum length chosen at creation; both are a bounded ring of slots in a
//! file, shared by every process that opens it. A slot is won with one
//! compare-and-swap of a claim word that names its owner, so a process
//! killed mid-operation is recovered by the others (see "Processes that
//! die" on [`Queue`]). The algorithm (Vyukov's bounded MPMC queue, with
//! claims, holes and in-flight waits) is documented with its code in
//! `src/raw/mpmc/`.

pub use crate::error::{BytePushError, JoinError, JoinTimeoutError, TaskError};
pub use crate::raw::mpmc::{
    BATCH_MAX, FLAG_JOINABLE, IN_FLIGHT_PATIENCE, RECOVERY_CHECK, Snapshot,
};
pub use mapped::{ByteQueue, Queue, QueueOptions};

mod mapped;

//! How a comparison runs, whatever it compares: the parties (forked
//! processes or threads), the protocol that starts, stops and counts them,
//! the workloads every queue runs the same way, and where the files live.
//!
//! * [`control`]: the start/stop protocol of a two-party run (both sides
//!   busy for the whole measured window), [`Budget`](control::Budget) and
//!   [`Sample`](control::Sample);
//! * [`procs`]: the fork-based two-process runner; [`threads`]: the
//!   in-process one; [`crowd`]: the several-party runner of the MPMC rows
//!   (every producer and consumer a process or a thread);
//! * [`roundtrip`]: the round-trip runner (p50/p99); [`floor`]: one cache
//!   line bounced, the floor of a round trip;
//! * [`flow`]: the workload (numbered messages, checked on arrival),
//!   written once for every queue; [`spin`]: the one waiting policy of the
//!   spinning rows; [`pace`]: a loop at a fixed rate (the paced writer);
//! * [`dir`]: the private directory the files live in and a comparison's
//!   [`Stage`](dir::Stage); [`shm`]: the harness's own shared mappings;
//! * [`cpu`]: how busy the rest of the machine is.

pub mod control;
pub mod cpu;
pub mod crowd;
pub mod dir;
pub mod floor;
pub mod flow;
pub mod pace;
pub mod procs;
pub mod roundtrip;
pub mod shm;
pub mod spin;
pub mod threads;

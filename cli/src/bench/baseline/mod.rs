//! What mmring is compared with across processes: lock-based baselines in
//! shared mappings of the harness's own
//! ([`Shm`](crate::bench::runner::shm::Shm)), the same kind of memory the
//! mmring objects live in, and a Unix pipe.
//!
//! * [`pthread`]: the process-shared `pthread_mutex_t` every lock-based
//!   baseline takes, and [`PthreadCounter`](pthread::PthreadCounter), the
//!   counter rows' baseline (an `i64` behind it);
//! * [`bare_atomic`]: a bare `AtomicU64::fetch_add` on a mapped word, the
//!   physical operation under `Counter`;
//! * [`mutex_ring`]: a ring behind a process-shared mutex and condition
//!   variables, the mutex version of the SPSC and MPMC rows;
//! * [`mutex_map`]: a fixed-capacity hash table behind a process-shared
//!   mutex, the map rows' baseline (std's `HashMap` cannot live in a
//!   mapping);
//! * [`pipe`]: `pipe(2)` between a parent and its child, throughput and
//!   round trips.

pub mod bare_atomic;
pub mod mutex_map;
pub mod mutex_ring;
pub mod pipe;
pub mod pthread;

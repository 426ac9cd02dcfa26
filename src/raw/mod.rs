//! The algorithms over memory they are handed: what the loom models run,
//! and what the handles users hold ([`mpmc::Queue`](crate::mpmc::Queue),
//! [`map::Map`](crate::map::Map) ...) wrap over a mapped file.
//!
//! Unstable: exposed for the loom models and the fuzzers only; users hold
//! the handles.

pub mod map;
pub mod mpmc;

//! The `mmring` command line's library: the benchmark harness behind
//! `mmring bench` and the criterion benches (`cli/benches/`).
//!
//! It uses mmring's public API only, like any other user of the crate; the
//! lock-based baselines it compares against live in shared mappings of its
//! own ([`bench::runner::shm`]). `src/main.rs` is the command itself:
//! `inspect` and `gc` call [`mmring::inspect`] and [`mmring::gc`], `bench`
//! calls [`bench::run`].

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bench;

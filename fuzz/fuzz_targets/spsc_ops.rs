//! cargo-fuzz target `spsc_ops`: the body lives in `bodies/spsc_ops.rs`, which the
//! corpus replay test (`tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::spsc_ops::run(data));
